"""The one HTTP layer every hosted backend uses: retries, backoff, timeouts, redaction, JSON calls.

Two ways in, one policy:

* :class:`JsonClient`: an httpx client for a JSON API at a base URL (rerank servers, the generic
  ``http`` first stage, Chroma's REST API when spoken directly). ``post``/``get`` return a
  :class:`JsonResponse` or raise a typed error that names the URL (without credentials), the status
  and what to fix.
* :func:`call_with_retries`: wraps one call of an SDK client (openai, cohere, opensearch-py,
  elasticsearch, qdrant-client, psycopg) built with its own retries switched off, so the same rules
  apply to every backend. A backend that knows its client's exceptions raises
  :class:`TransportFailure` (status, headers, body, timeout or connection) from inside the call;
  other exceptions are classified by their ``status_code``/``response`` attributes.

The policy:

* HTTP 429 and 5xx (``retry_on``), timeouts and connection errors are retried up to ``max_retries``
  times; anything else (400, 401, 404, ...) fails at once;
* the wait before retry *n* (0-based) is ``backoff_base_s * 2**n`` with jitter (between half and the
  whole of it), capped at ``max_backoff_s``; a ``Retry-After`` header (seconds or an HTTP date, or
  ``retry-after-ms``) replaces it, capped at ``max_retry_after_s``;
* the worst case for one call is ``(max_retries + 1) * timeout_s`` plus the waits.

**Rate limits.** A backend given ``requests_per_second`` (its ``[methods.<name>]`` option, or the
shared ``requests_per_second`` setting) shares one :class:`RateLimiter` per endpoint in the process
(:func:`rate_limiter`): every attempt, retries included, waits for its turn, so concurrent queries
(``evaluate --concurrency``) never exceed the rate. Time spent waiting for a turn is measured on the
calling thread (:func:`rate_wait_meter`) and is not part of a query's latency.

Failures become :class:`HostedTimeout` or :class:`HostedCallError` (with ``status``). Their messages
never contain a secret: they are built here, URLs go through :func:`safe_url`, and any server text
quoted in them goes through :func:`redact` (the backend's own secrets, anything shaped like an API
key, passwords in URLs, ``Authorization`` header values).

:class:`CallStats` collects what happened over the calls of one query (attempts, retries, waits) and
the usage the service reported (billed units, tokens), for the result's notes and ``usage``.
"""

from __future__ import annotations

import email.utils
import json
import random
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

from rerank_core.errors import ConfigError, HostedCallError, HostedTimeout, RerankError

T = TypeVar("T")

RETRY_ON: tuple[int, ...] = (429, 500, 502, 503, 504)

# things that look like API keys (OpenAI "sk-...", masked "sk-ab***yz", bearer tokens)
_KEYLIKE = re.compile(r"(?i)\b(?:sk|pk|rk|co|key|api[_-]?key)[-_][A-Za-z0-9*._\-]{6,}|\bBearer\s+\S+")
# Authorization / API-key header values in text ("Authorization: Basic dXNlcjpwdw==", "ApiKey abc")
_AUTH_HEADER = re.compile(
    r"(?i)\b((?:proxy-)?authorization|x-api-key|api-key|x-chroma-token|x-goog-api-key)"
    r"(['\"]?\s*[:=]\s*['\"]?)(?!\*\*\*)[^'\",}\s][^'\",}]*"
)
_SCHEME_AUTH = re.compile(r"(?i)\b(Basic|ApiKey|Token)\s+[A-Za-z0-9+/=._\-]{6,}")
# user:password@ in any URL
_URL_PASSWORD = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://[^/\s:@]*):[^@/\s]*@")
# secrets passed in a query string or a key=value pair
_QUERY_SECRET = re.compile(
    r"(?i)\b((?:api[_-]?key|apikey|access[_-]?token|token|password|passwd|secret)=)[^&\s'\"]+"
)


def redact(text: str, secrets: Iterable[str | None] = ()) -> str:
    """``text`` with every given secret, anything shaped like an API key, passwords in URLs and
    Authorization header values replaced by ``***``."""
    for secret in sorted((s for s in secrets if s and len(s) >= 4), key=len, reverse=True):
        text = text.replace(secret, "***")
    text = _URL_PASSWORD.sub(r"\1:***@", text)
    text = _QUERY_SECRET.sub(r"\1***", text)
    text = _SCHEME_AUTH.sub("***", text)
    text = _KEYLIKE.sub("***", text)
    return _AUTH_HEADER.sub(r"\1\2***", text)


