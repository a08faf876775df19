"""Sentence embeddings of texts, computed once per (model, precision) and kept in the embedding cache.

The dense first stage (which embeds every document of a corpus) and the bi-encoder reranker (which
embeds candidates) both embed ``Document.full_text`` with a sentence-transformers model. Through
:class:`SentenceEncoder` they share one loaded model (see :mod:`rerank_core.encoders`) and one
:class:`rerank_core.artifacts.EmbeddingCache`, so a text is embedded once, whichever asked first,
and stays embedded after a restart. Queries are embedded on every call (they are short and rarely
repeat).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from rerank_core.artifacts import EmbeddingCache, embedding_cache, encoder_identity, text_key
from rerank_core.config import Settings
from rerank_core.encoders import (
    encoder_precision,
    encoding,
    load_sentence_transformer,
    model_lock,
    short_model_name,
)
from rerank_core.models import resolve_model
from rerank_core.precision import DEFAULT_PRECISION
from rerank_core.progress import ProgressFn, report

#: texts embedded between two progress reports (and written to the cache as one shard)
CHUNK = 256


class SentenceEncoder:
    """A sentence-transformers model and its embedding cache. Create, then :meth:`load`."""

    def __init__(
        self,
        model: str,
        settings: Settings,
        *,
        normalize: bool = True,
        batch_size: int = 32,
        precision: str | None = None,
    ) -> None:
        self.model_name = model
        self.settings = settings
        self.normalize = normalize
        self.batch_size = batch_size
        self.requested_precision = precision
        self.precision = ""  # the precision that runs (``auto`` resolved), once loaded
        self.model: Any = None
        self.max_length = 512
        self.cache: EmbeddingCache | None = None

    @property
    def short_name(self) -> str:
        return short_model_name(self.model_name)

    @property
    def loaded(self) -> bool:
        return self.model is not None

    def load(self) -> SentenceEncoder:
        if self.model is None:
            location = resolve_model(self.model_name, self.settings.models_dir).location
            model = load_sentence_transformer(
                self.model_name, self.settings, precision=self.requested_precision or DEFAULT_PRECISION
            )
            self.precision = encoder_precision(model)
            self.max_length = int(model.max_seq_length or 512)
            identity = encoder_identity(
                location, self.precision, normalize=self.normalize, max_length=self.max_length
            )
            self.cache = embedding_cache(
                self.settings.resolved_cache_dir,
                identity,
                {
                    "model": self.model_name,
                    "location": location,
                    "precision": self.precision,
                    "normalize": self.normalize,
                },
            )
            self.model = model
        return self

    # -- encoding ------------------------------------------------------------------------------
    def encode(self, texts: list[str]) -> tuple[np.ndarray, list[bool]]:
        """Embed ``texts`` now (no cache): float32 rows, and whether each text was cut at max length."""
        self.load()
        with model_lock(self.model), encoding(self.model):
            vectors = self.model.encode(
                texts,
                batch_size=self.batch_size,
                convert_to_numpy=True,
                normalize_embeddings=self.normalize,
                show_progress_bar=False,
            )
            lengths = self.model.tokenizer(texts, add_special_tokens=True, truncation=False, verbose=False)
        truncated = [len(ids) > self.max_length for ids in lengths["input_ids"]]
        return np.asarray(vectors, dtype=np.float32).reshape(len(texts), -1), truncated

    def embed_query(self, text: str) -> np.ndarray:
        return self.encode([text])[0][0]

    def missing(self, texts: Sequence[str]) -> int:
        """How many distinct texts are not in the cache yet."""
        self.load()
        assert self.cache is not None
        return len(self.cache.missing([text_key(t) for t in texts]))

    def embed(
        self, texts: Sequence[str], progress: ProgressFn | None = None, message: str = ""
    ) -> tuple[np.ndarray, list[bool], int]:
        """Rows for ``texts`` (in order) from the cache, embedding the missing ones first.

        Returns the (n, dim) float32 matrix, the truncation flags and how many texts were embedded now.
        Two callers embedding the same texts at once embed them once (the cache's build lock)."""
        self.load()
        assert self.cache is not None
        keys = [text_key(t) for t in texts]
        todo = self.cache.missing(keys)
        encoded = 0
        if todo:
            with self.cache.building():
                todo = self.cache.missing(keys)
                by_key = dict(zip(keys, texts, strict=True))
                message = message or f"embedding with {self.short_name}"
                report(progress, 0, len(todo), message)
                for start in range(0, len(todo), CHUNK):
                    part = todo[start : start + CHUNK]
                    vectors, cut = self.encode([by_key[k] for k in part])
                    self.cache.put(part, vectors, cut)
                    encoded += len(part)
                    report(progress, encoded, len(todo), message)
        matrix, truncated = self.cache.get(keys)
        return matrix, truncated, encoded
