"""Judges for the pages: whose judgements a metric rests on, LLM grading of the unjudged shown documents,
the corpus's judging guideline, query tags, and agreement between two judges.

People's judgements and an LLM judge's are never mixed silently: metrics rest on people only unless
the page's switch says "people, the LLM filling gaps" (:func:`rerank_core.agreement.merge_qrels`), and
the label under every figure says which; an LLM's grades show as their own badges ("LLM 2", the
rationale on hover). Everything here reads and writes the judgement store; the work is the core's
(:mod:`rerank_core.judging`, :mod:`rerank_core.agreement`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import streamlit as st

from rerank_core.agreement import PEOPLE_ONLY, PEOPLE_THEN_LLM, judge_agreement, merge_qrels
from rerank_core.config import Settings
from rerank_core.judgements import is_llm_judge
from rerank_core.judging import DEFAULT_GUIDELINE, LLMJudge, judge_and_store, unjudged
from ui import keys, render, resources
from ui.labelling import LabelStore

BASIS_OPTIONS = (PEOPLE_ONLY, PEOPLE_THEN_LLM)
BASIS_HELP = (
    "People only: the metrics use people's judgements (imports included); an unjudged document counts "
    "as not relevant. People, the LLM filling gaps: where no person graded a document, the chosen LLM "
    "judge's grade counts. A person's grade always wins."
)
JUDGE_MODEL_HELP = (
    "smollm2 runs the packaged SmolLM2-135M locally (offline; slow on a CPU and a weak judge: check its "
    "agreement with people on the Labels page). Any other name is a model of the OpenAI-compatible server "
    "(OPENAI_BASE_URL, or the OpenAI API with OPENAI_API_KEY)."
)


# -- whose judgements ------------------------------------------------------------------------------------


def llm_judges(store: LabelStore, corpus_id: str) -> list[str]:
    """The LLM judges with current judgements in this corpus, sorted."""
    return sorted({j.judge for j in store.judgements(corpus_id) if is_llm_judge(j.judge)})


@dataclass(frozen=True)
class Basis:
    """What a page's metrics rest on: people only, or people with ``llm_judge`` filling gaps.
    ``llm_judge`` is also the judge whose badges are shown (None: no LLM judge in this corpus)."""

    fill: bool
    llm_judge: str | None

    @property
    def name(self) -> str:
        return PEOPLE_THEN_LLM if self.fill and self.llm_judge else PEOPLE_ONLY


def basis_control(store: LabelStore, corpus_id: str, basis_key: str, judge_key: str) -> Basis:
    """The switch "people only" / "people, the LLM filling gaps", and the LLM judge to use."""
    judges = llm_judges(store, corpus_id)
    left, right = st.columns([3, 2], vertical_alignment="bottom")
    with left:
        choice = st.radio("Metrics rest on", BASIS_OPTIONS, key=basis_key, horizontal=True, help=BASIS_HELP)
    judge: str | None = None
    with right:
        if judges:
            if st.session_state.get(judge_key) not in judges:
                st.session_state.pop(judge_key, None)
            judge = st.selectbox(
                "LLM judge",
                judges,
                index=len(judges) - 1,
                key=judge_key,
                help="Its grades show as 'LLM' badges; with the switch on they fill the gaps people left.",
            )
        elif choice == PEOPLE_THEN_LLM:
            st.caption("No LLM judge has graded this corpus yet, so the metrics rest on people only.")
    return Basis(fill=choice == PEOPLE_THEN_LLM and judge is not None, llm_judge=judge)


@dataclass(frozen=True)
class QueryJudgements:
    """One query's judgements as a page uses them.

    ``people``: people's current grades (skips as None), the badges; ``grades``: what the metrics rest
    on; ``llm``: the LLM judge's ``(judge, grade, rationale)`` per document (shown apart); ``label``:
    what the metrics rest on, in words; ``judges``: the people who judged."""

    people: dict[str, int | None]
    grades: dict[str, int | None]
    label: str
    llm: dict[str, tuple[str, int, str]] = field(default_factory=dict)
    judges: list[str] = field(default_factory=list)


def query_judgements(store: LabelStore, corpus_id: str, query_id: str, basis: Basis) -> QueryJudgements:
    """People's grades of one query, and, with ``basis.fill``, the LLM judge's where no person graded."""
    current = store.judgements(corpus_id, query_id=query_id)
    people = store.grades(corpus_id, query_id, people_only=True)
    judges = sorted({j.judge for j in current if not is_llm_judge(j.judge)})
    llm = {
        j.doc_id: (j.judge, j.grade, j.rationale or "")
        for j in current
        if basis.llm_judge is not None and j.judge == basis.llm_judge and j.grade is not None
    }
    graded = {d: g for d, g in people.items() if g is not None}
    if not basis.fill or basis.llm_judge is None:
        merged = merge_qrels({query_id: graded})
        return QueryJudgements(dict(people), dict(people), merged.label, llm, judges)
    merged = merge_qrels(
        {query_id: graded}, {query_id: {d: g for d, (_, g, _) in llm.items()}}, basis.llm_judge
    )
    grades: dict[str, int | None] = {d: None for d, g in people.items() if g is None}  # skips stay skips
    grades.update(merged.qrels.get(query_id, {}))
    return QueryJudgements(dict(people), grades, merged.label, llm, judges)


def qrels_for(store: LabelStore, corpus_id: str, basis: Basis) -> tuple[dict[str, dict[str, int]], str]:
    """The corpus's qrels on ``basis`` and their label (for the benchmark's labelled queries)."""
    people = store.qrels(corpus_id, people_only=True)
    if not basis.fill or basis.llm_judge is None:
        merged = merge_qrels(people)
    else:
        merged = merge_qrels(people, store.qrels(corpus_id, judge=basis.llm_judge), basis.llm_judge)
    return merged.qrels, merged.label


# -- grading with an LLM ---------------------------------------------------------------------------------


def default_judge_model(settings: Settings) -> str:
    """The configured OpenAI-compatible model when a key or server is set, else the local SmolLM2."""
    return settings.openai_model if (settings.openai_api_key or settings.openai_base_url) else "smollm2"


def guideline_text(store: LabelStore, corpus_id: str) -> str | None:
    found = store.guideline(corpus_id)
    return found.text if found is not None else None


def render_llm_grading(
    store: LabelStore,
    corpus_id: str,
    query_id: str,
    query: str,
    docs: Sequence[tuple[str, str]],
    people: Mapping[str, int | None],
    settings: Settings,
    *,
    model_key: str,
    go_key: str,
) -> None:
    """A model field and the button "Grade the unjudged shown documents with an LLM": every shown document
    no person graded (``docs`` are ``(doc_id, text)``) is graded 0-3 with a rationale and stored under
    ``llm:<model>``, with a progress bar; the corpus's guideline is given to the model."""
    todo = unjudged([d for d, _ in docs], people)
    texts = dict(docs)
    model_col, button_col = st.columns([2, 3], vertical_alignment="bottom")
    with model_col:
        model = st.text_input(
            "LLM judge model", value=default_judge_model(settings), key=model_key, help=JUDGE_MODEL_HELP
        )
    with button_col:
        clicked = st.button(
            f"Grade the {len(todo)} unjudged shown documents with an LLM"
            if todo
            else "Every shown document has a person's grade",
            key=go_key,
            icon=":material/smart_toy:",
            disabled=not todo or not (model or "").strip(),
            help="Stored as their own judge llm:<model>, with the model's reason; never as a person's grade.",
        )
    if not clicked:
        return
    bar = st.progress(0.0, text=f"Grading {len(todo)} documents…")

    def progress(done: int, total: int, message: str) -> None:
        bar.progress(done / total if total else 1.0, text=message)

    try:
        judge = LLMJudge(model.strip(), settings, guideline_text(store, corpus_id))
        with st.spinner(f"Loading {judge.judge}…"):
            judge.load()
        outcome = judge_and_store(
            judge, store, corpus_id, query_id, query, [(d, texts[d]) for d in todo], progress=progress
        )
    except Exception as exc:  # noqa: BLE001 - shown on the page with its fix
        bar.empty()
        message, hint = resources.describe_error(exc)
        st.error(f"The LLM judge could not grade: {render.md_escape(message)}", icon=":material/smart_toy:")
        if hint:
            st.caption(f"Fix: {render.md_escape(hint)}")
        return
    bar.empty()
    kind = "success" if outcome.stored and not outcome.unreadable else "warning"
    st.session_state[keys.LBL_NOTICE] = (
        kind,
        render.md_escape(outcome.summary())
        + " Its grades show as LLM badges; switch the metrics to “people, the LLM filling gaps” to count them.",
    )
    st.rerun()


