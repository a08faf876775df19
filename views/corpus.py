"""Corpus page: the stored corpora, uploads (or a BEIR zip), chunking, preview, statistics, and building
what the methods need ahead of the first query.

Every corpus lives in the workspace under an id derived from its content and chunking, so it survives
restarts and links. A file that cannot be read shows what is wrong and how to fix it; the corpus in use
stays as it was. Every document text, title and file name is shown as text (data frames, escaped HTML).
"""

from __future__ import annotations

import streamlit as st

from rerank_core import access
from rerank_core.access import GuardedStore, Permission
from rerank_core.corpus import SUPPORTED_EXTENSIONS, CsvColumns, csv_columns
from rerank_core.errors import RerankError
from rerank_core.judgements import IMPORT_JUDGE
from rerank_core.pipeline import delete_indexes
from rerank_core.serving import check_upload_budget
from rerank_core.workspace import Chunking, CorpusInfo, StoredCorpus
from ui import corpus_state, identity, keys, labelling, methods, page, render, resources

render.inject_css()
st.title("Corpus")

settings = page.settings_or_stop()
actor = identity.current(settings)
workspace = corpus_state.workspace(settings)  # what this actor may list, open, upload and delete
runtime = resources.runtime()

notice = st.session_state.pop(keys.CORPUS_NOTICE, None)
if notice:
    kind, message = notice
    getattr(st, kind if kind in ("success", "error", "warning", "info") else "info")(
        render.md_escape(message)
    )

current = page.corpus_or_stop(settings)


def _say(kind: str, message: str) -> None:
    st.session_state[keys.CORPUS_NOTICE] = (kind, message)


def _import_qrels(stored: StoredCorpus) -> None:
    """Write the corpus's dataset judgements (and their queries' texts) to the label store as one undoable import."""
    qrels = stored.metric_qrels
    n = sum(len(d) for d in qrels.values())
    try:
        written = GuardedStore(resources.label_store(settings), actor).import_qrels(
            stored.id,
            qrels,
            judge=IMPORT_JUDGE,
            queries={q: stored.queries[q] for q in qrels if q in stored.queries},
        )
    except RerankError as exc:
        _say(
            "error",
            f"Nothing was imported into the label store: {exc.message}"
            + (f" ({exc.hint})" if exc.hint else ""),
        )
        return
    _say(
        "success",
        f"Imported the {n:,} judgements of {len(qrels):,} queries into the label store under corpus id "
        f"{stored.id}, judge {IMPORT_JUDGE!r} ({written:,} new or changed). They count in the live metrics on "
        "Compare (a typed query that matches a dataset query uses its id) and show on the Labels page; Undo there "
        "takes them out again.",
    )


def render_dataset_judgements(stored: StoredCorpus) -> None:
    """What came with the corpus (queries, qrels) and the one-click import into the label store."""
    info = stored.info
    if not stored.queries and not stored.qrels:
        return
    n = sum(len(d) for d in stored.qrels.values())
    came = f"{len(stored.queries):,} queries"
    if stored.qrels:
        came += f" · {n:,} judgements on {info.judged_queries:,} queries"
        if info.split:
            came += f" (qrels/{info.split}.tsv)"
        if len(info.splits) > 1:
            came += f" · splits in the archive: {', '.join(info.splits)}"
    if stored.warnings:
        came += (
            f" · {len(stored.warnings):,} warning{'s' if len(stored.warnings) != 1 else ''} (listed above)"
        )
    st.markdown(f"**Came with it:** {render.md_escape(came)}")
    if not stored.qrels:
        return
    try:
        held = resources.label_store(settings).judgement_count(stored.id)
    except RerankError:
        held = None
    q1, q2 = st.columns([2, 3], vertical_alignment="center")
    if not actor.can(Permission.IMPORT):
        q1.caption("Importing them into the label store needs the admin role.")
        return
    q1.button(
        f"Import {n:,} judgements into the label store",
        icon=":material/fact_check:",
        key=keys.CORPUS_IMPORT_QRELS,
        disabled=stored.chunking.enabled,
        on_click=_import_qrels,
        args=(stored,),
        help="Stores the dataset's qrels (and their queries' texts) as labels of this corpus, so they count in "
        "the live metrics and show on the Labels page. Importing twice changes nothing.",
    )
    if stored.chunking.enabled:
        q2.caption(
            "The qrels name whole documents, and a chunked corpus is labelled by chunk: open the whole-document "
            "version of this corpus to import them."
        )
    elif held is not None:
        q2.caption(
            f"The label store holds {held:,} judgements for {labelling.code(stored.id)}. The Benchmark page offers "
            "the dataset's qrels as a query set either way."
        )


