"""Corpus page: upload files (or a BEIR zip), choose chunking, preview, see statistics, build indexes.

A file that cannot be read shows what is wrong and how to fix it; the corpus in use stays as it
was. Every document text, title and file name is shown as text (data frames, escaped HTML).
"""

from __future__ import annotations

import streamlit as st

from rerank_core.corpus import SUPPORTED_EXTENSIONS, CsvColumns, csv_columns
from rerank_core.errors import RerankError
from ui import keys, page, render, resources
from ui.benchmark_view import dataset_judgements
from ui.corpus_state import (
    SPLIT_KEY,
    ChunkSettings,
    active_corpus,
    beir_splits,
    load_uploads,
    pick_split,
    rechunk,
    sample_corpus,
    set_active,
)
from ui.methods import FIRST_STAGE_LABELS, FIRST_STAGES
from ui.nav import run_inside_app

LATE = "late-interaction"

run_inside_app()
render.inject_css()
st.title("Corpus")

settings = page.settings_or_stop()

notice = st.session_state.pop(keys.CORPUS_NOTICE, None)
if notice:
    kind, message = notice
    getattr(st, kind if kind in ("success", "error", "warning", "info") else "info")(
        render.md_escape(message)
    )


def _import_qrels(
    settings, corpus_id: str, name: str, queries: dict[str, str], qrels: dict[str, dict[str, int]]
) -> None:
    """Write a dataset's qrels (and the texts of their queries) to the label store as one undoable import."""
    from rerank_core.judgements import IMPORT_JUDGE
    from ui import labelling

    n = sum(len(d) for d in qrels.values())
    try:
        store = labelling.open_store(settings)
        written = store.import_qrels(
            corpus_id, qrels, judge=IMPORT_JUDGE, queries={q: queries[q] for q in qrels if q in queries}
        )
    except RerankError as exc:
        st.session_state[keys.CORPUS_NOTICE] = (
            "error",
            f"Nothing was imported into the label store: {exc.message}"
            + (f" ({exc.hint})" if exc.hint else ""),
        )
        return
    st.session_state[keys.CORPUS_NOTICE] = (
        "success",
        f"Imported the {n:,} judgements of {len(qrels):,} queries of {name} into the label store as corpus "
        f"{corpus_id!r}, judge {IMPORT_JUDGE!r} ({written:,} new or changed). They show on the Labels page "
        "and in the live metrics; Undo there takes them out again.",
    )


def render_dataset_judgements(current, settings) -> None:
    """What came with the corpus (queries, qrels, warnings) and the one-click import into the label store."""
    shipped = dataset_judgements(current)
    info = current.dataset
    if shipped is None:
        if info is not None:
            st.caption(
                f"Came with it: {render.md_escape(info.describe())}, but they are no longer in this session: "
                "load the file again to benchmark on them."
            )
        return
    name, queries, qrels = shipped
    n = sum(len(d) for d in qrels.values())
    if info is not None:
        came = info.describe()
        if info.warnings:
            came += f" · {info.warnings:,} warning{'s' if info.warnings != 1 else ''} (listed above)"
        if len(info.splits) > 1:
            came += f" · splits in the archive: {', '.join(info.splits)}"
    else:
        came = (
            f"{len(queries):,} queries · {n:,} judgements on {len(qrels):,} queries (the sample's own qrels)"
        )
    st.markdown(f"**Came with it:** {render.md_escape(came)}")
    if not qrels:
        return
    from ui import labelling

    corpus_id = labelling.active_corpus_id(current)
    chunked = current.chunking.mode != "none"
    q1, q2 = st.columns([2, 3], vertical_alignment="center")
    q1.button(
        f"Import {n:,} judgements into the label store",
        icon=":material/fact_check:",
        key="corpus_import_qrels",
        disabled=chunked,
        on_click=_import_qrels,
        args=(settings, corpus_id, name, queries, qrels),
        help="Stores the dataset's qrels (and their queries' texts) as labels of this corpus, so they show on "
        "the Labels page and in live metrics. Importing twice changes nothing.",
    )
    if chunked:
        q2.caption(
            "The qrels name whole documents, and a chunked corpus is labelled by chunk: set *Split documents "
            "into* to whole documents to import them."
        )
    else:
        try:
            held = labelling.open_store(settings).judgement_count(corpus_id)
        except RerankError:
            held = None
        q2.caption(
            "The Benchmark page offers these qrels as a query set already. "
            + (
                f"The label store holds {held:,} judgements for {labelling.code(corpus_id)}."
                if held is not None
                else ""
            )
        )


