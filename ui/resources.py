"""Process-wide resources (models, indexes) and per-session settings.

Models and indexes are expensive, so they are shared by every session of the process through
``st.cache_resource``. A cached function here only hands out a :class:`OnceCell` for a key; the
page fills the cell outside the cached function, so it can draw a progress bar while it builds
(Streamlit would otherwise record the progress calls and replay them on every cache hit). The
value inside a cell is set once and never changed afterwards.

Keys hold everything that changes the result: the method spec, the settings the method reads and,
for hosted methods, a hash of the API key (so one user's key never serves another user's calls).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any, Generic, TypeVar

import streamlit as st

from rerank_core.config import Settings, load_settings
from rerank_core.errors import RerankError
from rerank_core.progress import ProgressFn
from rerank_core.rerankers.base import Reranker
from rerank_core.retrieval.base import Retriever
from rerank_core.types import Corpus, MethodError, MethodSpec
from ui import keys

T = TypeVar("T")


class OnceCell(Generic[T]):
    """A value computed once, under a lock, by the first caller; later callers get the same value.

    A failed computation stores nothing, so the next call tries again (a missing model may have
    been put in place meanwhile).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._value: T | None = None
        self._ready = False

    @property
    def ready(self) -> bool:
        return self._ready

    def get_or_init(self, make: Callable[[], T]) -> T:
        if self._ready:
            return self._value  # type: ignore[return-value]
        with self._lock:
            if not self._ready:
                self._value = make()
                self._ready = True
        return self._value  # type: ignore[return-value]


@st.cache_resource(show_spinner=False, max_entries=64)
def _cell(kind: str, key: str) -> OnceCell:
    """One cell per (kind, key) per process. Only creates the empty cell: no work, no elements."""
    return OnceCell()


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
    password fields live only in this session's state; nothing here writes them anywhere.
    """
    from rerank_core.registry import secret_names

    base = _base_settings()
    found: dict[str, str | None] = {}
    for name in secret_names():
        typed = st.session_state.get(keys.secret_key(name))
        found[name] = typed or _secret_from_streamlit(name) or base.secret(name)
    return base.with_secrets(found)


def _base_settings() -> Settings:
    return load_settings()


def settings_key(settings: Settings, method: str) -> str:
    """The cache key of ``method`` under these settings (see ``registry.method_key``)."""
    from rerank_core.registry import method_key

    return method_key(method, settings)


def has_key(settings: Settings, method: str) -> bool:
    from rerank_core.registry import method_info

    return all(settings.secret(name) for name in method_info(method).secrets)


# -- rerankers ------------------------------------------------------------------------------------------


def get_reranker(spec: str, settings: Settings) -> Reranker:
    """The process-wide reranker for ``spec`` (created, not loaded: call ``load()`` with progress)."""
    from rerank_core.registry import create_reranker

    parsed = MethodSpec.parse(spec)
    cell: OnceCell[Reranker] = _cell("reranker", f"{spec}|{settings_key(settings, parsed.name)}")
    return cell.get_or_init(lambda: create_reranker(parsed, settings))


def overrides_prepare(reranker: Reranker) -> bool:
    return type(reranker).prepare is not Reranker.prepare


def prepare_reranker(
    reranker: Reranker, corpus: Corpus, settings: Settings, progress: ProgressFn | None
) -> bool:
    """Run the reranker's per-corpus precomputation once per (reranker, corpus). True if it ran now."""
    if not overrides_prepare(reranker):
        return False
    key = f"{reranker.method_name}|{settings_key(settings, reranker.name)}|{corpus.fingerprint}"
    cell: OnceCell[bool] = _cell("prepared", key)
    if cell.ready:
        return False
    cell.get_or_init(lambda: reranker.prepare(corpus, progress) or True)
    return True


def prepared(reranker: Reranker, corpus: Corpus, settings: Settings) -> bool:
    if not overrides_prepare(reranker):
        return True
    key = f"{reranker.method_name}|{settings_key(settings, reranker.name)}|{corpus.fingerprint}"
    return _cell("prepared", key).ready


# -- first-stage indexes -------------------------------------------------------------------------------


def _index_key(name: str, corpus: Corpus, settings: Settings) -> str:
    return f"{name}|{corpus.fingerprint}|{settings_key(settings, name)}"


def index_ready(name: str, corpus: Corpus, settings: Settings) -> bool:
    return _cell("index", _index_key(name, corpus, settings)).ready


def get_index(name: str, corpus: Corpus, settings: Settings, progress: ProgressFn | None = None) -> Retriever:
    """The first stage ``name`` built over ``corpus``, once per process per corpus fingerprint.

    The hybrid first stage is assembled from the BM25 and dense indexes, so none is built twice.
    """
    from rerank_core.registry import create_retriever, retriever_class

    cell: OnceCell[Retriever] = _cell("index", _index_key(name, corpus, settings))

    def build() -> Retriever:
        if name == "hybrid":
            cls: Any = retriever_class("hybrid")
            from_parts = getattr(cls, "from_parts", None)
            if from_parts is not None:
                bm25 = get_index("bm25", corpus, settings, progress)
                dense = get_index("dense", corpus, settings, progress)
                fused = from_parts(bm25, dense)
                fused.build_s = bm25.build_s + dense.build_s  # what building it cost, for the chart
                return fused
        return create_retriever(name, settings).build(corpus, progress)

    return cell.get_or_init(build)


def describe_error(exc: BaseException) -> tuple[str, str | None]:
    """(message, hint) for an error met at a page boundary."""
    if isinstance(exc, RerankError):
        return exc.message, exc.hint
    if isinstance(exc, ImportError):
        return (
            f"A part of the app is not installed yet ({exc}).",
            "pip install -r requirements.txt, or update the checkout",
        )
    return f"{type(exc).__name__}: {exc}", None


def method_error(spec: str, exc: BaseException) -> MethodError:
    """The error shown in a method's column when the method could not even be created."""
    if isinstance(exc, ImportError):
        return MethodError(
            kind="unavailable",
            message=f"The {MethodSpec.parse(spec).name} backend is not part of this installation ({exc}).",
            hint="pip install -r requirements.txt, or update the checkout",
        )
    return MethodError.from_exception(exc)


def data_dir_label(settings: Settings) -> str:
    return os.fspath(settings.data_dir)