# -- the corpus in use -------------------------------------------------------------------------------------
with st.container(border=True):
    head, action = st.columns([4, 1], vertical_alignment="center")
    head.markdown(f"#### {render.md_escape(current.name)}")
    if (
        not current.is_sample
        and not settings.demo.enabled
        and action.button("Use the sample corpus", icon=":material/restart_alt:", key=keys.CORPUS_USE_SAMPLE)
    ):
        try:
            corpus_state.use(corpus_state.sample(settings), settings)
            _say("success", "Switched back to the built-in sample corpus.")
        except (ImportError, RerankError) as exc:
            _say("error", f"The sample corpus cannot be loaded: {exc}")
        st.rerun()
    origin = "built-in sample" if current.is_sample else "your files: " + ", ".join(current.info.files)[:200]
    st.caption(
        f"{render.md_escape(origin)} · {current.info.documents:,} documents · "
        f"{render.md_escape(current.chunking.describe())} · id `{current.id}`"
    )
    if current.problem:
        st.warning(render.md_escape(current.problem), icon=":material/save:")
    try:
        from rerank_core.chunking import corpus_stats

        stats = corpus_stats(current.corpus)
        cols = st.columns(5)
        cols[0].metric("Chunks" if current.chunking.enabled else "Documents", f"{stats['documents']:,}")
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
    render_dataset_judgements(current)

# -- stored corpora ----------------------------------------------------------------------------------------
st.subheader("Stored corpora", divider="gray")
stored_list: list[CorpusInfo] = workspace.list()
try:
    counts = {i.id: resources.label_store(settings).judgement_count(i.id) for i in stored_list}
except RerankError:
    counts = {}
table = {
    "name": [i.name for i in stored_list],
    "documents": [i.documents for i in stored_list],
    "indexed units": [i.chunks for i in stored_list],
    "chunking": [i.chunking.describe() for i in stored_list],
    "queries": [i.queries for i in stored_list],
    "dataset judgements": [i.judgements for i in stored_list],
    "labels in store": [counts.get(i.id) for i in stored_list],
    "created": [i.created[:16].replace("T", " ") for i in stored_list],
    "id": [i.id for i in stored_list],
    "in use": ["●" if i.id == current.id else "" for i in stored_list],
}
picked = st.dataframe(
    table,
    hide_index=True,
    key=keys.CORPUS_TABLE,
    on_select="rerun",
    selection_mode="single-row",
    column_config={"in use": st.column_config.TextColumn(width="small")},
)
st.caption(
    "Every corpus you load is kept here under an id made from its content and chunking; links name that id. "
    "Select a row to open, rename or delete it."
)
rows = picked.selection.rows if picked is not None else []  # type: ignore[union-attr]
if rows:
    chosen = stored_list[rows[0]]
    a1, a2, a3 = st.columns([1, 2, 2], vertical_alignment="bottom")
    if a1.button(
        "Open", icon=":material/open_in_new:", key=keys.CORPUS_OPEN, disabled=chosen.id == current.id
    ):
        corpus_state.use(workspace.get(chosen.id), settings)
        _say("success", f"Now using {chosen.name}.")
        st.rerun()
    if actor.can(Permission.UPLOAD):
        with a2:
            new_name = st.text_input("New name", value=chosen.name, key=f"{keys.CORPUS_RENAME}_{chosen.id}")
            if st.button("Rename", icon=":material/edit:", disabled=new_name.strip() in ("", chosen.name)):
                try:
                    workspace.rename(chosen.id, new_name)
                    _say("success", f"Renamed to {new_name.strip()}; its id, labels and indexes stay.")
                except RerankError as exc:
                    _say("error", exc.message)
                st.rerun()
    else:
        a2.caption("Renaming a corpus needs the admin role.")

    if actor.can(Permission.DELETE):
        with a3:
            also_labels = st.checkbox(
                "Also delete its judgements",
                key=keys.CORPUS_DELETE_LABELS,
                help="Off: its judgements stay in the label store (loading the same files again brings them back).",
            )
            if st.button("Delete", icon=":material/delete:", key=keys.CORPUS_DELETE, type="secondary"):
                try:
                    removed = workspace.delete(chosen.id)
                    delete_indexes(settings, removed.corpus)
                    runtime.forget(removed.corpus)
                    labels = ""
                    try:
                        gone = GuardedStore(resources.label_store(settings), actor).delete_corpus(
                            chosen.id, judgements=also_labels
                        )
                        labels = f" Judgements {'deleted' if also_labels else 'kept'} ({gone})."
                    except RerankError as exc:
                        labels = f" The label store could not be updated: {exc.message}"
                    if chosen.id == current.id:
                        st.session_state.pop(keys.ACTIVE_CORPUS, None)
                        st.query_params.pop(keys.CORPUS, None)
                    _say("success", f"Deleted {chosen.name} and its indexes.{labels}")
                except RerankError as exc:
                    _say("error", exc.message)
                st.rerun()
    else:
        a3.caption("Deleting a corpus needs the admin role.")

