"""Loading sentence-transformers models, shared by every backend that needs one.

A model string (a hub id, a local folder or an id found under the models directory) is resolved
with :func:`rerank_core.models.resolve_model`, then loaded on ``settings.device``. Failures become
typed errors that name the model and the fix: :class:`ModelNotFound` when no copy can be found,
:class:`BackendUnavailable` when the package is missing or the folder is not a usable model.

Loaded models are kept per (location, device, copy) so the dense retriever, the hybrid retriever and
the bi-encoder reranker share one copy (the late-interaction reranker keeps its own, see
:func:`load_sentence_transformer`). Callers must treat a returned model as read-only (no
``max_seq_length`` changes, no training): it is shared by every user of the process. Hold
:func:`model_lock` while encoding or tokenising with it.
"""

from __future__ import annotations

import threading
import weakref
from typing import TYPE_CHECKING, Any

from rerank_core.config import Settings
from rerank_core.errors import BackendUnavailable, ModelNotFound
from rerank_core.models import ResolvedModel, resolve_model

if TYPE_CHECKING:  # pragma: no cover
    from sentence_transformers import SentenceTransformer

_INSTALL_HINT = "pip install -r requirements.txt (it pins sentence-transformers==5.7.0 and torch==2.13.0)"

_shared: dict[tuple[str, str, str], Any] = {}
_shared_lock = threading.Lock()
_use_locks: weakref.WeakKeyDictionary[Any, threading.RLock] = weakref.WeakKeyDictionary()


def short_model_name(model: str) -> str:
    """The last path component of a model id or folder, for labels (``all-MiniLM-L6-v2``)."""
    return model.rstrip("/\\").replace("\\", "/").rsplit("/", 1)[-1] or model


def _import_sentence_transformers():
    try:
        import sentence_transformers
    except ImportError as exc:
        raise BackendUnavailable(
            f"sentence-transformers is not installed ({exc}).",
            hint=_INSTALL_HINT,
        ) from exc
    return sentence_transformers


def _load(resolved: ResolvedModel, device: str) -> SentenceTransformer:
    st = _import_sentence_transformers()
    try:
        return st.SentenceTransformer(resolved.location, device=device)
    except Exception as exc:  # noqa: BLE001 - every load failure becomes a typed error
        detail = f"{type(exc).__name__}: {exc}"
        if not resolved.is_local:
            raise ModelNotFound(
                resolved.requested,
                [f"Hugging Face hub (download failed: {detail})"],
            ) from exc
        raise BackendUnavailable(
            f"Model '{resolved.requested}' was found at {resolved.location} but could not be loaded "
            f"as a sentence-transformers model on device '{device}' ({detail}).",
            hint=(
                "point the model at a sentence-transformers or Hugging Face transformers model folder "
                "(config.json, tokenizer files and weights), and check RERANK_DEVICE."
            ),
        ) from exc


def load_sentence_transformer(
    model: str,
    settings: Settings | None = None,
    *,
    shared: bool = True,
    copy: str = "",
) -> SentenceTransformer:
    """Resolve ``model`` and load it as a ``SentenceTransformer`` on ``settings.device``.

    With ``shared=True`` (the default) one loaded copy per (location, device, ``copy``) is reused
    across the process; treat it as read-only. Each copy has its own :func:`model_lock`, so users
    of different copies never wait for each other: the late-interaction reranker takes its own
    copy (``copy="tokens"``), and its short query encodes no longer queue behind the bi-encoder's
    and the dense index's work. Raises :class:`ModelNotFound` or :class:`BackendUnavailable` with
    the model name and how to fix it.
    """
    settings = settings or Settings()
    if not model or not str(model).strip():
        raise ModelNotFound(str(model), [], hint="give a model id or a local model folder.")
    resolved = resolve_model(str(model), settings.models_dir)
    device = settings.device or "cpu"
    if not shared:
        return _load(resolved, device)
    key = (resolved.location, device, copy)
    with _shared_lock:
        found = _shared.get(key)
        if found is None:
            found = _load(resolved, device)
            _shared[key] = found
        return found


def model_lock(model: Any) -> threading.RLock:
    """The lock to hold while using ``model`` (encode, tokenizer calls).

    Hugging Face fast tokenizers are not safe to call from several threads at once ("Already
    borrowed"), and a shared model is used by every session; on a CPU the forward passes would
    compete for the same cores anyway, so callers run one encode at a time per model.
    """
    with _shared_lock:
        lock = _use_locks.get(model)
        if lock is None:
            lock = _use_locks[model] = threading.RLock()
        return lock


def clear_shared_models() -> None:
    """Forget the shared models (frees memory once nothing else holds them)."""
    with _shared_lock:
        _shared.clear()


def embedding_dimension(model: SentenceTransformer) -> int | None:
    """The model's output dimension, across sentence-transformers versions."""
    getter = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
    return getter()
