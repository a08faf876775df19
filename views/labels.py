"""Labels page: grade results by hand, see what is labelled, import and export judgements, the shadow log.

Labels live in the judgement store (a SQLite file in the data directory by default, or the database
of RERANK_DB_URL), under the corpus id (made from the corpus's content and chunking, shown on every
page). The command line (``python -m rerank_core labels ...``, ``evaluate --qrels-db``) reads the same
store with the same id.
"""

from __future__ import annotations

from collections import defaultdict

import streamlit as st

from rerank_core.access import GuardedStore, Permission, Role
from rerank_core.errors import RerankError
from rerank_core.judgements import HAND_GRADES, shadow_log_csv
from rerank_core.workspace import UnknownCorpus
from ui import corpus_state, identity, judging_view, keys, labelling, methods, page, render, resources

SHADOW_ROWS = 500

IMPORT_OUTCOME = keys.LBL_IMPORT_OUTCOME
LAST_IMPORT = keys.LBL_LAST_IMPORT


def _newest_actions(corpus_id: str, judges: set[str]) -> dict[str, str]:
    """Each judge's newest active action id (what an undo by that judge would take back)."""
    out = {}
    for judge_name in judges:
        active_rows = [r for r in store.history(corpus_id, judge=judge_name) if r["active"]]
        if active_rows:
            out[judge_name] = active_rows[-1]["action"]
    return out


def _undo_import() -> None:
    """Take back the last import of this session, for every judge it wrote, if nothing came after it."""
    corpus_id, actions = st.session_state.pop(LAST_IMPORT, (None, {}))
    if corpus_id is None:
        return
    if _newest_actions(corpus_id, set(actions)) != actions:
        st.session_state[keys.LBL_NOTICE] = (
            "warning",
            "The import was not undone: labels were added after it. Use Undo per judge instead.",
        )
        return
    rows = 0
    for judge_name in actions:
        done = store.undo(corpus_id, judge=judge_name)
        rows += done.rows if done is not None else 0
    st.session_state[keys.LBL_NOTICE] = ("success", f"Undid the import ({rows} labels).")


def _import(corpus_id: str) -> None:
    """Read the uploaded file completely, then write it as one undoable import (or nothing)."""
    up = st.session_state.get(keys.LBL_IMPORT_FILE)
    qup = st.session_state.get(keys.LBL_IMPORT_QUERIES)
    if up is None:
        return
    judge_name = (st.session_state.get(keys.LBL_IMPORT_JUDGE) or "").strip() or None
    try:
        parsed = labelling.parse_judgements_upload(
            up.name,
            up.getvalue(),
            st.session_state.get(keys.LBL_IMPORT_FORMAT) or "auto",
            judge=judge_name,
            queries_upload=(qup.name, qup.getvalue()) if qup is not None else None,
        )
        written = store.import_judgements(corpus_id, parsed.rows, queries=parsed.queries)
        if parsed.tags:
            store.set_tags(corpus_id, parsed.tags)
    except labelling.UploadError as exc:
        message = (
            f"**{render.md_escape(exc.where)}**: {render.md_escape(exc.message)} — nothing was imported."
        )
        st.session_state[IMPORT_OUTCOME] = ("error", message, exc.hint, [])
    except RerankError as exc:
        st.session_state[IMPORT_OUTCOME] = (
            "error",
            f"Nothing was imported: {render.md_escape(exc)}",
            None,
            [],
        )
    else:
        message = (
            f"Imported {len(parsed.rows)} judgements of {parsed.query_count} queries from "
            f"{render.md_escape(parsed.file)} ({parsed.fmt}): {written} new or changed, "
            f"{len(parsed.queries)} query texts."
        )
        st.session_state[IMPORT_OUTCOME] = ("success", message, None, parsed.warnings)
        if written:
            judges = {str(r[3]) for r in parsed.rows}
            st.session_state[LAST_IMPORT] = (corpus_id, _newest_actions(corpus_id, judges))


render.inject_css()
st.title("Labels")

settings = page.settings_or_stop()
actor = identity.current(settings)
try:
    store = GuardedStore(resources.label_store(settings), actor)
except RerankError as exc:
    page.show_error("The judgement store cannot be opened", exc)
    st.stop()

judge = actor.judge
can_grade = actor.can(Permission.GRADE)
try:
    active = corpus_state.resolve(settings)
except (UnknownCorpus, RerankError, OSError):
    active = None  # the labels of every stored corpus id are still listed
