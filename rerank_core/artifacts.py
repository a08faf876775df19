"""Vectors computed once and kept on disk: sentence embeddings and token embeddings per text.

Two stores, one design:

- :class:`EmbeddingCache` keeps one sentence embedding per text (float32), shared by the dense
  first stage (which indexes the corpus) and the bi-encoder reranker (which scores candidates):
  both embed ``Document.full_text`` with the same model, so a text is embedded once.
- :class:`TokenStore` keeps the token embeddings of each text (float16), for late interaction.

Both are keyed by an *encoder identity* (the model's resolved location, the numeric precision and
anything else that changes the vectors) and, inside it, by :func:`text_key` of the text, which is
:attr:`rerank_core.types.Candidate.text_hash`. They live under ``<cache_dir>/<kind>/<identity>``
and are reused by every session, every corpus and every restart. They live under the cache folder
(``<data_dir>/cache`` unless ``cache_dir`` says otherwise).

On disk a store is a folder of *shards*, each written once and never changed: ``<shard>.keys.npy``
(the text keys) is renamed into place last, so a shard without it is incomplete and ignored, and a
crash never leaves a half-readable store. Vectors are memory-mapped when read, so opening a store
of a large corpus costs milliseconds and the operating system pages vectors in as they are used.
A damaged shard is moved aside (``.bad``) and its texts are encoded again.

Writers of one store take a lock (a thread lock inside the process, ``fcntl.flock`` across
processes), then look again at what is missing, so two sessions or two servers building the same
corpus encode it once. A store whose folder cannot be written (read-only data directory, full disk)
keeps working in memory and says so in :attr:`VectorStore.problem`.

The token store is bounded (``max_bytes``): when it grows past the bound, the least recently
written shards are dropped from disk and memory (their texts are encoded again when next needed).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from rerank_core.fileio import atomic_save_array, atomic_write_text, folder_lock

FORMAT_VERSION = 1
#: the default bound of one token store on disk (late interaction over a corpus of ~250k passages)
DEFAULT_TOKEN_STORE_BYTES = 8 * 1024**3
#: a store with more shards than this is compacted into one on the next write
MAX_SHARDS = 256


def text_key(full_text: str) -> str:
    """The store key of a text: 16 hex digits of its SHA-256 (equal to ``Candidate.text_hash``)."""
    return hashlib.sha256(full_text.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def encoder_identity(model_location: str, precision: str = "fp32", **extra: Any) -> str:
    """A folder-safe identity of an encoder: readable model name plus a digest of everything that
    changes its vectors (location, precision, normalisation, ...)."""
    name = model_location.rstrip("/\\").replace("\\", "/").rsplit("/", 1)[-1] or "model"
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)[:48]
    digest = hashlib.sha256(
        json.dumps({"model": model_location, "precision": precision, **extra}, sort_keys=True).encode()
    ).hexdigest()[:12]
    return f"{safe}-{precision}-{digest}"


class TokenMatrix(NamedTuple):
    """One text's token vectors (unit length, float16 when stored) and whether the text was cut."""

    vectors: np.ndarray  # (tokens, dim)
    truncated: bool


@dataclass
class _Shard:
    name: str
    keys: list[str]
    arrays: dict[str, np.ndarray]
    nbytes: int
    written: float


