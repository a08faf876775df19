"""The corpus this session works on: the built-in sample, or the user's files.

:func:`load_uploads` is the upload handler the corpus page calls with ``(name, bytes)`` pairs. It
replaces the session's corpus only when every file was read; otherwise it returns what went wrong
per file and the previous corpus stays in use.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field

import streamlit as st

from rerank_core.errors import CorpusFormatError, RerankError
from rerank_core.types import Corpus, Document
from ui import keys

SAMPLE_ORIGIN = "sample"
UPLOAD_ORIGIN = "upload"
MAX_EXAMPLE_QUERIES = 6


@dataclass(frozen=True)
class ChunkSettings:
    mode: str = "none"  # "none" | "tokens" | "sentences"
    size: int = 200
    overlap: int = 40

    def describe(self) -> str:
        if self.mode == "none":
            return "whole documents"
        unit = "token windows" if self.mode == "tokens" else "sentence-packed chunks"
        return f"{unit} of {self.size} tokens, {self.overlap} overlap"


@dataclass(frozen=True)
class ActiveCorpus:
    """What the pages work on. ``documents`` are as loaded; ``corpus`` is what is indexed (chunked)."""

    corpus: Corpus
    documents: tuple[Document, ...]
    name: str
    origin: str
    example_queries: tuple[str, ...] = ()
    chunking: ChunkSettings = ChunkSettings()
    files: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    summary: str = ""

    @property
    def is_sample(self) -> bool:
        return self.origin == SAMPLE_ORIGIN


@dataclass(frozen=True)
class FileProblem:
    file: str
    message: str
    hint: str | None = None


@dataclass
class UploadOutcome:
    """What an upload did. ``loaded`` is False when the session's corpus was left unchanged."""

    loaded: bool
    summary: str = ""
    problems: list[FileProblem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    skipped: int = 0


# -- chunking ---------------------------------------------------------------------------------------------


def apply_chunking(documents: Sequence[Document], chunking: ChunkSettings, name: str) -> Corpus:
    """The corpus to index: the documents, chunked as asked. Raises CorpusFormatError on bad settings."""
    if chunking.mode == "none":
        return Corpus(documents, name=name)
    from rerank_core.chunking import ChunkConfig, chunk_documents

    try:
        config = ChunkConfig(mode=chunking.mode, size=int(chunking.size), overlap=int(chunking.overlap))  # type: ignore[arg-type]
        return Corpus(chunk_documents(documents, config), name=name)
    except ValueError as exc:
        raise CorpusFormatError(f"cannot chunk the corpus: {exc}", hint="change the chunk settings") from exc


# -- the sample ------------------------------------------------------------------------------------------


@st.cache_resource(show_spinner=False)
def _sample() -> tuple[tuple[Document, ...], str, tuple[str, ...]]:
    from rerank_core.sample import example_queries, sample_dataset

    dataset = sample_dataset()
    queries = tuple(example_queries())
    return tuple(dataset.corpus), dataset.name, queries


def sample_corpus(chunking: ChunkSettings | None = None) -> ActiveCorpus:
    """The built-in sample corpus (raises ImportError while the sample module is missing)."""
    documents, name, queries = _sample()
    chunking = chunking or ChunkSettings()
    corpus = apply_chunking(documents, chunking, name)
    return ActiveCorpus(
        corpus=corpus,
        documents=documents,
        name=name,
        origin=SAMPLE_ORIGIN,
        example_queries=queries[:MAX_EXAMPLE_QUERIES],
        chunking=chunking,
        summary=f"{len(documents)} documents",
    )


def active_corpus() -> ActiveCorpus | None:
    """The session's corpus; the sample on the first call. None if the sample cannot be loaded."""
    current = st.session_state.get(keys.ACTIVE_CORPUS)
    if current is None:
        try:
            current = sample_corpus()
        except (ImportError, RerankError) as exc:
            st.session_state[keys.CORPUS_NOTICE] = (
                "error",
                f"The built-in sample corpus cannot be loaded: {exc}",
            )
            return None
        st.session_state[keys.ACTIVE_CORPUS] = current
    return current


def set_active(corpus: ActiveCorpus) -> None:
    st.session_state[keys.ACTIVE_CORPUS] = corpus
    st.session_state.pop(keys.CMP_HIGHLIGHT, None)


def rechunk(current: ActiveCorpus, chunking: ChunkSettings) -> ActiveCorpus:
    """The same documents with other chunk settings."""
    corpus = apply_chunking(current.documents, chunking, current.name)
    return ActiveCorpus(
        corpus=corpus,
        documents=current.documents,
        name=current.name,
        origin=current.origin,
        example_queries=current.example_queries,
        chunking=chunking,
        files=current.files,
        warnings=current.warnings,
        summary=current.summary,
    )


# -- uploads ---------------------------------------------------------------------------------------------


def _queries_from_zip(data: bytes) -> list[str]:
    """The first queries of a BEIR archive's queries.jsonl, as example queries (best effort)."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            member = next((n for n in zf.namelist() if n.rsplit("/", 1)[-1] == "queries.jsonl"), None)
            if member is None:
                return []
            out: list[str] = []
            with zf.open(member) as fh:
                for raw in io.TextIOWrapper(fh, encoding="utf-8", errors="replace"):
                    try:
                        text = json.loads(raw).get("text", "")
                    except (ValueError, AttributeError):
                        continue
                    if isinstance(text, str) and text.strip():
                        out.append(text.strip())
                    if len(out) >= MAX_EXAMPLE_QUERIES:
                        break
            return out
    except (zipfile.BadZipFile, OSError, RuntimeError):
        return []


def _problem(exc: BaseException, fallback_file: str) -> FileProblem:
    if isinstance(exc, CorpusFormatError):
        file = exc.file or fallback_file
        message = exc.message.removeprefix(f"{file}: ").removeprefix(f"{file}, ")  # the file is shown apart
        return FileProblem(file=file, message=message, hint=exc.hint)
    if isinstance(exc, RerankError):
        return FileProblem(file=fallback_file, message=exc.message, hint=exc.hint)
    return FileProblem(file=fallback_file, message=f"could not be read ({type(exc).__name__}: {exc}).")


def load_uploads(
    files: Sequence[tuple[str, bytes]],
    *,
    csv_columns: object | None = None,
    chunking: ChunkSettings | None = None,
    name: str | None = None,
) -> UploadOutcome:
    """Read uploaded files into the session's corpus, all or nothing.

    Every file is read; if any cannot be (not UTF-8, empty, binary, no documents, ...), each
    problem is returned with its file and the fix, and the session keeps its previous corpus.
    Record-level problems (a bad line) skip that record and come back as warnings.
    """
    from rerank_core.corpus import load_bytes, load_files

    if not files:
        return UploadOutcome(loaded=False, problems=[FileProblem("(no file)", "No file was given.")])
    chunking = chunking or ChunkSettings()
    try:
        report = load_files(list(files), csv_columns=csv_columns, on_error="skip")  # type: ignore[arg-type]
    except Exception as exc:  # noqa: BLE001 - anything unexpected is shown, never raised into the page
        return UploadOutcome(loaded=False, problems=[_problem(exc, ", ".join(n for n, _ in files))])
    problems: list[FileProblem] = []
    for fname, data in files:
        if fname in report.files:
            continue
        try:  # the file was not loaded: read it alone to get its typed error and fix
            load_bytes(data, fname, csv_columns=csv_columns)  # type: ignore[arg-type]
            problems.append(FileProblem(fname, "could not be read together with the other files."))
        except Exception as exc:  # noqa: BLE001
            problems.append(_problem(exc, fname))
    warnings = [str(w) for w in report.warnings if "file not loaded" not in w.message]
    if problems:
        return UploadOutcome(loaded=False, problems=problems, warnings=warnings, skipped=report.skipped)
    if not report.documents:
        return UploadOutcome(
            loaded=False,
            problems=[
                FileProblem(", ".join(n for n, _ in files), "holds no documents.", "check the files' format")
            ],
            warnings=warnings,
            skipped=report.skipped,
        )
    documents = tuple(report.documents)
    corpus_name = name or (files[0][0] if len(files) == 1 else f"{len(files)} uploaded files")
    try:
        corpus = apply_chunking(documents, chunking, corpus_name)
    except (CorpusFormatError, ValueError) as exc:
        return UploadOutcome(loaded=False, problems=[_problem(exc, corpus_name)], warnings=warnings)
    examples: list[str] = []
    for fname, data in files:
        if fname.lower().endswith(".zip"):
            examples.extend(_queries_from_zip(data))
    summary = report.summary()
    set_active(
        ActiveCorpus(
            corpus=corpus,
            documents=documents,
            name=corpus_name,
            origin=UPLOAD_ORIGIN,
            example_queries=tuple(examples[:MAX_EXAMPLE_QUERIES]),
            chunking=chunking,
            files=tuple(report.files),
            warnings=tuple(warnings),
            summary=summary,
        )
    )
    return UploadOutcome(loaded=True, summary=summary, warnings=warnings, skipped=report.skipped)