active_id = active.id if active is not None else None

visible = corpus_state.workspace(settings).list()  # a demo shows a non-admin only its own corpora
names = {info.id: info.name for info in visible}
known = [c for c in store.corpora() if c in names or actor.role is Role.ADMIN]
choices = ([active_id] if active_id else []) + [c for c in known if c != active_id]
if not choices:
    st.info("No corpus is loaded and the store holds no labels yet.", icon=":material/info:")
    st.page_link("views/corpus.py", label="Load a corpus", icon=":material/upload_file:")
    st.stop()
corpus_id = st.selectbox(
    "Labels of corpus",
    choices,
    key=keys.LBL_CORPUS_ID,
    format_func=lambda c: f"{names.get(c, c)} · {c}" + (" (the corpus in use)" if c == active_id else ""),
    help="The id the labels are stored under. The command line's --corpus takes the same id.",
)
if can_grade:
    how = "your sign-in" if actor.signed_in else "change it in the sidebar"
    who = f"judge **{render.md_escape(judge)}** ({how})"
else:
    who = f"viewing as **{render.md_escape(actor.identity)}** ({actor.role.value}: grading needs the labeller role)"
st.caption(f"Store: {labelling.code(store.url)} · {who} · corpus id {labelling.code(corpus_id)}")
labelling.show_notice()
if can_grade:
    labelling.render_undo(store, corpus_id, judge)

tab_label, tab_table, tab_io, tab_shadow, tab_judges, tab_guide = st.tabs(
    [
        "Label a query",
        "Labelled queries",
        "Import / export",
        "Shadow log",
        "Judges agree?",
        "Guideline and tags",
    ]
)

# -- label a query -----------------------------------------------------------------------------------------
with tab_label:
    if active is None or corpus_id != active_id:
        st.info("Grading works on the corpus in use; pick it above to label its results.")
    else:
        st.caption(
            "Type a query, grade the first stage's results, and watch the metrics move. The Compare page "
            "grades reranked columns the same way; a grade is stored once per query and document."
        )
        examples = corpus_state.example_queries(active)
        if keys.LBL_QUERY not in st.session_state and examples:
            st.session_state[keys.LBL_QUERY] = examples[0]
        c1, c2, c3 = st.columns([3, 1, 1], vertical_alignment="bottom")
        query = c1.text_input("Query", key=keys.LBL_QUERY, placeholder="Type a question and press Enter")
        first_stage = c2.selectbox(
            "First stage",
            methods.first_stages(settings),
            key=keys.LBL_FIRST_STAGE,
            format_func=methods.first_stage_title,
        )
        k = int(c3.number_input("Shown", min_value=1, max_value=50, value=10, key=keys.LBL_K))
        if query and query.strip():
            try:
                runtime = resources.runtime()
                with st.spinner(f"Preparing the {methods.first_stage_title(first_stage)} first stage…"):
                    retriever = runtime.first_stage(first_stage, active.corpus, settings)
                candidates, result, _ = runtime.candidates(query.strip(), retriever, k)
            except Exception as exc:  # noqa: BLE001 - shown on the page, never a traceback
                message, hint = resources.describe_error(exc)
                st.error(f"The {first_stage} first stage cannot run: {render.md_escape(message)}")
                if hint:
                    st.caption(f"Fix: {render.md_escape(hint)}")
            else:
                if not candidates:
                    st.warning("The first stage found nothing for this query.")
                else:
                    name = methods.first_stage_title(first_stage)
                    qid = store.resolve_query_id(corpus_id, query.strip(), active.queries)
                    ref = labelling.QueryRef(corpus_id, qid, query.strip())
                    grades = store.grades(corpus_id, qid, people_only=True)
                    judges = sorted({j.judge for j in store.judgements(corpus_id, query_id=qid)})
                    labelling.render_live_metrics({name: result}, k, grades, judges)
                    judging_view.render_guideline(store, corpus_id)
                    if can_grade:
                        docs = [labelling.ShownDoc(c.doc_id, c.title, c.text) for c in candidates]
                        labelling.render_grading_panel(store, ref, docs, "lbl", judge=judge)
                    else:
                        st.caption("Grading needs the labeller role: ask an admin of this deployment.")