# -- upload ----------------------------------------------------------------------------------------------
st.subheader("Load your own documents", divider="gray")
if not actor.can(Permission.UPLOAD):
    st.caption(
        f"Uploading and re-chunking corpora needs the admin role (you are {actor.role.value}). "
        + ("This demo shows its own corpora: open them above." if settings.demo.enabled else "")
    )
else:
    exts = [e.lstrip(".") for e in SUPPORTED_EXTENSIONS]
    generation = st.session_state.get(keys.CORPUS_UPLOADS_GEN, 0)  # a new uploader drops refused files
    uploads = st.file_uploader(
        "Files",
        type=exts or None,
        accept_multiple_files=True,
        key=keys.CORPUS_UPLOADS + (f"_{generation}" if generation else ""),
        help="JSONL/JSON records, CSV/TSV (choose the columns), text, Markdown and PDF files (one document each), "
        "or a BEIR dataset as a .zip. Several files are merged into one corpus.",
    )
    try:  # one session may not hold more than [limits] upload_mb_per_session at once
        check_upload_budget((f.size for f in uploads or []), settings.limits.upload_mb_per_session)
    except RerankError as exc:
        st.session_state[keys.CORPUS_UPLOADS_GEN] = generation + 1
        _say("error", f"Nothing was loaded: {exc.message} Fix: {exc.hint}")
        st.rerun()
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
            title_col = c.selectbox(
                "Title column", [auto, none, *header], key=keys.CORPUS_CSV_PREFIX + "title"
            )
            if text_col != auto:
                if all_csv:
                    columns_choice = CsvColumns(
                        text=text_col,
                        id=None if id_col in (auto, none) else id_col,
                        title=None if title_col in (auto, none) else title_col,
                    )
                else:
                    st.caption(
                        "The column choice applies when every file is CSV/TSV; columns are guessed here."
                    )

    split_choice = None
    zip_splits = sorted(
        {sp for n, b in files if n.lower().endswith(".zip") for sp in corpus_state.beir_splits(b)}
    )
    if len(zip_splits) > 1:
        split_choice = st.selectbox(
            "Qrels split of the dataset",
            zip_splits,
            index=zip_splits.index(corpus_state.pick_split(zip_splits) or zip_splits[0]),
            key=keys.CORPUS_SPLIT,
            help="The archive has judgements for several splits; the one chosen here comes with the corpus.",
        )

    name_choice = st.text_input(
        "Name (optional)",
        key=keys.CORPUS_NAME,
        placeholder="the file's name, or the dataset's",
        help="Only for display: the corpus id comes from the content, so renaming never loses labels.",
    )

    st.markdown("**Chunking**")
    modes = ["none", "tokens", "sentences"]
    k1, k2, k3 = st.columns(3)
    mode = k1.selectbox(
        "Split documents into",
        modes,
        index=modes.index(current.chunking.mode),
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
        current.chunking.size,
        step=20,
        key=keys.CORPUS_CHUNK_SIZE,
        disabled=mode == "none",
    )
    overlap = k3.number_input(
        "Overlap (words)",
        0,
        2000,
        current.chunking.overlap,
        step=10,
        key=keys.CORPUS_CHUNK_OVERLAP,
        disabled=mode == "none",
    )
    chunking = Chunking(mode=mode, size=int(size), overlap=int(overlap))

    b1, b2, _ = st.columns([1, 1, 3])
    load_clicked = b1.button("Load files", type="primary", disabled=not files, icon=":material/upload:")
    rechunk_clicked = b2.button(
        "Re-chunk corpus in use",
        disabled=chunking.canonical() == current.chunking.canonical(),
        icon=":material/content_cut:",
        help="Apply the chunk settings to the corpus in use without uploading again (a new stored corpus).",
    )

    if load_clicked and files:
        with st.spinner(f"Reading {len(files)} file(s)…"):
            outcome = corpus_state.load_uploads(
                files,
                settings,
                csv_columns=columns_choice,
                chunking=chunking,
                split=split_choice,
                name=name_choice or None,
            )
        st.session_state[keys.CORPUS_LAST_REPORT] = outcome
        if outcome.stored is not None:
            corpus_state.use(outcome.stored, settings)
            _say("success", f"Loaded {outcome.summary}. Stored as {outcome.stored.id}.")
            st.rerun()

    if rechunk_clicked:
        try:
            corpus_state.use(workspace.rechunk(current.id, chunking), settings)
            _say("success", f"Corpus re-chunked: {chunking.describe()}.")
            st.rerun()
        except RerankError as exc:
            st.error(render.md_escape(exc.message))

    outcome = st.session_state.get(keys.CORPUS_LAST_REPORT)
    if outcome is not None and not outcome.loaded:
        st.error(
            f"**Nothing was loaded: the corpus in use is unchanged.** {len(outcome.problems)} file(s) could not be read:",
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
            f"{outcome.skipped} record(s) skipped"
            if outcome.skipped
            else f"{len(outcome.warnings)} warning(s)"
        )
        with st.expander(f"Last load: {label}", icon=":material/warning:"):
            st.dataframe({"where and what": outcome.warnings}, hide_index=True)

