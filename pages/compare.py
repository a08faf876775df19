"""Compare page: one query, the first stage's order and each reranker's order side by side.

The query, the first stage, the depths and the methods (with their models) are bound to the URL,
so a link reproduces the view. Results are kept per (corpus, query, first stage, depth) and per
method in this session: changing the number shown or adding a method never reruns the others.

Every shown document can be graded (0-3 or skip) in whichever column shows it: the judgement store
keeps one grade per (corpus, query, document, judge), every column shows it as a badge, and the
live metrics (a table above the columns and a chip in each column's header) follow as you label.
Every fresh run (the first stage for a new query, each method the first time it orders those
candidates) is recorded in the store's shadow log; a result shown again from this session is not.
"""

from __future__ import annotations

from collections import OrderedDict

import streamlit as st

from rerank_core.compare import Comparison, run_comparison
from rerank_core.judgements import JudgementStore, query_id_for
from rerank_core.types import Candidate, MethodSpec, RerankResult
from ui import keys, labelling, page, render, resources
from ui.methods import (
    DEFAULT_METHODS,
    FIRST_STAGE_LABELS,
    FIRST_STAGES,
    METHODS,
    default_model,
    execution_order,
    spec_for,
)
from ui.nav import run_inside_app

MAX_CACHED_QUERIES = 24
# Precompute per-corpus encodings (late interaction's token store) up to this many units on first use;
# beyond it candidates are encoded when they first appear (the Corpus page can precompute everything).
PREPARE_LIMIT = 3000
LLM_OFFLINE_TIP = (
    "**Offline?** Enter `smollm2` as the LLM model (Models, top right) to grade passages with the local "
    "SmolLM2-135M: it shows the LLM path end to end, but it is slow on a CPU and a weak reranker."
)
DEFAULT_DEPTH = 50
DEFAULT_SHOW = 10
SHADOW_TOP_N = 10  # ids and scores kept per method in the shadow log

run_inside_app()
render.inject_css()
st.title("Compare rerankers")

settings = page.settings_or_stop()
active = page.corpus_or_stop()
corpus = active.corpus
corpus_id = labelling.active_corpus_id(active)

# -- labels: the judge (sidebar) and the judgement store; the page works without a store ---------------
judge = labelling.render_judge_input()
with st.sidebar:
    st.caption(
        f"Grades: {labelling.LEGEND}. Stored once per query and document, whichever column you grade "
        f"it in, under corpus id {labelling.code(corpus_id)}."
    )
    st.page_link("pages/labels.py", label="All labels and the shadow log", icon=":material/fact_check:")
label_store: JudgementStore | None
store_problem: tuple[str, str | None] | None = None
try:
    label_store = labelling.open_store(settings)
except Exception as exc:  # noqa: BLE001 - comparing still works without labels
    label_store = None
    store_problem = resources.describe_error(exc)

unit = "chunks" if active.chunking.mode != "none" else "documents"
st.caption(
    f"Corpus **{render.md_escape(active.name)}** · {len(corpus):,} {unit}"
    + (" · built-in sample" if active.is_sample else "")
    + f" · fingerprint `{corpus.fingerprint}`"
)

# -- the query --------------------------------------------------------------------------------------------
if keys.Q not in st.session_state and not st.query_params.get(keys.Q) and active.example_queries:
    st.session_state[keys.Q] = active.example_queries[0]  # a first comparison without typing anything


def _use_example() -> None:
    picked = st.session_state.get("cmp_example")
    if picked:
        st.session_state[keys.Q] = picked
    st.session_state["cmp_example"] = None


query = st.text_input(
    "Query",
    key=keys.Q,
    bind="query-params",
    placeholder="Type a question and press Enter",
    icon=":material/search:",
)
if active.example_queries:
    st.pills(
        "Example queries",
        list(active.example_queries),
        key="cmp_example",
        on_change=_use_example,
        label_visibility="collapsed",
    )