# -- labelled queries and judgements ---------------------------------------------------------------------
with tab_table:
    judgements = store.judgements(corpus_id)
    texts = store.queries(corpus_id)
    if not judgements:
        st.info("No labels yet for this corpus: grade results, or import qrels in the next tab.")
    else:
        per_query: dict[str, dict] = defaultdict(
            lambda: {"graded": 0, "relevant": 0, "skipped": 0, "judges": set()}
        )
        for j in judgements:
            entry = per_query[j.query_id]
            entry["judges"].add(j.judge)
            if j.grade is None:
                entry["skipped"] += 1
            else:
                entry["graded"] += 1
                entry["relevant"] += j.grade >= 1
        st.markdown(f"**{len(per_query)} labelled queries**, {len(judgements)} current labels")
        st.dataframe(
            [
                {
                    "query id": qid,
                    "query": texts.get(qid, ""),
                    "graded": e["graded"],
                    "relevant": e["relevant"],
                    "skipped": e["skipped"],
                    "judges": ", ".join(sorted(e["judges"])),
                }
                for qid, e in per_query.items()
            ],
            hide_index=True,
            key=keys.LBL_QUERIES_TABLE,
        )
        missing_text = [q for q in per_query if q not in texts]
        if missing_text:
            st.caption(
                f"{len(missing_text)} labelled queries have no stored text, so the benchmark cannot run them: "
                "import their texts with a queries file."
            )
        st.markdown("**Judgements**")
        pick = st.selectbox(
            "Query",
            ["(all)", *per_query],
            key=keys.LBL_FILTER_QUERY,
            format_func=lambda q: q if q == "(all)" else f"{q} · {texts.get(q, '')[:80]}",
        )
        corpus = active.corpus if active is not None and corpus_id == active_id else None
        rows = [
            {
                "query id": j.query_id,
                "doc id": j.doc_id,
                "title": (corpus.get(j.doc_id).title if corpus is not None and j.doc_id in corpus else ""),
                "judge": j.judge,
                "grade": j.grade,
                "meaning": "skipped" if j.grade is None else HAND_GRADES.get(j.grade, "imported grade"),
                "rationale": j.rationale or "",
                "labelled at (UTC)": j.created_at,
            }
            for j in judgements
            if pick == "(all)" or j.query_id == pick
        ]
        st.dataframe(rows, hide_index=True, key=keys.LBL_JUDGEMENTS_TABLE)

# -- import / export -------------------------------------------------------------------------------------
with tab_io:
    if actor.can(Permission.IMPORT):
        st.markdown("**Import**")
        st.caption(
            "TREC qrels (`qid 0 docid grade`), BEIR qrels TSV (`query-id  corpus-id  score`), a CSV with "
            "`query_id,doc_id,grade[,judge,created_at]`, or a BEIR dataset .zip (its qrels and query texts). "
            "A whole import is one step that *Undo the last import* takes back."
        )
        up = st.file_uploader("Judgements file", key=keys.LBL_IMPORT_FILE)
        qup = st.file_uploader(
            "Query texts (optional): BEIR queries.jsonl or `id<TAB>text` lines",
            key=keys.LBL_IMPORT_QUERIES,
        )
        i1, i2 = st.columns(2)
        i1.selectbox("Format", labelling.IMPORT_FORMATS, key=keys.LBL_IMPORT_FORMAT)
        i2.text_input(
            "Judge name for the imported rows",
            key=keys.LBL_IMPORT_JUDGE,
            placeholder="import (or the CSV's judge column)",
        )
        st.button(
            "Import",
            icon=":material/upload:",
            disabled=up is None,
            key=keys.LBL_IMPORT_GO,
            on_click=_import,  # runs before the page draws, so every table below already shows the import
            args=(corpus_id,),
        )
        outcome = st.session_state.pop(IMPORT_OUTCOME, None)
        if outcome is not None:
            kind, message, hint, warnings = outcome
            if kind == "error":
                st.error(message, icon=":material/error:")
                if hint:
                    st.caption(f"How to fix: {render.md_escape(hint)}")
            else:
                st.success(message)
                if warnings:
                    with st.expander(f"{len(warnings)} rows skipped or noted"):
                        st.dataframe({"warning": warnings}, hide_index=True)
        if st.session_state.get(LAST_IMPORT, (None,))[0] == corpus_id:
            st.button(
                "Undo the last import",
                icon=":material/undo:",
                key=keys.LBL_UNDO_IMPORT,
                on_click=_undo_import,
                help="Takes back every label of your last import here, unless labels were added after it.",
            )
    else:
        st.caption("Importing judgements needs the admin role; anyone may export them below.")

    st.markdown("**Export**")
    judges = store.judges(corpus_id)
    export_judge = st.selectbox(
        "Whose labels",
        ["(every judge, newest grade wins)", *judges],
        key=keys.LBL_EXPORT_JUDGE,
    )
    chosen_judge = None if export_judge.startswith("(") else export_judge
    label = names.get(corpus_id, corpus_id)  # files are named after the corpus, not its id
    safe_id = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in label)
    cols = st.columns(len(labelling.EXPORT_FORMATS) + 1)
    for col, (ext_fmt, title) in zip(cols, labelling.EXPORT_FORMATS.items(), strict=False):
        with col:
            try:
                text = labelling.export_judgements(store, corpus_id, ext_fmt, judge=chosen_judge)
            except RerankError as exc:
                st.error(f"{title}: {render.md_escape(exc.message)}")
                continue
            suffix = {"trec": "qrels.txt", "beir": "qrels.tsv", "csv": "judgements.csv"}[ext_fmt]
            st.download_button(
                title,
                text,
                file_name=f"{safe_id}-{suffix}",
                mime="text/plain",
                key=keys.LBL_EXPORT_PREFIX + ext_fmt,
                icon=":material/download:",
                on_click="ignore",
            )
    with cols[-1]:
        st.download_button(
            "Query texts (queries.jsonl)",
            labelling.export_queries(store, corpus_id),
            file_name=f"{safe_id}-queries.jsonl",
            mime="application/jsonl",
            key=keys.LBL_EXPORT_QUERIES,
            icon=":material/download:",
            on_click="ignore",
        )