# -- the guideline ---------------------------------------------------------------------------------------


def render_guideline(store: LabelStore, corpus_id: str) -> None:
    """The corpus's judging guideline in a folded box (the default one when none is set)."""
    text = guideline_text(store, corpus_id)
    with st.expander("Judging guideline" + ("" if text else " (the default: set one on the Labels page)")):
        st.text(text or DEFAULT_GUIDELINE)


def _save_guideline(store: LabelStore, corpus_id: str, key: str, judge: str) -> None:
    text = st.session_state.get(key) or ""
    try:
        store.set_guideline(corpus_id, text, updated_by=judge)
    except Exception as exc:  # noqa: BLE001 - shown on the next run
        st.session_state[keys.LBL_NOTICE] = ("error", f"The guideline was not saved: {render.md_escape(exc)}")
        return
    done = "saved" if text.strip() else "removed (the default guideline applies)"
    st.session_state[keys.LBL_NOTICE] = ("success", f"Judging guideline {done}.")


def render_guideline_editor(store: LabelStore, corpus_id: str, judge: str) -> None:
    """Edit the corpus's judging guideline: shown to people next to the grade buttons, given to LLM judges."""
    key = f"{keys.LBL_GUIDELINE}|{corpus_id}"
    current = store.guideline(corpus_id)
    if key not in st.session_state:
        st.session_state[key] = current.text if current is not None else ""
    st.text_area(
        "Judging guideline",
        key=key,
        height=160,
        placeholder=DEFAULT_GUIDELINE,
        help="What each grade means for this corpus. People see it next to the grade buttons; LLM judges "
        "are given it in their instructions. Empty: the default guideline (shown greyed).",
    )
    st.button(
        "Save the guideline",
        key=keys.LBL_GUIDELINE_SAVE,
        icon=":material/save:",
        on_click=_save_guideline,
        args=(store, corpus_id, key, judge),
    )
    if current is not None:
        by = f" by {render.md_escape(current.updated_by)}" if current.updated_by else ""
        st.caption(f"Last saved {current.updated_at:%Y-%m-%d %H:%M} UTC{by}.")


