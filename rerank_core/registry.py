"""The explicit registry of first stages and rerankers, keyed by short names.

Backends are named here and imported only when created, so ``import rerank_core`` stays light.
A method is written ``name`` or ``name:model`` (``cross-encoder:BAAI/bge-reranker-v2-m3``).
"""

from __future__ import annotations

import importlib

from rerank_core.config import Settings
from rerank_core.errors import InvalidMethod
from rerank_core.rerankers.base import Reranker
from rerank_core.retrieval.base import Retriever
from rerank_core.types import MethodSpec

RETRIEVERS: dict[str, str] = {
    "bm25": "rerank_core.retrieval.bm25:BM25Retriever",
    "dense": "rerank_core.retrieval.dense:DenseRetriever",
    "hybrid": "rerank_core.retrieval.hybrid:HybridRetriever",
}

RERANKERS: dict[str, str] = {
    "cross-encoder": "rerank_core.rerankers.cross_encoder:CrossEncoderReranker",
    "colbert": "rerank_core.rerankers.colbert:ColbertReranker",
    "late-interaction": "rerank_core.rerankers.late_interaction:LateInteractionReranker",
    "bi-encoder": "rerank_core.rerankers.bi_encoder:BiEncoderReranker",
    "flashrank": "rerank_core.rerankers.flashrank:FlashRankReranker",
    "llm": "rerank_core.rerankers.llm:LLMReranker",
    "cohere": "rerank_core.rerankers.cohere:CohereReranker",
}


def register_reranker(name: str, target: str | type[Reranker]) -> None:
    """Add a reranker (a class, or ``"module:Class"``). Used by plugins and tests."""
    RERANKERS[name] = target  # type: ignore[assignment]


def register_retriever(name: str, target: str | type[Retriever]) -> None:
    RETRIEVERS[name] = target  # type: ignore[assignment]


def _resolve(table: dict, name: str, kind: str):
    if name not in table:
        raise InvalidMethod(
            f"unknown {kind} {name!r}",
            hint=f"choose one of: {', '.join(sorted(table))}",
        )
    target = table[name]
    if isinstance(target, str):
        module, _, cls = target.partition(":")
        return getattr(importlib.import_module(module), cls)
    return target


def is_retriever(name: str) -> bool:
    return MethodSpec.parse(name).name in RETRIEVERS


def reranker_class(name: str) -> type[Reranker]:
    return _resolve(RERANKERS, name, "reranker")


def retriever_class(name: str) -> type[Retriever]:
    return _resolve(RETRIEVERS, name, "first stage")


def create_reranker(spec: str | MethodSpec, settings: Settings | None = None, **options) -> Reranker:
    spec = MethodSpec.parse(spec) if isinstance(spec, str) else spec
    cls = reranker_class(spec.name)
    return cls(model=spec.model, settings=settings, **{**spec.options, **options})


def create_retriever(name: str, settings: Settings | None = None, **options) -> Retriever:
    spec = MethodSpec.parse(name)
    if spec.model:
        options.setdefault("model", spec.model)
    return retriever_class(spec.name)(settings=settings, **options)