class VectorStore:
    """The shard machinery shared by :class:`EmbeddingCache` and :class:`TokenStore`."""

    kind = "vectors"
    #: array files of a shard, besides ``keys``
    parts: tuple[str, ...] = ()

    def __init__(
        self,
        directory: Path | None,
        *,
        description: dict[str, Any] | None = None,
        max_bytes: int | None = None,
    ) -> None:
        self.directory = directory
        self.description = dict(description or {})
        self.max_bytes = max_bytes
        self.problem: str | None = None  # why the store works in memory only, if it does
        self._lock = threading.RLock()
        self._shards: dict[str, _Shard] = {}
        self._index: dict[str, tuple[str, int]] = {}
        self._memory: dict[str, tuple[Any, ...]] = {}  # rows that could not be written to disk
        self._scanned = False
        if directory is not None:
            try:
                directory.mkdir(parents=True, exist_ok=True)
                desc = directory / "store.json"
                if not desc.exists():
                    atomic_write_text(
                        desc,
                        json.dumps(
                            {"format": FORMAT_VERSION, "kind": self.kind, **self.description}, indent=2
                        ),
                    )
            except OSError as exc:
                self._memory_only(exc)

    # -- reading ---------------------------------------------------------------------------------
    def __len__(self) -> int:
        with self._lock:
            self._scan()
            return len(self._index) + len(self._memory)

    def __contains__(self, key: object) -> bool:
        with self._lock:
            self._scan()
            return key in self._index or key in self._memory

    def missing(self, keys: Sequence[str]) -> list[str]:
        """The keys (in order, without repeats) that the store does not hold."""
        with self._lock:
            self._scan()
            seen: set[str] = set()
            out = []
            for k in keys:
                if k not in seen and k not in self._index and k not in self._memory:
                    seen.add(k)
                    out.append(k)
            return out

    @property
    def nbytes(self) -> int:
        with self._lock:
            self._scan()
            return sum(s.nbytes for s in self._shards.values())

    def clear(self) -> None:
        """Remove every vector of the store (from disk and memory)."""
        with self.building():
            for name in list(self._shards):
                self._drop(name)
            self._memory.clear()

    def refresh(self) -> None:
        """Pick up shards another process wrote since the last look."""
        with self._lock:
            self._scanned = False
            self._scan()

    def _scan(self) -> None:
        if self._scanned or self.directory is None or self.problem is not None:
            return
        self._scanned = True
        try:
            names = sorted(p.name[: -len(".keys.npy")] for p in self.directory.glob("*.keys.npy"))
        except OSError:
            return
        for name in names:
            if name not in self._shards:
                self._open_shard(name)

    def _open_shard(self, name: str) -> None:
        assert self.directory is not None
        try:
            keys = [str(k) for k in np.load(self.directory / f"{name}.keys.npy", allow_pickle=False)]
            arrays = {
                part: np.load(self.directory / f"{name}.{part}.npy", mmap_mode="r", allow_pickle=False)
                for part in self.parts
            }
            self._check_shard(keys, arrays)
            written = (self.directory / f"{name}.keys.npy").stat().st_mtime
        except (OSError, ValueError, KeyError) as exc:
            self._quarantine(name, exc)
            return
        nbytes = sum(int(a.nbytes) for a in arrays.values())
        self._shards[name] = _Shard(name, keys, arrays, nbytes, written)
        for row, key in enumerate(keys):
            self._index[key] = (name, row)

    def _check_shard(self, keys: list[str], arrays: dict[str, np.ndarray]) -> None:
        """Raise ValueError when a shard's arrays do not fit its keys."""

    def _quarantine(self, name: str, exc: BaseException) -> None:
        assert self.directory is not None
        for path in self.directory.glob(f"{name}.*.npy"):
            with contextlib.suppress(OSError):
                path.rename(path.with_suffix(".bad"))

    # -- writing ---------------------------------------------------------------------------------
    @contextlib.contextmanager
    def building(self) -> Iterator[None]:
        """Hold the store's write lock (this process and every other one) for a build."""
        with self._lock:
            if self.directory is None or self.problem is not None:
                yield
                return
            with folder_lock(self.directory):
                self.refresh()
                yield

    def _put(
        self, keys: Sequence[str], arrays: dict[str, np.ndarray], rows: Sequence[tuple[Any, ...]]
    ) -> None:
        """Add a shard (``arrays`` on disk) holding ``keys``; ``rows`` are the per-key values kept in
        memory if the shard cannot be written."""
        if not keys:
            return
        with self._lock:
            if self.directory is not None and self.problem is None:
                name = f"{time.time_ns():020d}-{uuid.uuid4().hex[:8]}"
                try:
                    for part, array in arrays.items():
                        atomic_save_array(self.directory / f"{name}.{part}.npy", array)
                    atomic_save_array(
                        self.directory / f"{name}.keys.npy", np.asarray(list(keys), dtype="U16")
                    )
                except OSError as exc:
                    for path in self.directory.glob(f"{name}.*"):
                        with contextlib.suppress(OSError):
                            path.unlink()
                    self._memory_only(exc)
                else:
                    self._open_shard(name)
                    self._after_write()
                    return
            for key, row in zip(keys, rows, strict=True):
                self._memory[key] = row

    def _after_write(self) -> None:
        if self.max_bytes is not None:
            self._evict()
        if len(self._shards) > MAX_SHARDS:
            self._compact()

    def _evict(self) -> None:
        assert self.directory is not None and self.max_bytes is not None
        total = sum(s.nbytes for s in self._shards.values())
        newest = max(self._shards.values(), key=lambda s: (s.written, s.name)).name
        for shard in sorted(self._shards.values(), key=lambda s: (s.written, s.name)):
            if total <= self.max_bytes or shard.name == newest:
                break
            self._drop(shard.name)
            total -= shard.nbytes

    def _drop(self, name: str) -> None:
        assert self.directory is not None
        shard = self._shards.pop(name)
        for key in shard.keys:
            if self._index.get(key, (None,))[0] == name:
                del self._index[key]
        with contextlib.suppress(OSError):
            (self.directory / f"{name}.keys.npy").unlink()  # the shard is gone for every reader first
        for part in self.parts:
            with contextlib.suppress(OSError):
                (self.directory / f"{name}.{part}.npy").unlink()

    def _compact(self) -> None:
        """Rewrite every shard's rows into one shard (keeps the number of files small)."""
        keys = list(self._index)
        if not keys:
            return
        old = list(self._shards)
        arrays, rows = self._gather(keys)
        self._put_compacted(keys, arrays, rows, old)

    def _put_compacted(
        self, keys: list[str], arrays: dict[str, np.ndarray], rows: list[tuple[Any, ...]], old: list[str]
    ) -> None:
        assert self.directory is not None
        name = f"{time.time_ns():020d}-{uuid.uuid4().hex[:8]}"
        try:
            for part, array in arrays.items():
                atomic_save_array(self.directory / f"{name}.{part}.npy", array)
            atomic_save_array(self.directory / f"{name}.keys.npy", np.asarray(keys, dtype="U16"))
        except OSError:
            return  # the old shards stay; compaction is only housekeeping
        for shard in old:
            self._drop(shard)
        self._open_shard(name)

    def _gather(self, keys: list[str]) -> tuple[dict[str, np.ndarray], list[tuple[Any, ...]]]:
        raise NotImplementedError

    def _memory_only(self, exc: BaseException) -> None:
        reason = getattr(exc, "strerror", None) or str(exc)
        self.problem = (
            f"cannot write the {self.kind} cache in {self.directory} ({reason}); it is kept in memory for "
            "this process only. Set RERANK_DATA_DIR to a writable folder with free space to keep it."
        )

    def _row(self, key: str) -> tuple[_Shard, int] | None:
        found = self._index.get(key)
        if found is None:
            return None
        return self._shards[found[0]], found[1]