def safe_url(url: str | None) -> str:
    """A URL fit for labels and messages: no user:password, query or fragment."""
    if not url:
        return ""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:  # IPv6
        host = f"[{host}]"
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path.rstrip("/"), "", ""))


def url_password(url: str | None) -> str | None:
    """The password in ``scheme://user:password@host`` (to redact it from messages), or None."""
    if not url:
        return None
    try:
        return urlsplit(url).password
    except ValueError:
        return None


def endpoint_url(base_url: str | None, endpoint: str, *, setting: str, example: str = "") -> str:
    """``base_url`` joined with ``endpoint`` (``"/v1/rerank"``), after checking the base URL.

    Raises :class:`ConfigError` naming ``setting`` when the URL is not http(s) with a host, or when
    it already ends with the start of the endpoint (``http://host/v1`` + ``/v1/rerank`` would call
    ``/v1/v1/rerank``), with the value to use instead. A segment that is missing (a server mounted
    under a prefix) shows up as HTTP 404, whose hint names the same setting.
    """
    example = example or "http://localhost:8080"
    if not base_url or not str(base_url).strip():
        raise ConfigError(
            f"{setting} is not set: the server's address is needed.",
            hint=f'set {setting} = "{example}" in the settings file',
        )
    base = str(base_url).strip()
    parts = urlsplit(base)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(
            f"{setting} = {safe_url(base) or base!r} is not an http(s) URL with a host.",
            hint=f"write it as {example!r} (scheme, host and port)",
        )
    if parts.query or parts.fragment:
        raise ConfigError(
            f"{setting} = {safe_url(base)} carries a query string or fragment.",
            hint="give the server's root URL only; keys go in the environment, not in the URL",
        )
    base_segments = [s for s in parts.path.split("/") if s]
    end_segments = [s for s in endpoint.split("/") if s]
    for n in range(min(len(base_segments), len(end_segments)), 0, -1):
        if base_segments[-n:] == end_segments[:n]:
            fixed_path = "/".join(base_segments[:-n])
            fixed = urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], fixed_path, "", ""))
            doubled = "/" + "/".join(end_segments[:n])
            raise ConfigError(
                f"{setting} = {safe_url(base)} already ends with {doubled!r}, and the playground adds "
                f"{endpoint!r}: the request would go to {safe_url(base)}{endpoint}.",
                hint=f'set {setting} = "{fixed}" (the server\'s root; {endpoint} is added for you)',
            )
    return base.rstrip("/") + "/" + endpoint.lstrip("/")


# -- what happened during the calls of one query -----------------------------------------------------
@dataclass
class CallStats:
    """Attempts, retries, waits and reported usage over one or more calls (thread-safe to update)."""

    attempts: int = 0
    retries: int = 0
    waited_s: float = 0.0
    statuses: list[int | str] = field(default_factory=list)
    usage: dict[str, float] = field(default_factory=dict)
    rate_waited_s: float = 0.0  # waiting for turns under a rate limit
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def _record(
        self,
        *,
        attempt: bool = False,
        retry_status: int | str | None = None,
        wait: float = 0.0,
        rate_wait: float = 0.0,
    ) -> None:
        with self._lock:
            self.rate_waited_s += rate_wait
            if attempt:
                self.attempts += 1
            if retry_status is not None:
                self.retries += 1
                self.statuses.append(retry_status)
                self.waited_s += wait

    def add_usage(self, usage: Mapping[str, Any] | None) -> None:
        """Add reported usage (``{"total_tokens": 120}``); non-numeric values are ignored."""
        if not usage:
            return
        with self._lock:
            for key, value in usage.items():
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    self.usage[str(key)] = self.usage.get(str(key), 0.0) + float(value)

    def note(self) -> str | None:
        """A one-line note on retries for the user, or None when nothing was retried."""
        if not self.retries:
            return None
        why = ", ".join(str(s) for s in self.statuses[:5]) + (", ..." if len(self.statuses) > 5 else "")
        return (
            f"{self.retries} retr{'y' if self.retries == 1 else 'ies'} ({why}), waited {self.waited_s:.1f} s"
        )

    def notes(self) -> tuple[str, ...]:
        """Notes for a result: retries, then usage, then waits for a rate limit; nothing when every
        call succeeded at once, no usage was reported and nothing waited."""
        waited = (
            f"waited {self.rate_waited_s * 1e3:.0f} ms for the rate limit (not counted in its latency)"
            if self.rate_waited_s > 0.0005
            else None
        )
        out = [n for n in (self.note(), usage_note(self.usage), waited) if n]
        return tuple(out)


