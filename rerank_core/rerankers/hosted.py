"""Shared plumbing for hosted (HTTP API) rerankers: bounded retries, backoff, timeouts, redaction.

The SDK clients (``openai.OpenAI``, ``cohere.ClientV2``) are built with ``max_retries=0`` and the
configured per-request timeout, and every call goes through :func:`call_with_retries`, so one
place decides what is retried and for how long:

* HTTP 429 and 5xx (``retry_on``), timeouts and connection errors are retried up to
  ``max_retries`` times; anything else (400, 401, 404, ...) fails at once;
* the wait before retry *n* (0-based) is ``backoff_base_s * 2**n`` with jitter (between half and
  the whole of it), capped at ``max_backoff_s``; a ``Retry-After`` (or ``retry-after-ms``) header
  replaces it, capped at ``max_retry_after_s``;
* the worst case for one call is ``(max_retries + 1) * timeout_s`` plus the waits.

Failures become :class:`HostedTimeout` or :class:`HostedCallError` (with ``status``). Their
messages never contain an API key: they are built here, and any server text quoted in them goes
through :func:`redact` first.
"""

from __future__ import annotations

import email.utils
import random
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar
from urllib.parse import urlsplit, urlunsplit

from rerank_core.errors import HostedCallError, HostedTimeout, RerankError

T = TypeVar("T")

RETRY_ON: tuple[int, ...] = (429, 500, 502, 503, 504)

# things that look like API keys (OpenAI "sk-...", masked "sk-ab***yz", bearer tokens)
_KEYLIKE = re.compile(r"(?i)\b(?:sk|pk|rk|co|key|api[_-]?key)[-_][A-Za-z0-9*._\-]{6,}|\bBearer\s+\S+")