class EmbeddingCache(VectorStore):
    """One float32 sentence embedding per text, with the text's truncation flag."""

    kind = "sentence-embedding"
    parts = ("vectors", "truncated")

    def _check_shard(self, keys: list[str], arrays: dict[str, np.ndarray]) -> None:
        vectors, truncated = arrays["vectors"], arrays["truncated"]
        if vectors.ndim != 2 or vectors.shape[0] != len(keys) or truncated.shape != (len(keys),):
            raise ValueError("shard arrays do not match its keys")

    def put(self, keys: Sequence[str], vectors: np.ndarray, truncated: Sequence[bool]) -> None:
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        flags = np.asarray(truncated, dtype=bool)
        self._put(
            keys,
            {"vectors": vectors, "truncated": flags},
            [(vectors[i], bool(flags[i])) for i in range(len(keys))],
        )

    def get(self, keys: Sequence[str]) -> tuple[np.ndarray, list[bool]]:
        """The vectors of ``keys`` as one (n, dim) float32 matrix, and their truncation flags.

        Raises KeyError for a key the store does not hold."""
        with self._lock:
            self._scan()
            rows: list[np.ndarray] = []
            flags: list[bool] = []
            for key in keys:
                found = self._row(key)
                if found is not None:
                    shard, row = found
                    rows.append(shard.arrays["vectors"][row])
                    flags.append(bool(shard.arrays["truncated"][row]))
                else:
                    vec, cut = self._memory[key]
                    rows.append(vec)
                    flags.append(cut)
        if not rows:
            return np.zeros((0, 0), dtype=np.float32), []
        return np.asarray(np.stack(rows), dtype=np.float32), flags

    def _gather(self, keys: list[str]) -> tuple[dict[str, np.ndarray], list[tuple[Any, ...]]]:
        vectors, flags = self.get(keys)
        return {"vectors": vectors, "truncated": np.asarray(flags, dtype=bool)}, []