# -- settings ----------------------------------------------------------------------------------------------
c1, c2, c3 = st.columns([2, 1, 2], vertical_alignment="bottom")
with c1:
    # options are shown as they appear in the URL (a bound widget writes the shown text there)
    first_stage = (
        st.segmented_control(
            "First stage",
            FIRST_STAGES,
            default="bm25",
            key=keys.FIRST_STAGE,
            bind="query-params",
            required=True,
            help="bm25: lexical · dense: MiniLM bi-encoder · hybrid: reciprocal-rank fusion of both",
        )
        or "bm25"
    )
with c2:
    depth = int(
        st.number_input(
            "Candidates to rerank",
            min_value=5,
            max_value=500,
            value=DEFAULT_DEPTH,
            step=5,
            key=keys.DEPTH,
            bind="query-params",
            help="The first stage's top N. Every method reranks the same N candidates.",
        )
    )
with c3:
    show = int(
        st.slider(
            "Shown per column",
            min_value=1,
            max_value=50,
            value=DEFAULT_SHOW,
            key=keys.SHOW,
            bind="query-params",
            help="Changing this only redraws: no model runs again.",
        )
    )
show = min(show, depth)

m1, m2, m3 = st.columns([6, 1, 1], vertical_alignment="bottom")
with m1:
    chosen = st.multiselect(
        "Methods",
        list(METHODS),
        default=list(DEFAULT_METHODS),
        key=keys.METHODS,
        bind="query-params",
        placeholder="Choose rerankers to compare",
    )
with m2:
    with st.popover("Models", icon=":material/tune:", width="stretch"):
        st.caption("A hub id, a folder under RERANK_MODELS_DIR, or a local path. Empty = the default.")
        models: dict[str, str] = {}
        for name in chosen:
            default = default_model(name, settings)
            models[name] = st.text_input(
                f"{METHODS[name].title} model",
                value=default,
                key=keys.model_key(name),
                bind="query-params",
                placeholder="automatic" if not default else default,
                help=METHODS[name].blurb,
            )

with m3:
    with st.popover("API keys", icon=":material/key:", width="stretch"):
        st.caption(
            "For hosted methods (an OpenAI-compatible LLM, Cohere). Kept in this browser session only: "
            "never in the URL, the logs or any file. OPENAI_API_KEY / COHERE_API_KEY from the environment "
            "or Streamlit secrets work too."
        )
        st.text_input("OpenAI API key", type="password", key=keys.OPENAI_KEY, persist_state="session")
        st.text_input("Cohere API key", type="password", key=keys.COHERE_KEY, persist_state="session")

specs = [spec_for(name, models.get(name)) for name in chosen]

if not query or not query.strip():
    st.info("Type a query above, or pick one of the example queries.", icon=":material/search:")
    st.stop()
if not specs:
    st.info("Choose at least one method to compare against the first stage.", icon=":material/checklist:")

# -- the first stage --------------------------------------------------------------------------------------
index_error: tuple[str, str | None] | None = None
try:
    if resources.index_ready(first_stage, corpus, settings):
        retriever = resources.get_index(first_stage, corpus, settings)
    else:
        with st.status(
            f"Building the {FIRST_STAGE_LABELS[first_stage]} index over {len(corpus):,} {unit}…"
        ) as box:
            bar = st.progress(0.0)

            def _index_progress(done: int, total: int, message: str) -> None:
                bar.progress(min(done / total, 1.0) if total else 0.0, text=message)

            retriever = resources.get_index(first_stage, corpus, settings, _index_progress)
            box.update(
                label=f"{FIRST_STAGE_LABELS[first_stage]} index built in {retriever.build_s:.1f} s",
                state="complete",
            )
except Exception as exc:  # noqa: BLE001 - shown on the page, never a traceback
    index_error = resources.describe_error(exc)
if index_error is not None:
    st.error(f"The {first_stage} first stage cannot run: {render.md_escape(index_error[0])}")
    if index_error[1]:
        st.caption(f"Fix: {render.md_escape(index_error[1])}")
    st.stop()

# -- the shadow log: one entry per order computed afresh ----------------------------------------------------
log_problems: list[str] = []


