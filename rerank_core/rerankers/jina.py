"""Jina-format rerank: ``POST {base_url}/v1/rerank`` as Jina AI, Infinity and vLLM serve it.

Request ``{"model", "query", "documents", "top_n"}`` with ``top_n`` the number of documents sent,
answer ``{"results": [{"index", "relevance_score"}, ...], "usage": {"total_tokens": n}}``.
Scores are relevance in 0-1 (Jina and Infinity apply a sigmoid; vLLM the model's activation).

The default ``base_url`` is Jina AI's API (``https://api.jina.ai``), which needs ``JINA_API_KEY``.
A self-hosted server needs no key: set ``base_url`` to it (Infinity ``http://localhost:7997``,
vLLM ``http://localhost:8000``). Infinity started without ``--url-prefix /v1`` serves ``/rerank``:
set ``endpoint = "/rerank"`` for it.

Settings (``[methods.jina]``): ``base_url``, ``model`` (default
``jina-reranker-v2-base-multilingual``), and the options every rerank server takes
(:mod:`rerank_core.rerankers.server`); ``batch_size`` defaults to 100.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rerank_core.rerankers.server import RerankServer, pairs
from rerank_core.types import ScoreScale


class JinaReranker(RerankServer):
    name = "jina"
    title = "Jina-format rerank"
    description = "Jina AI's /v1/rerank API, or a server speaking it (Infinity, vLLM)"
    server = "Jina-format rerank server"
    secrets = ("JINA_API_KEY",)
    endpoint = "/v1/rerank"
    default_base_url = "https://api.jina.ai"
    example_url = "http://localhost:7997"
    default_model = "jina-reranker-v2-base-multilingual"
    default_batch_size = 100
    scale = ScoreScale.API_RELEVANCE
    format_hint = (
        "check that [methods.jina] base_url and endpoint point at a server answering Jina's rerank format "
        "(Jina AI, Infinity, vLLM)"
    )

    def request_body(self, query: str, texts: Sequence[str]) -> dict[str, Any]:
        return {"model": self.model, "query": query, "documents": list(texts), "top_n": len(texts)}

    def read_results(self, data: Any):
        if not isinstance(data, dict) or "results" not in data:
            raise self._shape_error("without a 'results' list")
        return pairs(data["results"], "relevance_score", self._shape_error)
