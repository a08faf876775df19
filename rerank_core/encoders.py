"""Loading sentence-transformers models, shared by every backend that needs one.

A model string (a hub id, a local folder or an id found under the models directory) is resolved
with :func:`rerank_core.models.resolve_model`, then loaded on ``settings.device``. Failures become
typed errors that name the model and the fix: :class:`ModelNotFound` when no copy can be found,
:class:`BackendUnavailable` when the package is missing or the folder is not a usable model.

Loaded models are kept per (location, device, precision, copy) so the dense retriever, the hybrid
retriever and the bi-encoder reranker share one copy per precision (the late-interaction reranker keeps
its own copy, with its own lock, so its short query encodes never queue behind the others' work).
Callers must treat a returned model as read-only (no
``max_seq_length`` changes, no training): it is shared by every user of the process. Hold
:func:`model_lock` while encoding or tokenising with it, and :func:`encoding` around ``encode``
(it applies bf16 autocast to a bf16 model; ONNX models run as loaded).

Precision (see :mod:`rerank_core.precision`): ``fp32`` and ``bf16`` load the torch model; ``onnx`` and
``onnx-int8`` load sentence-transformers' ONNX backend (the model's own file or a cached export);
``openvino`` and ``openvino-int8`` load the torch model and run its network with OpenVINO
(:mod:`rerank_core.openvino_path`);
``auto`` is resolved first, so ``auto`` and what it picks share one copy. The resolved precision is
a plain string on the loaded model, read with :func:`encoder_precision` (for cache keys and labels).
"""

from __future__ import annotations

import contextlib
import threading
import weakref
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from rerank_core.config import Settings
from rerank_core.errors import BackendUnavailable, ModelNotFound
from rerank_core.models import ResolvedModel, resolve_model
from rerank_core.precision import BF16, CONVERTED, ENCODER, FP32, check_precision, load_converted, resolve

if TYPE_CHECKING:  # pragma: no cover
    from sentence_transformers import SentenceTransformer

_INSTALL_HINT = "pip install -r requirements.txt (it pins sentence-transformers==5.7.0 and torch==2.13.0)"

_shared: dict[tuple[str, str, str, str], Any] = {}
#: the attribute of a loaded model that holds its resolved precision
PRECISION_ATTR = "rerank_precision"
NOTE_ATTR = "rerank_precision_note"
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


def _load(
    resolved: ResolvedModel, device: str, precision: str = FP32, data_dir: Any = None
) -> SentenceTransformer:
    st = _import_sentence_transformers()
    note = ""
    try:
        if precision in CONVERTED:
            from rerank_core.config import Settings

            model, note = load_converted(
                st.SentenceTransformer,
                resolved.location,
                resolved.requested,
                precision,
                data_dir if data_dir is not None else Settings().data_dir,
                is_local=resolved.is_local,
                load_kwargs={"device": device},
                pairs=False,
            )
        else:
            model = st.SentenceTransformer(resolved.location, device=device)
        setattr(model, PRECISION_ATTR, precision)
        setattr(model, NOTE_ATTR, note)
        return model
    except BackendUnavailable:
        raise
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
    precision: str = FP32,
    copy: str = "",
) -> SentenceTransformer:
    """Resolve ``model`` and load it as a ``SentenceTransformer`` on ``settings.device`` at ``precision``.

    ``precision`` is one of :data:`rerank_core.precision.PRECISIONS` (``auto`` is resolved for this
    CPU first); the loaded model carries the resolved one (:func:`encoder_precision`). With
    ``shared=True`` (the default) one loaded copy per (location, device, precision, ``copy``) is reused
    across the process; treat it as read-only. Each copy has its own :func:`model_lock`: the
    late-interaction reranker takes its own (``copy="tokens"``). Raises :class:`ModelNotFound` or
    :class:`BackendUnavailable` with the model name and how to fix it (also when an ONNX export
    fails: the model never silently runs another precision).
    """
    settings = settings or Settings()
    if not model or not str(model).strip():
        raise ModelNotFound(str(model), [], hint="give a model id or a local model folder.")
    choice = resolve(check_precision("encoder", precision), ENCODER)
    resolved = resolve_model(str(model), settings.models_dir)
    device = settings.device or "cpu"
    found: Any
    if not shared:
        found = _load(resolved, device, choice.precision, settings.data_dir)
    else:
        key = (resolved.location, device, choice.precision, copy)
        with _shared_lock:
            found = _shared.get(key)
            if found is None:
                found = _load(resolved, device, choice.precision, settings.data_dir)
                _shared[key] = found
    return found


def encoder_precision(model: Any) -> str:
    """The precision a model from :func:`load_sentence_transformer` runs at (``fp32``, ``bf16``, ``onnx``, ...)."""
    return str(getattr(model, PRECISION_ATTR, FP32))


def encoder_precision_note(model: Any) -> str:
    """Which ONNX or OpenVINO file runs (own file or cached conversion), or "" for torch models."""
    return str(getattr(model, NOTE_ATTR, ""))


@contextlib.contextmanager
def encoding(model: Any) -> Iterator[None]:
    """Hold around ``model.encode``: bf16 autocast for a bf16 model, nothing otherwise."""
    if encoder_precision(model) != BF16:
        yield
        return
    import torch

    with torch.autocast("cpu", dtype=torch.bfloat16):
        yield


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
