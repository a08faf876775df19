"""The corpus this session works on: the built-in sample, or the user's files.

:func:`load_uploads` is the upload handler the corpus page calls with ``(name, bytes)`` pairs. It
replaces the session's corpus only when every file was read; otherwise it returns what went wrong
per file and the previous corpus stays in use.

A BEIR dataset ``.zip`` (corpus.jsonl, queries.jsonl, qrels/<split>.tsv) brings its queries and
qrels along: they are kept for the Benchmark page (:func:`ui.benchmark_view.remember_dataset_qrels`)
and summarised in :class:`DatasetInfo`. A zip uploaded alone is read exactly as
``python -m rerank_core evaluate --dataset`` reads it (:func:`rerank_core.corpus.load_beir_report`,
documents without text kept), so the two see the same corpus and give the same figures.
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
#: the qrels split taken from a BEIR zip when none is chosen, in order of preference
PREFERRED_SPLITS = ("test", "dev", "validation", "train")
#: session key of the Corpus page's qrels-split choice for a BEIR zip with several splits
SPLIT_KEY = "corpus_beir_split"


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
class DatasetInfo:
    """What came with the documents of a BEIR zip. The queries and qrels themselves are kept in the
    session for the Benchmark page (see :func:`ui.benchmark_view.dataset_judgements`)."""

    name: str
    file: str
    split: str | None  # None: the archive has no qrels
    queries: int
    judged_queries: int
    judgements: int
    warnings: int = 0  # records of queries.jsonl / qrels skipped or kept with a note
    splits: tuple[str, ...] = ()

    def describe(self) -> str:
        """E.g. "225 queries · 1,612 judgements on 225 queries (qrels/test.tsv)"."""
        text = f"{self.queries:,} quer{'ies' if self.queries != 1 else 'y'}"
        if self.split is None:
            text += " · no qrels (the archive has no qrels/*.tsv)"
        else:
            text += (
                f" · {self.judgements:,} judgement{'s' if self.judgements != 1 else ''} on "
                f"{self.judged_queries:,} quer{'ies' if self.judged_queries != 1 else 'y'} (qrels/{self.split}.tsv)"
            )
        return text


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
    dataset: DatasetInfo | None = None  # set when the upload was a BEIR dataset

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
    dataset: DatasetInfo | None = None


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
        dataset=current.dataset,
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


def beir_splits(data: bytes) -> list[str]:
    """The qrels splits (``qrels/<split>.tsv``) next to the corpus.jsonl of a zip; [] if it has none."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            names = [n for n in zf.namelist() if not n.startswith("__MACOSX/") and not n.endswith("/")]
    except (zipfile.BadZipFile, OSError, RuntimeError):
        return []
    corpus = min(
        (n for n in names if n.rsplit("/", 1)[-1] == "corpus.jsonl"), key=lambda n: n.count("/"), default=None
    )
    if corpus is None:
        return []
    root = corpus[: -len("corpus.jsonl")]
    prefix = f"{root}qrels/"
    return sorted(
        n[len(prefix) : -len(".tsv")]
        for n in names
        if n.startswith(prefix) and n.endswith(".tsv") and "/" not in n[len(prefix) :]
    )


def _has_queries(data: bytes) -> bool:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            return any(n.rsplit("/", 1)[-1] == "queries.jsonl" for n in zf.namelist())
    except (zipfile.BadZipFile, OSError, RuntimeError):
        return False


def pick_split(splits: Sequence[str], wanted: str | None = None) -> str | None:
    """``wanted`` if the archive has it, else the first of :data:`PREFERRED_SPLITS` it has, else its first."""
    if not splits:
        return None
    if wanted in splits:
        return wanted
    return next((s for s in PREFERRED_SPLITS if s in splits), sorted(splits)[0])


