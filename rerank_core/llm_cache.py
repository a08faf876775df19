"""A response cache for LLM reranking: the same query on the same passages never pays twice.

Entries are keyed by the sha256 of everything that decides an answer: the backend (and server),
the model, the prompt version, the mode, the query, the hash of each passage as sent, and the
generation parameters (see :func:`cache_key`). Values are the model's answer text (or, for the
local model, its grade). Two levels:

* an in-memory LRU per cache file, shared by every reranker in the process;
* SQLite at ``<data_dir>/llm_cache.sqlite`` (stdlib ``sqlite3``, WAL mode), so answers survive a
  restart. A database that cannot be opened degrades to memory only.

Nothing secret goes in: API keys are never part of a key or a value, and the key material is
hashed, so queries and passages are not stored in clear either.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sqlite3
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

CACHE_FILE = "llm_cache.sqlite"


def cache_key(
    *,
    backend: str,
    model: str,
    prompt_version: str,
    mode: str,
    query: str,
    passage_hashes: Sequence[str],
    params: Mapping[str, Any],
) -> str:
    """The sha256 hex digest naming one request. ``params`` must be JSON-serialisable."""
    material = {
        "backend": backend,
        "model": model,
        "prompt_version": prompt_version,
        "mode": mode,
        "query": query,
        "passages": list(passage_hashes),
        "params": dict(sorted(params.items())),
    }
    blob = json.dumps(material, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8", "surrogatepass")).hexdigest()


class LLMCache:
    """Thread-safe two-level (memory LRU + SQLite) string cache. ``path=None`` keeps it in memory."""

    def __init__(self, path: str | Path | None, memory_items: int = 4096) -> None:
        self.path = Path(path) if path is not None else None
        self.memory_items = memory_items
        self._memory: OrderedDict[str, str] = OrderedDict()
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        self.hits = 0
        self.misses = 0
        if self.path is not None:
            self._db = self._open(self.path)

    @staticmethod
    def _open(path: Path) -> sqlite3.Connection | None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(str(path), check_same_thread=False, timeout=10.0, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute(
                "CREATE TABLE IF NOT EXISTS responses ("
                " key TEXT PRIMARY KEY, value TEXT NOT NULL, created REAL NOT NULL)"
            )
            return db
        except (sqlite3.Error, OSError) as exc:
            log.warning("LLM response cache at %s unavailable (%s); caching in memory only", path, exc)
            return None

    @property
    def persistent(self) -> bool:
        return self._db is not None

    def get(self, key: str) -> str | None:
        with self._lock:
            if key in self._memory:
                self._memory.move_to_end(key)
                self.hits += 1
                return self._memory[key]
            value = None
            if self._db is not None:
                try:
                    row = self._db.execute("SELECT value FROM responses WHERE key = ?", (key,)).fetchone()
                    value = row[0] if row else None
                except sqlite3.Error as exc:  # pragma: no cover - disk trouble
                    log.warning("LLM response cache read failed: %s", exc)
            if value is None:
                self.misses += 1
                return None
            self.hits += 1
            self._remember(key, value)
            return value

    def put(self, key: str, value: str) -> None:
        with self._lock:
            self._remember(key, value)
            if self._db is not None:
                try:
                    self._db.execute(
                        "INSERT OR REPLACE INTO responses (key, value, created) VALUES (?, ?, ?)",
                        (key, value, time.time()),
                    )
                except sqlite3.Error as exc:  # pragma: no cover - disk trouble
                    log.warning("LLM response cache write failed: %s", exc)

    def _remember(self, key: str, value: str) -> None:
        self._memory[key] = value
        self._memory.move_to_end(key)
        while len(self._memory) > self.memory_items:
            self._memory.popitem(last=False)

    def __len__(self) -> int:
        with self._lock:
            if self._db is not None:
                try:
                    return int(self._db.execute("SELECT COUNT(*) FROM responses").fetchone()[0])
                except sqlite3.Error:  # pragma: no cover
                    pass
            return len(self._memory)

    def clear(self) -> None:
        with self._lock:
            self._memory.clear()
            if self._db is not None:
                self._db.execute("DELETE FROM responses")

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None


_CACHES: dict[str, LLMCache] = {}
_CACHES_LOCK = threading.Lock()


def cache_for(data_dir: str | Path) -> LLMCache:
    """The process-wide cache stored under ``data_dir`` (one instance per resolved path)."""
    path = (Path(data_dir) / CACHE_FILE).resolve()
    with _CACHES_LOCK:
        cache = _CACHES.get(str(path))
        if cache is None:
            cache = _CACHES[str(path)] = LLMCache(path)
        return cache
