"""Cohere Rerank v2 (``rerank-v3.5`` and newer) and Cohere-compatible ``/v2/rerank`` servers.

Calls go through the cohere SDK's ``ClientV2.rerank`` with every candidate and ``top_n`` equal to
their number, and each result is mapped back to its candidate by ``results[i].index``. Scores are
on ``ScoreScale.API_RELEVANCE`` (0-1, as the API returns them).

``settings.cohere_base_url`` (``RERANK_COHERE_BASE_URL``) points the client at any server that
answers ``POST <base_url>/v2/rerank`` in Cohere's format (Text Embeddings Inference, Infinity,
vLLM, Jina's Cohere-compatible endpoint, ...). The key comes from ``COHERE_API_KEY`` or the
``cohere_api_key`` Streamlit secret; with a base URL set and no key, a placeholder is sent, so a
keyless local server works.

The client is built with ``max_retries=0`` and ``timeout=settings.request_timeout_s``; retries
are done by :func:`rerank_core.http.call_with_retries` (429/5xx/timeouts, backoff, ``Retry-After``,
redaction: the one HTTP layer), and a call that still fails makes the result fall back to the
first-stage order, flagged.

An answer that leaves candidates out, repeats an index or names one out of range is still used:
valid results keep their score, and the candidates without one are flagged and kept after the
scored ones in first-stage order (score: the lowest returned score minus 1). An answer with no
valid result fails the query (fallback); :class:`rerank_core.rerankers.hosted.IndexedScores` does
this for every hosted reranker. Billed search units, when returned, go in the notes and the
result's ``usage`` (``{"search_units": n}``).

Options: ``max_tokens_per_doc`` (sent when set), ``backoff_base_s`` (0.5).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from rerank_core.config import Settings
from rerank_core.errors import MissingAPIKey
from rerank_core.http import rate_limiter, requests_per_second
from rerank_core.rerankers.base import Reranker
from rerank_core.rerankers.hosted import IndexedScores, RetryStats, call_with_retries, safe_url
from rerank_core.types import Candidate, Scores, ScoreScale

_KEYLESS_PLACEHOLDER = "no-key-needed"


class CohereReranker(Reranker):
    name = "cohere"
    scale = ScoreScale.API_RELEVANCE
    default_model = None
    hosted = True
    offline = False
    title = "Cohere Rerank"
    description = "hosted Cohere Rerank v2, or any Cohere-compatible /v2/rerank server"
    secrets = ("COHERE_API_KEY",)
    reads = ("cohere_model", "cohere_base_url", "request_timeout_s", "max_retries")

    @classmethod
    def default_model_for(cls, settings: Settings) -> str | None:
        return settings.cohere_model

    def __init__(self, model: str | None = None, settings: Settings | None = None, **options: Any) -> None:
        super().__init__(model, settings, **options)
        if self.model is None:
            self.model = self.settings.cohere_model
        self.base_url = self.settings.cohere_base_url
        mtpd = self.options.get("max_tokens_per_doc")
        self.max_tokens_per_doc = int(mtpd) if mtpd is not None else None
        self.backoff_base_s = float(self.options.get("backoff_base_s", 0.5))
        rate = requests_per_second(self.options, self.settings.requests_per_second, "[methods.cohere]")
        self.limiter = rate_limiter(self.base_url or "https://api.cohere.com", rate)
        self._client: Any = None

    @property
    def label(self) -> str:
        where = safe_url(self.base_url) if self.base_url else "Cohere API"
        return f"Cohere Rerank v2 · {self.model} via {where}"

    def _load(self) -> None:
        key = self.settings.cohere_api_key
        if not key and not self.base_url:
            raise MissingAPIKey(
                f"cohere:{self.model} calls the Cohere API, but no Cohere API key is set.",
                hint=(
                    "set COHERE_API_KEY (or the cohere_api_key Streamlit secret), or set cohere_base_url "
                    "(RERANK_COHERE_BASE_URL) to a Cohere-compatible /v2/rerank server that needs no key"
                ),
            )
        import cohere

        # Retries are ours (call_with_retries), so the SDK must not retry on its own.
        self._client = cohere.ClientV2(
            api_key=key or _KEYLESS_PLACEHOLDER,
            base_url=self.base_url or None,
            timeout=self.settings.request_timeout_s,
            max_retries=0,
        )

    def score(self, query: str, candidates: Sequence[Candidate]) -> Scores:
        documents = [c.full_text for c in candidates]
        kwargs: dict[str, Any] = {
            "model": self.model,
            "query": query,
            "documents": documents,
            "top_n": len(documents),
        }
        if self.max_tokens_per_doc is not None:
            kwargs["max_tokens_per_doc"] = self.max_tokens_per_doc
        stats = RetryStats()
        response = call_with_retries(
            lambda: self._client.rerank(**kwargs),
            max_retries=self.settings.max_retries,
            timeout_s=self.settings.request_timeout_s,
            backoff_base_s=self.backoff_base_s,
            what=f"the rerank server ({self.model} via {safe_url(self.base_url) or 'Cohere API'})",
            secrets=(self.settings.cohere_api_key,),
            key_hint="check COHERE_API_KEY (or the cohere_api_key secret) for this server",
            stats=stats,
            limiter=self.limiter,
        )
        return self._map(response, candidates, stats)

    def _map(self, response: Any, candidates: Sequence[Candidate], stats: RetryStats) -> Scores:
        collected = IndexedScores(len(candidates))
        collected.add(
            (getattr(item, "index", None), getattr(item, "relevance_score", None))
            for item in getattr(response, "results", None) or []
        )
        notes: list[str] = []
        units = _search_units(response)
        if units is not None:
            notes.append(f"billed search units: {units:g}")
            stats.add_usage({"search_units": units})
        scores = collected.scores(
            candidates,
            method=f"cohere:{self.model}",
            server_hint="check that the server speaks Cohere's /v2/rerank format",
            notes=notes,
            usage=stats.usage,
        )
        retry_note = stats.note()
        return replace(scores, notes=(*scores.notes, retry_note)) if retry_note else scores


def _search_units(response: Any) -> float | None:
    meta = getattr(response, "meta", None)
    billed = getattr(meta, "billed_units", None) if meta is not None else None
    units = getattr(billed, "search_units", None) if billed is not None else None
    return float(units) if isinstance(units, (int, float)) and not isinstance(units, bool) else None
