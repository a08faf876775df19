"""The corpus a page works on, named in the URL, and uploads into the workspace.

Every page resolves the corpus the same way (:func:`resolve`): the ``corpus`` id in the URL, else the
one this session last used, else the built-in sample. A URL naming a corpus the workspace does not
hold is an error the page shows (never a silent switch to the sample). The id is written back to the
URL, so a link copied from any page opens the same corpus in another browser or after a restart.

:func:`load_uploads` is the upload handler: it reads every file (a BEIR ``.zip`` brings its queries
and qrels), and stores the corpus in the workspace only when every file was read; otherwise it returns
what went wrong per file and the corpus in use stays.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import streamlit as st

from rerank_core.access import GuardedWorkspace
from rerank_core.config import Settings
from rerank_core.errors import CorpusFormatError, RerankError
from rerank_core.workspace import UPLOAD_ORIGIN, Chunking, StoredCorpus, adopt_labels
from ui import keys, resources

MAX_EXAMPLE_QUERIES = 6


@dataclass(frozen=True)
class FileProblem:
    file: str
    message: str
    hint: str | None = None


@dataclass
class UploadOutcome:
    """What an upload did. ``stored`` is None when nothing was stored (the corpus in use is unchanged)."""

    stored: StoredCorpus | None
    summary: str = ""
    problems: list[FileProblem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    skipped: int = 0

    @property
    def loaded(self) -> bool:
        return self.stored is not None


# -- which corpus ----------------------------------------------------------------------------------------


def workspace(settings: Settings) -> GuardedWorkspace:
    """The stored corpora as this session's actor may use them (a demo shows only its own corpora to
    non-admins; uploading and deleting need an admin)."""
    from ui import identity

    return GuardedWorkspace(
        resources.workspace(settings), identity.current(settings), visible=_demo_ids(settings)
    )


def _demo_ids(settings: Settings) -> list[str] | None:
    found = resources.demo_corpora(settings)
    return None if found is None else list(found.values())


def resolve(settings: Settings) -> StoredCorpus:
    """The corpus of this page: the URL's, else this session's, else the demo's first corpus or the sample.

    Raises :class:`rerank_core.workspace.UnknownCorpus` when the URL names a corpus the workspace does
    not hold (or a demo does not show), and whatever reading the sample raises when it cannot be read."""
    ws = workspace(settings)
    wanted = st.query_params.get(keys.CORPUS)
    if wanted:
        stored = ws.get(wanted)
    else:
        current = st.session_state.get(keys.ACTIVE_CORPUS)
        stored = ws.get(current) if current and current in ws else _sample(settings)
    use(stored, settings)
    return stored


def use(stored: StoredCorpus, settings: Settings) -> None:
    """Make ``stored`` the corpus of this session and of the URL; move labels stored under its old
    display-name id (earlier releases) to its content id, once per process."""
    if st.session_state.get(keys.ACTIVE_CORPUS) != stored.id:
        st.session_state.pop(keys.CMP_HIGHLIGHT, None)
    st.session_state[keys.ACTIVE_CORPUS] = stored.id
    if st.query_params.get(keys.CORPUS) != stored.id:
        st.query_params[keys.CORPUS] = stored.id
    _adopt_once(settings.resolved_db_url, stored)


@st.cache_resource(show_spinner=False, max_entries=256)
def _adopted(db_url: str, corpus_id: str) -> dict:
    return {}


def _adopt_once(db_url: str, stored: StoredCorpus) -> None:
    done = _adopted(db_url, stored.id)
    if done.get("ok"):
        return
    try:
        adopt_labels(resources.label_store(resources.session_settings()), stored)
    except RerankError:
        return  # a store that cannot be used: the pages say so where labels are shown
    done["ok"] = True


def _sample(settings: Settings) -> StoredCorpus:
    ws = workspace(settings)
    demo = _demo_ids(settings)
    if demo:  # a demo opens on its first corpus
        return ws.get(demo[0])
    known = st.session_state.get(keys.SAMPLE_ID)
    if known and known in ws:
        return ws.get(known)
    stored = ws.sample()
    st.session_state[keys.SAMPLE_ID] = stored.id
    return stored


def sample(settings: Settings) -> StoredCorpus:
    return _sample(settings)


def example_queries(
    stored: StoredCorpus, limit: int = MAX_EXAMPLE_QUERIES, settings: Settings | None = None
) -> list[str]:
    """Queries to offer with one click: the demo's configured ones for this corpus, else the sample's chosen
    demos, else the corpus's judged queries first."""
    ids = resources.demo_corpora(settings) if settings is not None else None
    if settings is not None and ids is not None:
        from rerank_core.access import demo_examples

        configured = demo_examples(settings.demo, ids, stored.id)
        if configured:
            return list(configured)[:limit]
    if stored.is_sample:
        from rerank_core.sample import example_queries as demos

        return demos()[:limit]
    judged = [q for q in stored.queries if stored.qrels.get(q)]
    rest = [q for q in stored.queries if not stored.qrels.get(q)]
    return [stored.queries[q] for q in (judged + rest)[:limit]]


# -- uploads ---------------------------------------------------------------------------------------------


