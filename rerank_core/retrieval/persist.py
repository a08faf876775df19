"""Saved first-stage indexes: the ``meta.json`` every index folder carries, and its checks.

``meta.json`` records which retriever wrote the folder, the corpus fingerprint it was built for,
the options and model, so a reload against another corpus (or by another retriever) fails with a
clear message instead of returning documents from the wrong collection.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from rerank_core.errors import ConfigError
from rerank_core.types import Corpus

META_FILE = "meta.json"
FORMAT_VERSION = 1


class IndexMismatch(ConfigError):
    """A saved index does not belong to the corpus (or retriever) it is being loaded for."""

    kind = "index-mismatch"


def write_meta(
    directory: str | Path,
    *,
    retriever: str,
    corpus: Corpus,
    options: dict[str, Any],
    model: str | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write ``meta.json`` under ``directory`` (created if needed) and return its path."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    meta = {
        "format": FORMAT_VERSION,
        "retriever": retriever,
        "corpus_fingerprint": corpus.fingerprint,
        "corpus_name": corpus.name,
        "documents": len(corpus),
        "options": options,
        "model": model,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        **(extra or {}),
    }
    path = directory / META_FILE
    path.write_text(json.dumps(meta, indent=2, sort_keys=True, default=str), encoding="utf-8")
    return path


def read_meta(directory: str | Path, *, retriever: str, corpus: Corpus) -> dict[str, Any]:
    """Read and check ``meta.json``: it must be ``retriever``'s and built for ``corpus``."""
    directory = Path(directory)
    path = directory / META_FILE
    if not path.is_file():
        raise ConfigError(
            f"no saved {retriever} index in {directory} ({META_FILE} is missing).",
            hint=f"build the {retriever} index and save() it to this folder first, or pick the folder it was saved to.",
        )
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(
            f"cannot read {path}: {exc}",
            hint="the index folder is damaged: rebuild the index and save it again.",
        ) from exc
    if not isinstance(meta, dict):
        raise ConfigError(f"{path} is not an index description.", hint="rebuild the index and save it again.")
    found = meta.get("retriever")
    if found != retriever:
        raise IndexMismatch(
            f"{directory} holds a {found!r} index, not a {retriever!r} one.",
            hint=f"load it with the {found!r} retriever, or save a {retriever!r} index there.",
        )
    if meta.get("corpus_fingerprint") != corpus.fingerprint:
        raise IndexMismatch(
            f"the {retriever} index in {directory} was built for corpus {meta.get('corpus_name')!r} "
            f"(fingerprint {meta.get('corpus_fingerprint')}, {meta.get('documents')} documents), but the "
            f"corpus given is {corpus.name!r} (fingerprint {corpus.fingerprint}, {len(corpus)} documents).",
            hint="rebuild the index for this corpus (build() then save()), or load the corpus the index was built for.",
        )
    return meta
