"""Rerank Playground core: corpus loading, first-stage retrieval, rerankers, evaluation.

This package never imports streamlit. Heavy libraries (torch, sentence-transformers, ragatouille,
flashrank, openai, cohere) are imported inside the loaders that need them, so ``import
rerank_core`` stays fast.
"""

from rerank_core.errors import (
    BackendUnavailable,
    CorpusFormatError,
    HostedCallError,
    ModelNotFound,
    RerankError,
)
from rerank_core.types import Candidate, Document, RankedItem, RerankResult, ScoreScale

__all__ = [
    "BackendUnavailable",
    "Candidate",
    "CorpusFormatError",
    "Document",
    "HostedCallError",
    "ModelNotFound",
    "RankedItem",
    "RerankError",
    "RerankResult",
    "ScoreScale",
]

__version__ = "0.1.0"