# -- query tags ------------------------------------------------------------------------------------------


def _split(text: str) -> list[str]:
    return list(dict.fromkeys(t.strip() for t in text.replace(";", ",").split(",") if t.strip()))


def _load_tags(key_text: str, tags: Mapping[str, Sequence[str]]) -> None:
    qid = st.session_state.get(keys.LBL_TAGS_QUERY)
    st.session_state[key_text] = ", ".join(tags.get(qid, ())) if qid else ""


def _save_tags(store: LabelStore, corpus_id: str, key_text: str, queries: Mapping[str, str]) -> None:
    qid = st.session_state.get(keys.LBL_TAGS_QUERY)
    if not qid:
        return
    tags = _split(st.session_state.get(key_text) or "")
    try:
        if qid in queries:
            store.add_query(corpus_id, queries[qid], query_id=qid)
        store.set_tags(corpus_id, {qid: tags})
    except Exception as exc:  # noqa: BLE001 - shown on the next run
        st.session_state[keys.LBL_NOTICE] = ("error", f"The tags were not saved: {render.md_escape(exc)}")
        return
    what = ", ".join(tags) if tags else "no tags"
    st.session_state[keys.LBL_NOTICE] = (
        "success",
        f"Query {render.md_escape(qid)} now has {render.md_escape(what)}.",
    )


def merged_tags(
    store: LabelStore, corpus_id: str, file_tags: Mapping[str, Sequence[str]]
) -> dict[str, tuple[str, ...]]:
    """Query tags: the corpus's queries file, overridden per query by the tags set in the app."""
    out = {q: tuple(t) for q, t in file_tags.items() if t}
    out.update({q: tuple(t) for q, t in store.tags(corpus_id).items()})
    return out


