"""Reranker backends. Import a backend through :mod:`rerank_core.registry`, not directly."""

from rerank_core.rerankers.base import Reranker

__all__ = ["Reranker"]