class TokenStore(VectorStore):
    """The kept token vectors of each text (float16, unit length) and its truncation flag."""

    kind = "token-embedding"
    parts = ("vectors", "offsets", "truncated")

    def _check_shard(self, keys: list[str], arrays: dict[str, np.ndarray]) -> None:
        vectors, offsets, truncated = arrays["vectors"], arrays["offsets"], arrays["truncated"]
        n = len(keys)
        if (
            vectors.ndim != 2
            or offsets.shape != (n + 1,)
            or truncated.shape != (n,)
            or int(offsets[-1]) != vectors.shape[0]
        ):
            raise ValueError("shard arrays do not match its keys")

    def put(self, keys: Sequence[str], matrices: Sequence[TokenMatrix]) -> None:
        if not keys:
            return
        dim = next((m.vectors.shape[1] for m in matrices if m.vectors.ndim == 2), 0)
        lengths = [m.vectors.shape[0] for m in matrices]
        offsets = np.zeros(len(matrices) + 1, dtype=np.int64)
        offsets[1:] = np.cumsum(lengths)
        vectors = (
            np.concatenate([m.vectors.reshape(-1, dim) for m in matrices], axis=0).astype(np.float16)
            if offsets[-1]
            else np.zeros((0, dim), dtype=np.float16)
        )
        flags = np.asarray([m.truncated for m in matrices], dtype=bool)
        self._put(
            keys,
            {"vectors": vectors, "offsets": offsets, "truncated": flags},
            [(TokenMatrix(m.vectors.astype(np.float16), bool(m.truncated)),) for m in matrices],
        )

    def get(self, key: str) -> TokenMatrix:
        """The token matrix of one text (a read-only view of the store). Raises KeyError if absent."""
        with self._lock:
            self._scan()
            found = self._row(key)
            if found is None:
                return self._memory[key][0]
            shard, row = found
            offsets = shard.arrays["offsets"]
            start, end = int(offsets[row]), int(offsets[row + 1])
            return TokenMatrix(shard.arrays["vectors"][start:end], bool(shard.arrays["truncated"][row]))

    def _gather(self, keys: list[str]) -> tuple[dict[str, np.ndarray], list[tuple[Any, ...]]]:
        matrices = [self.get(k) for k in keys]
        dim = next((m.vectors.shape[1] for m in matrices), 0)
        offsets = np.zeros(len(keys) + 1, dtype=np.int64)
        offsets[1:] = np.cumsum([m.vectors.shape[0] for m in matrices])
        vectors = (
            np.concatenate([np.asarray(m.vectors) for m in matrices], axis=0)
            if offsets[-1]
            else np.zeros((0, dim), dtype=np.float16)
        )
        return {
            "vectors": vectors.astype(np.float16),
            "offsets": offsets,
            "truncated": np.asarray([m.truncated for m in matrices], dtype=bool),
        }, []


# -- one store per folder per process ---------------------------------------------------------------

_STORES: dict[tuple[str, str], VectorStore] = {}
_STORES_LOCK = threading.Lock()


def _store(cls: type[VectorStore], cache_dir: Path | None, identity: str, description: dict, **kwargs: Any):
    directory = (Path(cache_dir) / cls.kind / identity).resolve() if cache_dir is not None else None
    key = (cls.kind, str(directory) if directory is not None else f"memory:{identity}")
    with _STORES_LOCK:
        found = _STORES.get(key)
        if found is None:
            found = _STORES[key] = cls(directory, description=description, **kwargs)
        return found


def embedding_cache(cache_dir: Path | None, identity: str, description: dict | None = None) -> EmbeddingCache:
    """The process-wide sentence-embedding cache of an encoder (``cache_dir`` None: memory only)."""
    return _store(EmbeddingCache, cache_dir, identity, description or {})


def token_store(
    cache_dir: Path | None, identity: str, description: dict | None = None, max_bytes: int | None = None
) -> TokenStore:
    """The process-wide token store of an encoder (``cache_dir`` None: memory only)."""
    return _store(
        TokenStore, cache_dir, identity, description or {}, max_bytes=max_bytes or DEFAULT_TOKEN_STORE_BYTES
    )


def forget_stores() -> None:
    """Drop the process's open stores (the files stay); tests use it to simulate a restart."""
    with _STORES_LOCK:
        _STORES.clear()
