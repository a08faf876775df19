"""The workspace: every corpus a user uploads or imports, kept under the data directory.

A stored corpus has a stable id derived from its content and its chunking settings, never from a
display name: the documents (ids, titles and texts, in order) and the canonical form of the chunking
(:meth:`Chunking.canonical`). Two sessions uploading the same files with the same chunking get the
same id, a link naming the id opens the same corpus in any browser and after any restart, and
renaming a corpus changes nothing but its name.

On disk (``<data_dir>/corpora/<id>/``)::

    manifest.json     name, counts, chunking, origin, files, qrels split, created/updated, legacy ids
    corpus.jsonl      the documents as loaded (before chunking): {"_id", "title", "text", "source"}
    queries.jsonl     {"_id", "text", "tags"?} (the dataset's queries, if it came with any)
    qrels.tsv         query-id, corpus-id, score (BEIR layout; the dataset's judgements, if any)
    warnings.json     what loading reported (capped)

Derived data lives apart: first-stage indexes under ``<data_dir>/indexes/<corpus fingerprint>/`` (see
:mod:`rerank_core.pipeline`; rebuilt when missing or damaged), and vectors that do not depend on the
corpus (sentence and token embeddings per text) in the shared caches of :mod:`rerank_core.artifacts`. A corpus folder is written in a temporary folder and
renamed into place, so a crash never leaves half a corpus. When the data directory cannot be written
(read-only, full disk), :meth:`Workspace.add` keeps the corpus in memory for this process and says so
(:attr:`StoredCorpus.problem`); everything else works.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from rerank_core.errors import CorpusFormatError, RerankError
from rerank_core.fileio import atomic_write_text, folder_lock
from rerank_core.types import Corpus, Dataset, Document

FORMAT_VERSION = 1
CORPUS_ID_PREFIX = "c-"
MAX_STORED_WARNINGS = 500
#: stored corpora kept loaded in one process
MAX_LOADED = 8
SAMPLE_ORIGIN = "sample"
UPLOAD_ORIGIN = "upload"
IMPORT_ORIGIN = "import"


class UnknownCorpus(RerankError):
    """A corpus id that the workspace does not hold (a stale link, a deleted corpus, a typo)."""

    kind = "unknown-corpus"


# -- chunking and identity ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Chunking:
    """How a corpus is cut into the units that are indexed: whole documents, token windows or
    sentence-packed chunks of ``size`` tokens with ``overlap`` (see :mod:`rerank_core.chunking`)."""

    mode: str = "none"  # "none" | "tokens" | "sentences"
    size: int = 200
    overlap: int = 40

    @property
    def enabled(self) -> bool:
        return self.mode != "none"

    def canonical(self) -> dict[str, Any]:
        """The settings that change the chunks, and nothing else (size and overlap mean nothing for
        whole documents). Part of the corpus id."""
        if not self.enabled:
            return {"mode": "none"}
        return {"mode": self.mode, "size": int(self.size), "overlap": int(self.overlap)}

    @classmethod
    def from_canonical(cls, data: Mapping[str, Any] | None) -> Chunking:
        data = dict(data or {})
        if data.get("mode", "none") == "none":
            return cls()
        return cls(mode=str(data["mode"]), size=int(data["size"]), overlap=int(data["overlap"]))

    def describe(self) -> str:
        """For people only: never part of an id."""
        if not self.enabled:
            return "whole documents"
        unit = "token windows" if self.mode == "tokens" else "sentence-packed chunks"
        return f"{unit} of {self.size} tokens, {self.overlap} overlap"

    def apply(self, documents: Sequence[Document], name: str) -> Corpus:
        """The corpus to index: the documents, chunked as asked. Raises CorpusFormatError on bad settings."""
        if not self.enabled:
            return Corpus(documents, name=name)
        from rerank_core.chunking import ChunkConfig, chunk_documents

        try:
            config = ChunkConfig(mode=self.mode, size=int(self.size), overlap=int(self.overlap))  # type: ignore[arg-type]
            return Corpus(chunk_documents(documents, config), name=name)
        except ValueError as exc:
            raise CorpusFormatError(
                f"cannot chunk the corpus: {exc}", hint="change the chunk settings"
            ) from exc


def corpus_id(documents: Sequence[Document], chunking: Chunking) -> str:
    """``c-`` and 16 hex digits of a SHA-256 over every document's id, title and text (in order) and the
    canonical chunking. Display names, file names and load times do not enter it."""
    h = hashlib.sha256(b"rerank-playground corpus v1\x00")
    h.update(json.dumps(chunking.canonical(), sort_keys=True).encode())
    for doc in documents:
        for part in (doc.id, doc.title, doc.text):
            h.update(part.encode("utf-8", "surrogatepass"))
            h.update(b"\x00")
        h.update(b"\x01")
    return CORPUS_ID_PREFIX + h.hexdigest()[:16]


def legacy_label_id(name: str, chunking: Chunking) -> str:
    """The id earlier releases stored labels under (the display name, plus the chunking's description
    when chunked). Used only to move those labels to the content id."""
    base = name.strip() or "corpus"
    return f"{base} [{chunking.describe()}]" if chunking.enabled else base


# -- what is stored ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CorpusInfo:
    """A stored corpus's manifest: what the Corpus page lists."""

    id: str
    name: str
    documents: int
    chunks: int
    queries: int = 0
    judged_queries: int = 0
    judgements: int = 0
    chunking: Chunking = Chunking()
    origin: str = UPLOAD_ORIGIN
    files: tuple[str, ...] = ()
    split: str | None = None
    splits: tuple[str, ...] = ()
    warnings: int = 0
    created: str = ""
    updated: str = ""
    legacy_ids: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT_VERSION,
            "id": self.id,
            "name": self.name,
            "documents": self.documents,
            "chunks": self.chunks,
            "queries": self.queries,
            "judged_queries": self.judged_queries,
            "judgements": self.judgements,
            "chunking": self.chunking.canonical(),
            "origin": self.origin,
            "files": list(self.files),
            "split": self.split,
            "splits": list(self.splits),
            "warnings": self.warnings,
            "created": self.created,
            "updated": self.updated,
            "legacy_ids": list(self.legacy_ids),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CorpusInfo:
        return cls(
            id=str(data["id"]),
            name=str(data["name"]),
            documents=int(data["documents"]),
            chunks=int(data["chunks"]),
            queries=int(data.get("queries", 0)),
            judged_queries=int(data.get("judged_queries", 0)),
            judgements=int(data.get("judgements", 0)),
            chunking=Chunking.from_canonical(data.get("chunking")),
            origin=str(data.get("origin", UPLOAD_ORIGIN)),
            files=tuple(data.get("files", ())),
            split=data.get("split"),
            splits=tuple(data.get("splits", ())),
            warnings=int(data.get("warnings", 0)),
            created=str(data.get("created", "")),
            updated=str(data.get("updated", "")),
            legacy_ids=tuple(data.get("legacy_ids", ())),
        )

    @property
    def is_sample(self) -> bool:
        return self.origin == SAMPLE_ORIGIN

    @property
    def unit(self) -> str:
        return "chunks" if self.chunking.enabled else "documents"


