"""The methods the pages offer, read from the registry (titles, descriptions, defaults live on the
backend classes; nothing about a method is written here)."""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

from rerank_core.config import Settings
from rerank_core.errors import RerankError
from rerank_core.precision import check_precision
from rerank_core.registry import method_info, methods, reranker_class
from rerank_core.types import FIRST_STAGE_KIND, RERANKER_KIND, MethodInfo, MethodSpec

#: the local first stages the pages offer (engines need settings: they are offered once configured)
LOCAL_FIRST_STAGES = ("bm25", "dense", "hybrid")
#: rerankers preselected on the compare page (every offline-capable one except the slow local LLM)
DEFAULT_METHODS = ("bi-encoder", "late-interaction", "cross-encoder", "flashrank", "colbert", "llm")


def first_stages(settings: Settings | None = None) -> list[str]:
    """The first stages to offer: the local ones, then every engine configured in ``[methods.<name>]``."""
    out = [m.name for m in methods(FIRST_STAGE_KIND) if m.name in LOCAL_FIRST_STAGES]
    if settings is not None:
        out += [
            m.name
            for m in methods(FIRST_STAGE_KIND)
            if not m.needs_index and m.name not in out and settings.method_options(m.name)
        ]
    return out


def rerankers(settings: Settings | None = None) -> list[str]:
    """The rerankers to offer (in demo mode, only the ones ``[demo] methods`` lists)."""
    return [m.name for m in methods(RERANKER_KIND) if settings is None or settings.demo.offers(m.name)]


def info(name: str) -> MethodInfo | None:
    """The metadata of a method, None when its backend cannot be imported here."""
    try:
        return method_info(name)
    except Exception:  # noqa: BLE001 - a backend that is not installed: the page says so in its column
        return None


def title(spec: str) -> str:
    """A method's title; a fusion's names what it fuses (``Fusion · bm25+cross-encoder``)."""
    found = info(spec)
    parsed = MethodSpec.parse(spec)
    if parsed.name == "fusion" and parsed.model:
        return f"Fusion · {parsed.model}"
    return found.title if found is not None else parsed.name


def first_stage_title(name: str) -> str:
    found = info(name)
    if found is None:
        return name
    model = MethodSpec.parse(name).model
    if MethodSpec.parse(name).name == "run" and model:
        return f"{found.title} ({run_file_name(model)})"
    return found.title + (f" ({model})" if model else "")


def run_file_name(model: str) -> str:
    """The name a run file is shown under: the uploaded file's name for a stored run, else the path's."""
    from pathlib import Path

    from rerank_core.config import load_settings
    from rerank_core.retrieval.run_file import stored_run

    try:
        stored = stored_run(load_settings(), model)
    except Exception:  # noqa: BLE001 - a label only
        stored = None
    return stored.name if stored is not None else Path(model).name


def description(spec: str) -> str:
    found = info(spec)
    return found.description if found is not None else ""


def class_default(name: str) -> str | None:
    """The backend's own default model, None when it chooses one itself (or cannot be imported)."""
    try:
        return reranker_class(name).default_model
    except Exception:  # noqa: BLE001 - a backend that is not installed yet
        return None


def default_model(name: str, settings: Settings) -> str:
    """The model shown in a method's box: the backend's default under these settings."""
    try:
        return reranker_class(name).default_model_for(settings) or ""
    except Exception:  # noqa: BLE001 - a backend that is not installed yet
        return ""


def spec_for(name: str, model: str | None) -> str:
    """``name`` when the backend's own default is meant (stable cache keys, short URLs), else ``name:model``."""
    model = (model or "").strip()
    if not model or model == class_default(name):
        return name
    return str(MethodSpec(name=name, model=model))


def precision_choices(name: str, settings: Settings) -> tuple[tuple[str, ...], str]:
    """The values a method's ``precision`` option takes and the one these settings give it (its default);
    ``((), "")`` for a method without the option."""
    found = info(name)
    if found is None or not found.precisions:
        return (), ""
    try:
        configured = check_precision(name, settings.method_options(name).get("precision"), found.precisions)
    except RerankError:  # a bad value in the config: the method's column says so when it runs
        configured = found.precisions[0]
    return found.precisions, configured


def takes_remote_code(name: str) -> bool:
    """The backend has a ``trust_remote_code`` option (models that ship their own Python code)."""
    try:
        return "trust_remote_code" in getattr(reranker_class(name), "OPTIONS", ())
    except Exception:  # noqa: BLE001 - a backend that is not installed
        return False


def takes_instruction(name: str, model: str, settings: Settings) -> bool:
    """The method's model reads a prompt with an instruction slot (Qwen3-Reranker and other causal-LM
    rerankers), read from its config only: no weights are loaded."""
    template = settings.method_options(name).get("prompt_template")
    return _takes_instruction(
        name, model.strip(), settings.models_dir, template if isinstance(template, str) else None
    )


@lru_cache(maxsize=128)
def _takes_instruction(name: str, model: str, models_dir: Path | None, template: str | None) -> bool:
    try:
        cls = reranker_class(name)
        if "instruction" not in getattr(cls, "OPTIONS", ()):
            return False
        options = {"prompt_template": template} if template else {}
        backend = cls(model=model or None, settings=Settings(models_dir=models_dir), **options)
        return bool(getattr(backend, "takes_instruction", False))
    except Exception:  # noqa: BLE001 - an unknown model or a bad template: its column says so when it runs
        return False


def execution_order(specs: Sequence[str]) -> list[str]:
    """Fast local methods first, hosted (and LLM) ones last; otherwise the chosen order (every method still
    gets the same candidates)."""

    def slow(spec: str) -> bool:
        found = info(spec)
        return found is not None and found.hosted

    return sorted(specs, key=slow)


__all__ = [
    "DEFAULT_METHODS",
    "LOCAL_FIRST_STAGES",
    "RERANKER_KIND",
    "class_default",
    "default_model",
    "description",
    "execution_order",
    "first_stage_title",
    "first_stages",
    "info",
    "precision_choices",
    "rerankers",
    "spec_for",
    "takes_instruction",
    "takes_remote_code",
    "title",
]