current = active_corpus()

# -- the corpus in use -------------------------------------------------------------------------------------
with st.container(border=True):
    if current is None:
        st.error("No corpus is loaded yet: upload files below.")
    else:
        head, action = st.columns([4, 1], vertical_alignment="center")
        with head:
            origin = "built-in sample" if current.is_sample else "your files"
            st.markdown(f"#### {render.md_escape(current.name)}")
            st.caption(
                f"{origin} · {render.md_escape(current.summary)} · {render.md_escape(current.chunking.describe())}"
                f" · fingerprint `{current.corpus.fingerprint}`"
            )
        with action:
            if not current.is_sample and st.button("Use the sample corpus", icon=":material/restart_alt:"):
                try:
                    set_active(sample_corpus())
                    st.session_state[keys.CORPUS_NOTICE] = (
                        "success",
                        "Switched back to the built-in sample corpus.",
                    )
                except (ImportError, RerankError) as exc:
                    st.session_state[keys.CORPUS_NOTICE] = (
                        "error",
                        f"The sample corpus cannot be loaded: {exc}",
                    )
                st.rerun()
        try:
            from rerank_core.chunking import corpus_stats

            stats = corpus_stats(current.corpus)
            cols = st.columns(5)
            unit = "Chunks" if current.chunking.mode != "none" else "Documents"
            cols[0].metric(unit, f"{stats['documents']:,}")
            cols[1].metric("Words", f"{stats['total_tokens']:,}")
            cols[2].metric("Median words", f"{stats['median_tokens']:,.0f}")
            cols[3].metric("Longest", f"{stats['max_tokens']:,}")
            cols[4].metric("Empty text", f"{stats['empty_text']:,}")
            if len(stats["sources"]) > 1:
                st.caption(
                    "Per file: "
                    + ", ".join(
                        f"{render.md_escape(src or '(none)')} {n:,}" for src, n in stats["sources"].items()
                    )
                )
        except ImportError:
            st.caption(f"{len(current.corpus):,} documents")
        if current.warnings:
            with st.expander(f"{len(current.warnings)} warning(s) from loading", icon=":material/warning:"):
                st.dataframe({"warning": list(current.warnings)}, hide_index=True)
        render_dataset_judgements(current, settings)

# -- upload ----------------------------------------------------------------------------------------------
st.subheader("Load your own documents", divider="gray")
exts = [e.lstrip(".") for e in SUPPORTED_EXTENSIONS]
uploads = st.file_uploader(
    "Files",
    type=exts or None,
    accept_multiple_files=True,
    key=keys.CORPUS_UPLOADS,
    help="JSONL/JSON records, CSV/TSV (choose the columns), text, Markdown and PDF files (one document each), "
    "or a BEIR dataset as a .zip. Several files are merged into one corpus.",
)
files = [(f.name, f.getvalue()) for f in uploads or []]