@dataclass
class StoredCorpus:
    """A corpus of the workspace, loaded: the documents as given, the indexed (chunked) corpus, and the
    queries, judgements and tags that came with it.

    ``qrels`` name whole documents; for a chunked corpus they are kept but not used for metrics
    (chunk ids differ from document ids). ``directory`` is None for a corpus kept in memory only, and
    ``problem`` then says why."""

    info: CorpusInfo
    documents: tuple[Document, ...]
    corpus: Corpus
    queries: dict[str, str] = field(default_factory=dict)
    qrels: dict[str, dict[str, int]] = field(default_factory=dict)
    tags: dict[str, tuple[str, ...]] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()
    directory: Path | None = None
    problem: str | None = None

    @property
    def id(self) -> str:
        return self.info.id

    @property
    def name(self) -> str:
        return self.info.name

    @property
    def chunking(self) -> Chunking:
        return self.info.chunking

    @property
    def is_sample(self) -> bool:
        return self.info.is_sample

    @property
    def metric_qrels(self) -> dict[str, dict[str, int]]:
        """The judgements that apply to the indexed units (none for a chunked corpus)."""
        return {} if self.chunking.enabled else self.qrels

    def dataset(self, qrels: Mapping[str, Mapping[str, int]] | None = None) -> Dataset:
        """The indexed corpus with its queries and judgements (``qrels`` instead of the stored ones)."""
        judged = dict(qrels) if qrels is not None else self.metric_qrels
        return Dataset(
            name=self.name,
            corpus=self.corpus,
            queries=dict(self.queries),
            qrels={q: dict(d) for q, d in judged.items()},
        )


