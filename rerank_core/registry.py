"""The explicit registry of first stages and rerankers, keyed by short names.

Backends are named here and imported only when used, so ``import rerank_core`` stays light (a
backend module keeps its heavy imports inside its loader). A method is written ``name`` or
``name:model`` (``cross-encoder:BAAI/bge-reranker-v2-m3``).

What the app knows about a method lives on its backend class and is read here:
:func:`method_info` (title, description, score scale, hosted or local, offline, the secrets and
settings it reads), :func:`method_key` (the cache key of a configured method: everything that
changes its answers, secrets only as hashes) and :func:`secret_names` (every secret any backend
reads, for the settings loader and the app's key fields). Adding a backend is one class here.
"""

from __future__ import annotations

import hashlib
import importlib
import json
from typing import Any

from rerank_core.config import Settings
from rerank_core.errors import InvalidMethod
from rerank_core.rerankers.base import Reranker
from rerank_core.retrieval.base import Retriever
from rerank_core.types import FIRST_STAGE_KIND, RERANKER_KIND, MethodInfo, MethodSpec

RETRIEVERS: dict[str, str] = {
    "bm25": "rerank_core.retrieval.bm25:BM25Retriever",
    "dense": "rerank_core.retrieval.dense:DenseRetriever",
    "hybrid": "rerank_core.retrieval.hybrid:HybridRetriever",
    "opensearch": "rerank_core.retrieval.opensearch:OpenSearchRetriever",
    "elasticsearch": "rerank_core.retrieval.elasticsearch:ElasticsearchRetriever",
    "pgvector": "rerank_core.retrieval.pgvector:PgvectorRetriever",
    "qdrant": "rerank_core.retrieval.qdrant:QdrantRetriever",
    "chroma": "rerank_core.retrieval.chroma:ChromaRetriever",
    "http": "rerank_core.retrieval.http_search:HTTPSearchRetriever",
    "run": "rerank_core.retrieval.run_file:RunFileRetriever",
}

RERANKERS: dict[str, str] = {
    "cross-encoder": "rerank_core.rerankers.cross_encoder:CrossEncoderReranker",
    "colbert": "rerank_core.rerankers.colbert:ColbertReranker",
    "late-interaction": "rerank_core.rerankers.late_interaction:LateInteractionReranker",
    "bi-encoder": "rerank_core.rerankers.bi_encoder:BiEncoderReranker",
    "flashrank": "rerank_core.rerankers.flashrank:FlashRankReranker",
    "llm": "rerank_core.rerankers.llm:LLMReranker",
    "cohere": "rerank_core.rerankers.cohere:CohereReranker",
    "tei": "rerank_core.rerankers.tei:TEIReranker",
    "jina": "rerank_core.rerankers.jina:JinaReranker",
    "vllm-score": "rerank_core.rerankers.vllm_score:VLLMScoreReranker",
    "voyage": "rerank_core.rerankers.voyage:VoyageReranker",
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


def backend_class(name: str) -> Any:
    """The class behind a method name (first stage, reranker, or ``fusion``, which fuses others)."""
    base = MethodSpec.parse(name).name
    if base == "fusion":
        from rerank_core.fusion import Fusion

        return Fusion
    if base in RETRIEVERS:
        return retriever_class(base)
    if base in RERANKERS:
        return reranker_class(base)
    known = sorted(set(RETRIEVERS) | set(RERANKERS) | {"fusion"})
    raise InvalidMethod(f"unknown method {name!r}", hint=f"choose one of: {', '.join(known)}")


def is_fusion(name: str) -> bool:
    """``fusion:A+B`` or ``fusion:NAME``: a step after the methods it fuses, not a backend of its own."""
    return MethodSpec.parse(name).name == "fusion"


def method_info(name: str) -> MethodInfo:
    """The metadata of a method (``name`` or ``name:model``), from its backend class."""
    return backend_class(name).info()


def methods(kind: str | None = None) -> list[MethodInfo]:
    """Every registered method's metadata (first stages first), optionally of one ``kind``.

    A backend whose module cannot be imported here is left out (the app reports it when chosen)."""
    out: list[MethodInfo] = []
    for table, k in ((RETRIEVERS, FIRST_STAGE_KIND), (RERANKERS, RERANKER_KIND)):
        if kind is not None and kind != k:
            continue
        for name in table:
            try:
                out.append(method_info(name))
            except ImportError:
                continue
    return out


def secret_names() -> list[str]:
    """Every secret (environment-variable name) that some registered backend reads, sorted."""
    return sorted({s for info in methods() for s in info.secrets})


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:16]


def method_key(spec: str | MethodSpec, settings: Settings | None = None, **options: Any) -> str:
    """The cache key of a configured method: its name and model, its options, the settings fields it
    declares it reads, and a hash of each secret it reads. Two configurations with equal keys give the
    same answers; one user's key never serves another user's calls."""
    spec = MethodSpec.parse(spec) if isinstance(spec, str) else spec
    info = method_info(spec.name)
    settings = settings or Settings()
    values: dict[str, Any] = {
        "method": spec.name,
        "model": spec.model,
        "options": {**settings.method_options(spec.name), **spec.options, **options},
        "settings": {name: getattr(settings, name, None) for name in info.reads},
        "secrets": {
            name: hashlib.sha256(value.encode()).hexdigest() if (value := settings.secret(name)) else None
            for name in info.secrets
        },
    }
    identity = getattr(backend_class(spec.name), "identity", None)
    extra = identity(spec.model, settings) if identity is not None else {}
    if extra:  # only then: the keys (and saved index folders) of every other method stay as they were
        values["identity"] = extra
    return f"{spec}|{_digest(values)}"


def create_reranker(spec: str | MethodSpec, settings: Settings | None = None, **options) -> Reranker:
    spec = MethodSpec.parse(spec) if isinstance(spec, str) else spec
    cls = reranker_class(spec.name)
    return cls(model=spec.model, settings=settings, **{**spec.options, **options})


def create_retriever(name: str, settings: Settings | None = None, **options) -> Retriever:
    spec = MethodSpec.parse(name)
    if spec.model:
        options.setdefault("model", spec.model)
    return retriever_class(spec.name)(settings=settings, **options)
