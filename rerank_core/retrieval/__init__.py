"""First-stage retrievers (bm25, dense, hybrid). Create them through :mod:`rerank_core.registry`."""

from rerank_core.retrieval.base import Retriever

__all__ = ["Retriever"]
