"""Bi-encoder rescoring: the cosine between the query and each candidate with a sentence embedding model.

The cheapest "semantic" rerank: each text is embedded on its own (by default the packaged
all-MiniLM-L6-v2, the dense first stage's model), so the question it answers is whether a
cross-encoder or late interaction adds anything over re-sorting lexical candidates by embedding
similarity. Document embeddings are computed once per text and kept in the embedding cache it
shares with the dense first stage (:mod:`rerank_core.sentence_embeddings`): with a dense index built,
``prepare`` has nothing left to do, and nothing is embedded again after a restart. At query time only
the query is encoded. The loaded model is shared with the dense retriever too.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from rerank_core.config import Settings
from rerank_core.encoders import short_model_name
from rerank_core.errors import ConfigError
from rerank_core.models import MINILM_ID
from rerank_core.precision import ENCODER, PRECISIONS, auto_note, check_precision
from rerank_core.progress import ProgressFn
from rerank_core.rerankers.base import Reranker
from rerank_core.sentence_embeddings import SentenceEncoder
from rerank_core.types import Candidate, Corpus, Scores, ScoreScale

_OPTIONS = {"batch_size": 32, "precision": None}


class BiEncoderReranker(Reranker):
    """Cosine similarity of normalised sentence embeddings (query and passage encoded apart)."""

    name: ClassVar[str] = "bi-encoder"
    scale: ScoreScale = ScoreScale.COSINE
    default_model: ClassVar[str | None] = MINILM_ID
    title: ClassVar[str] = "Bi-encoder"
    description: ClassVar[str] = "cosine of sentence embeddings: query and passage encoded apart"
    reads: ClassVar[tuple[str, ...]] = ("models_dir", "device", "data_dir", "cache_dir")
    precisions: ClassVar[tuple[str, ...]] = PRECISIONS

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
        self.encoder = SentenceEncoder(
            self.model or MINILM_ID,
            self.settings,
            normalize=True,
            batch_size=self.options["batch_size"],
            precision=self.options["precision"],
        )

    @property
    def label(self) -> str:
        return f"cosine of {short_model_name(self.model or '')} sentence embeddings (passages encoded once)"

    def _load(self) -> None:
        self.encoder.load()
        self.precision = self.encoder.precision
        self.precision_note = auto_note(self.options["precision"], ENCODER)

    def prepared(self, corpus: Corpus) -> bool:
        """Every document of ``corpus`` is in the embedding cache."""
        self.load()
        return self.encoder.missing([d.full_text for d in corpus]) == 0

    def prepare(self, corpus: Corpus, progress: ProgressFn | None = None) -> None:
        """Embed every document of ``corpus`` that the embedding cache does not hold yet."""
        self.load()
        message = f"bi-encoder: embedding documents with {short_model_name(self.model or '')}"
        self.encoder.embed([d.full_text for d in corpus], progress, message)

    def score(self, query: str, candidates: Sequence[Candidate]) -> Scores:
        matrix, truncated, embedded_now = self.encoder.embed([c.full_text for c in candidates])
        values = matrix @ self.encoder.embed_query(query)
        notes: tuple[str, ...] = (
            (f"{embedded_now} candidate text(s) were not prepared and were embedded at query time",)
            if embedded_now
            else ()
        )
        if self.encoder.cache is not None and self.encoder.cache.problem:
            notes += (self.encoder.cache.problem,)
        return Scores(values=values.tolist(), truncated=truncated, notes=notes)