RetryStats = CallStats  # the name the SDK-based backends have always used


def usage_note(usage: Mapping[str, float]) -> str | None:
    """``"usage reported by the service: total_tokens 120"``, or None for no usage."""
    if not usage:
        return None
    parts = ", ".join(f"{k} {v:g}" for k, v in sorted(usage.items()))
    return f"usage reported by the service: {parts}"


def describe_stats(stats: CallStats) -> tuple[str, ...]:
    """Notes for a result: nothing when every call succeeded at once."""
    note = stats.note()
    return (note,) if note else ()


# -- retries ----------------------------------------------------------------------------------------
class TransportFailure(Exception):
    """A client library's failure, described for :func:`call_with_retries` (raised inside the call).

    ``status``: the HTTP status when there was an answer; ``timed_out``/``connection``: no answer.
    ``body``: what the server said (quoted in the error after redaction)."""

    def __init__(
        self,
        message: str = "",
        *,
        status: int | None = None,
        headers: Mapping[str, str] | None = None,
        body: Any = None,
        timed_out: bool = False,
        connection: bool = False,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status
        self.headers = headers
        self.body = body
        self.timed_out = timed_out
        self.connection = connection


def _status_and_headers(exc: BaseException) -> tuple[int | None, Mapping[str, str] | None]:
    """HTTP status and response headers from an exception (openai, cohere, httpx), if any."""
    status = getattr(exc, "status_code", None)
    response = getattr(exc, "response", None)
    if status is None and response is not None:
        status = getattr(response, "status_code", None)
    headers = getattr(exc, "headers", None)
    if headers is None and response is not None:
        headers = getattr(response, "headers", None)
    return (status if isinstance(status, int) and not isinstance(status, bool) else None), headers


def _is_timeout(exc: BaseException) -> bool:
    if isinstance(exc, TransportFailure):
        return exc.timed_out
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
    if isinstance(exc, TransportFailure):
        return exc.connection
    if isinstance(exc, ConnectionError):
        return True
    try:
        import httpx

        if isinstance(exc, httpx.TransportError):
            return True
    except ImportError:  # pragma: no cover
        pass
    return any(cls.__name__ in ("APIConnectionError", "ConnectionError") for cls in type(exc).__mro__)


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
        detail = body.get("message") or body.get("detail")
        if isinstance(err, dict):
            text = str(err.get("message") or err.get("reason") or err.get("type") or err)
        elif isinstance(err, str) and detail:
            text = f"{err}: {detail}"
        else:
            text = str(err if err is not None else detail or body)
    elif body is not None:
        text = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body)
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
    hints: Mapping[int | str, str] | None = None,
    max_backoff_s: float = 8.0,
    max_retry_after_s: float = 30.0,
    stats: CallStats | None = None,
    sleep: Callable[[float], None] = time.sleep,
    limiter: RateLimiter | None = None,
) -> T:
    """Call ``fn()`` (one request with its own ``timeout_s``), retrying transient failures. With a
    ``limiter``, every attempt first waits for its turn.

    Raises :class:`HostedTimeout` when the last attempt timed out, :class:`HostedCallError` with
    ``status`` for an HTTP error or a connection failure. ``hints`` replaces the default hint for a
    status (``404``) or for ``"connection"``/``"timeout"`` (a backend names its own setting there).
    A :class:`RerankError` raised by ``fn`` itself passes through untouched (it is not a transport
    failure: a wrong setting, an unreadable answer).
    """
    kept: tuple[str, ...] = tuple(s for s in secrets if s)
    stats = stats if stats is not None else CallStats()
    max_retries = max(0, int(max_retries))
    attempt = 0
    while True:
        if limiter is not None:
            waited = limiter.acquire()
            if waited > 0:
                stats._record(rate_wait=waited)
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
                    exc, status, timed_out, connection, tries, what, timeout_s, kept, key_hint, hints or {}
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
    hints: Mapping[int | str, str],
) -> HostedCallError:
    after = f" after {tries} attempt{'s' if tries > 1 else ''}"
    what = redact(what, secrets)
    if timed_out:
        return HostedTimeout(
            f"{what} did not answer within {timeout_s:g} s{after}.",
            hint=hints.get("timeout")
            or "raise request_timeout_s (RERANK_REQUEST_TIMEOUT) or check that the server is up and not overloaded",
        )
    if connection:
        return HostedCallError(
            f"could not connect to {what}{after} ({type(exc).__name__}).",
            hint=hints.get("connection") or "check the base URL and that the server is running and reachable",
            unreachable=True,
        )
    if status in (401, 403):
        return HostedCallError(
            f"{what} refused the credentials (HTTP {status}).",
            status=status,
            hint=hints.get(status) or key_hint,
        )
    said = _server_text(exc, secrets)
    said = f": {said}" if said else "."
    if status is not None and status in hints:
        hint = hints[status]
    elif status == 404:
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