def read_beir_upload(name: str, data: bytes, split: str | None = None):
    """A BEIR dataset from the bytes of an uploaded zip: ``(Dataset, warnings, DatasetInfo)``.

    Returns None when the zip holds no queries.jsonl (it is then a plain archive of documents).
    Reads it with :func:`rerank_core.corpus.load_beir_report`, the reader of the evaluate command;
    raises its :class:`CorpusFormatError` (naming the member and the fix) when it cannot be read.
    ``split`` picks the qrels file (see :func:`pick_split`); an archive without qrels loads with
    empty qrels.
    """
    import tempfile
    from pathlib import Path

    from rerank_core.corpus import load_beir_report

    if not _has_queries(data):
        return None
    splits = beir_splits(data)
    chosen = pick_split(splits, split)
    safe = Path(name).name or "dataset.zip"
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / safe
        path.write_bytes(data)
        try:
            dataset, found = load_beir_report(path, split=chosen or "test", require_qrels=chosen is not None)
        except CorpusFormatError as exc:
            message = exc.message.replace(str(path), safe)
            raise CorpusFormatError(
                message, file=(exc.file or safe).replace(str(path), safe), hint=exc.hint
            ) from None
    warnings = [str(w).replace(str(path), safe) for w in found]
    info = DatasetInfo(
        name=dataset.name,
        file=safe,
        split=chosen,
        queries=len(dataset.queries),
        judged_queries=len(dataset.judged_query_ids),
        judgements=sum(len(d) for d in dataset.qrels.values()),
        warnings=len(warnings),
        splits=tuple(splits),
    )
    return dataset, warnings, info


def load_uploads(
    files: Sequence[tuple[str, bytes]],
    *,
    csv_columns: object | None = None,
    chunking: ChunkSettings | None = None,
    name: str | None = None,
    split: str | None = None,
) -> UploadOutcome:
    """Read uploaded files into the session's corpus, all or nothing.

    Every file is read; if any cannot be (not UTF-8, empty, binary, no documents, ...), each
    problem is returned with its file and the fix, and the session keeps its previous corpus.
    Record-level problems (a bad line) skip that record and come back as warnings.

    A BEIR zip (one with a queries.jsonl) also brings its queries and the qrels of ``split`` (see
    :func:`pick_split`) for the Benchmark page; a queries or qrels file that cannot be read is a
    problem of that zip like any other. A zip uploaded alone gives exactly the evaluate command's
    corpus and is named after the dataset (so its labels are stored under that name).
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

    # the queries and qrels of BEIR zips (the first zip that has qrels wins)
    beir = None
    beir_warnings: list[str] = []
    for fname, data in files:
        if not fname.lower().endswith(".zip") or fname not in report.files:
            continue
        try:
            got = read_beir_upload(fname, data, split)
        except Exception as exc:  # noqa: BLE001 - a queries or qrels file that cannot be read
            problems.append(_problem(exc, fname))
            continue
        if got is None:
            continue
        if beir is None or (beir[2].split is None and got[2].split is not None):
            beir = got
        else:
            beir_warnings.append(f"{fname}: its queries and qrels were not kept (one dataset per upload)")

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
    summary = report.summary()
    skipped = report.skipped
    info: DatasetInfo | None = None
    if beir is not None:
        dataset, found, info = beir
        if len(files) == 1:  # the zip alone: the evaluate command's corpus, warnings and name
            documents = tuple(dataset.corpus)
            warnings = list(found)
            skipped = 0  # the BEIR reader keeps records the plain reader skips (documents without text)
            name = name or dataset.name
            summary = f"{len(documents):,} documents from {info.file}"
        else:
            warnings += [w for w in found if "corpus.jsonl" not in w]
        warnings += beir_warnings
    corpus_name = name or (files[0][0] if len(files) == 1 else f"{len(files)} uploaded files")
    try:
        corpus = apply_chunking(documents, chunking, corpus_name)
    except (CorpusFormatError, ValueError) as exc:
        return UploadOutcome(loaded=False, problems=[_problem(exc, corpus_name)], warnings=warnings)
    examples: list[str] = []
    if beir is not None:
        ds = beir[0]
        examples = [ds.queries[q] for q in (ds.judged_query_ids or list(ds.queries))[:MAX_EXAMPLE_QUERIES]]
    else:
        for fname, data in files:
            if fname.lower().endswith(".zip"):
                examples.extend(_queries_from_zip(data))
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
            dataset=info,
        )
    )
    from ui import benchmark_view

    if beir is not None:
        # keyed by the fingerprint of the whole documents, so it survives re-chunking
        benchmark_view.remember_dataset_qrels(
            Corpus(documents, name=corpus_name), beir[0].name, dict(beir[0].queries), beir[0].qrels
        )
    else:
        st.session_state.pop(benchmark_view.DATASET_QRELS_KEY, None)
    if info is not None:  # the notice says what came with the documents; the corpus box shows it apart
        summary += f", with {info.describe()}"
    return UploadOutcome(loaded=True, summary=summary, warnings=warnings, skipped=skipped, dataset=info)
