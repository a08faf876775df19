"""A run file as the first stage: ``run:PATH`` serves the candidates another system retrieved.

The file is a TREC run (``qid Q0 docid rank score tag``) or JSON lines (``{"query_id", "query"?,
"doc_id", "score", "title"?, "text"?}``), read by :func:`rerank_core.readers.read_run`. Each query's
candidates are its documents in evaluation order (score descending, ties by doc id, as trec_eval
orders them), so a run written by ``evaluate`` gives back exactly the order it recorded. Text and
title come from the file when it has them, else from the corpus by id.

Candidates are looked up by the query's id (the dataset's ids: Compare and ``evaluate`` pass them),
else by the query text the file carries. A query the file does not list raises
:class:`NoCandidatesForQuery` (``evaluate`` counts it as a query without candidates, scoring 0).
Nothing is silent: unknown doc ids (not in the corpus; left out when the file has no text for them),
duplicate or missing ranks, and queries whose every candidate was left out are counted in
:attr:`RunFileRetriever.warnings`, next to the reader's own warnings.

``PATH`` is a file path, or the id of a run stored in the data folder (:func:`store_run`, what the
Compare page does with an upload): ``run:<16 hex digits>`` names ``<data_dir>/runs/<id>.<format>``,
content-addressed, so a link that names it always means the same candidates.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rerank_core.config import Settings
from rerank_core.errors import ConfigError
from rerank_core.progress import ProgressFn
from rerank_core.retrieval.base import Hit, NoCandidatesForQuery, Retriever
from rerank_core.types import Corpus, ScoreScale

RUNS_DIR = "runs"
_STORED_ID = re.compile(r"^[0-9a-f]{16}$")


@dataclass(frozen=True)
class StoredRun:
    """A run file kept in the data folder: its id (content hash), the name it was uploaded under, its
    format, how many queries and lines it holds, and the corpora it was uploaded for."""

    id: str
    name: str
    format: str
    queries: int
    lines: int
    path: Path
    corpora: tuple[str, ...] = ()

    @property
    def spec(self) -> str:
        return f"run:{self.id}"


def runs_dir(settings: Settings) -> Path:
    return Path(settings.data_dir) / RUNS_DIR


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


@functools.lru_cache(maxsize=64)
def _file_digest(path: str, mtime_ns: int, size: int) -> str:
    """A file's content hash, read again only when its modification time or size changes."""
    return _digest(Path(path).read_bytes())


def resolve_run_path(value: str | None, settings: Settings) -> Path:
    """The file ``run:VALUE`` names: a stored run's id, or a path. Raises :class:`ConfigError`."""
    text = (value or "").strip()
    if not text:
        raise ConfigError(
            "the run first stage needs a file: write it as run:PATH.",
            hint="for example --first-stage run:runs/bm25.run (a TREC or JSONL run)",
        )
    if _STORED_ID.match(text):
        for path in sorted(runs_dir(settings).glob(f"{text}.*")):
            if path.suffix in (".run", ".jsonl"):
                return path
    path = Path(text).expanduser()
    if not path.is_file():
        raise ConfigError(
            f"run file {text!r} does not exist"
            + (" (and no stored run has that id)" if _STORED_ID.match(text) else "")
            + ".",
            hint="give the path of a TREC run or JSONL run file, or upload the run again on the Compare page",
        )
    return path


def store_run(data: bytes, name: str, settings: Settings, corpus_id: str | None = None) -> StoredRun:
    """Keep an uploaded run under ``<data_dir>/runs/<content hash>.<format>`` after reading it (a file
    that cannot be read raises :class:`~rerank_core.errors.CorpusFormatError` and stores nothing)."""
    from rerank_core.readers import read_run

    got = read_run(data, name=name)
    run_id = _digest(data)
    folder = runs_dir(settings)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{run_id}.{'jsonl' if got.format == 'jsonl' else 'run'}"
    if not path.exists():
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_bytes(data)
        tmp.replace(path)
    meta_path = folder / f"{run_id}.json"
    meta: dict[str, Any] = {}
    if meta_path.is_file():
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            meta = {}
    corpora = list(meta.get("corpora", []))
    if corpus_id and corpus_id not in corpora:
        corpora.append(corpus_id)
    meta = {
        "id": run_id,
        "name": Path(name).name or name,
        "format": got.format,
        "queries": len(got.run),
        "lines": sum(len(d) for d in got.run.values()),
        "corpora": corpora,
    }
    meta_path.write_text(json.dumps(meta, indent=2), encoding="utf-8")
    return _stored(meta, path)


def _stored(meta: dict[str, Any], path: Path) -> StoredRun:
    return StoredRun(
        id=str(meta["id"]),
        name=str(meta.get("name", path.name)),
        format=str(meta.get("format", "trec")),
        queries=int(meta.get("queries", 0)),
        lines=int(meta.get("lines", 0)),
        path=path,
        corpora=tuple(meta.get("corpora", ())),
    )


def stored_runs(settings: Settings, corpus_id: str | None = None) -> list[StoredRun]:
    """The runs kept in the data folder (those uploaded for ``corpus_id`` when given), by name."""
    out = []
    folder = runs_dir(settings)
    for meta_path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
            path = resolve_run_path(str(meta["id"]), settings)
        except (OSError, ValueError, KeyError, ConfigError):
            continue
        run = _stored(meta, path)
        if corpus_id is None or corpus_id in run.corpora:
            out.append(run)
    return sorted(out, key=lambda r: (r.name, r.id))