def _problem(exc: BaseException, fallback_file: str) -> FileProblem:
    if isinstance(exc, CorpusFormatError):
        file = exc.file or fallback_file
        message = exc.message.removeprefix(f"{file}: ").removeprefix(f"{file}, ")  # the file is shown apart
        return FileProblem(file=file, message=message, hint=exc.hint)
    if isinstance(exc, RerankError):
        return FileProblem(file=fallback_file, message=exc.message, hint=exc.hint)
    return FileProblem(file=fallback_file, message=f"could not be read ({type(exc).__name__}: {exc}).")


def beir_splits(data: bytes) -> list[str]:
    """The qrels splits of a BEIR zip (``qrels/<split>.tsv`` next to its corpus.jsonl); [] if none."""
    from rerank_core.readers import inspect_beir

    try:
        return list(inspect_beir(data).splits)
    except RerankError:
        return []


def pick_split(splits: Sequence[str], wanted: str | None = None) -> str | None:
    """``wanted`` if the archive has it, else the preferred split it has (test, dev, ...), else its first."""
    from rerank_core.readers import pick_split as pick

    return pick(splits, wanted)


def _is_beir_zip(data: bytes) -> bool:
    from rerank_core.readers import inspect_beir

    try:
        return inspect_beir(data).has_queries
    except RerankError:
        return False


def load_uploads(
    files: Sequence[tuple[str, bytes]],
    settings: Settings,
    *,
    csv_columns: object | None = None,
    chunking: Chunking | None = None,
    name: str | None = None,
    split: str | None = None,
) -> UploadOutcome:
    """Read uploaded files and store them as one corpus of the workspace, all or nothing.

    Every file is read; if any cannot be (not UTF-8, empty, binary, no documents, ...), each problem is
    returned with its file and the fix, and nothing is stored. Record-level problems (a bad line) skip
    that record and come back as warnings. A BEIR zip (one with a queries.jsonl) also brings its queries
    and the qrels of ``split`` (see :func:`pick_split`); a zip uploaded alone is read exactly as
    ``python -m rerank_core evaluate --dataset`` reads it, so both see the same corpus and figures.
    """
    from rerank_core.corpus import load_bytes, load_files
    from rerank_core.readers import read_beir

    if not files:
        return UploadOutcome(None, problems=[FileProblem("(no file)", "No file was given.")])
    chunking = chunking or Chunking()
    try:
        report = load_files(list(files), csv_columns=csv_columns, on_error="skip")  # type: ignore[arg-type]
    except Exception as exc:  # noqa: BLE001 - anything unexpected is shown, never raised into the page
        return UploadOutcome(None, problems=[_problem(exc, ", ".join(n for n, _ in files))])
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
        if not fname.lower().endswith(".zip") or fname not in report.files or not _is_beir_zip(data):
            continue
        try:
            got = read_beir(data, split=pick_split(beir_splits(data), split), name=fname)
        except Exception as exc:  # noqa: BLE001 - a queries or qrels file that cannot be read
            problems.append(_problem(exc, fname))
            continue
        if beir is None or (beir.split is None and got.split is not None):
            beir = got
        else:
            beir_warnings.append(f"{fname}: its queries and qrels were not kept (one dataset per upload)")

    if problems:
        return UploadOutcome(None, problems=problems, warnings=warnings, skipped=report.skipped)
    if not report.documents:
        return UploadOutcome(
            None,
            problems=[
                FileProblem(", ".join(n for n, _ in files), "holds no documents.", "check the files' format")
            ],
            warnings=warnings,
            skipped=report.skipped,
        )
    documents = tuple(report.documents)
    summary = report.summary()
    skipped = report.skipped
    queries: dict[str, str] = {}
    qrels: dict[str, dict[str, int]] = {}
    tags: dict[str, tuple[str, ...]] = {}
    if beir is not None:
        if len(files) == 1:  # the zip alone: the evaluate command's corpus, warnings and name
            documents = tuple(beir.dataset.corpus)
            warnings = [str(w) for w in beir.warnings]
            skipped = 0  # the BEIR reader keeps records the plain reader skips (documents without text)
            name = name or beir.dataset.name
            summary = f"{len(documents):,} documents from {files[0][0]}"
        else:
            warnings += [str(w) for w in beir.warnings if "corpus.jsonl" not in str(w)]
        warnings += beir_warnings
        queries, qrels, tags = dict(beir.dataset.queries), beir.dataset.qrels, dict(beir.tags)
    corpus_name = name or (files[0][0] if len(files) == 1 else ", ".join(n for n, _ in files)[:120])
    try:
        stored = workspace(settings).add(
            documents,
            name=corpus_name,
            chunking=chunking,
            queries=queries,
            qrels=qrels,
            tags=tags,
            origin=UPLOAD_ORIGIN,
            files=[n for n, _ in files],
            warnings=warnings,
            split=beir.split if beir is not None else None,
            splits=beir.splits if beir is not None else (),
        )
    except (RerankError, ValueError) as exc:  # a bad corpus, or an actor who may not upload
        return UploadOutcome(None, problems=[_problem(exc, corpus_name)], warnings=warnings)
    if beir is not None:
        n = sum(len(d) for d in qrels.values())
        summary += f", with {len(queries):,} queries and {n:,} judgements"
        if beir.split:
            summary += f" (qrels/{beir.split}.tsv)"
    return UploadOutcome(stored, summary=summary, warnings=warnings, skipped=skipped)
