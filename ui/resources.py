"""Process-wide objects (the runtime, the workspace, the label store) and this session's settings.

Models, indexes and results live in one :class:`rerank_core.pipeline.Runtime` per server process,
held by ``st.cache_resource``; the pages only ask it for things. What a method reads from the settings
(and which secrets) is declared on its backend class, so the runtime's keys always include it and one
user's API key never serves another user's calls.
"""

from __future__ import annotations

import os

import streamlit as st

from rerank_core.config import Settings, load_settings
from rerank_core.judgements import JudgementStore
from rerank_core.pipeline import Runtime, describe_error, method_error
from rerank_core.workspace import Workspace
from ui import keys

__all__ = [
    "demo_corpora",
    "describe_error",
    "has_key",
    "hosted",
    "label_store",
    "limiter",
    "method_error",
    "runtime",
    "session_settings",
    "workspace",
]


@st.cache_resource(show_spinner=False)
def runtime() -> Runtime:
    """The process's runtime: first stages, rerankers and memoised results, shared by every session.

    Made once per process, which is when torch's intra-op threads are set (``[limits] torch_threads``)."""
    from rerank_core.errors import RerankError
    from rerank_core.serving import configure_torch_threads, torch_threads_for

    try:
        settings = load_settings()
        threads = torch_threads_for(settings.limits.torch_threads, hosted(settings))
    except RerankError:
        threads = torch_threads_for(0, False)  # the pages show the configuration error themselves
    configure_torch_threads(threads)
    return Runtime()


def hosted(settings: Settings) -> bool:
    """A server for many users: sign-in or demo mode is on."""
    return settings.access.sign_in or settings.demo.enabled


@st.cache_resource(show_spinner=False)
def _workspace(data_dir: str) -> Workspace:
    return Workspace(data_dir)


def workspace(settings: Settings) -> Workspace:
    """The stored corpora of the configured data directory."""
    return _workspace(os.fspath(settings.data_dir))


@st.cache_resource(show_spinner=False)
def _store(url: str) -> JudgementStore:
    return JudgementStore(url)


def label_store(settings: Settings) -> JudgementStore:
    """The process-wide judgement store of the configured database (raises ConfigError if unusable).

    The store holds no state of its own besides its database engine (every read goes to the
    database), so sharing one object between sessions is safe."""
    return _store(settings.resolved_db_url)


@st.cache_resource(show_spinner=False)
def _limiter(quota: int, window_s: float, per_minute: int):
    from rerank_core.serving import HostedLimiter

    return HostedLimiter(quota, window_s, per_minute)


def limiter(settings: Settings):
    """The process-wide quota and rate limit on hosted and LLM runs (demo mode only; None otherwise)."""
    demo = settings.demo
    if not demo.enabled or (not demo.quota and not demo.rate_per_minute):
        return None
    return _limiter(demo.quota, demo.quota_window_h * 3600.0, demo.rate_per_minute)


@st.cache_resource(show_spinner=False)
def _demo_corpora(data_dir: str, entries: tuple[str, ...]) -> dict[str, str]:
    from rerank_core.access import DemoSettings, demo_corpora

    return demo_corpora(_workspace(data_dir), DemoSettings(enabled=True, corpora=entries))


def demo_corpora(settings: Settings) -> dict[str, str] | None:
    """The demo's corpora ({configured name: corpus id}, resolved once per process); None outside demo mode.
    Raises ConfigError when an entry cannot be used."""
    if not settings.demo.enabled:
        return None
    return _demo_corpora(os.fspath(settings.data_dir), settings.demo.corpora)


def forget_label_store() -> None:
    """Open the database afresh on the next call (tests simulate a new process with it)."""
    _store.clear()


# -- settings -------------------------------------------------------------------------------------------


def _secret_from_streamlit(name: str) -> str | None:
    """``NAME`` or ``name`` from Streamlit secrets (``.streamlit/secrets.toml``), if set."""
    for key in (name, name.lower()):
        try:
            value = st.secrets.get(key)
        except Exception:  # noqa: BLE001 - no secrets file is the normal case
            return None
        if value:
            return str(value)
    return None


def session_settings() -> Settings:
    """Settings for this session: file and environment, then Streamlit secrets, then the password fields.

    Every secret a backend declares (``registry.secret_names()``) is looked up. Keys typed into the
    password fields live only in this session's state; nothing here writes them anywhere. They are
    used only for an actor who may manage keys, and never in demo mode (a demo's keys stay on the
    server: :func:`ui.identity.typed_keys_allowed`).
    """
    from rerank_core.access import AccessDenied
    from rerank_core.registry import secret_names
    from ui import identity

    base = load_settings()
    try:
        typing_allowed = identity.typed_keys_allowed(base, identity.current(base))
    except AccessDenied:
        typing_allowed = False
    found: dict[str, str | None] = {}
    for name in secret_names():
        typed = st.session_state.get(keys.secret_key(name)) if typing_allowed else None
        found[name] = typed or _secret_from_streamlit(name) or base.secret(name)
    return base.with_secrets(found)


def has_key(settings: Settings, method: str) -> bool:
    """Every secret the method declares is set."""
    from rerank_core.registry import method_info

    return all(settings.secret(name) for name in method_info(method).secrets)
