"""Cross-encoder reranking with sentence-transformers' ``CrossEncoder``.

Each (query, passage) pair goes through the model together; the relevance head gives one number
per pair. Known models: ``cross-encoder/ms-marco-MiniLM-L-6-v2`` (default),
``BAAI/bge-reranker-base``, ``BAAI/bge-reranker-v2-m3``; any hub id or local folder works.

Options (``[methods.cross-encoder]`` in rerank.toml, or keyword arguments):

- ``batch_size`` (default 32): pairs per forward pass;
- ``max_length`` (default: the model's own, e.g. 512): tokens per pair, longer pairs are cut
  (the passage loses its end) and flagged ``truncated``;
- ``activation``: ``"none"`` (default) gives the raw relevance logits, ``"model"`` applies the
  activation the model was saved with (a sigmoid for the bge rerankers). The score scale says which.
  A sigmoid saturates at 1.0 for confident pairs and turns their order into ties, which is why
  raw logits are the default.

Two-class models (not-relevant / relevant) score the soft-max probability of the second class.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rerank_core.config import Settings
from rerank_core.errors import InvalidMethod
from rerank_core.models import resolve_model
from rerank_core.rerankers.base import Reranker
from rerank_core.rerankers.local_common import check_options, one_of, positive_int, truncation_note
from rerank_core.types import Candidate, Scores, ScoreScale

KNOWN_MODELS: tuple[str, ...] = (
    "cross-encoder/ms-marco-MiniLM-L-6-v2",
    "BAAI/bge-reranker-base",
    "BAAI/bge-reranker-v2-m3",
)
_ROBERTA_LIKE = {"roberta", "xlm-roberta", "camembert", "xlm-roberta-xl"}  # positions start after the pad id


class CrossEncoderReranker(Reranker):
    name = "cross-encoder"
    scale = ScoreScale.LOGIT
    default_model = KNOWN_MODELS[0]
    title = "Cross-encoder"
    description = "query and passage read together (sentence-transformers CrossEncoder)"
    OPTIONS = {"batch_size", "max_length", "activation"}

    def __init__(self, model: str | None = None, settings: Settings | None = None, **options: Any) -> None:
        super().__init__(model=model, settings=settings, **options)
        check_options(self.name, self.options, self.OPTIONS)
        self.batch_size = positive_int(self.name, self.options, "batch_size", 32)
        self.max_length = positive_int(self.name, self.options, "max_length", None)
        self.activation = one_of(self.name, self.options, "activation", ("none", "model"))
        self.scale = ScoreScale.LOGIT  # settled when the model is loaded (see _load)
        self._model: Any = None
        self._num_labels = 1
        self._apply_model_activation = False
        self._notes: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        what = {ScoreScale.LOGIT: "raw logits", ScoreScale.PROBABILITY: "probabilities"}.get(
            self.scale, str(self.scale)
        )
        return f"cross-encoder {self.model} ({what})"

    @property
    def effective_max_length(self) -> int | None:
        """Tokens per (query, passage) pair after loading (the model's limit or ``max_length``)."""
        return None if self._model is None else int(self._model.max_seq_length)

    def _load(self) -> None:
        assert self.model is not None
        # find the weights before importing torch, so a missing model is reported at once
        resolved = resolve_model(
            self.model,
            self.settings.models_dir,
            marker="config.json",
            hint=(
                "download it once with network access (it is then cached), put the model folder "
                "(config.json, weights, tokenizer) under the models directory (RERANK_MODELS_DIR), "
                f"or give its local path as the model (cross-encoder:/path/to/model). Known models: {', '.join(KNOWN_MODELS)}."
            ),
        )
        import torch
        from sentence_transformers import CrossEncoder

        model = CrossEncoder(
            resolved.location,
            device=self.settings.device or "cpu",
            max_length=self.max_length,
            local_files_only=resolved.is_local,
        )
        config = model.config
        num_labels = int(model.num_labels)
        if num_labels > 2:
            raise InvalidMethod(
                f"{self.model} has {num_labels} output labels; a reranker needs one relevance logit "
                "(or two classes: not relevant / relevant)",
                hint="choose a cross-encoder trained for reranking, e.g. " + ", ".join(KNOWN_MODELS),
            )
        positions = getattr(config, "max_position_embeddings", None)
        if positions and config.model_type in _ROBERTA_LIKE:
            positions -= int(config.pad_token_id or 0) + 1
        notes: list[str] = []
        if positions and model.max_seq_length and model.max_seq_length > positions:
            if self.max_length:
                notes.append(
                    f"max_length {self.max_length} is more than {self.model} can read; using {positions}."
                )
            model.max_seq_length = positions
        model.eval()

        self._num_labels = num_labels
        if num_labels == 2:
            self.scale = ScoreScale.PROBABILITY
        elif self.activation == "model":
            fn = model.activation_fn
            self._apply_model_activation = not isinstance(fn, torch.nn.Identity)
            if isinstance(fn, torch.nn.Sigmoid):
                self.scale = ScoreScale.PROBABILITY
            elif self._apply_model_activation:
                notes.append(f"scores went through the model's activation {type(fn).__name__}.")
        self._notes = tuple(notes)
        self._model = model

    def count_tokens(self, query: str, texts: Sequence[str]) -> list[int]:
        """Tokens of each (query, text) pair as the model sees it before truncation, specials included."""
        from rerank_core.encoders import model_lock

        self.load()
        with model_lock(self._model):  # reentrant: score() holds it already
            enc = self._model.tokenizer(
                [query] * len(texts), list(texts), add_special_tokens=True, truncation=False, verbose=False
            )
        return [len(ids) for ids in enc["input_ids"]]

    def score(self, query: str, candidates: Sequence[Candidate]) -> Scores:
        import torch

        from rerank_core.encoders import model_lock

        model = self._model
        texts = [c.full_text for c in candidates]
        limit = int(model.max_seq_length)
        activation = None if self._apply_model_activation else torch.nn.Identity()
        # one call at a time per model: every session shares it, and its fast tokenizer refuses
        # concurrent use ("Already borrowed"); other models and hosted calls never wait for this lock
        with model_lock(model):
            truncated = [n > limit for n in self.count_tokens(query, texts)]
            raw = model.predict(
                [(query, t) for t in texts],
                batch_size=self.batch_size,
                show_progress_bar=False,
                activation_fn=activation,
                convert_to_tensor=True,
            )
        raw = raw.float().cpu()
        if self._num_labels == 2:
            values = torch.softmax(raw.reshape(len(texts), 2), dim=-1)[:, 1]
        else:
            values = raw.reshape(len(texts))
        return Scores(
            values=values.tolist(),
            truncated=truncated,
            notes=self._notes + truncation_note(truncated, limit, "(query, passage) pairs"),
        )