# -- the workspace ----------------------------------------------------------------------------------------


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


class Workspace:
    """The stored corpora of one data directory. Safe to share between threads (one per process)."""

    def __init__(self, data_dir: str | os.PathLike[str]) -> None:
        self.data_dir = Path(data_dir)
        self.root = self.data_dir / "corpora"
        self._lock = threading.RLock()
        self._loaded: OrderedDict[str, StoredCorpus] = OrderedDict()
        self._memory: dict[str, StoredCorpus] = {}  # corpora that could not be written to disk

    def __repr__(self) -> str:
        return f"Workspace({str(self.data_dir)!r})"

    # -- reading ------------------------------------------------------------------------------------
    def list(self) -> list[CorpusInfo]:
        """Every stored corpus, newest first (the sample last)."""
        out: dict[str, CorpusInfo] = {c.id: c.info for c in self._memory.values()}
        with contextlib.suppress(OSError):
            for path in self.root.glob(f"{CORPUS_ID_PREFIX}*/manifest.json"):
                try:
                    info = CorpusInfo.from_json(json.loads(path.read_text(encoding="utf-8")))
                except (OSError, ValueError, KeyError, TypeError):
                    continue  # a damaged manifest: the corpus is not offered (get() says why)
                out[info.id] = info
        return sorted(out.values(), key=lambda i: (not i.is_sample, i.created), reverse=True)

    def __contains__(self, corpus_id: object) -> bool:
        return isinstance(corpus_id, str) and (
            corpus_id in self._memory or (self._dir(corpus_id) / "manifest.json").is_file()
        )

    def info(self, corpus_id: str) -> CorpusInfo:
        return self.get(corpus_id).info

    def get(self, corpus_id: str) -> StoredCorpus:
        """The stored corpus ``corpus_id``; :class:`UnknownCorpus` when there is none."""
        with self._lock:
            if corpus_id in self._memory:
                return self._memory[corpus_id]
            found = self._loaded.get(corpus_id)
            directory = self._dir(corpus_id)
            manifest = directory / "manifest.json"
            if found is not None and manifest.is_file():
                self._loaded.move_to_end(corpus_id)
                return found
            if not _valid_id(corpus_id) or not manifest.is_file():
                raise UnknownCorpus(
                    f"there is no corpus {corpus_id!r} in this workspace ({self.root}).",
                    hint="it may have been deleted, or the link comes from another server: open the Corpus "
                    "page to pick a stored corpus or upload the files again",
                )
            stored = self._read(directory)
            self._loaded[corpus_id] = stored
            while len(self._loaded) > MAX_LOADED:
                self._loaded.popitem(last=False)
            return stored

    def _dir(self, corpus_id: str) -> Path:
        return self.root / corpus_id

    def _read(self, directory: Path) -> StoredCorpus:
        try:
            info = CorpusInfo.from_json(json.loads((directory / "manifest.json").read_text(encoding="utf-8")))
            documents = tuple(
                Document(
                    id=str(r["_id"]),
                    text=str(r.get("text", "")),
                    title=str(r.get("title", "") or ""),
                    source=str(r.get("source", "") or ""),
                )
                for r in _read_jsonl(directory / "corpus.jsonl")
            )
            queries: dict[str, str] = {}
            tags: dict[str, tuple[str, ...]] = {}
            if (directory / "queries.jsonl").is_file():
                for r in _read_jsonl(directory / "queries.jsonl"):
                    queries[str(r["_id"])] = str(r["text"])
                    if r.get("tags"):
                        tags[str(r["_id"])] = tuple(str(t) for t in r["tags"])
            qrels = _read_qrels_tsv(directory / "qrels.tsv") if (directory / "qrels.tsv").is_file() else {}
            warnings: tuple[str, ...] = ()
            if (directory / "warnings.json").is_file():
                warnings = tuple(json.loads((directory / "warnings.json").read_text(encoding="utf-8")))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise CorpusFormatError(
                f"the stored corpus in {directory} cannot be read ({type(exc).__name__}: {exc}).",
                hint="delete it on the Corpus page and upload its files again",
            ) from exc
        if corpus_id(documents, info.chunking) != info.id:
            raise CorpusFormatError(
                f"the stored corpus in {directory} does not match its id (its files were changed by hand).",
                hint="delete it on the Corpus page and upload its files again",
            )
        return StoredCorpus(
            info=info,
            documents=documents,
            corpus=info.chunking.apply(documents, info.name),
            queries=queries,
            qrels=qrels,
            tags=tags,
            warnings=warnings,
            directory=directory,
        )

    # -- writing ------------------------------------------------------------------------------------
    def add(
        self,
        documents: Sequence[Document],
        *,
        name: str,
        chunking: Chunking | None = None,
        queries: Mapping[str, str] | None = None,
        qrels: Mapping[str, Mapping[str, int]] | None = None,
        tags: Mapping[str, Sequence[str]] | None = None,
        origin: str = UPLOAD_ORIGIN,
        files: Sequence[str] = (),
        warnings: Sequence[str] = (),
        split: str | None = None,
        splits: Sequence[str] = (),
    ) -> StoredCorpus:
        """Store a corpus (or find it: the same content and chunking is the same corpus) and return it.

        Adding a corpus that exists adds its queries, judgements and tags to the stored ones and keeps
        its name. Raises :class:`CorpusFormatError` for an empty corpus or bad chunk settings."""
        chunking = chunking or Chunking()
        documents = tuple(documents)
        if not documents:
            raise CorpusFormatError("the corpus holds no documents.", hint="check the files' format")
        name = name.strip() or "corpus"
        corpus = chunking.apply(documents, name)  # validates the settings before anything is written
        cid = corpus_id(documents, chunking)
        texts = {str(k): str(v) for k, v in (queries or {}).items()}
        judged = {str(q): {str(d): int(g) for d, g in docs.items()} for q, docs in (qrels or {}).items()}
        tag_map = {str(q): tuple(str(t) for t in ts) for q, ts in (tags or {}).items() if ts}
        with self._lock:
            if cid in self:
                return self._merge(cid, texts, judged, tag_map)
            now = _now()
            info = CorpusInfo(
                id=cid,
                name=name,
                documents=len(documents),
                chunks=len(corpus),
                chunking=chunking,
                origin=origin,
                files=tuple(files),
                split=split,
                splits=tuple(splits),
                warnings=len(warnings),
                created=now,
                updated=now,
                legacy_ids=(legacy_label_id(name, chunking),),
            )
            info = _with_counts(info, texts, judged)
            stored = StoredCorpus(
                info=info,
                documents=documents,
                corpus=corpus,
                queries=texts,
                qrels=judged,
                tags=tag_map,
                warnings=tuple(warnings),
            )
            try:
                self._write_new(stored)
            except OSError as exc:
                stored.problem = (
                    f"the corpus could not be saved in {self.root} ({exc.strerror or exc}); it is kept in "
                    "memory until the server restarts. Set RERANK_DATA_DIR to a writable folder with free "
                    "space to keep corpora."
                )
                self._memory[cid] = stored
                return stored
            return self.get(cid)

    def _write_new(self, stored: StoredCorpus) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.root / f".tmp-{uuid.uuid4().hex}"
        tmp.mkdir()
        try:
            _write_jsonl(
                tmp / "corpus.jsonl",
                (
                    {"_id": d.id, "title": d.title, "text": d.text, "source": d.source}
                    for d in stored.documents
                ),
            )
            self._write_judgement_files(tmp, stored.queries, stored.qrels, stored.tags)
            (tmp / "warnings.json").write_text(
                json.dumps(list(stored.warnings[:MAX_STORED_WARNINGS])), encoding="utf-8"
            )
            _write_json(tmp / "manifest.json", stored.info.to_json())
            try:
                os.rename(tmp, self._dir(stored.id))
            except OSError:
                if not (self._dir(stored.id) / "manifest.json").is_file():
                    raise
                # another session stored the same corpus meanwhile: theirs is the same content
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)

    @staticmethod
    def _write_judgement_files(
        directory: Path,
        queries: Mapping[str, str],
        qrels: Mapping[str, Mapping[str, int]],
        tags: Mapping[str, Sequence[str]],
    ) -> None:
        _write_jsonl(
            directory / "queries.jsonl",
            (
                {"_id": q, "text": t, **({"tags": list(tags[q])} if tags.get(q) else {})}
                for q, t in queries.items()
            ),
        )
        lines = ["query-id\tcorpus-id\tscore"]
        lines += [f"{q}\t{d}\t{g}" for q, docs in qrels.items() for d, g in docs.items()]
        atomic_write_text(directory / "qrels.tsv", "\n".join(lines) + "\n")

    def _merge(
        self,
        cid: str,
        queries: Mapping[str, str],
        qrels: Mapping[str, Mapping[str, int]],
        tags: Mapping[str, tuple[str, ...]],
    ) -> StoredCorpus:
        current = self.get(cid)
        new_queries = {**current.queries, **{q: t for q, t in queries.items() if q not in current.queries}}
        new_qrels: dict[str, dict[str, int]] = {q: dict(d) for q, d in current.qrels.items()}
        for q, docs in qrels.items():
            for d, g in docs.items():
                new_qrels.setdefault(q, {}).setdefault(d, g)
        new_tags = {**tags, **current.tags}
        if new_queries == current.queries and new_qrels == current.qrels and new_tags == current.tags:
            return current
        info = _with_counts(replace(current.info, updated=_now()), new_queries, new_qrels)
        updated = replace(current, info=info, queries=new_queries, qrels=new_qrels, tags=new_tags)
        if current.directory is None:
            self._memory[cid] = updated
            return updated
        with folder_lock(current.directory):
            self._write_judgement_files(current.directory, new_queries, new_qrels, new_tags)
            _write_json(current.directory / "manifest.json", info.to_json())
        self._loaded[cid] = updated
        return updated

    def rename(self, corpus_id: str, name: str) -> CorpusInfo:
        """Give a stored corpus a new display name (its id, labels and artifacts stay)."""
        name = name.strip()
        if not name:
            raise CorpusFormatError("a corpus name cannot be empty.", hint="type a name")
        with self._lock:
            stored = self.get(corpus_id)
            info = replace(stored.info, name=name, updated=_now())
            renamed = replace(stored, info=info, corpus=Corpus(list(stored.corpus), name=name))
            if stored.directory is None:
                self._memory[corpus_id] = renamed
            else:
                _write_json(stored.directory / "manifest.json", info.to_json())
                self._loaded[corpus_id] = renamed
            return info

    def delete(self, corpus_id: str) -> StoredCorpus:
        """Remove a stored corpus; returns what it was (its saved indexes are removed by
        ``pipeline.delete_indexes``, its judgements live in the label store: ``JudgementStore.delete_corpus``)."""
        with self._lock:
            stored = self.get(corpus_id)  # UnknownCorpus when there is none
            self._loaded.pop(corpus_id, None)
            if self._memory.pop(corpus_id, None) is not None:
                return stored
            directory = self._dir(corpus_id)
            trash = self.root / f".deleted-{corpus_id}-{uuid.uuid4().hex[:6]}"
            try:
                os.rename(directory, trash)  # gone for every reader at once, then removed
            except OSError as exc:
                raise CorpusFormatError(
                    f"the corpus {corpus_id} cannot be deleted: {exc.strerror or exc}.",
                    hint=f"check that {self.root} is writable",
                ) from exc
            shutil.rmtree(trash, ignore_errors=True)
            return stored

    def rechunk(self, corpus_id: str, chunking: Chunking) -> StoredCorpus:
        """The same documents (and queries, judgements, tags) with other chunk settings: another corpus."""
        stored = self.get(corpus_id)
        return self.add(
            stored.documents,
            name=stored.name,
            chunking=chunking,
            queries=stored.queries,
            qrels=stored.qrels,
            tags=stored.tags,
            origin=stored.info.origin,
            files=stored.info.files,
            warnings=stored.warnings,
            split=stored.info.split,
            splits=stored.info.splits,
        )

    def add_dataset(
        self,
        dataset: Dataset,
        *,
        origin: str = IMPORT_ORIGIN,
        chunking: Chunking | None = None,
        **kwargs: Any,
    ) -> StoredCorpus:
        """Store a loaded dataset (a BEIR folder or zip) with its queries and judgements."""
        return self.add(
            tuple(dataset.corpus),
            name=dataset.name,
            chunking=chunking,
            queries=dataset.queries,
            qrels=dataset.qrels,
            origin=origin,
            **kwargs,
        )

    def sample(self) -> StoredCorpus:
        """The built-in sample corpus (stored on first use)."""
        from rerank_core.sample import sample_dataset

        return self.add_dataset(sample_dataset(), origin=SAMPLE_ORIGIN, files=("built-in sample",))


