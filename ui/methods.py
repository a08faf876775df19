"""The methods the compare page offers, with their real default models and short descriptions."""

from __future__ import annotations

from dataclasses import dataclass

from rerank_core.config import Settings
from rerank_core.types import MethodSpec

FIRST_STAGES = ("bm25", "dense", "hybrid")
FIRST_STAGE_LABELS = {"bm25": "BM25", "dense": "Dense (MiniLM)", "hybrid": "Hybrid (RRF)"}


@dataclass(frozen=True)
class MethodInfo:
    name: str
    title: str
    blurb: str
    fallback_model: str  # shown when the backend module cannot be imported; "" = chosen automatically
    local: bool = True


METHODS: dict[str, MethodInfo] = {
    m.name: m
    for m in (
        MethodInfo(
            "late-interaction",
            "Late interaction",
            "MaxSim over the MiniLM token embeddings: zero-shot, not a trained ColBERT",
            "sentence-transformers/all-MiniLM-L6-v2",
        ),
        MethodInfo(
            "bi-encoder",
            "Bi-encoder",
            "cosine of MiniLM sentence embeddings: query and passage encoded apart",
            "sentence-transformers/all-MiniLM-L6-v2",
        ),
        MethodInfo(
            "cross-encoder",
            "Cross-encoder",
            "query and passage read together",
            "cross-encoder/ms-marco-MiniLM-L-6-v2",
        ),
        MethodInfo("flashrank", "FlashRank", "ONNX cross-encoder on CPU", "ms-marco-TinyBERT-L-2-v2"),
        MethodInfo("colbert", "ColBERT", "trained late interaction (RAGatouille)", "colbert-ir/colbertv2.0"),
        MethodInfo(
            "llm",
            "LLM",
            "pointwise 0-10 grades by an OpenAI-compatible model; 'smollm2' runs a small local model",
            "gpt-4o-mini",
        ),
        MethodInfo("cohere", "Cohere Rerank", "hosted API, needs COHERE_API_KEY", "rerank-v3.5", local=False),
    )
}
DEFAULT_METHODS = ("bi-encoder", "late-interaction", "cross-encoder", "flashrank", "colbert", "llm")
# executed last, so the fast local columns appear first (all methods still get the same candidates)
SLOW_METHODS = ("llm", "cohere")


def class_default(name: str) -> str | None:
    """The backend's own default model, None when it chooses one itself (or cannot be imported)."""
    try:
        from rerank_core.registry import reranker_class

        return reranker_class(name).default_model
    except Exception:  # noqa: BLE001 - a backend that is not installed yet
        return None


def default_model(name: str, settings: Settings | None = None) -> str:
    """The model shown in a method's box: the backend's default, the configured hosted model, or the
    documented id when the backend cannot be imported."""
    settings = settings or Settings()
    if name == "llm":
        return settings.openai_model  # the hosted default; "smollm2" runs the local model
    if name == "cohere":
        return class_default(name) or settings.cohere_model
    return class_default(name) or (METHODS[name].fallback_model if name in METHODS else "")


def spec_for(name: str, model: str | None) -> str:
    """``name`` when the backend's own default is meant (stable cache keys, short URLs), else ``name:model``.

    An empty box means the backend's default; for the LLM an empty box lets the backend choose
    (the configured OpenAI model with a key, else the local SmolLM2).
    """
    model = (model or "").strip()
    if not model or model == class_default(name):
        return name
    return str(MethodSpec(name=name, model=model))


def execution_order(specs: list[str]) -> list[str]:
    """Fast local methods first, slow and hosted ones last; otherwise the chosen order."""
    return sorted(specs, key=lambda s: MethodSpec.parse(s).name in SLOW_METHODS)