def _log_run(results: list[RerankResult]) -> None:
    """Record fresh results in the shadow log; a failing store never stops the comparison."""
    if label_store is None or not results:
        return
    try:
        label_store.log_results(
            corpus_id, query.strip(), results, first_stage=first_stage, depth=depth, top_n=SHADOW_TOP_N
        )
    except Exception as exc:  # noqa: BLE001 - shown under the labels, never a traceback
        log_problems.append(resources.describe_error(exc)[0])


# -- results, kept per query and per method in this session ----------------------------------------------
cache: OrderedDict = st.session_state.setdefault(keys.CMP_RESULTS, OrderedDict())
base_key = (
    corpus.fingerprint,
    query.strip(),
    first_stage,
    depth,
    resources.settings_key(settings, first_stage),
)
entry = cache.get(base_key)
if entry is None:
    candidates, first_result = retriever.candidates(query.strip(), depth)
    entry = {"first": (tuple(candidates), first_result), "methods": {}}
    cache[base_key] = entry
    _log_run([first_result])  # a query that finds nothing is a run too
cache.move_to_end(base_key)
while len(cache) > MAX_CACHED_QUERIES:
    cache.popitem(last=False)
candidates: tuple[Candidate, ...] = entry["first"][0]
first_result: RerankResult = entry["first"][1]
method_store: dict = entry["methods"]


def _method_key(spec: str) -> tuple[str, str]:
    return spec, resources.settings_key(settings, MethodSpec.parse(spec).name)


if not candidates:
    st.warning(
        f"The {FIRST_STAGE_LABELS[first_stage]} first stage found no candidates for this query "
        "(no query word occurs in the corpus). Try other words or the dense first stage.",
        icon=":material/search_off:",
    )
    st.stop()

# -- the user's grades of this query (read once per run; a click writes them before the run starts) -------
qid = query_id_for(query.strip())
grades: dict[str, int | None] = {}
if label_store is not None:
    try:
        grades = label_store.grades(corpus_id, qid, judge=judge)
    except Exception as exc:  # noqa: BLE001 - comparing still works without labels
        store_problem = resources.describe_error(exc)
        label_store = None

# -- layout: notices, the highlight picker, then one column per order --------------------------------------
progress_area = st.container()
notices = st.container()
summary = st.container()
labels_area = st.container()
picker = st.container()
highlight = st.session_state.get(keys.CMP_HIGHLIGHT)
with picker:
    pick_col, mode_col = st.columns([4, 1], vertical_alignment="bottom")
with mode_col:
    grading = st.toggle(
        "Grade buttons",
        value=True,
        key=keys.CMP_GRADE_MODE,
        disabled=label_store is None,
        help="0-3 or skip under every row. Off: the grades stay visible as badges.",
    )
grading = grading and label_store is not None


def _grade_control(column: str):
    """The grading widget drawer of one column (None when grading is off)."""
    if not grading or label_store is None:
        return None

    def control(doc_id: str) -> None:
        labelling.render_grade_controls(
            label_store, corpus_id, query.strip(), doc_id, column, judge=judge, grades=grades
        )

    return control


def _live(result: RerankResult) -> tuple[str, str, bool]:
    return labelling.live_chip(grades, result, show) if label_store is not None else ("", "", False)


colours = {spec: render.PALETTE[i % len(render.PALETTE)] for i, spec in enumerate(specs)}
stored: dict[str, RerankResult | None] = {spec: method_store.get(_method_key(spec)) for spec in specs}
weights = [3] + [2 if render.is_unavailable(stored[s]) else 3 for s in specs]
columns = st.columns(weights, gap="small")
first_title = FIRST_STAGE_LABELS[first_stage] + " · first stage"


def _comparison(results: list[RerankResult]) -> Comparison:
    return Comparison(
        query=query.strip(),
        depth=depth,
        candidates=candidates,
        first_stage=first_result,
        results=tuple(results),
        corpus_fingerprint=corpus.fingerprint,
    )