# -- shadow log ------------------------------------------------------------------------------------------
with tab_shadow:
    st.caption(
        "Every query run on the Compare page: each method's latency, model load, availability and top "
        "results. Useful to see which methods people actually run and how fast they were."
    )
    entries = store.shadow_log(corpus_id, limit=SHADOW_ROWS)
    if not entries:
        st.info("The shadow log of this corpus is empty: queries run on the Compare page appear here.")
    else:
        st.dataframe(
            [
                {
                    "time (UTC)": e["created_at"],
                    "query": e["query_text"],
                    "method": e["method"],
                    "first stage": e["first_stage"],
                    "depth": e["depth"],
                    "latency ms": e["latency_ms"],
                    "load s": e["model_load_s"],
                    "available": e["available"],
                    "fell back": e["fallback"],
                    "scale": (e.get("extra") or {}).get("scale", ""),
                    "error": e["error"] or "",
                    "top": " ".join(t["doc_id"] for t in e["top"][:10]),
                }
                for e in entries
            ],
            hide_index=True,
            key=keys.LBL_SHADOW_TABLE,
            column_config={
                "latency ms": st.column_config.NumberColumn(format="%.1f"),
                "load s": st.column_config.NumberColumn(format="%.2f"),
            },
        )
        st.caption(f"The newest {len(entries)} entries.")
        everything = list(reversed(store.shadow_log(corpus_id, limit=None)))
        st.download_button(
            "Shadow log (CSV)",
            shadow_log_csv(everything),
            file_name=f"{safe_id}-shadow-log.csv",
            mime="text/csv",
            key=keys.LBL_SHADOW_CSV,
            icon=":material/download:",
            on_click="ignore",
        )

# -- judges: agreement between any two (people and LLM judges) ----------------------------------------------
with tab_judges:
    st.caption(
        "How far two judges agree on the (query, document) pairs both graded. Check an LLM judge against "
        "people here before letting it fill gaps in the metrics."
    )
    judging_view.render_agreement(store, corpus_id)

# -- the judging guideline and query tags ----------------------------------------------------------------
with tab_guide:
    can_edit = actor.can(Permission.IMPORT)  # the guideline and tags shape everyone's labels and tables
    st.markdown("**Judging guideline**")
    if can_edit:
        judging_view.render_guideline_editor(store, corpus_id, judge)
    else:
        judging_view.render_guideline(store, corpus_id)
        st.caption(f"Editing the guideline needs the admin role ({render.md_escape(actor.role.value)} now).")
    st.markdown("**Query tags**")
    st.caption(
        "The Benchmark page lists wins and losses per tag. Tags from the corpus's queries file count; a query's "
        "tags set here replace them."
    )
    in_use = active if active is not None and corpus_id == active_id else None
    if can_edit:
        judging_view.render_tag_editor(
            store,
            corpus_id,
            in_use.queries if in_use is not None else {},
            in_use.tags if in_use is not None else {},
        )
    else:
        st.caption("Setting tags needs the admin role.")