@dataclass
class RetryStats:
    """What happened during one or more :func:`call_with_retries` calls (thread-safe to update)."""

    attempts: int = 0
    retries: int = 0
    waited_s: float = 0.0
    statuses: list[int | str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def _record(
        self, *, attempt: bool = False, retry_status: int | str | None = None, wait: float = 0.0
    ) -> None:
        with self._lock:
            if attempt:
                self.attempts += 1
            if retry_status is not None:
                self.retries += 1
                self.statuses.append(retry_status)
                self.waited_s += wait

    def note(self) -> str | None:
        """A one-line note for the user, or None when nothing was retried."""
        if not self.retries:
            return None
        why = ", ".join(str(s) for s in self.statuses[:5]) + (", ..." if len(self.statuses) > 5 else "")
        return (
            f"{self.retries} retr{'y' if self.retries == 1 else 'ies'} ({why}), waited {self.waited_s:.1f} s"
        )


def redact(text: str, secrets: Iterable[str | None] = ()) -> str:
    """``text`` with every given secret and anything shaped like an API key replaced by ``***``."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    return _KEYLIKE.sub("***", text)


def safe_url(url: str | None) -> str:
    """A base URL fit for labels and messages: no user:password, query or fragment."""
    if not url:
        return ""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path.rstrip("/"), "", ""))


def _status_and_headers(exc: BaseException) -> tuple[int | None, Mapping[str, str] | None]:
    """HTTP status and response headers from an SDK exception (openai, cohere, httpx), if any."""
    status = getattr(exc, "status_code", None)
    response = getattr(exc, "response", None)
    if status is None and response is not None:
        status = getattr(response, "status_code", None)
    headers = getattr(exc, "headers", None)
    if headers is None and response is not None:
        headers = getattr(response, "headers", None)
    return (status if isinstance(status, int) else None), headers


def _is_timeout(exc: BaseException) -> bool:
    if isinstance(exc, TimeoutError):
        return True
    try:
        import httpx

        if isinstance(exc, httpx.TimeoutException):
            return True
    except ImportError:  # pragma: no cover - httpx comes with both SDKs
        pass
    return any("Timeout" in cls.__name__ for cls in type(exc).__mro__)


def _is_connection_error(exc: BaseException) -> bool:
    if isinstance(exc, ConnectionError):
        return True
    try:
        import httpx

        if isinstance(exc, httpx.TransportError):
            return True
    except ImportError:  # pragma: no cover
        pass
    return any(cls.__name__ == "APIConnectionError" for cls in type(exc).__mro__)


def retry_after_s(headers: Mapping[str, str] | None) -> float | None:
    """Seconds asked for by ``retry-after-ms`` or ``Retry-After`` (seconds or an HTTP date)."""
    if not headers:
        return None
    lower = {str(k).lower(): str(v) for k, v in dict(headers).items()}
    if "retry-after-ms" in lower:
        try:
            return max(0.0, float(lower["retry-after-ms"]) / 1000.0)
        except ValueError:
            pass
    value = lower.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:  # pragma: no cover - older Pythons
        return None
    return max(0.0, when.timestamp() - time.time())


def _server_text(exc: BaseException, secrets: Iterable[str | None]) -> str:
    """A short, redacted excerpt of what the server said, for the error message."""
    body = getattr(exc, "body", None)
    text = ""
    if isinstance(body, dict):
        err = body.get("error", body)
        text = str(err.get("message", err) if isinstance(err, dict) else err)
    elif body is not None:
        text = str(body)
    if not text:
        text = str(getattr(exc, "message", "") or "")
    text = " ".join(text.split())[:200]
    return redact(text, secrets)


def call_with_retries(
    fn: Callable[[], T],
    *,
    max_retries: int,
    timeout_s: float,
    backoff_base_s: float = 0.5,
    retry_on: tuple[int, ...] = RETRY_ON,
    what: str = "the hosted API",
    secrets: Iterable[str | None] = (),
    key_hint: str = "check the API key",
    max_backoff_s: float = 8.0,
    max_retry_after_s: float = 30.0,
    stats: RetryStats | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Call ``fn()`` (one HTTP request with its own ``timeout_s``), retrying transient failures.

    Raises :class:`HostedTimeout` when the last attempt timed out, :class:`HostedCallError` with
    ``status`` for an HTTP error or a connection failure. A :class:`RerankError` raised by ``fn``
    itself passes through untouched (it is not an HTTP failure).
    """
    kept: tuple[str, ...] = tuple(s for s in secrets if s)
    stats = stats if stats is not None else RetryStats()
    max_retries = max(0, int(max_retries))
    attempt = 0
    while True:
        stats._record(attempt=True)
        try:
            return fn()
        except RerankError:
            raise
        except Exception as exc:  # noqa: BLE001 - classified below
            status, headers = _status_and_headers(exc)
            timed_out = status is None and _is_timeout(exc)
            connection = status is None and not timed_out and _is_connection_error(exc)
            retryable = timed_out or connection or (status is not None and status in retry_on)
            tries = attempt + 1
            if not retryable or attempt >= max_retries:
                raise _as_error(
                    exc, status, timed_out, connection, tries, what, timeout_s, kept, key_hint
                ) from None
            delay = backoff_base_s * (2**attempt)
            delay = min(max_backoff_s, delay / 2 + random.uniform(0.0, delay / 2))
            asked = retry_after_s(headers)
            if asked is not None:
                delay = min(asked, max_retry_after_s)
            label: int | str = (
                status if status is not None else ("timeout" if timed_out else "connection error")
            )
            stats._record(retry_status=label, wait=delay)
            if delay > 0:
                sleep(delay)
            attempt += 1


def _as_error(
    exc: BaseException,
    status: int | None,
    timed_out: bool,
    connection: bool,
    tries: int,
    what: str,
    timeout_s: float,
    secrets: tuple[str, ...],
    key_hint: str,
) -> HostedCallError:
    after = f" after {tries} attempt{'s' if tries > 1 else ''}"
    if timed_out:
        return HostedTimeout(
            f"{what} did not answer within {timeout_s:g} s{after}.",
            hint="raise request_timeout_s (RERANK_REQUEST_TIMEOUT) or check that the server is up and not overloaded",
        )
    if connection:
        return HostedCallError(
            f"could not connect to {what}{after} ({type(exc).__name__}).",
            hint="check the base URL and that the server is running and reachable",
        )
    if status in (401, 403):
        return HostedCallError(
            f"{what} refused the credentials (HTTP {status}).", status=status, hint=key_hint
        )
    said = _server_text(exc, secrets)
    said = f": {said}" if said else "."
    if status == 404:
        hint = "check the model name and the base URL (the endpoint or model does not exist there)"
    elif status == 429:
        hint = "the rate limit was hit on every attempt: wait, lower the concurrency, or raise max_retries"
    elif status is not None and status >= 500:
        hint = "the server is failing: try again later, or raise max_retries (RERANK_MAX_RETRIES)"
    elif status is not None:
        hint = "the server rejected the request: check the model name and options"
    else:
        hint = "see the message; the call did not reach an HTTP answer"
    if status is None:
        return HostedCallError(
            f"{what} call failed{after}: {type(exc).__name__}{said}", status=None, hint=hint
        )
    return HostedCallError(f"{what} answered HTTP {status}{after}{said}", status=status, hint=hint)


def describe_stats(stats: RetryStats) -> tuple[str, ...]:
    """Notes for a result: nothing when every call succeeded at once."""
    note = stats.note()
    return (note,) if note else ()