columns_choice = None
csv_files = [(n, b) for n, b in files if n.lower().endswith((".csv", ".tsv", ".tab"))]
if csv_files:
    first_name, first_bytes = csv_files[0]
    try:
        header = csv_columns(first_bytes, first_name)
    except RerankError as exc:
        header = []
        last = st.session_state.get(keys.CORPUS_LAST_REPORT)
        if not (last is not None and any(p.file == first_name for p in last.problems)):  # not said twice
            st.error(
                f"**{render.md_escape(first_name)}** cannot be read: {render.md_escape(exc.message)}",
                icon=":material/error:",
            )
            if exc.hint:
                st.caption(f"How to fix: {render.md_escape(exc.hint)}")
    if header:
        all_csv = len(csv_files) == len(files)
        st.markdown(f"**Columns of {render.md_escape(first_name)}**")
        auto = "(guess)"
        none = "(none)"
        a, b, c = st.columns(3)
        text_col = a.selectbox("Text column", [auto, *header], key=keys.CORPUS_CSV_PREFIX + "text")
        id_col = b.selectbox("Id column", [auto, none, *header], key=keys.CORPUS_CSV_PREFIX + "id")
        title_col = c.selectbox("Title column", [auto, none, *header], key=keys.CORPUS_CSV_PREFIX + "title")
        if text_col != auto:
            if all_csv:
                columns_choice = CsvColumns(
                    text=text_col,
                    id=None if id_col in (auto, none) else id_col,
                    title=None if title_col in (auto, none) else title_col,
                )
            else:
                st.caption("The column choice applies when every file is CSV/TSV; columns are guessed here.")

split_choice = None
zip_splits = sorted({sp for n, b in files if n.lower().endswith(".zip") for sp in beir_splits(b)})
if len(zip_splits) > 1:
    split_choice = st.selectbox(
        "Qrels split of the dataset",
        zip_splits,
        index=zip_splits.index(pick_split(zip_splits) or zip_splits[0]),
        key=SPLIT_KEY,
        help="The archive has judgements for several splits; the Benchmark page uses the one chosen here.",
    )

st.markdown("**Chunking**")
current_chunking = current.chunking if current is not None else ChunkSettings()
k1, k2, k3 = st.columns(3)
mode = k1.selectbox(
    "Split documents into",
    ["none", "tokens", "sentences"],
    index=["none", "tokens", "sentences"].index(current_chunking.mode),
    format_func={
        "none": "whole documents",
        "tokens": "token windows",
        "sentences": "sentence-packed chunks",
    }.get,
    key=keys.CORPUS_CHUNK_MODE,
)
size = k2.number_input(
    "Chunk size (words)",
    20,
    4000,
    current_chunking.size,
    step=20,
    key=keys.CORPUS_CHUNK_SIZE,
    disabled=mode == "none",
)
overlap = k3.number_input(
    "Overlap (words)",
    0,
    2000,
    current_chunking.overlap,
    step=10,
    key=keys.CORPUS_CHUNK_OVERLAP,
    disabled=mode == "none",
)
chunking = ChunkSettings(mode=mode, size=int(size), overlap=int(overlap))

b1, b2, _ = st.columns([1, 1, 3])
load_clicked = b1.button("Load files", type="primary", disabled=not files, icon=":material/upload:")
rechunk_clicked = b2.button(
    "Re-chunk corpus in use",
    disabled=current is None or chunking == current_chunking,
    icon=":material/content_cut:",
    help="Apply the chunk settings to the corpus in use without uploading again.",
)

if load_clicked and files:
    with st.spinner(f"Reading {len(files)} file(s)…"):
        outcome = load_uploads(files, csv_columns=columns_choice, chunking=chunking, split=split_choice)
    st.session_state[keys.CORPUS_LAST_REPORT] = outcome
    if outcome.loaded:
        st.session_state[keys.CORPUS_NOTICE] = ("success", f"Loaded {outcome.summary}.")
        st.rerun()

if rechunk_clicked and current is not None:
    try:
        set_active(rechunk(current, chunking))
        st.session_state[keys.CORPUS_NOTICE] = ("success", f"Corpus re-chunked: {chunking.describe()}.")
        st.rerun()
    except RerankError as exc:
        st.error(render.md_escape(exc.message))

outcome = st.session_state.get(keys.CORPUS_LAST_REPORT)
if outcome is not None and not outcome.loaded:
    st.error(
        "**Nothing was loaded: the corpus in use is unchanged.** "
        f"{len(outcome.problems)} file(s) could not be read:",
        icon=":material/error:",
    )
    for problem in outcome.problems:
        with st.container(border=True):
            st.markdown(f"**{render.md_escape(problem.file)}** — {render.md_escape(problem.message)}")
            if problem.hint:
                st.caption(f"How to fix: {render.md_escape(problem.hint)}")
    st.caption("Remove or fix these files, then press *Load files* again.")
