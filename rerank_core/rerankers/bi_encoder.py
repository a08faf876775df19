"""Bi-encoder rescoring: the cosine between the query and each candidate with a sentence embedding model.

The cheapest "semantic" rerank: each text is embedded on its own (by default the packaged
all-MiniLM-L6-v2, the dense first stage's model), so the question it answers is whether a
cross-encoder or late interaction adds anything over re-sorting lexical candidates by embedding
similarity. Document embeddings are computed once per text (``prepare`` fills the store for a
whole corpus); at query time only the query is encoded. The loaded model is shared with the dense
retriever (see :mod:`rerank_core.encoders`), so choosing both does not load it twice.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from rerank_core.config import Settings
from rerank_core.encoders import (
    encoder_precision,
    encoding,
    load_sentence_transformer,
    model_lock,
    short_model_name,
)
from rerank_core.errors import ConfigError
from rerank_core.models import MINILM_ID
from rerank_core.precision import check_precision
from rerank_core.progress import ProgressFn, report
from rerank_core.rerankers.base import Reranker
from rerank_core.types import Candidate, Corpus, Scores, ScoreScale

_OPTIONS = {"batch_size": 32, "precision": None}


class BiEncoderReranker(Reranker):
    """Cosine similarity of normalised sentence embeddings (query and passage encoded apart)."""

    name: ClassVar[str] = "bi-encoder"
    scale: ScoreScale = ScoreScale.COSINE
    default_model: ClassVar[str | None] = MINILM_ID
    title: ClassVar[str] = "Bi-encoder"
    description: ClassVar[str] = "cosine of sentence embeddings: query and passage encoded apart"

    def __init__(self, model: str | None = None, settings: Settings | None = None, **options: Any) -> None:
        super().__init__(model=model, settings=settings, **options)
        unknown = set(self.options) - set(_OPTIONS)
        if unknown:
            raise ConfigError(
                f"unknown bi-encoder option(s): {', '.join(sorted(unknown))}.",
                hint=f"bi-encoder options are: {', '.join(_OPTIONS)}",
            )
        self.options = {**_OPTIONS, **self.options}
        self.options["precision"] = check_precision(self.name, self.options["precision"])
        self._encoder: Any = None
        self._max_length = 512
        self._store: dict[str, tuple[np.ndarray, bool]] = {}
        self._store_lock = threading.Lock()

    @property
    def label(self) -> str:
        return f"cosine of {short_model_name(self.model or '')} sentence embeddings (passages encoded once)"

    def _load(self) -> None:
        self._encoder = load_sentence_transformer(
            self.model or MINILM_ID, self.settings, precision=self.options["precision"]
        )
        self.precision = encoder_precision(self._encoder)
        self._max_length = int(self._encoder.max_seq_length or 512)

    def _encode(self, texts: list[str]) -> tuple[np.ndarray, list[bool]]:
        with model_lock(self._encoder), encoding(self._encoder):
            vectors = self._encoder.encode(
                texts,
                batch_size=self.options["batch_size"],
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
            lengths = self._encoder.tokenizer(texts, add_special_tokens=True, truncation=False, verbose=False)
        truncated = [len(ids) > self._max_length for ids in lengths["input_ids"]]
        return np.asarray(vectors, dtype=np.float32), truncated

    def _add(self, keyed_texts: dict[str, str]) -> None:
        if not keyed_texts:
            return
        vectors, truncated = self._encode(list(keyed_texts.values()))
        with self._store_lock:
            for key, vec, cut in zip(keyed_texts, vectors, truncated, strict=True):
                self._store.setdefault(key, (vec, cut))

    def prepare(self, corpus: Corpus, progress: ProgressFn | None = None) -> None:
        """Embed every document of ``corpus`` not yet in the store."""
        self.load()
        with self._store_lock:
            todo: dict[str, str] = {}
            for doc in corpus:
                cand = Candidate(
                    doc_id=doc.id, text=doc.text, title=doc.title, first_stage_rank=0, first_stage_score=0
                )
                if cand.text_hash not in self._store:
                    todo.setdefault(cand.text_hash, cand.full_text)
        keys = list(todo)
        message = f"bi-encoder: embedding documents with {short_model_name(self.model or '')}"
        step = self.options["batch_size"] * 4
        report(progress, 0, len(keys), message)
        for start in range(0, len(keys), step):
            self._add({k: todo[k] for k in keys[start : start + step]})
            report(progress, min(start + step, len(keys)), len(keys), message)

    def score(self, query: str, candidates: Sequence[Candidate]) -> Scores:
        with self._store_lock:
            missing = {c.text_hash: c.full_text for c in candidates if c.text_hash not in self._store}
        self._add(missing)
        query_vec, _ = self._encode([query])
        with self._store_lock:
            stored = [self._store[c.text_hash] for c in candidates]
        matrix = np.stack([vec for vec, _ in stored])
        values = matrix @ query_vec[0]
        notes = (
            (f"{len(missing)} candidate text(s) were not prepared and were embedded at query time",)
            if missing
            else ()
        )
        return Scores(values=values.tolist(), truncated=[cut for _, cut in stored], notes=notes)