def render_tag_editor(
    store: LabelStore, corpus_id: str, queries: Mapping[str, str], file_tags: Mapping[str, Sequence[str]]
) -> None:
    """Set a query's tags (comma-separated); the benchmark's per-query tables are grouped by them."""
    tags = merged_tags(store, corpus_id, file_tags)
    choices = sorted(set(queries) | set(store.queries(corpus_id)) | set(tags))
    if not choices:
        st.caption("This corpus has no queries yet: tags need a query (grade one, or import queries).")
        return
    texts = {**store.queries(corpus_id), **queries}
    key_text = f"{keys.LBL_TAGS_TEXT}|{corpus_id}"
    left, right = st.columns([2, 3], vertical_alignment="bottom")
    with left:
        st.selectbox(
            "Query",
            choices,
            index=None,
            key=keys.LBL_TAGS_QUERY,
            placeholder="Pick a query to tag…",
            format_func=lambda q: f"{q} · {render.snippet(texts.get(q, ''), 70)}",
            on_change=_load_tags,
            args=(key_text, tags),
        )
    with right:
        st.text_input("Tags (comma-separated)", key=key_text, placeholder="e.g. hard, numeric")
    st.button(
        "Save the tags",
        key=keys.LBL_TAGS_SAVE,
        icon=":material/sell:",
        disabled=not st.session_state.get(keys.LBL_TAGS_QUERY),
        on_click=_save_tags,
        args=(store, corpus_id, key_text, texts),
    )
    if tags:
        counts: dict[str, int] = {}
        for ts in tags.values():
            for t in ts:
                counts[t] = counts.get(t, 0) + 1
        st.caption(
            f"{len(tags)} tagged queries: "
            + ", ".join(f"{render.md_escape(t)} ({n})" for t, n in sorted(counts.items()))
            + ". Tags from the queries file count unless set here."
        )


# -- agreement between two judges ------------------------------------------------------------------------


def agreement_figure(agreement):
    """The confusion matrix of two judges as a plotly heatmap (counts written in the cells)."""
    import plotly.graph_objects as go

    labels = [str(g) for g in agreement.labels]
    fig = go.Figure(
        go.Heatmap(
            z=[list(row) for row in agreement.matrix],
            x=labels,
            y=labels,
            text=[[str(v) for v in row] for row in agreement.matrix],
            texttemplate="%{text}",
            colorscale="Blues",
            showscale=False,
            hovertemplate=(
                f"{render.plot_label(agreement.judge_a)}: %{{y}}<br>{render.plot_label(agreement.judge_b)}: "
                "%{x}<br>%{z} pairs<extra></extra>"
            ),
        )
    )
    fig.update_layout(
        height=320,
        margin=dict(l=10, r=10, t=10, b=10),
        xaxis_title=f"{render.plot_label(agreement.judge_b)}'s grade",
        yaxis_title=f"{render.plot_label(agreement.judge_a)}'s grade",
        yaxis=dict(autorange="reversed", type="category"),
        xaxis=dict(type="category", side="top"),
    )
    return fig


def render_agreement(store: LabelStore, corpus_id: str) -> None:
    """Pick two judges: quadratic-weighted Cohen's kappa, exact agreement and the confusion matrix, on
    the (query, document) pairs both graded."""
    judges = sorted({j.judge for j in store.judgements(corpus_id) if j.grade is not None})
    if len(judges) < 2:
        st.info(
            "Agreement needs two judges: grade under another judge name (sidebar), import another judge's "
            "qrels, or let an LLM grade on the Compare page.",
            icon=":material/group:",
        )
        return
    llms = [j for j in judges if is_llm_judge(j)]
    people = [j for j in judges if not is_llm_judge(j)]
    default_a = people[0] if people else judges[0]
    default_b = llms[-1] if llms else next(j for j in judges if j != default_a)
    a_col, b_col = st.columns(2)
    a = a_col.selectbox("Judge A", judges, index=judges.index(default_a), key=keys.LBL_AGREE_A)
    b = b_col.selectbox("Judge B", judges, index=judges.index(default_b), key=keys.LBL_AGREE_B)
    if a == b:
        st.caption("Pick two different judges.")
        return
    agreement = judge_agreement(store.qrels(corpus_id, judge=a), store.qrels(corpus_id, judge=b), a, b)
    m1, m2, m3 = st.columns(3)
    m1.metric(
        "Cohen's kappa (quadratic)",
        "undefined" if agreement.kappa is None else f"{agreement.kappa:.3f}",
        help="1 = full agreement, 0 = what two judges with these grade habits reach by chance, below 0 = "
        "worse than chance. A 0-vs-3 disagreement weighs nine times a 0-vs-1.",
    )
    m2.metric("Pairs both graded", f"{agreement.pairs:,}")
    m3.metric("Same grade", "–" if agreement.exact is None else f"{agreement.exact:.0%}")
    if agreement.reason:
        st.caption(render.md_escape(agreement.reason))
    if agreement.pairs:
        st.plotly_chart(
            agreement_figure(agreement), config={"displayModeBar": False}, key=keys.LBL_AGREE_PLOT
        )
        st.caption(
            f"Rows: {render.md_escape(a)}'s grade; columns: {render.md_escape(b)}'s grade; each cell counts the "
            "pairs (query, document) both graded that way. The diagonal is agreement."
        )