if outcome is not None and outcome.warnings:
    label = (
        f"{outcome.skipped} record(s) skipped" if outcome.skipped else f"{len(outcome.warnings)} warning(s)"
    )
    with st.expander(f"Last load: {label}", icon=":material/warning:"):
        st.dataframe({"where and what": outcome.warnings}, hide_index=True)

# -- preview ---------------------------------------------------------------------------------------------
if current is not None:
    st.subheader("Preview", divider="gray")
    tab_docs, tab_chunks = st.tabs(
        ["Documents", "Chunks" if current.chunking.mode != "none" else "Indexed units"]
    )
    with tab_docs:
        docs = current.documents[:200]
        st.dataframe(
            {
                "id": [d.id for d in docs],
                "title": [d.title for d in docs],
                "text": [render.snippet(d.text, 300) for d in docs],
                "words": [len(d.text.split()) for d in docs],
                "file": [d.source for d in docs],
            },
            hide_index=True,
            column_config={"text": st.column_config.TextColumn(width="large")},
        )
        st.caption(f"The first {len(docs):,} of {len(current.documents):,} documents.")
    with tab_chunks:
        units = list(current.corpus)[:200]
        st.dataframe(
            {
                "id": [d.id for d in units],
                "parent": [d.parent_id or "" for d in units],
                "text": [render.snippet(d.text, 300) for d in units],
                "words": [len(d.text.split()) for d in units],
            },
            hide_index=True,
            column_config={"text": st.column_config.TextColumn(width="large")},
        )
        st.caption(f"The first {len(units):,} of {len(current.corpus):,} units the first stages index.")

    # -- indexes -----------------------------------------------------------------------------------------
    st.subheader("Indexes", divider="gray")
    st.caption(
        "Built once per corpus and shared by every session of this server. The Compare page builds "
        "a missing index on first use; build them here to pay that time up front."
    )
    options = [*FIRST_STAGES, LATE]
    labels = {**FIRST_STAGE_LABELS, LATE: "Late-interaction token store"}
    chosen = st.multiselect(
        "Build now",
        options,
        default=[s for s in FIRST_STAGES if s != "hybrid"],
        format_func=lambda s: labels.get(s, s),
        key="corpus_build_which",
        help="The late-interaction store keeps every document's MiniLM token vectors, so a query encodes only itself.",
    )
    ready = {s: resources.index_ready(s, current.corpus, settings) for s in FIRST_STAGES}
    st.caption(
        " · ".join(f"{FIRST_STAGE_LABELS[s]}: {'ready' if ready[s] else 'not built'}" for s in FIRST_STAGES)
    )
    if st.button("Build", icon=":material/build:", disabled=not chosen):
        bar = st.progress(0.0, text="Starting…")
        for i, name in enumerate(chosen):

            def _progress(done: int, total: int, message: str, _i=i, _name=name) -> None:
                frac = (done / total) if total else 0.0
                bar.progress(min((_i + frac) / len(chosen), 1.0), text=f"{labels[_name]}: {message}"[:120])

            try:
                if name == LATE:
                    reranker = resources.get_reranker(LATE, settings)
                    load_s = reranker.load()
                    resources.prepare_reranker(reranker, current.corpus, settings, _progress)
                    st.success(f"{labels[name]} ready (model load {load_s:.1f} s).", icon=":material/check:")
                else:
                    built = resources.get_index(name, current.corpus, settings, _progress)
                    st.success(f"{labels[name]} ready ({built.build_s:.1f} s).", icon=":material/check:")
            except Exception as exc:  # noqa: BLE001 - shown, never a traceback
                message, hint = resources.describe_error(exc)
                st.error(f"{labels[name]} cannot be built: {render.md_escape(message)}")
                if hint:
                    st.caption(f"How to fix: {render.md_escape(hint)}")
        bar.progress(1.0, text="Done")
