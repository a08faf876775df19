"""Voyage AI Rerank: ``POST {base_url}/v1/rerank``.

Request ``{"model", "query", "documents"}`` (plus ``truncation`` when set), answer
``{"data": [{"index", "relevance_score"}, ...], "usage": {"total_tokens": n}}``. Scores are
relevance in 0-1. The key comes from ``VOYAGE_API_KEY`` (environment or Streamlit secrets).

Settings (``[methods.voyage]``): ``base_url`` (default ``https://api.voyageai.com``), ``model``
(default ``rerank-2.5``; also ``rerank-2.5-lite``), ``truncation`` (Voyage's default is true: cut
passages to the model's context), and the options every rerank server takes
(:mod:`rerank_core.rerankers.server`); ``batch_size`` defaults to 1000, Voyage's limit of
documents per request.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rerank_core.rerankers.server import RerankServer, pairs
from rerank_core.types import ScoreScale


class VoyageReranker(RerankServer):
    name = "voyage"
    title = "Voyage AI Rerank"
    description = "Voyage AI's hosted rerankers (POST /v1/rerank)"
    server = "Voyage AI rerank API"
    secrets = ("VOYAGE_API_KEY",)
    endpoint = "/v1/rerank"
    default_base_url = "https://api.voyageai.com"
    example_url = "https://api.voyageai.com"
    default_model = "rerank-2.5"
    default_batch_size = 1000
    scale = ScoreScale.API_RELEVANCE
    extra_options = ("truncation",)
    format_hint = "check that [methods.voyage] base_url points at Voyage AI's API (or a server speaking it)"

    def request_body(self, query: str, texts: Sequence[str]) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.model, "query": query, "documents": list(texts)}
        if self.options.get("truncation") is not None:
            body["truncation"] = bool(self.options["truncation"])
        return body

    def read_results(self, data: Any):
        if not isinstance(data, dict) or "data" not in data:
            raise self._shape_error("without a 'data' list")
        return pairs(data["data"], "relevance_score", self._shape_error)
