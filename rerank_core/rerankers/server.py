"""Rerank servers over HTTP: the shared work of ``tei``, ``jina``, ``vllm-score`` and ``voyage``.

A server backend says how to write one request (:meth:`RerankServer.request_body`) and how to read
one answer (:meth:`RerankServer.read_results`, :meth:`RerankServer.read_usage`); this class does
the rest, once for every server:

* options from ``[methods.<name>]`` (unknown ones are an error naming the section), checked
  before anything is sent: ``base_url`` (joined with the server's ``endpoint``, a doubled ``/v1``
  caught with the value to use), ``model``, ``timeout_s``, ``connect_timeout_s``, ``max_retries``,
  ``backoff_base_s``, ``batch_size``, ``endpoint``, ``extra_body`` (fields added to every request,
  for a server's own parameters), ``reconnect_after_s`` (30: a server that could not be reached
  is not called again for that long), plus the backend's own;
* the key from the backend's one secret (``TEI_API_KEY``, ...) sent as ``Authorization: Bearer``;
  a hosted service's default URL without a key is :class:`MissingAPIKey`, a self-hosted server
  without one is called keyless;
* long candidate lists split into ``batch_size`` pieces, sent one after the other and merged back
  by index (each pair is scored on its own by these cross-encoder servers, so batches compare);
* every call through :class:`rerank_core.http.JsonClient` (timeouts, retries on 429/5xx and
  connection errors honouring ``Retry-After``, key redaction, typed errors naming the setting);
* partial answers (missing, duplicate or out-of-range indexes) read by
  :class:`rerank_core.rerankers.hosted.IndexedScores`: flagged candidates keep first-stage order
  with a note; no usable result fails the query, and the base class falls back to the
  first-stage order, flagged, as for every hosted method;
* reported usage (tokens) summed over batches into the notes and ``RerankResult.usage``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import Any, ClassVar

from rerank_core.config import Settings
from rerank_core.errors import ConfigError, MethodFailed, MissingAPIKey
from rerank_core.http import (
    CallStats,
    JsonClient,
    JsonResponse,
    batches,
    bearer,
    endpoint_url,
    requests_per_second,
    safe_url,
)
from rerank_core.rerankers.base import Reranker
from rerank_core.rerankers.hosted import IndexedScores
from rerank_core.types import Candidate, Scores, ScoreScale

COMMON_OPTIONS = (
    "base_url",
    "model",
    "timeout_s",
    "connect_timeout_s",
    "max_retries",
    "backoff_base_s",
    "batch_size",
    "endpoint",
    "extra_body",
    "reconnect_after_s",
    "requests_per_second",
)

SCALES = {
    "relevance": ScoreScale.API_RELEVANCE,
    "probability": ScoreScale.PROBABILITY,
    "logit": ScoreScale.LOGIT,
    "cosine": ScoreScale.COSINE,
}


def _number(options: dict[str, Any], key: str, default: float, section: str, *, minimum: float) -> float:
    value = options.get(key, default)
    if value is None:
        return default
    try:
        out = float(value)
    except (TypeError, ValueError):
        out = float("nan")
    if not out >= minimum:
        raise ConfigError(
            f"{section} {key} = {value!r} is not a number >= {minimum:g}.",
            hint=f"for example {key} = {default!r}",
        )
    return out


class RerankServer(Reranker):
    """A reranker behind an HTTP API that takes a query and texts and answers (index, score) pairs."""

    hosted = True
    offline = False
    scale = ScoreScale.API_RELEVANCE
    reads = ("request_timeout_s", "max_retries")
    #: the path under ``base_url`` (an option can change it)
    endpoint: ClassVar[str] = "/rerank"
    #: the server's name in messages
    server: ClassVar[str] = "rerank server"
    #: the hosted service's address, when there is one (a key is then required)
    default_base_url: ClassVar[str | None] = None
    example_url: ClassVar[str] = "http://localhost:8080"
    default_batch_size: ClassVar[int] = 32
    #: options besides COMMON_OPTIONS
    extra_options: ClassVar[tuple[str, ...]] = ()
    #: what to check when the answer cannot be read
    format_hint: ClassVar[str] = "check that base_url points at the right kind of server"

    def __init__(self, model: str | None = None, settings: Settings | None = None, **options: Any) -> None:
        super().__init__(model, settings, **options)
        known = (*COMMON_OPTIONS, *self.extra_options)
        unknown = sorted(set(self.options) - set(known))
        if unknown:
            raise ConfigError(
                f"{self.section}: unknown option(s) {', '.join(unknown)}.",
                hint=f"{self.name} options are: {', '.join(known)}",
            )
        opts = self.options
        self.model = model or opts.get("model") or self.default_model
        self.base_url: str | None = opts.get("base_url") or self.default_base_url
        self.endpoint_path = str(opts.get("endpoint") or self.endpoint)
        self.timeout_s = _number(
            opts, "timeout_s", self.settings.request_timeout_s, self.section, minimum=0.001
        )
        connect = opts.get("connect_timeout_s")
        self.connect_timeout_s = (
            None if connect is None else _number(opts, "connect_timeout_s", 10.0, self.section, minimum=0.001)
        )
        self.max_retries = int(
            _number(opts, "max_retries", self.settings.max_retries, self.section, minimum=0)
        )
        self.backoff_base_s = _number(opts, "backoff_base_s", 0.5, self.section, minimum=0)
        self.reconnect_after_s = _number(opts, "reconnect_after_s", 30.0, self.section, minimum=0)
        self.requests_per_second = requests_per_second(opts, self.settings.requests_per_second, self.section)
        batch = opts.get("batch_size", self.default_batch_size)
        if isinstance(batch, bool) or not isinstance(batch, int) or batch < 0:
            raise ConfigError(
                f"{self.section} batch_size = {batch!r} is not a whole number >= 0.",
                hint=f"for example batch_size = {self.default_batch_size} (0: send every candidate at once)",
            )
        self.batch_size = batch
        extra = opts.get("extra_body") or {}
        if not isinstance(extra, dict):
            raise ConfigError(
                f"{self.section} extra_body must be a table of request fields, not {type(extra).__name__}.",
                hint=f'for example extra_body = {{ truncation_direction = "Right" }} under {self.section}',
            )
        self.extra_body: dict[str, Any] = dict(extra)
        self._client: JsonClient | None = None

    # -- what a server backend implements -------------------------------------------------------
    def request_body(self, query: str, texts: Sequence[str]) -> dict[str, Any]:
        raise NotImplementedError

    def read_results(self, data: Any) -> Iterable[tuple[Any, Any]]:
        """(index, score) pairs of one answer; raise :class:`MethodFailed` when its shape is wrong."""
        raise NotImplementedError

    def read_usage(self, response: JsonResponse) -> dict[str, float]:
        """Usage the answer reports (tokens), if any."""
        usage = response.data.get("usage") if isinstance(response.data, dict) else None
        if not isinstance(usage, dict):
            return {}
        return {
            k: float(v)
            for k, v in usage.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and k.endswith("tokens")
        }

    # -- shared work ---------------------------------------------------------------------------
    @property
    def section(self) -> str:
        return f"[methods.{self.name}]"

    @property
    def key_name(self) -> str:
        return self.secrets[0]

    @property
    def label(self) -> str:
        where = safe_url(self.base_url) if self.base_url else "(no base_url set)"
        model = self.model or "the model it serves"
        return f"{self.server} · {model} via {where} ({self.scale.value})"

    def _shape_error(self, what: str) -> MethodFailed:
        return MethodFailed(f"{self.method_name}: the {self.server} answered {what}.", hint=self.format_hint)

    def _load(self) -> None:
        url = endpoint_url(
            self.base_url,
            self.endpoint_path,
            setting=f"{self.section} base_url",
            example=self.example_url,
        )
        key = self.settings.secret(self.key_name)
        if not key and self.default_base_url and self.base_url == self.default_base_url:
            raise MissingAPIKey(
                f"{self.method_name} calls {self.server} at {safe_url(self.base_url)}, but {self.key_name} "
                "is not set.",
                hint=f"set {self.key_name} in the environment or Streamlit secrets, or point {self.section} "
                "base_url at a self-hosted server that needs no key",
            )
        self.url = url
        self._client = JsonClient(
            str(self.base_url).strip(),
            what=f"the {self.server}",
            timeout_s=self.timeout_s,
            connect_timeout_s=self.connect_timeout_s,
            max_retries=self.max_retries,
            backoff_base_s=self.backoff_base_s,
            headers=bearer(key),
            secrets=(key,),
            key_hint=f"check {self.key_name} (environment or Streamlit secrets) for this server",
            hints=self.status_hints(),
            reconnect_after_s=self.reconnect_after_s,
            requests_per_second=self.requests_per_second,
        )

    def status_hints(self) -> dict[int | str, str]:
        """The fix to suggest per HTTP status (or ``"connection"``/``"timeout"``)."""
        return {
            404: f"the server has no {self.endpoint_path} (or no model {self.model!r}): check {self.section} "
            f"base_url (the server's root; {self.endpoint_path} is added) or set endpoint, and the model",
            413: f"the server refused a batch this large: lower {self.section} batch_size",
            "connection": f"check {self.section} base_url and that the server is running and reachable",
            "timeout": f"raise {self.section} timeout_s, lower batch_size, or check that the server is not overloaded",
            "not-json": f"check {self.section} base_url: it answered something that is not the {self.server}'s JSON",
        }

    def score(self, query: str, candidates: Sequence[Candidate]) -> Scores:
        assert self._client is not None
        texts = [c.full_text for c in candidates]
        collected = IndexedScores(len(texts))
        stats = CallStats()
        for start, end in batches(len(texts), self.batch_size):
            body = {**self.extra_body, **self.request_body(query, texts[start:end])}
            response = self._client.post(self.endpoint_path, body, stats=stats)
            collected.add(self.read_results(response.data), start=start, size=end - start)
            stats.add_usage(self.read_usage(response))
        parts = batches(len(texts), self.batch_size)
        notes = []
        if len(parts) > 1:
            notes.append(f"{len(texts)} candidates sent in {len(parts)} batches of up to {self.batch_size}")
        scores = collected.scores(
            candidates,
            method=self.method_name,
            server_hint=self.format_hint,
            notes=notes,
            usage=stats.usage,
        )
        extra = stats.notes()
        return replace(scores, notes=(*scores.notes, *extra)) if extra else scores


def pairs(items: Any, score_key: str, shape_error: Any) -> list[tuple[Any, Any]]:
    """(index, score) from a list of result objects (``{"index": i, score_key: s}``); an item that
    is not an object counts as invalid; ``shape_error(what)`` builds the error for a non-list."""
    if not isinstance(items, list):
        raise shape_error(f"{type(items).__name__} where a list of results was expected")
    return [
        (item.get("index"), item.get(score_key)) if isinstance(item, dict) else (None, None) for item in items
    ]
