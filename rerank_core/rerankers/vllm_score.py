"""vLLM's score API: ``POST {base_url}/score`` (also ``{base_url}/v1/score``).

Request ``{"model", "text_1": query, "text_2": [passages]}``, answer
``{"data": [{"index", "score"}, ...], "usage": {"prompt_tokens", "total_tokens"}}``. ``base_url``
may end with ``/v1`` (then ``/v1/score`` is called) or not (``/score``); ``model`` is sent when
set (vLLM answers with the model it serves otherwise).

Scale: for a cross-encoder (``--task score`` with a sequence-classification model) vLLM applies
the model's activation, a sigmoid for one-label rerankers, so scores are probabilities; for an
embedding model the score is the cosine of the two embeddings. Say which with ``scale``
("probability", the default, "cosine" or "logit").

``VLLM_API_KEY`` is sent as a bearer token when set (a server started with ``--api-key``).

Settings (``[methods.vllm-score]``): ``base_url`` (required, e.g. ``http://localhost:8000``),
``model``, ``scale``, and the options every rerank server takes
(:mod:`rerank_core.rerankers.server`); ``batch_size`` defaults to 64.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rerank_core.config import Settings
from rerank_core.errors import ConfigError
from rerank_core.rerankers.server import SCALES, RerankServer, pairs
from rerank_core.types import ScoreScale


class VLLMScoreReranker(RerankServer):
    name = "vllm-score"
    title = "vLLM score"
    description = "a cross-encoder served by vLLM's score API (POST /score: text_1 against each text_2)"
    server = "vLLM server"
    secrets = ("VLLM_API_KEY",)
    endpoint = "/score"
    example_url = "http://localhost:8000"
    default_batch_size = 64
    scale = ScoreScale.PROBABILITY
    extra_options = ("scale",)
    format_hint = (
        "check that [methods.vllm-score] base_url points at a vLLM server running a score (cross-encoder) "
        "model"
    )

    def __init__(self, model: str | None = None, settings: Settings | None = None, **options: Any) -> None:
        super().__init__(model, settings, **options)
        scale = str(self.options.get("scale", "probability")).lower()
        if scale not in ("probability", "cosine", "logit"):
            raise ConfigError(
                f"{self.section} scale = {scale!r} is not a scale vLLM's score API gives.",
                hint='use "probability" (a cross-encoder), "cosine" (an embedding model) or "logit"',
            )
        self.scale = SCALES[scale]  # type: ignore[misc]

    def request_body(self, query: str, texts: Sequence[str]) -> dict[str, Any]:
        body: dict[str, Any] = {"text_1": query, "text_2": list(texts)}
        if self.model:
            body["model"] = self.model
        return body

    def read_results(self, data: Any):
        if not isinstance(data, dict) or "data" not in data:
            raise self._shape_error("without a 'data' list")
        return pairs(data["data"], "score", self._shape_error)
