"""Hybrid first stage: reciprocal rank fusion (RRF) of two (or more) first stages.

``hybrid`` fuses BM25 and dense retrieval; ``hybrid:A+B`` fuses any first stages the runtime holds
(``hybrid:bm25+pgvector``, ``hybrid:opensearch+dense``, ``hybrid:run:my.run+dense``; see
:class:`FusedRetriever`). Each side returns its top ``depth`` documents; a document's fused score is
``sum over sides of 1 / (rrf_k + rank)`` with 1-based ranks, and a side that did not return the
document adds nothing. Ties are broken by the better single-side rank, then by first appearance.
``rrf_k`` and ``depth`` come from ``[methods.hybrid]``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rerank_core.config import Settings
from rerank_core.errors import ConfigError
from rerank_core.models import MINILM_ID
from rerank_core.progress import ProgressFn
from rerank_core.retrieval.base import Retriever
from rerank_core.retrieval.bm25 import BM25Retriever
from rerank_core.retrieval.dense import DenseRetriever
from rerank_core.retrieval.persist import IndexMismatch, read_meta, write_meta
from rerank_core.types import Corpus, ScoreScale

DEFAULT_RRF_K = 60
DEFAULT_MIN_DEPTH = 100
_OWN = ("rrf_k", "depth")


def rrf_fuse(rankings: list[list[str]], rrf_k: float = DEFAULT_RRF_K) -> list[tuple[str, float]]:
    """Fuse best-first id lists: ``score(d) = sum_i 1 / (rrf_k + rank_i(d))``, best first.

    Ties go to the document with the better single-list rank, then to first appearance.
    """
    scores: dict[str, float] = {}
    best: dict[str, int] = {}
    first_seen: dict[str, int] = {}
    for ranking in rankings:
        for rank, doc_id in enumerate(ranking, start=1):
            scores[doc_id] = scores.get(doc_id, 0.0) + 1.0 / (rrf_k + rank)
            best[doc_id] = min(best.get(doc_id, rank), rank)
            first_seen.setdefault(doc_id, len(first_seen))
    order = sorted(scores, key=lambda d: (-scores[d], best[d], first_seen[d]))
    return [(d, scores[d]) for d in order]


def split_options(options: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    own: dict[str, Any] = {}
    bm25: dict[str, Any] = {}
    dense: dict[str, Any] = {}
    for key, value in options.items():
        if key in _OWN:
            own[key] = value
        elif key == "model":  # "hybrid:<model>" names the dense model
            if value is not None:
                dense["model"] = value
        elif key.startswith("bm25_"):
            bm25[key[5:]] = value
        elif key.startswith("dense_"):
            dense[key[6:]] = value
        else:
            raise ConfigError(
                f"unknown hybrid option {key!r}.",
                hint="hybrid takes rrf_k, depth, bm25_<option> (e.g. bm25_k1) and dense_<option> (e.g. dense_model)",
            )
    rrf_k = own.get("rrf_k", DEFAULT_RRF_K)
    depth = own.get("depth")
    try:
        rrf_k = float(rrf_k)
    except (TypeError, ValueError) as exc:
        raise ConfigError(
            f"hybrid rrf_k must be a number, not {rrf_k!r}.", hint="the usual value is 60"
        ) from exc
    if rrf_k < 0:
        raise ConfigError(f"hybrid rrf_k must be >= 0, not {rrf_k}.", hint="the usual value is 60")
    if depth is not None and (not isinstance(depth, int) or depth < 1):
        raise ConfigError(
            f"hybrid depth must be a positive integer or None, not {depth!r}.",
            hint=f"None fuses max(k, {DEFAULT_MIN_DEPTH}) documents from each side",
        )
    own = {"rrf_k": int(rrf_k) if rrf_k.is_integer() else rrf_k, "depth": depth}
    return own, bm25, dense


class HybridRetriever(Retriever):
    """RRF of a BM25 and a dense retriever it owns (or is given through :meth:`from_parts`)."""

    name = "hybrid"
    scale = ScoreScale.RRF
    title = "Hybrid"
    description = "reciprocal rank fusion of BM25 and dense"
    default_model = MINILM_ID
    reads = ("models_dir", "device", "data_dir", "cache_dir")

    @classmethod
    def identity(cls, model: str | None, settings: Settings) -> dict:
        """``hybrid:A+B`` answers as its parts do: their cache keys (plain hybrid adds nothing)."""
        parts = fused_parts(model)
        if not parts:
            return {}
        from rerank_core.registry import method_key

        return {"parts": [method_key(p, settings) for p in parts]}

    def __init__(self, settings: Settings | None = None, **options: Any) -> None:
        super().__init__(settings=settings, **options)
        own, bm25_opts, dense_opts = split_options(self.options)
        self.options = own
        self.bm25: BM25Retriever = BM25Retriever(settings=self.settings, **bm25_opts)
        self.dense: DenseRetriever = DenseRetriever(settings=self.settings, **dense_opts)

    @classmethod
    def from_parts(
        cls, bm25: BM25Retriever, dense: DenseRetriever, settings: Settings | None = None, **options: Any
    ) -> HybridRetriever:
        """Fuse two already-built retrievers over the same corpus (nothing is indexed again)."""
        if bm25.corpus is None or dense.corpus is None:
            raise ConfigError(
                "hybrid.from_parts needs built retrievers.", hint="build() or load() both before fusing them"
            )
        if bm25.corpus.fingerprint != dense.corpus.fingerprint:
            raise IndexMismatch(
                f"bm25 was built for corpus {bm25.corpus.name!r} ({bm25.corpus.fingerprint}) and dense for "
                f"{dense.corpus.name!r} ({dense.corpus.fingerprint}).",
                hint="build both retrievers on the same corpus",
            )
        unexpected = [k for k in options if k not in _OWN]
        if unexpected:
            raise ConfigError(
                f"from_parts takes only {', '.join(_OWN)}, not {', '.join(unexpected)}.",
                hint="configure bm25 and dense when building them",
            )
        self = cls(settings=settings or bm25.settings, **options)
        self.bm25, self.dense = bm25, dense
        self.corpus = bm25.corpus
        self.build_s = bm25.build_s + dense.build_s
        return self

    @property
    def rrf_k(self) -> float:
        return self.options["rrf_k"]

    @property
    def label(self) -> str:
        return f"hybrid RRF (k={self.rrf_k:g}) of {self.bm25.label} and {self.dense.label}"

    def depth_for(self, k: int) -> int:
        depth = self.options["depth"]
        return max(k, depth if depth is not None else DEFAULT_MIN_DEPTH)

    def _build(self, corpus: Corpus, progress: ProgressFn | None) -> None:
        self.bm25.build(corpus, progress)
        self.dense.build(corpus, progress)

    def _search(self, query: str, k: int) -> list[tuple[str, float]]:
        depth = self.depth_for(k)
        sides = [
            [d for d, _ in self.bm25.search(query, depth)],
            [d for d, _ in self.dense.search(query, depth)],
        ]
        return rrf_fuse(sides, self.rrf_k)[:k]

    # -- persistence -------------------------------------------------------------------------
    def save(self, directory: str | Path) -> None:
        if self.corpus is None:
            raise ConfigError("hybrid: nothing to save yet.", hint="build() the index before save()")
        directory = Path(directory)
        self.bm25.save(directory / "bm25")
        self.dense.save(directory / "dense")
        write_meta(
            directory,
            retriever=self.name,
            corpus=self.corpus,
            options=self.options,
            model=self.dense.model_name,
        )

    @classmethod
    def load(cls, directory: str | Path, corpus: Corpus, settings: Settings | None = None) -> HybridRetriever:
        directory = Path(directory)
        meta = read_meta(directory, retriever=cls.name, corpus=corpus)
        bm25 = BM25Retriever.load(directory / "bm25", corpus, settings)
        dense = DenseRetriever.load(directory / "dense", corpus, settings)
        return cls.from_parts(bm25, dense, settings=settings, **meta.get("options", {}))


def fused_parts(model: str | None) -> list[str]:
    """The first stages ``hybrid:A+B`` fuses (empty for plain ``hybrid`` or ``hybrid:<dense model>``)."""
    if not model or "+" not in model:
        return []
    parts = [p.strip() for p in model.split("+")]
    if len(parts) < 2 or any(not p for p in parts) or len(set(parts)) < len(parts):
        raise ConfigError(
            f"hybrid:{model} must name two or more different first stages joined by '+'.",
            hint="for example hybrid:bm25+pgvector",
        )
    return parts


class FusedRetriever(Retriever):
    """``hybrid:A+B``: RRF of first stages that are already built (given by the runtime)."""

    name = "hybrid"
    scale = ScoreScale.RRF
    needs_index = False

    def __init__(self, parts: list[Retriever], names: list[str], settings: Settings, **options: Any) -> None:
        super().__init__(settings=settings)
        own = {k: v for k, v in settings.method_options("hybrid").items() if k in _OWN}
        own.update(options)
        checked, _, _ = split_options(own)
        self.options = checked
        self.parts = parts
        self.names = names
        corpora = {p.corpus.fingerprint for p in parts if p.corpus is not None}
        if len(corpora) > 1:
            raise IndexMismatch(
                "the first stages of a hybrid were built for different corpora.",
                hint="build them on one corpus",
            )
        self.corpus = next((p.corpus for p in parts if p.corpus is not None), None)
        self.build_s = sum(p.build_s for p in parts)

    @property
    def rrf_k(self) -> float:
        return self.options["rrf_k"]

    @property
    def label(self) -> str:
        return f"hybrid RRF (k={self.rrf_k:g}) of " + " and ".join(p.label for p in self.parts)

    @property
    def warnings(self) -> tuple[str, ...]:
        return tuple(w for p in self.parts for w in p.warnings)

    def depth_for(self, k: int) -> int:
        depth = self.options["depth"]
        return max(k, depth if depth is not None else DEFAULT_MIN_DEPTH)

    def _build(self, corpus: Corpus, progress: ProgressFn | None) -> None:
        """Nothing to build: the parts are built."""

    def _search(self, query: str, k: int) -> list[tuple[str, float]]:
        return self._search_query(query, k, None)

    def _search_query(self, query: str, k: int, query_id: str | None) -> list[tuple[str, float]]:
        from rerank_core.retrieval.base import NoCandidatesForQuery

        depth = self.depth_for(k)
        sides = []
        missing = []
        for part in self.parts:
            try:
                sides.append([d for d, _ in part.search(query, depth, query_id)])
            except NoCandidatesForQuery as exc:  # a run file without this query: that side adds nothing
                missing.append(exc)
        if len(missing) == len(self.parts):
            raise missing[0]
        return rrf_fuse(sides, self.rrf_k)[:k]

    def save(self, directory: str | Path) -> None:
        """Nothing to save: each part is saved on its own."""

    @classmethod
    def load(cls, directory: str | Path, corpus: Corpus, settings: Settings | None = None) -> FusedRetriever:
        raise ConfigError(
            "hybrid:A+B has no saved index of its own.", hint="its parts are loaded by the runtime"
        )
