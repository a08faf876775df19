"""Serving many users from one process: a quota and rate limit on hosted calls, torch threads, upload budgets.

- :class:`HostedLimiter` counts the hosted and LLM method runs each user starts (a run that comes from
  the result memo costs nothing) and refuses one past the user's quota in the rolling window or past
  the per-minute rate, with a message that says when the next run frees up. It is process-wide and
  thread-safe (the app keeps one in ``st.cache_resource``); counts live in memory, so a restart resets
  them. :func:`admission` turns it into the ``admit`` hook of :meth:`rerank_core.pipeline.Runtime.compare`,
  which then puts the refusal in that method's column while the other methods (and users) go on.
- :func:`configure_torch_threads` sets torch's intra-op threads once per process, so concurrent sessions
  do not each start a thread per core (eight sessions on two cores would run 16 busy threads).
- :func:`check_upload_budget` refuses a session's uploads past ``[limits] upload_mb_per_session``.
- :class:`LimitSettings` is the ``[limits]`` section of the settings file.
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from rerank_core.errors import ConfigError, RerankError
from rerank_core.types import MethodError

QUOTA_KIND = "quota"
RATE_KIND = "rate-limit"


def _duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds} s"
    minutes = (seconds + 59) // 60
    if minutes < 60:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60:02d} min"


@dataclass(frozen=True)
class Decision:
    """Whether a run may start; when not, why (``kind`` is ``quota`` or ``rate-limit``) and when it may."""

    allowed: bool
    kind: str = ""
    message: str = ""
    retry_after_s: float = 0.0

    def as_error(self) -> MethodError:
        hint = (
            "the other methods still run; cached results of this query still show, and local methods have no "
            "limit"
        )
        return MethodError(kind=self.kind, message=self.message, hint=hint)


class HostedLimiter:
    """A per-user quota (``quota`` runs in any ``window_s`` seconds) and rate limit (``per_minute`` runs in
    any 60 s) on hosted and LLM method runs. 0 turns either off. Thread-safe."""

    def __init__(
        self, quota: int, window_s: float, per_minute: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if quota < 0 or per_minute < 0 or window_s <= 0:
            raise ValueError("quota and per_minute must be >= 0 and window_s > 0")
        self.quota = quota
        self.window_s = window_s
        self.per_minute = per_minute
        self._clock = clock
        self._lock = threading.Lock()
        self._runs: dict[str, deque[float]] = {}

    def _recent(self, user: str, now: float) -> deque[float]:
        runs = self._runs.setdefault(user, deque())
        horizon = max(self.window_s, 60.0)
        while runs and runs[0] <= now - horizon:
            runs.popleft()
        return runs

    def acquire(self, user: str, what: str = "hosted and LLM methods") -> Decision:
        """Count one run for ``user`` if the quota and rate allow it, else refuse (nothing is counted)."""
        with self._lock:
            now = self._clock()
            runs = self._recent(user, now)
            in_window = [t for t in runs if t > now - self.window_s]
            if self.quota and len(in_window) >= self.quota:
                wait = in_window[-self.quota] + self.window_s - now
                return Decision(
                    False,
                    QUOTA_KIND,
                    f"Quota reached: {user} has used all {self.quota} runs of {what} allowed per "
                    f"{_duration(self.window_s)}. The next one frees up in {_duration(wait)}.",
                    wait,
                )
            last_minute = [t for t in runs if t > now - 60.0]
            if self.per_minute and len(last_minute) >= self.per_minute:
                wait = last_minute[-self.per_minute] + 60.0 - now
                return Decision(
                    False,
                    RATE_KIND,
                    f"Slow down: at most {self.per_minute} runs of {what} per minute per user. "
                    f"Try again in {_duration(wait)}.",
                    wait,
                )
            runs.append(now)
            return Decision(True)

    def used(self, user: str) -> int:
        """Runs counted for ``user`` in the current window."""
        with self._lock:
            now = self._clock()
            return sum(1 for t in self._recent(user, now) if t > now - self.window_s)

    def remaining(self, user: str) -> int | None:
        """Runs left in the window (None: no quota)."""
        return None if not self.quota else max(0, self.quota - self.used(user))


def is_limited(spec: str) -> bool:
    """Hosted methods and the LLM count against the quota (what ``method_info(name).hosted`` says)."""
    from rerank_core.registry import method_info

    try:
        return method_info(spec).hosted
    except Exception:  # noqa: BLE001 - an unknown method fails in its own column, not here
        return False


def admission(
    limiter: HostedLimiter | None, user: str, limited: Callable[[str], bool] = is_limited
) -> Callable[[str], MethodError | None] | None:
    """The ``admit`` hook for :meth:`Runtime.compare`: None lets a method run, a MethodError refuses it."""
    if limiter is None:
        return None

    def admit(spec: str) -> MethodError | None:
        if not limited(spec):
            return None
        decision = limiter.acquire(user)
        return None if decision.allowed else decision.as_error()

    return admit


# -- torch threads ------------------------------------------------------------------------------------------

_threads_lock = threading.Lock()
_threads_set: int | None = None


def cpu_cores() -> int:
    """The CPU cores this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def torch_threads_for(threads: int, many_users: bool) -> int:
    """The intra-op threads to use: ``threads`` when set, else 1 for a server shared by many users (each
    call on one core, calls side by side, never more busy threads than cores) and one per core for a
    single user (one call at a time gets every core)."""
    if threads > 0:
        return threads
    return 1 if many_users else cpu_cores()