# -- preview ---------------------------------------------------------------------------------------------
st.subheader("Preview", divider="gray")
tab_docs, tab_chunks = st.tabs(["Documents", "Chunks" if current.chunking.enabled else "Indexed units"])
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

# -- precomputation -----------------------------------------------------------------------------------------
st.subheader("Indexes and encodings", divider="gray")
st.caption(
    "Built once per corpus and saved in the data directory, so they are reused by every session and after a "
    "restart. The Compare page builds what is missing on first use; build here to pay that time up front."
)
buildable = [m for m in methods.first_stages() if (i := methods.info(m)) is not None and i.needs_index] + [
    m for m in methods.rerankers() if (i := methods.info(m)) is not None and i.prepares
]
chosen_build = st.multiselect(
    "Build now",
    buildable,
    default=[m for m in ("bm25", "dense", "bi-encoder", "late-interaction") if m in buildable],
    format_func=lambda s: f"{methods.title(s)} ({s})",
    key=keys.CORPUS_BUILD_WHICH,
    help="First stages build their index; rerankers encode every document once (bi-encoder vectors are shared "
    "with the dense index; late interaction keeps every document's token vectors).",
)
STATE_WORDS = {
    "ready": "ready (in memory)",
    "saved": "ready (saved)",
    "missing": "not built",
    "none": "nothing to build",
}
status_box = st.empty()


def _draw_status() -> None:
    rows = []
    for spec in buildable:
        status = runtime.status(spec, current.corpus, settings)
        rows.append(
            {
                "method": f"{methods.title(spec)} ({spec})",
                "status": STATE_WORDS[status.state],
                "detail": status.detail,
            }
        )
    status_box.dataframe(rows, hide_index=True)


_draw_status()
if not actor.can(Permission.BUILD):
    st.caption("Building indexes ahead of time needs the admin role; the Compare page builds what it needs.")
elif st.button("Build", icon=":material/build:", disabled=not chosen_build, key=keys.CORPUS_BUILD):
    bar = st.progress(0.0, text="Starting…")

    def _progress(done: int, total: int, message: str) -> None:
        bar.progress(min(done / total, 1.0) if total else 0.0, text=message[:120])

    def _done(spec: str, took: float | None, error: BaseException | None) -> None:
        if error is None:
            st.success(f"{methods.title(spec)} ready ({took:.1f} s).", icon=":material/check:")
        else:
            message, hint = resources.describe_error(error)
            st.error(f"{methods.title(spec)} cannot be built: {render.md_escape(message)}")
            if hint:
                st.caption(f"How to fix: {render.md_escape(hint)}")

    access.build(actor, runtime, chosen_build, current.corpus, settings, _progress, _done)
    bar.progress(1.0, text="Done")
    _draw_status()  # the true status after the build, not the one drawn before it