# -- rate limits ------------------------------------------------------------------------------------
class RateLimiter:
    """At most ``per_second`` requests per second, shared by every thread that calls :meth:`acquire`:
    calls are spaced ``1 / per_second`` apart (no bursts), in the order they asked. Thread-safe."""

    def __init__(
        self,
        per_second: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.set_rate(per_second)
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._next = 0.0

    def set_rate(self, per_second: float) -> None:
        if not per_second > 0:
            raise ConfigError(
                f"requests_per_second = {per_second!r} must be a number above 0.",
                hint="for example requests_per_second = 10 (leave it out for no limit)",
            )
        self.per_second = float(per_second)

    def acquire(self) -> float:
        """Wait for this call's turn; returns the seconds waited (also added to the calling thread's
        :func:`rate_wait_meter`)."""
        with self._lock:
            now = self._clock()
            start = max(now, self._next)
            self._next = start + 1.0 / self.per_second
        wait = start - now
        if wait > 0:
            self._sleep(wait)
            meter = getattr(_METER, "meters", None)
            for m in meter or ():
                m.waited_s += wait
        return max(wait, 0.0)


_LIMITERS: dict[str, RateLimiter] = {}
_LIMITERS_LOCK = threading.Lock()


def rate_limiter(endpoint: str, per_second: float | None) -> RateLimiter | None:
    """The process-wide limiter of ``endpoint`` (a base URL, or a service's name) at ``per_second``
    (None: no limit). Every client of the same endpoint shares it, whichever session made it; a new
    rate for the endpoint replaces the old one."""
    if per_second is None:
        return None
    key = safe_url(endpoint) or endpoint
    with _LIMITERS_LOCK:
        limiter = _LIMITERS.get(key)
        if limiter is None:
            limiter = _LIMITERS[key] = RateLimiter(per_second)
        elif limiter.per_second != float(per_second):
            limiter.set_rate(per_second)
        return limiter


def requests_per_second(options: Mapping[str, Any], default: float | None, section: str) -> float | None:
    """The ``requests_per_second`` option (else ``default``, the shared setting), checked."""
    value = options.get("requests_per_second", default)
    if value is None:
        return None
    ok = not isinstance(value, bool) and isinstance(value, int | float) and value > 0
    if not ok:
        raise ConfigError(
            f"{section} requests_per_second = {value!r} must be a number above 0.",
            hint="for example requests_per_second = 10 (leave it out for no limit)",
        )
    return float(value)


class _WaitMeter:
    waited_s: float = 0.0


_METER = threading.local()


class rate_wait_meter:
    """``with rate_wait_meter() as m:`` adds up the rate-limit waits of the calling thread in ``m.waited_s``."""

    def __enter__(self) -> _WaitMeter:
        self.meter = _WaitMeter()
        meters = getattr(_METER, "meters", None)
        if meters is None:
            meters = _METER.meters = []
        meters.append(self.meter)
        return self.meter

    def __exit__(self, *exc: object) -> None:
        _METER.meters.remove(self.meter)


# -- a server that cannot be reached ---------------------------------------------------------------
class Breaker:
    """Once a server could not be reached at all (every attempt of a call failed to connect), calls
    fail at once for ``cool_down_s`` instead of spending their retries again: an evaluation of 225
    queries against a dead endpoint then costs one call's retries, not 225. Any other outcome
    (success, an HTTP error, a timeout) closes it. ``cool_down_s = 0`` turns it off. Thread-safe."""

    def __init__(self, cool_down_s: float = 30.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.cool_down_s = float(cool_down_s)
        self._clock = clock
        self._lock = threading.Lock()
        self._failed_at: float | None = None
        self._error: HostedCallError | None = None

    def check(self) -> None:
        """Raise the remembered failure (as a new error) while the cool-down lasts."""
        with self._lock:
            if self._error is None or self._failed_at is None:
                return
            ago = self._clock() - self._failed_at
            if ago >= self.cool_down_s:
                self._error = self._failed_at = None
                return
            error = self._error
        raise HostedCallError(
            f"{error.message} Not tried again: it failed {ago:.0f} s ago (next try after {self.cool_down_s:g} s).",
            status=None,
            hint=error.hint,
            unreachable=True,
        )

    def record(self, error: BaseException | None) -> None:
        """The outcome of a call: an unreachable server opens the breaker, anything else closes it."""
        with self._lock:
            if isinstance(error, HostedCallError) and error.unreachable and self.cool_down_s > 0:
                self._error, self._failed_at = error, self._clock()
            else:
                self._error = self._failed_at = None

    def call(self, fn: Callable[[], T]) -> T:
        """``fn()`` guarded: refused at once while open; its outcome recorded."""
        self.check()
        try:
            out = fn()
        except HostedCallError as exc:
            self.record(exc)
            raise
        except RerankError:
            raise
        self.record(None)
        return out


# -- a JSON client --------------------------------------------------------------------------------
@dataclass(frozen=True)
class JsonResponse:
    """A decoded JSON answer: ``data``, the HTTP ``status``, response ``headers`` (lower-case names)."""

    data: Any
    status: int
    headers: Mapping[str, str]


def batches(n: int, size: int | None) -> list[tuple[int, int]]:
    """``(start, end)`` slices covering ``range(n)`` in pieces of at most ``size`` (None/0: one piece)."""
    if n <= 0:
        return []
    if not size or size <= 0 or size >= n:
        return [(0, n)]
    return [(start, min(n, start + size)) for start in range(0, n, size)]


class JsonClient:
    """A JSON API at one base URL, through httpx, with the retry policy above.

    ``what`` names the service in messages ("the TEI server"); the redacted base URL is added.
    ``headers`` are sent with every request (an ``Authorization`` header carries the key; it never
    appears in a message). A server that could not be reached is not called again for
    ``reconnect_after_s`` (:class:`Breaker`); with ``requests_per_second`` every attempt waits for its
    turn under the endpoint's shared :class:`RateLimiter`. ``hints`` map a status or ``"connection"``/``"timeout"`` to the fix,
    naming the backend's own setting. ``transport`` is httpx's (tests may pass a mock transport).
    Thread-safe: one client may serve concurrent queries.
    """

    def __init__(
        self,
        base_url: str,
        *,
        what: str,
        timeout_s: float = 30.0,
        connect_timeout_s: float | None = None,
        max_retries: int = 3,
        backoff_base_s: float = 0.5,
        headers: Mapping[str, str] | None = None,
        secrets: Iterable[str | None] = (),
        key_hint: str = "check the API key",
        hints: Mapping[int | str, str] | None = None,
        verify: bool | str = True,
        transport: Any = None,
        sleep: Callable[[float], None] = time.sleep,
        reconnect_after_s: float = 30.0,
        requests_per_second: float | None = None,
    ) -> None:
        import httpx

        # credentials in the URL become a basic-auth header, so no URL we log or send carries them
        parts = urlsplit(base_url.strip())
        auth = None
        if parts.username or parts.password:
            from urllib.parse import unquote

            auth = httpx.BasicAuth(unquote(parts.username or ""), unquote(parts.password or ""))
            netloc = parts.netloc.rpartition("@")[2]
            base_url = urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
        self.base_url = base_url.rstrip("/")
        self.timeout_s = float(timeout_s)
        self.max_retries = int(max_retries)
        self.backoff_base_s = float(backoff_base_s)
        self.key_hint = key_hint
        self.hints = dict(hints or {})
        self._sleep = sleep
        self.breaker = Breaker(reconnect_after_s)
        self.limiter = rate_limiter(self.base_url, requests_per_second)
        self._secrets = tuple(s for s in (*secrets, parts.password) if s)
        self.service = what
        self.what = f"{what} at {safe_url(base_url)}"
        connect = min(self.timeout_s, 10.0) if connect_timeout_s is None else float(connect_timeout_s)
        self._client = httpx.Client(
            timeout=httpx.Timeout(self.timeout_s, connect=connect),
            headers=dict(headers or {}),
            verify=verify,
            auth=auth,
            transport=transport,
            follow_redirects=True,
        )

    def url(self, path: str) -> str:
        """The full URL of ``path`` ("" is the base URL itself; an absolute URL is kept)."""
        if path.startswith(("http://", "https://")):
            return path
        return self.base_url + ("/" + path.lstrip("/") if path else "")

    def request(
        self,
        method: str,
        path: str = "",
        *,
        json_body: Any = None,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        stats: CallStats | None = None,
        hints: Mapping[int | str, str] | None = None,
        what: str | None = None,
    ) -> JsonResponse:
        """One JSON call with retries. Raises :class:`HostedCallError`/:class:`HostedTimeout`, or
        :class:`HostedCallError` when the answer is not JSON."""
        import httpx

        url = self.url(path)
        label = what or f"{self.service} at {safe_url(url)}"

        def once() -> JsonResponse:
            try:
                response = self._client.request(
                    method, url, json=json_body, params=params, headers=dict(headers or {})
                )
            except httpx.TimeoutException as exc:
                raise TransportFailure(type(exc).__name__, timed_out=True) from None
            except httpx.TransportError as exc:
                raise TransportFailure(type(exc).__name__, connection=True) from None
            if response.status_code >= 400:
                raise TransportFailure(
                    f"HTTP {response.status_code}",
                    status=response.status_code,
                    headers=dict(response.headers),
                    body=_decoded(response),
                )
            try:
                data = response.json() if response.content else None
            except (ValueError, UnicodeDecodeError):
                excerpt = redact(" ".join(response.text.split())[:120], self._secrets)
                raise HostedCallError(
                    f"{label} answered HTTP {response.status_code} with a body that is not JSON: {excerpt!r}.",
                    status=response.status_code,
                    hint=self.hints.get("not-json")
                    or "check that the URL points at the server's API (not a web page, a proxy's login page "
                    "or another service)",
                ) from None
            return JsonResponse(
                data=data,
                status=response.status_code,
                headers={k.lower(): v for k, v in response.headers.items()},
            )

        return self.breaker.call(
            lambda: call_with_retries(
                once,
                max_retries=self.max_retries,
                timeout_s=self.timeout_s,
                backoff_base_s=self.backoff_base_s,
                what=label,
                secrets=self._secrets,
                key_hint=self.key_hint,
                hints={**self.hints, **(hints or {})},
                stats=stats,
                sleep=self._sleep,
                limiter=self.limiter,
            )
        )

    def post(self, path: str, json_body: Any, **kw: Any) -> JsonResponse:
        return self.request("POST", path, json_body=json_body, **kw)

    def get(self, path: str = "", params: Mapping[str, Any] | None = None, **kw: Any) -> JsonResponse:
        return self.request("GET", path, params=params, **kw)

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> JsonClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"JsonClient({safe_url(self.base_url)!r})"


def _decoded(response: Any) -> Any:
    try:
        return response.json()
    except (ValueError, UnicodeDecodeError):
        return response.text


def bearer(key: str | None) -> dict[str, str]:
    """The ``Authorization: Bearer`` header for ``key`` (nothing without a key)."""
    return {"Authorization": f"Bearer {key}"} if key else {}


def dumps_redacted(value: Any, secrets: Iterable[str | None] = ()) -> str:
    """JSON text of ``value`` with secrets redacted (for messages that quote a request or answer)."""
    return redact(json.dumps(value, default=str)[:300], secrets)