def _with_counts(
    info: CorpusInfo, queries: Mapping[str, str], qrels: Mapping[str, Mapping[str, int]]
) -> CorpusInfo:
    return replace(
        info,
        queries=len(queries),
        judged_queries=sum(1 for d in qrels.values() if d),
        judgements=sum(len(d) for d in qrels.values()),
    )


def _valid_id(corpus_id: str) -> bool:
    rest = corpus_id[len(CORPUS_ID_PREFIX) :]
    return (
        corpus_id.startswith(CORPUS_ID_PREFIX)
        and len(rest) == 16
        and all(c in "0123456789abcdef" for c in rest)
    )


# -- small file helpers (our own formats; user files go through rerank_core.corpus / readers) ----------


def _read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                yield json.loads(line)


def _read_qrels_tsv(path: Path) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    with open(path, encoding="utf-8") as fh:
        next(fh, None)  # header
        for line in fh:
            if line.strip():
                q, d, g = line.rstrip("\n").split("\t")
                out.setdefault(q, {})[d] = int(g)
    return out


def _write_jsonl(path: Path, records: Any) -> None:
    atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))


def _write_json(path: Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")


# -- labels stored under older identities -------------------------------------------------------------


def adopt_labels(store: Any, stored: StoredCorpus) -> dict[str, int]:
    """Bring a label store in line with a stored corpus's identity (idempotent; safe to call on every open).

    - labels that earlier releases stored under the corpus's display name (``legacy_ids``) move to its
      content id;
    - queries typed on the Compare page before their text matched a dataset query (``q-<hash>`` ids) move
      to the dataset's query id, so imported and hand judgements of one query count together;
    - the built-in sample's own judgements are imported once (judge ``import``), so its live metrics work
      from the first query; undoing that import is respected.

    ``store`` is a :class:`rerank_core.judgements.JudgementStore`. Returns counts of what moved."""
    from rerank_core.judgements import IMPORT_JUDGE, normalise_query

    out = {"corpus_rows": 0, "query_rows": 0, "imported": 0}
    known = set(store.corpora())
    for old in stored.info.legacy_ids:
        if old != stored.id and old in known:
            out["corpus_rows"] += store.rekey_corpus(old, stored.id)
    if stored.queries:
        by_text = {normalise_query(t): q for q, t in stored.queries.items()}
        mapping = {
            q: by_text[normalise_query(t)]
            for q, t in store.queries(stored.id).items()
            if q not in stored.queries and normalise_query(t) in by_text
        }
        if mapping:
            out["query_rows"] += store.rekey_queries(stored.id, mapping)
    if stored.is_sample and stored.metric_qrels and not store.history(stored.id, judge=IMPORT_JUDGE):
        out["imported"] = store.import_qrels(
            stored.id,
            stored.metric_qrels,
            judge=IMPORT_JUDGE,
            queries={q: stored.queries[q] for q in stored.metric_qrels if q in stored.queries},
        )
    return out
