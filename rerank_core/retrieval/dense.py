"""Dense first stage: a sentence-transformers bi-encoder and brute-force dot-product search.

The corpus (``Document.full_text``) is embedded once, in batches with progress, into a float32
matrix; a query is one encode plus one matrix-vector product and a partial sort. With
``normalize=True`` (the default) embeddings are unit length, so scores are cosine similarities.
Document embeddings go through the shared embedding cache (:mod:`rerank_core.sentence_embeddings`),
so the bi-encoder reranker and later builds reuse them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from rerank_core.config import Settings
from rerank_core.encoders import embedding_dimension, short_model_name
from rerank_core.errors import ConfigError, CorpusFormatError
from rerank_core.models import MINILM_ID
from rerank_core.precision import PRECISIONS, check_precision
from rerank_core.progress import ProgressFn, report
from rerank_core.retrieval.base import Retriever
from rerank_core.retrieval.bm25 import top_k_positions
from rerank_core.retrieval.persist import read_meta, write_meta
from rerank_core.sentence_embeddings import SentenceEncoder
from rerank_core.types import Corpus, ScoreScale

DEFAULTS: dict[str, Any] = {"model": MINILM_ID, "batch_size": 32, "normalize": True, "precision": None}
_EMBEDDINGS = "embeddings.npy"


def _check_options(options: dict[str, Any]) -> dict[str, Any]:
    opts = {**DEFAULTS, **{k: v for k, v in options.items() if v is not None}}
    unknown = set(opts) - set(DEFAULTS)
    if unknown:
        raise ConfigError(
            f"unknown dense option(s): {', '.join(sorted(unknown))}.",
            hint=f"dense options are: {', '.join(DEFAULTS)}",
        )
    if not isinstance(opts["batch_size"], int) or opts["batch_size"] < 1:
        raise ConfigError(
            f"dense batch_size must be a positive integer, not {opts['batch_size']!r}.", hint="for example 32"
        )
    opts["model"] = str(opts["model"])
    opts["normalize"] = bool(opts["normalize"])
    opts["precision"] = check_precision("dense", opts["precision"])
    return opts


class DenseRetriever(Retriever):
    """Bi-encoder first stage. Options: ``model`` (id or local path), ``batch_size``, ``normalize``."""

    name = "dense"
    scale = ScoreScale.COSINE
    title = "Dense"
    description = "bi-encoder first stage: exact cosine top-k over sentence embeddings"
    default_model = MINILM_ID
    reads = ("models_dir", "device", "data_dir", "cache_dir")
    precisions = PRECISIONS

    def __init__(self, settings: Settings | None = None, **options: Any) -> None:
        super().__init__(settings=settings, **options)
        self.options = _check_options(self.options)
        if not self.options["normalize"]:
            # a raw dot product, not a cosine (per instance: the base class reads self.scale)
            self.scale = ScoreScale.FIRST_STAGE  # type: ignore[misc]
        self.embeddings: np.ndarray | None = None
        self.encoder = SentenceEncoder(
            self.options["model"],
            self.settings,
            normalize=self.options["normalize"],
            batch_size=self.options["batch_size"],
            precision=self.options["precision"],
        )
        self.embedded_now = 0  # documents the last build embedded (the rest came from the cache)

    @property
    def model_name(self) -> str:
        return self.options["model"]

    @property
    def label(self) -> str:
        kind = "cosine" if self.options["normalize"] else "dot product"
        return f"dense ({short_model_name(self.model_name)}, {kind})"

    @property
    def precision(self) -> str:
        """The precision the encoder runs at (``auto`` resolved once loaded)."""
        return self.encoder.precision or (self.options["precision"] or "")

    def _load_model(self) -> Any:
        return self.encoder.load().model

    def encode(self, texts: list[str]) -> np.ndarray:
        """Embeddings of ``texts`` as a float32 matrix (one row per text), computed now."""
        return self.encoder.encode(texts)[0]

    def _build(self, corpus: Corpus, progress: ProgressFn | None) -> None:
        if len(corpus) == 0:
            raise CorpusFormatError(
                f"corpus {corpus.name!r} has no documents to index.", hint="add at least one document"
            )
        message = f"dense: embedding documents with {short_model_name(self.model_name)}"
        report(progress, 0, len(corpus), message)
        matrix, _, self.embedded_now = self.encoder.embed([d.full_text for d in corpus], progress, message)
        self.embeddings = np.ascontiguousarray(matrix, dtype=np.float32)
        report(progress, len(corpus), len(corpus), message)

    def scores(self, query: str) -> np.ndarray:
        """The query's score against every document, in corpus order."""
        assert self.embeddings is not None
        return self.embeddings @ self.encode([query])[0]

    def _search(self, query: str, k: int) -> list[tuple[str, float]]:
        assert self.corpus is not None
        scores = self.scores(query)
        top = top_k_positions(np.arange(scores.shape[0]), scores, k)
        ids = self.corpus.ids
        return [(ids[i], float(scores[i])) for i in top]

    # -- persistence -------------------------------------------------------------------------
    def save(self, directory: str | Path) -> None:
        if self.embeddings is None or self.corpus is None:
            raise ConfigError("dense: nothing to save yet.", hint="build() the index before save()")
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        np.save(directory / _EMBEDDINGS, self.embeddings, allow_pickle=False)
        write_meta(
            directory,
            retriever=self.name,
            corpus=self.corpus,
            options=self.options,
            model=self.model_name,
            extra={"embedding_shape": list(self.embeddings.shape)},
        )

    @classmethod
    def load(cls, directory: str | Path, corpus: Corpus, settings: Settings | None = None) -> DenseRetriever:
        directory = Path(directory)
        meta = read_meta(directory, retriever=cls.name, corpus=corpus)
        self = cls(settings=settings, **meta.get("options", {}))
        try:
            embeddings = np.load(directory / _EMBEDDINGS, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise ConfigError(
                f"cannot read {directory / _EMBEDDINGS}: {exc}", hint="rebuild the index and save it again"
            ) from exc
        if embeddings.ndim != 2 or embeddings.shape[0] != len(corpus):
            raise ConfigError(
                f"{directory / _EMBEDDINGS} has shape {embeddings.shape}, expected {len(corpus)} rows.",
                hint="rebuild the index and save it again",
            )
        model = self._load_model()  # queries need the same model; fail now if it is gone
        dim = embedding_dimension(model)
        if dim is not None and dim != embeddings.shape[1]:
            raise ConfigError(
                f"the saved embeddings have dimension {embeddings.shape[1]} but {self.model_name} "
                f"produces {dim}.",
                hint="load with the model the index was built with, or rebuild the index",
            )
        self.embeddings = embeddings.astype(np.float32, copy=False)
        self.corpus = corpus
        return self