with columns[0]:
    live = _live(first_result)
    render.draw_column(
        render.ColumnSpec(
            name=first_title,
            label=first_result.label,
            scale=str(first_result.scale),
            colour=render.FIRST_STAGE_COLOUR,
            latency_ms=first_result.latency_ms,
            load_s=retriever.build_s,
            baseline=True,
            live=live[0],
            live_title=live[1],
            live_muted=live[2],
        ),
        first_result,
        _comparison([]),
        show,
        highlight,
        grades=grades,
        control=_grade_control("first"),
        key="c0",
    )

slots = {spec: col.empty() for spec, col in zip(specs, columns[1:], strict=True)}


def _draw(spec: str, res: RerankResult | None) -> None:
    name = MethodSpec.parse(spec).name
    info = METHODS.get(name)
    with slots[spec].container():
        render.method_column(
            title=info.title if info else name,
            spec=spec,
            result=res,
            comparison=_comparison([res] if res is not None else []),
            k=show,
            highlight=highlight,
            colour=colours[spec],
            blurb=info.blurb if info else "",
            tip=LLM_OFFLINE_TIP if name == "llm" else "",
            grades=grades,
            control=_grade_control(spec) if res is not None else None,
            live=_live(res) if res is not None and res.items else ("", "", False),
            key=f"c{specs.index(spec) + 1}",
        )


for spec in specs:
    _draw(spec, stored[spec])

missing = [spec for spec in specs if stored[spec] is None]
if missing:
    with progress_area, st.status(f"Reranking {len(candidates)} candidates…", expanded=True) as box:
        for spec in execution_order(missing):
            try:
                reranker = resources.get_reranker(spec, settings)
            except Exception as exc:  # noqa: BLE001 - a bad method spec becomes that column's error
                res = RerankResult(
                    method=spec, scale=first_result.scale, error=resources.method_error(spec, exc)
                )
            else:
                if not reranker.loaded:
                    st.write(f"Loading {render.md_escape(reranker.method_name)}…")
                    try:
                        took = reranker.load()
                        st.write(f"Loaded {render.md_escape(reranker.method_name)} in {took:.1f} s")
                    except Exception:  # noqa: BLE001 - the rerank call below reports it in the result
                        pass
                if (
                    reranker.loaded
                    and len(corpus) <= PREPARE_LIMIT
                    and not resources.prepared(reranker, corpus, settings)
                ):
                    bar = st.progress(0.0, text=f"{reranker.method_name}: encoding the corpus once")

                    def _prep_progress(done: int, total: int, message: str, _bar=bar) -> None:
                        _bar.progress(min(done / total, 1.0) if total else 0.0, text=message[:120])

                    try:
                        resources.prepare_reranker(reranker, corpus, settings, _prep_progress)
                    except Exception as exc:  # noqa: BLE001 - reranking still works without it
                        st.write(
                            f"Could not precompute for {render.md_escape(reranker.method_name)}: "
                            f"{render.md_escape(resources.describe_error(exc)[0])}"
                        )
                if reranker.name == "llm" and not reranker.hosted:
                    st.write(
                        f"Grading {len(candidates)} passages with {render.md_escape(reranker.method_name)}: one "
                        "request per passage on this CPU, so this takes a while (answers are cached: asking "
                        "again is instant)…"
                    )
                else:
                    st.write(f"Reranking with {render.md_escape(reranker.method_name)}…")
                res = run_comparison(
                    query.strip(), retriever, [reranker], depth, first_stage=(candidates, first_result)
                ).results[0]
            method_store[_method_key(spec)] = res
            stored[spec] = res
            _log_run([res])
            _draw(spec, res)
        box.update(label=f"Reranked {len(candidates)} candidates", state="complete", expanded=False)

# -- once every order is in: notices, the highlight picker, latency and agreement --------------------------
results = [stored[spec] for spec in specs if stored[spec] is not None]
comparison = _comparison(results)  # type: ignore[arg-type]
display = {first_result.method: first_title}
for spec, res in zip(specs, results, strict=True):
    info = METHODS.get(MethodSpec.parse(spec).name)
    display[res.method] = info.title if info else spec

with notices:
    render.method_notices(comparison, display, show)