def stored_run(settings: Settings, run_id: str) -> StoredRun | None:
    """The stored run with this id, or None."""
    return next((r for r in stored_runs(settings) if r.id == run_id), None)


class RunFileRetriever(Retriever):
    """The candidates a run file lists per query (``run:PATH``)."""

    name = "run"
    title = "Run file"
    description = "the candidates a TREC or JSONL run file lists per query (another system's first stage)"
    scale = ScoreScale.FIRST_STAGE
    needs_index = False
    hosted = False
    offline = True

    def __init__(self, settings: Settings | None = None, **options: Any) -> None:
        super().__init__(settings=settings, **options)
        unknown = sorted(set(self.options) - {"model", "path"})
        if unknown:
            raise ConfigError(
                f"[methods.run]: unknown option(s) {', '.join(unknown)}.",
                hint="the run first stage takes only the file, as run:PATH",
            )
        self.path = resolve_run_path(self.options.get("model") or self.options.get("path"), self.settings)
        self._hits: dict[str, list[Hit]] = {}
        self._by_text: dict[str, str] = {}
        self._reader_warnings: list[str] = []
        self._unknown_docs: set[str] = set()
        self._dropped_lines = 0
        self._emptied: list[str] = []
        self._asked_missing: set[str] = set()
        self._lock = threading.Lock()
        self.format = ""
        stored = stored_run(self.settings, self.path.stem) if _STORED_ID.match(self.path.stem) else None
        #: the name shown: the uploaded file's name for a stored run, else the file's own name
        self.file_name = stored.name if stored is not None else self.path.name

    @classmethod
    def identity(cls, model: str | None, settings: Settings) -> dict:
        """The file's content hash: the same path with other content is another first stage."""
        try:
            path = resolve_run_path(model, settings)
            stat = path.stat()
            return {"content": _file_digest(str(path.resolve()), stat.st_mtime_ns, stat.st_size)}
        except (ConfigError, OSError):
            return {"content": None}

    @property
    def label(self) -> str:
        return f"run file {self.file_name} ({len(self._hits)} queries)"

    @property
    def query_ids(self) -> list[str]:
        """The queries the file lists, in file order."""
        return list(self._hits)

    @property
    def query_texts(self) -> dict[str, str]:
        """Query texts the file itself carries (JSONL ``query``)."""
        return {qid: text for text, qid in self._by_text.items()}

    def _build(self, corpus: Corpus, progress: ProgressFn | None) -> None:
        from rerank_core.judgements import normalise_query
        from rerank_core.metrics import rank_documents
        from rerank_core.readers import read_run

        got = read_run(self.path)
        self.format = got.format
        self._reader_warnings = [w.message for w in got.warnings]
        hits: dict[str, list[Hit]] = {}
        for qid, scores in got.run.items():
            kept = []
            for doc_id in rank_documents(scores):
                title, text = got.documents.get(doc_id, (None, None))
                if doc_id not in corpus:
                    self._unknown_docs.add(doc_id)
                    if text is None:
                        self._dropped_lines += 1
                        continue
                kept.append(Hit(doc_id, float(scores[doc_id]), title, text))
            if not kept:
                self._emptied.append(qid)
            hits[qid] = kept
        self._hits = hits
        self._by_text = {normalise_query(text): qid for qid, text in got.queries.items()}

    @property
    def warnings(self) -> tuple[str, ...]:
        out = list(self._reader_warnings)
        if self._unknown_docs:
            left = (
                f"; {self._dropped_lines} such line(s) carry no text and were left out"
                if self._dropped_lines
                else " (their text comes from the run file)"
            )
            out.append(
                f"{len(self._unknown_docs)} document id(s) in the run are not in the corpus in use{left}"
            )
        if self._emptied:
            out.append(
                f"{len(self._emptied)} of {len(self._hits)} queries have no candidates left (every document "
                "unknown to the corpus)"
            )
        return tuple(out)

    def _query_for(self, query: str, query_id: str | None) -> str:
        from rerank_core.judgements import normalise_query

        if query_id is not None and query_id in self._hits:
            return query_id
        found = self._by_text.get(normalise_query(query)) if query.strip() else None
        if found is not None:
            return found
        with self._lock:
            if query_id is not None:
                self._asked_missing.add(query_id)
        some = ", ".join(list(self._hits)[:5])
        asked = f"query id {query_id!r}" if query_id else f"the query {query[:80]!r}"
        raise NoCandidatesForQuery(
            f"the run file {self.file_name} has no candidates for {asked}: it lists {len(self._hits)} "
            f"queries ({some}{', ...' if len(self._hits) > 5 else ''}).",
            hint="pick one of the run's queries (their ids must match the dataset's), or use another first stage",
        )

    def _search_query(self, query: str, k: int, query_id: str | None) -> list[Hit]:
        return self._hits[self._query_for(query, query_id)][:k]

    def _search(self, query: str, k: int) -> list[Hit]:
        return self._search_query(query, k, None)

    def save(self, directory: str | Path) -> None:
        """Nothing to save: the file is the index."""

    @classmethod
    def load(
        cls, directory: str | Path, corpus: Corpus, settings: Settings | None = None
    ) -> RunFileRetriever:
        raise ConfigError("a run file has no saved index.", hint="create it from the file: run:PATH")


__all__ = [
    "RUNS_DIR",
    "RunFileRetriever",
    "StoredRun",
    "resolve_run_path",
    "runs_dir",
    "store_run",
    "stored_run",
    "stored_runs",
]
