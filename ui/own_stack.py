"""The user's own first stages and fusions on the Compare page: run files (uploaded, stored by content,
named in the link), search engines set up in the app (``ui.engines``), the queries a run file offers,
and the fusions offered as columns. The work is the core's (``rerank_core.retrieval.run_file``,
``rerank_core.fusion``); this module reads widgets and renders."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import streamlit as st

from rerank_core.config import Settings
from rerank_core.errors import RerankError
from rerank_core.judgements import normalise_query
from rerank_core.pipeline import Runtime
from rerank_core.types import Corpus, MethodSpec
from ui import keys, render

__all__ = [
    "fusion_options",
    "offered_first_stages",
    "render_run_files",
    "resolve_query_id",
    "run_queries",
    "show_run_notice",
]


def _stored_runs(settings: Settings, corpus_id: str | None = None) -> list:
    from rerank_core.retrieval.run_file import stored_runs

    try:
        return stored_runs(settings, corpus_id)
    except OSError:
        return []


def offered_first_stages(
    base: Sequence[str], settings: Settings, corpus_id: str, current: str | None
) -> list[str]:
    """The first stages to offer: ``base`` (local and configured engines), the runs uploaded for this
    corpus, and the run or ``hybrid:A+B`` a link names (when this server can serve it)."""
    out = list(base)
    for run in _stored_runs(settings, corpus_id):
        if run.spec not in out:
            out.append(run.spec)
    parsed = MethodSpec.parse(current) if current else None
    if current and parsed is not None and parsed.name == "hybrid" and "+" in (parsed.model or ""):
        from rerank_core.retrieval.hybrid import fused_parts

        try:
            parts = fused_parts(parsed.model)
        except RerankError:
            parts = []
        if parts and current not in out and all(p in out or p.startswith("run:") for p in parts):
            out.append(current)
    if current and current not in out and MethodSpec.parse(current).name == "run":
        from rerank_core.retrieval.run_file import resolve_run_path

        try:
            resolve_run_path(MethodSpec.parse(current).model, settings)
            out.append(current)
        except RerankError:
            pass
    return out


def _on_upload(settings: Settings, corpus_id: str, dataset_queries: Mapping[str, str]) -> None:
    """Uploader callback: store the run (content-addressed) and make it the first stage; when the query
    in the box is not one of its queries, its first query that the corpus knows takes its place."""
    from rerank_core.readers import read_run
    from rerank_core.retrieval.run_file import store_run

    upload = st.session_state.get(keys.CMP_RUN_UPLOAD)
    if upload is None:
        return
    try:
        stored = store_run(upload.getvalue(), upload.name, settings, corpus_id=corpus_id)
    except RerankError as exc:
        st.session_state[keys.CMP_RUN_NOTICE] = (
            "error",
            f"{exc.message}" + (f" Fix: {exc.hint}" if exc.hint else ""),
        )
        return
    except OSError as exc:
        st.session_state[keys.CMP_RUN_NOTICE] = ("error", f"The run could not be stored: {exc}")
        return
    st.session_state[keys.FIRST_STAGE] = stored.spec
    listed = read_run(stored.path)
    typed = normalise_query(str(st.session_state.get(keys.Q) or ""))
    typed_id = next((q for q, t in dataset_queries.items() if normalise_query(t) == typed), None)
    known = {normalise_query(t) for t in listed.queries.values()}
    if typed_id not in listed.run and typed not in known:
        first = next((q for q in listed.run if q in dataset_queries), None)
        if first is not None:
            st.session_state[keys.Q] = dataset_queries[first]
        elif listed.queries:
            st.session_state[keys.Q] = next(iter(listed.queries.values()))
    st.session_state[keys.CMP_RUN_NOTICE] = (
        "success",
        f"{stored.name}: {stored.queries:,} queries, {stored.lines:,} lines ({stored.format}). It is the first stage "
        f"now ({stored.spec}); pick one of its queries above.",
    )


def show_run_notice() -> None:
    notice = st.session_state.pop(keys.CMP_RUN_NOTICE, None)
    if notice:
        kind, message = notice
        (st.success if kind == "success" else st.error)(render.md_escape(message))


def render_run_files(settings: Settings, corpus_id: str, dataset_queries: Mapping[str, str]) -> None:
    """The run-file uploader and the runs stored for this corpus."""
    st.file_uploader(
        "Run file (TREC or JSONL)",
        type=["run", "txt", "trec", "tsv", "jsonl", "json"],
        key=keys.CMP_RUN_UPLOAD,
        on_change=_on_upload,
        args=(settings, corpus_id, dataset_queries),
        help="TREC: `qid Q0 docid rank score tag` per line. JSONL: one object per line with query_id, doc_id and "
        "score (query, title and text optional). Its query ids must be the corpus's. Stored in the data folder "
        "under a hash of its content, so the link names it. Text and titles come from the corpus by id unless "
        "the file has them.",
    )
    show_run_notice()
    runs = _stored_runs(settings, corpus_id)
    if runs:
        st.dataframe(
            [{"first stage": r.spec, "file": r.name, "format": r.format, "queries": r.queries} for r in runs],
            hide_index=True,
        )


def run_queries(runtime: Runtime, spec: str, corpus: Corpus, settings: Settings) -> dict[str, str | None]:
    """The queries a run-file first stage lists: id -> the text the file carries (None: none)."""
    try:
        retriever = runtime.first_stage(spec, corpus, settings)
    except Exception:  # noqa: BLE001 - the page reports the first stage's error where it uses it
        return {}
    texts = getattr(retriever, "query_texts", {})
    return {qid: texts.get(qid) for qid in getattr(retriever, "query_ids", [])}


def resolve_query_id(
    label_store, corpus_id: str, query: str, dataset_queries: Mapping[str, str]
) -> str | None:
    """The id of a typed query: a dataset query with the same (normalised) text, else the store's id
    for it; None when neither can be known (no store, not a dataset query)."""
    if label_store is not None:
        try:
            return label_store.resolve_query_id(corpus_id, query, dataset_queries)
        except Exception:  # noqa: BLE001 - fall back to the dataset's own queries
            pass
    norm = normalise_query(query)
    return next((qid for qid, text in dataset_queries.items() if normalise_query(text) == norm), None)


def fusion_options(
    first_stage: str, chosen: Sequence[str], settings: Settings, current: Sequence[str]
) -> list[str]:
    """Fusions to offer: the fitted ones, the first stage with each chosen method, the first stage with
    all of them, and whatever is already chosen (a link's)."""
    from rerank_core.fusion import fitted_names

    out = [f"fusion:{name}" for name in fitted_names(settings)]
    out += [f"fusion:{first_stage}+{m}" for m in chosen]
    if len(chosen) > 1:
        out.append(f"fusion:{first_stage}+{'+'.join(chosen)}")
    for spec in current:
        if spec not in out:
            out.append(spec)
    return list(dict.fromkeys(out))
