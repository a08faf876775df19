"""Hugging Face Text Embeddings Inference (TEI) serving a reranker: ``POST {base_url}/rerank``.

Request ``{"query", "texts", "raw_scores", "truncate"}`` (plus ``truncation_direction`` when set),
answer ``[{"index", "score"}, ...]``. TEI serves the one model it was started with, so ``model``
(``tei:BAAI/bge-reranker-base``) only names it in labels and cache keys; it is not sent.

Scale: with ``raw_scores = false`` (the default) TEI passes the model's logit through a sigmoid,
so scores are probabilities (0-1); with ``raw_scores = true`` they are the raw logits. ``truncate``
(default true here, false in TEI) lets the server cut passages longer than the model's maximum
instead of refusing the request; TEI does not report which passages it cut.

``batch_size`` defaults to 32, TEI's default ``--max-client-batch-size``: longer candidate lists
are split and merged back by index. The token count TEI reports in its ``x-compute-tokens``
header goes into the result's usage as ``tokens``. ``TEI_API_KEY`` is sent as a bearer token
when set (a server started with ``--api-key``).

Settings (``[methods.tei]``): ``base_url`` (required, e.g. ``http://localhost:8080``),
``raw_scores``, ``truncate``, ``truncation_direction`` ("Right" | "Left"), and the options every
rerank server takes (:mod:`rerank_core.rerankers.server`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rerank_core.config import Settings
from rerank_core.http import JsonResponse
from rerank_core.rerankers.server import RerankServer, pairs
from rerank_core.types import ScoreScale


class TEIReranker(RerankServer):
    name = "tei"
    title = "Text Embeddings Inference"
    description = "a cross-encoder served by Hugging Face Text Embeddings Inference (POST /rerank)"
    server = "Text Embeddings Inference server"
    secrets = ("TEI_API_KEY",)
    endpoint = "/rerank"
    example_url = "http://localhost:8080"
    default_batch_size = 32
    scale = ScoreScale.PROBABILITY
    extra_options = ("raw_scores", "truncate", "truncation_direction")
    format_hint = (
        "check that [methods.tei] base_url points at a Text Embeddings Inference server started with a "
        "reranker (sequence-classification) model"
    )

    def __init__(self, model: str | None = None, settings: Settings | None = None, **options: Any) -> None:
        super().__init__(model, settings, **options)
        self.raw_scores = bool(self.options.get("raw_scores", False))
        self.truncate = bool(self.options.get("truncate", True))
        self.truncation_direction = self.options.get("truncation_direction")
        # per instance: the base class reads self.scale for results and labels
        self.scale = ScoreScale.LOGIT if self.raw_scores else ScoreScale.PROBABILITY  # type: ignore[misc]

    def request_body(self, query: str, texts: Sequence[str]) -> dict[str, Any]:
        body: dict[str, Any] = {
            "query": query,
            "texts": list(texts),
            "raw_scores": self.raw_scores,
            "truncate": self.truncate,
        }
        if self.truncation_direction:
            body["truncation_direction"] = str(self.truncation_direction)
        return body

    def read_results(self, data: Any):
        return pairs(data, "score", self._shape_error)

    def read_usage(self, response: JsonResponse) -> dict[str, float]:
        value = response.headers.get("x-compute-tokens")
        try:
            return {"tokens": float(value)} if value is not None else {}
        except ValueError:
            return {}

    def status_hints(self) -> dict[int | str, str]:
        return {
            **super().status_hints(),
            413: "the server takes fewer texts per request (its --max-client-batch-size): lower "
            "[methods.tei] batch_size to match",
            422: "the server refused the input (often a passage longer than the model's maximum): set "
            "[methods.tei] truncate = true",
        }