with pick_col:
    shown_ids = labelling.union_of_shown([first_result, *results], show)
    by_id = {c.doc_id: c for c in candidates}
    if highlight not in shown_ids:
        st.session_state.pop(keys.CMP_HIGHLIGHT, None)
    st.selectbox(
        "Highlight a document in every column",
        shown_ids,
        index=None,
        format_func=lambda d: render.option_label(by_id[d]),
        key=keys.CMP_HIGHLIGHT,
        placeholder="Pick one of the shown documents…",
    )

with summary:
    st.markdown("##### Latency and agreement")
    st.caption(
        f"Results for “{render.md_escape(query.strip())}” · {len(candidates)} candidates from "
        f"{FIRST_STAGE_LABELS[first_stage]} · {len(results)} method(s)"
    )
    left, right = st.columns([3, 2], gap="medium")
    with left:
        chart_names = [first_title]
        chart_ms = [first_result.latency_ms]
        chart_load = [retriever.build_s]
        chart_colours = [render.FIRST_STAGE_COLOUR]
        not_run = []
        for spec, res in zip(specs, results, strict=True):
            if res.items and not res.fallback:
                chart_names.append(display[res.method])
                chart_ms.append(res.latency_ms)
                chart_load.append(res.model_load_s)
                chart_colours.append(colours[spec])
            else:
                not_run.append(display[res.method])
        st.plotly_chart(
            render.latency_figure(chart_names, chart_ms, chart_load, chart_colours),
            config={"displayModeBar": False},
        )
        st.caption(
            f"Every method reranked the same {len(candidates)} candidates, one after another. Query time excludes "
            "the one-off model load and index build (right), which happen once per process."
            + (f" Not run: {', '.join(render.md_escape(n) for n in not_run)}." if not_run else "")
        )
    with right:
        rows = render.agreement_rows(comparison, show, display)
        if rows:
            st.dataframe(
                rows,
                hide_index=True,
                column_config={
                    f"Overlap@{show}": st.column_config.NumberColumn(
                        format="%.2f", help="share of the shown top k in both"
                    ),
                    "Kendall τ": st.column_config.NumberColumn(
                        format="%.2f",
                        help=f"rank correlation over all {len(candidates)} candidates (-1 to 1)",
                    ),
                    f"RBO@{show} (p=0.9)": st.column_config.NumberColumn(
                        format="%.2f", help="rank-biased overlap: top-weighted agreement (0 to 1)"
                    ),
                },
            )
            st.caption(
                "1.00 = the same order. Overlap and RBO look at the shown top k; Kendall τ at every candidate."
            )
        else:
            st.caption("No reranked order to compare with yet.")

# -- labels of this query: live metrics per order, undo ------------------------------------------------------
with labels_area:
    st.markdown("##### Your labels · live metrics")
    if label_store is None:
        problem = store_problem or ("the judgement store is not available", None)
        st.warning(
            f"Grading is off: the judgement store cannot be used ({render.md_escape(problem[0])}).",
            icon=":material/database_off:",
        )
        if problem[1]:
            st.caption(f"Fix: {render.md_escape(problem[1])}")
    else:
        table_col, side_col = st.columns([3, 2], gap="medium")
        with table_col:
            ordered = {first_title: first_result}
            for res in results:
                if res.items:
                    title = display[res.method] + (" (fell back)" if res.fallback else "")
                    ordered[title] = res
            labelling.render_live_metrics(
                label_store, corpus_id, query.strip(), ordered, show, judge=judge, grades=grades
            )
        with side_col:
            labelling.show_notice()
            st.caption(
                f"**Grade** any shown document with the buttons under it: {labelling.LEGEND}. One grade "
                "per document, whichever column you click; every column shows it as a badge."
            )
            st.caption(
                f"Judge **{render.md_escape(judge)}** (change it in the sidebar, top left) · corpus id "
                f"{labelling.code(corpus_id)}"
            )
            labelling.render_undo(label_store, corpus_id, judge)
        for problem_text in log_problems:
            st.caption(f"The shadow log could not record this run: {render.md_escape(problem_text)}")