def configure_torch_threads(threads: int) -> int:
    """Set torch's intra-op threads once per process; returns the number in force.

    Later calls change nothing (changing it while models run is unsafe), so the first caller (the app's
    runtime) decides. Measured with ``scripts/load_test.py`` (README): with two threads per call, eight
    sessions on two cores wait on each other's spinning threads."""
    global _threads_set
    with _threads_lock:
        if _threads_set is not None:
            return _threads_set
        wanted = max(1, threads)
        try:
            import torch
        except ImportError:
            _threads_set = wanted
            return wanted
        torch.set_num_threads(wanted)
        _threads_set = torch.get_num_threads()
        return _threads_set


# -- uploads --------------------------------------------------------------------------------------------------


class UploadTooLarge(RerankError):
    kind = "upload-too-large"


def check_upload_budget(sizes: Iterable[int], limit_mb: float) -> int:
    """The total bytes of a session's uploads; :class:`UploadTooLarge` past ``limit_mb`` (0: no limit)."""
    total = sum(int(s) for s in sizes)
    if limit_mb and total > limit_mb * 1024 * 1024:
        raise UploadTooLarge(
            f"these files hold {total / 1024 / 1024:,.1f} MB, more than the {limit_mb:g} MB one session may "
            "upload at once on this server.",
            hint="upload fewer or smaller files (remove some with the x next to each), or ask the admin to raise "
            "[limits] upload_mb_per_session",
        )
    return total


# -- settings ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LimitSettings:
    """``[limits]``: how one server process shares itself between sessions.

    ``upload_mb_per_session``: the most a session may upload at once (0: no limit beyond Streamlit's
    per-file ``server.maxUploadSize``). ``torch_threads``: torch's intra-op threads for the process
    (0: automatic, see :func:`torch_threads_for`: one per core on a laptop, 1 when sign-in or demo mode
    is on)."""

    upload_mb_per_session: float = 300.0
    torch_threads: int = 0

    KEYS = ("upload_mb_per_session", "torch_threads")

    @classmethod
    def from_table(cls, table: Mapping[str, Any], env: Mapping[str, str] | None = None) -> LimitSettings:
        if not isinstance(table, Mapping):
            raise ConfigError("[limits] must be a table", hint="see rerank.example.toml")
        unknown = sorted(set(table) - set(cls.KEYS))
        if unknown:
            raise ConfigError(
                f"unknown setting(s) {', '.join(unknown)} in [limits]",
                hint=f"[limits] takes: {', '.join(cls.KEYS)} (see rerank.example.toml)",
            )
        env = env or {}
        values: dict[str, Any] = {}
        for key, kind, env_name in (
            ("upload_mb_per_session", float, "RERANK_UPLOAD_MB_PER_SESSION"),
            ("torch_threads", int, "RERANK_TORCH_THREADS"),
        ):
            raw = env.get(env_name) or table.get(key)
            if raw is None:
                continue
            try:
                value = kind(raw)
            except (TypeError, ValueError):
                value = -1
            if isinstance(raw, bool) or value < 0:
                raise ConfigError(
                    f"[limits] {key} (or {env_name}) must be a number >= 0, not {raw!r}", hint="for example 2"
                )
            values[key] = value
        return cls(**values)


__all__ = [
    "QUOTA_KIND",
    "RATE_KIND",
    "Decision",
    "HostedLimiter",
    "LimitSettings",
    "UploadTooLarge",
    "admission",
    "check_upload_budget",
    "configure_torch_threads",
    "cpu_cores",
    "is_limited",
    "torch_threads_for",
]
