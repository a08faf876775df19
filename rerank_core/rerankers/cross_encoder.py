"""Cross-encoder reranking with sentence-transformers' ``CrossEncoder``.

Each (query, passage) pair goes through the model together; the model gives one number per pair.
Known models: ``cross-encoder/ms-marco-MiniLM-L-6-v2`` (default), ``BAAI/bge-reranker-base``,
``BAAI/bge-reranker-v2-m3`` (XLM-R), ``Alibaba-NLP/gte-reranker-modernbert-base`` (ModernBERT,
8k tokens), ``Qwen/Qwen3-Reranker-0.6B`` (a causal LM scored by logit("yes") - logit("no")),
sequence-classification conversions of LLM rerankers (``mixedbread-ai/mxbai-rerank-base-v2``
conversions, ``tomaarsen/Qwen3-Reranker-0.6B-seq-cls``), ``jinaai/jina-reranker-v2-base-multilingual``
(custom code: needs ``trust_remote_code``); any hub id or local folder works.

Two ways to read a pair:

- **pair mode** (BERT, XLM-R, ModernBERT classifiers): the tokenizer joins query and passage with
  the model's own separators; the passage loses its end when the pair is too long;
- **prompt mode** (causal-LM rerankers, and Qwen2/Qwen3 sequence-classification conversions, or
  any model given a ``prompt_template``): one text made from the template, in which
  ``{instruction}``, ``{query}`` and ``{document}`` are replaced; the document loses its end when
  the prompt is too long, the text after ``{document}`` is always kept. Qwen3-Reranker's own prompt
  is the default template for these models.

Options (``[methods.cross-encoder]`` in rerank.toml, or keyword arguments):

- ``precision`` (default fp32): ``fp32``, ``bf16``, ``onnx``, ``onnx-int8``, ``openvino``, ``openvino-int8`` or ``auto`` (see
  :mod:`rerank_core.precision`); causal-LM rerankers have no ONNX or OpenVINO path;
- ``batch_size`` (default 32) and ``batch_tokens`` (default 4096): pairs are sorted by token
  length and cut into batches of at most ``batch_size`` pairs and ``batch_tokens`` padded tokens,
  then the scores are put back in the candidates' order (see :mod:`rerank_core.batching`);
- ``max_length`` (default: the model's own, e.g. 512): tokens per pair or prompt; longer ones are
  cut and flagged ``truncated``;
- ``activation``: ``"none"`` (default) gives the raw relevance logits (log-odds yes/no for causal
  LMs), ``"model"`` applies the activation the model was saved with (a sigmoid for the bge
  rerankers). The score scale says which. Two-class models score the soft-max probability of the
  second class;
- ``instruction``: the task description put in the prompt (prompt mode only; Qwen3-Reranker's
  default is "Given a web search query, retrieve relevant passages that answer the query");
- ``prompt_template``: the prompt for prompt mode, with ``{query}`` and ``{document}`` (and
  optionally ``{instruction}``) placeholders, ``{document}`` last;
- ``trust_remote_code`` (default false): allow a model that ships its own Python code to run it.
  Off unless set; when on, every result carries a warning note.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rerank_core.batching import DEFAULT_BATCH_TOKENS, length_buckets
from rerank_core.config import Settings
from rerank_core.errors import InvalidMethod, MethodFailed
from rerank_core.models import resolve_model
from rerank_core.precision import (
    CONVERTED,
    DECODER,
    ENCODER,
    OPENVINO,
    OPENVINO_INT8,
    PRECISIONS,
    autocast,
    check_precision,
    load_converted,
    resolve,
)
from rerank_core.rerankers.base import Reranker
from rerank_core.rerankers.local_common import check_options, one_of, positive_int, truncation_note
from rerank_core.types import Candidate, Scores, ScoreScale

KNOWN_MODELS: tuple[str, ...] = (
    "cross-encoder/ms-marco-MiniLM-L-6-v2",
    "BAAI/bge-reranker-base",
    "BAAI/bge-reranker-v2-m3",
    "Alibaba-NLP/gte-reranker-modernbert-base",
    "Qwen/Qwen3-Reranker-0.6B",
    "jinaai/jina-reranker-v2-base-multilingual",
)
_ROBERTA_LIKE = {"roberta", "xlm-roberta", "camembert", "xlm-roberta-xl"}  # positions start after the pad id

#: Qwen3-Reranker's prompt (its model card); also what its sequence-classification conversions expect
QWEN3_TEMPLATE = (
    "<|im_start|>system\nJudge whether the Document meets the requirements based on the Query and the "
    'Instruct provided. Note that the answer can only be "yes" or "no".<|im_end|>\n'
    "<|im_start|>user\n<Instruct>: {instruction}\n<Query>: {query}\n<Document>: {document}<|im_end|>\n"
    "<|im_start|>assistant\n<think>\n\n</think>\n\n"
)
QWEN3_INSTRUCTION = "Given a web search query, retrieve relevant passages that answer the query"
# sequence-classification models that read a prompt, not a (query, passage) pair
_PROMPT_CLASSIFIERS = {"Qwen2ForSequenceClassification", "Qwen3ForSequenceClassification"}
REMOTE_CODE_WARNING = (
    "trust_remote_code is on: this model runs Python code from its own files; use it only with a "
    "model source you trust."
)


def check_template(method: str, template: str) -> str:
    """A prompt template with ``{query}`` and a last ``{document}``; :class:`InvalidMethod` otherwise."""
    hint = (
        "write the prompt with {query} and {document} placeholders (and {instruction} if the model "
        "takes one), {document} after the others, for example: '<Query>: {query}\\n<Document>: {document}'"
    )
    if template.count("{document}") != 1 or "{query}" not in template:
        raise InvalidMethod(
            f"{method} option prompt_template must contain {{query}} and exactly one {{document}}", hint=hint
        )
    tail = template.split("{document}", 1)[1]
    if "{query}" in tail or "{instruction}" in tail:
        raise InvalidMethod(f"{method} option prompt_template must put {{document}} last", hint=hint)
    return template


def _config_dict(location: str, local: bool) -> dict:
    """The model's config.json as a dict, read without running any code."""
    if local and Path(location, "config.json").is_file():
        return json.loads(Path(location, "config.json").read_text(encoding="utf-8"))
    from transformers import PretrainedConfig

    config, _ = PretrainedConfig.get_config_dict(location, local_files_only=local)
    return config


class CrossEncoderReranker(Reranker):
    name = "cross-encoder"
    scale = ScoreScale.LOGIT
    default_model = KNOWN_MODELS[0]
    title = "Cross-encoder"
    description = "query and passage read together (sentence-transformers CrossEncoder)"
    precisions = PRECISIONS
    OPTIONS = {
        "batch_size",
        "batch_tokens",
        "max_length",
        "activation",
        "precision",
        "instruction",
        "prompt_template",
        "trust_remote_code",
    }

    def __init__(self, model: str | None = None, settings: Settings | None = None, **options: Any) -> None:
        super().__init__(model=model, settings=settings, **options)
        check_options(self.name, self.options, self.OPTIONS)
        self.batch_size: int = positive_int(self.name, self.options, "batch_size", 32) or 32
        self.batch_tokens = positive_int(self.name, self.options, "batch_tokens", DEFAULT_BATCH_TOKENS)
        self.max_length = positive_int(self.name, self.options, "max_length", None)
        self.activation = one_of(self.name, self.options, "activation", ("none", "model"))
        self.requested_precision = check_precision(self.name, self.options.get("precision"))
        self.instruction = self._text_option("instruction")
        template = self._text_option("prompt_template")
        self.prompt_template = check_template(self.name, template) if template is not None else None
        if (
            self.instruction is not None
            and self.prompt_template
            and "{instruction}" not in self.prompt_template
        ):
            raise InvalidMethod(
                f"{self.name}: an instruction was given but prompt_template has no {{instruction}} placeholder",
                hint="add {instruction} to prompt_template, or leave the instruction out",
            )
        trust = self.options.get("trust_remote_code", False)
        if not isinstance(trust, bool):
            raise InvalidMethod(
                f"{self.name} option trust_remote_code={trust!r} is not true or false",
                hint="set trust_remote_code = true only for a model whose code you trust (default false)",
            )
        self.trust_remote_code = trust
        self.scale = ScoreScale.LOGIT  # settled when the model is loaded (see _load)
        self._model: Any = None
        self._num_labels = 1
        self._apply_model_activation = False
        self._notes: tuple[str, ...] = ()
        self._template: str | None = None  # the prompt in use (prompt mode), set by _load
        self._causal = False

    def _text_option(self, key: str) -> str | None:
        value = self.options.get(key)
        if value is None:
            return None
        if not isinstance(value, str) or not value.strip():
            raise InvalidMethod(
                f"{self.name} option {key}={value!r} is not a non-empty text",
                hint=f"set {key} to a text, or leave it out",
            )
        return value

    @property
    def label(self) -> str:
        what = {ScoreScale.LOGIT: "raw logits", ScoreScale.PROBABILITY: "probabilities"}.get(
            self.scale, str(self.scale)
        )
        if self._causal and self.scale == ScoreScale.LOGIT:
            what = 'log-odds of "yes"'
        return f"cross-encoder {self.model} ({what})"

    @property
    def takes_instruction(self) -> bool:
        """The model reads a prompt with an ``{instruction}`` slot (so the UI can offer the field).

        Before loading, the model's config.json is read (no weights, no code run); a model that
        cannot be found takes none.
        """
        template = self._template
        if self._model is None:
            try:
                resolved = resolve_model(self.model or "", self.settings.models_dir, marker="config.json")
                template = self._pick_template(_config_dict(resolved.location, resolved.is_local))
            except Exception:  # noqa: BLE001 - unknown model: no field to offer
                return False
        return template is not None and "{instruction}" in template

    def _pick_template(self, config: dict) -> str | None:
        """The prompt this model reads, or None for (query, passage) pairs."""
        architectures = list(config.get("architectures") or [])
        if self.prompt_template is not None:
            return self.prompt_template
        if any(a.endswith("ForCausalLM") for a in architectures) or set(architectures) & _PROMPT_CLASSIFIERS:
            return QWEN3_TEMPLATE
        return None

    @property
    def effective_max_length(self) -> int | None:
        """Tokens per pair (or prompt) after loading: the model's limit or ``max_length``."""
        return None if self._model is None else int(self._model.max_seq_length)

    # -- loading -----------------------------------------------------------------------------------
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
        config = _config_dict(resolved.location, resolved.is_local)
        notes: list[str] = []
        if config.get("auto_map") and not self.trust_remote_code:
            raise InvalidMethod(
                f"{self.model} ships its own model code (auto_map in its config.json), which runs only "
                "with trust_remote_code",
                hint="if you trust the model's source, set trust_remote_code = true under "
                "[methods.cross-encoder] (or pass it as an option); otherwise choose another model",
            )
        if self.trust_remote_code:
            notes.append(REMOTE_CODE_WARNING)
        self._causal = any(a.endswith("ForCausalLM") for a in config.get("architectures") or [])
        self._template = self._pick_template(config)
        if self.instruction is not None and self._template is None:
            raise InvalidMethod(
                f"{self.model} reads (query, passage) pairs and takes no instruction",
                hint="leave the instruction out, or give a prompt_template with an {instruction} "
                "placeholder if the model was trained with one",
            )
        choice = resolve(self.requested_precision, DECODER if self._causal else ENCODER)
        if choice.reason:
            notes.append(choice.reason + ".")

        import torch
        from sentence_transformers import CrossEncoder

        load_kwargs: dict[str, Any] = {
            "device": self.settings.device or "cpu",
            "max_length": self.max_length,
            "local_files_only": resolved.is_local,
            "trust_remote_code": self.trust_remote_code,
        }
        if choice.precision in CONVERTED:
            if self._causal and choice.precision in (OPENVINO, OPENVINO_INT8):
                raise InvalidMethod(
                    f"{self.model} is a causal-LM reranker; precision {choice.precision} runs encoder "
                    "cross-encoders only",
                    hint="choose precision fp32 or bf16 for this model",
                )
            model, how = load_converted(
                CrossEncoder,
                resolved.location,
                self.model,
                choice.precision,
                self.settings.data_dir,
                is_local=resolved.is_local,
                load_kwargs=load_kwargs,
                pairs=True,
            )
            notes.append(how + ".")
        else:
            model = CrossEncoder(resolved.location, **load_kwargs)
        num_labels = int(model.num_labels)
        if num_labels > 2:
            raise InvalidMethod(
                f"{self.model} has {num_labels} output labels; a reranker needs one relevance logit "
                "(or two classes: not relevant / relevant)",
                hint="choose a cross-encoder trained for reranking, e.g. " + ", ".join(KNOWN_MODELS),
            )
        model_config = model.config
        positions = getattr(model_config, "max_position_embeddings", None)
        if positions and model_config.model_type in _ROBERTA_LIKE:
            positions -= int(model_config.pad_token_id or 0) + 1
        if positions and model.max_seq_length and model.max_seq_length > positions:
            if self.max_length:
                notes.append(
                    f"max_length {self.max_length} is more than {self.model} can read; using {positions}."
                )
            model.max_seq_length = positions
        if not model.max_seq_length:
            model.max_seq_length = positions or 512
        tokenizer = model.tokenizer
        if tokenizer.pad_token_id is None:
            if tokenizer.eos_token_id is None:
                raise MethodFailed(f"{self.model}'s tokenizer has no padding or end-of-text token")
            tokenizer.pad_token = tokenizer.eos_token
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
        self.precision = choice.precision

    # -- tokens ------------------------------------------------------------------------------------
    def _prompt_parts(self, query: str) -> tuple[str, str]:
        """The prompt before the document (instruction and query filled in) and the text after it."""
        assert self._template is not None
        head, tail = self._template.split("{document}", 1)
        instruction = self.instruction if self.instruction is not None else QWEN3_INSTRUCTION
        return head.replace("{instruction}", instruction).replace("{query}", query), tail

    def _encode(self, query: str, texts: Sequence[str]) -> tuple[list[dict[str, list[int]]], list[int]]:
        """Model inputs of each pair (cut at the limit) and each pair's length before cutting."""
        tokenizer = self._model.tokenizer
        limit = int(self._model.max_seq_length)
        if self._template is None:
            full = tokenizer([query] * len(texts), list(texts), truncation=False, verbose=False)
            cut = tokenizer(
                [query] * len(texts), list(texts), truncation="longest_first", max_length=limit, verbose=False
            )
            keys = [k for k in ("input_ids", "attention_mask", "token_type_ids") if k in cut]
            rows = [{k: list(cut[k][i]) for k in keys} for i in range(len(texts))]
            return rows, [len(ids) for ids in full["input_ids"]]
        head, tail = self._prompt_parts(query)
        head_ids = tokenizer(head, add_special_tokens=False, verbose=False)["input_ids"]
        tail_ids = tokenizer(tail, add_special_tokens=False, verbose=False)["input_ids"] if tail else []
        bodies = tokenizer([head + t for t in texts], add_special_tokens=False, verbose=False)["input_ids"]
        budget = limit - len(tail_ids) - tokenizer.num_special_tokens_to_add(pair=False)
        if budget <= len(head_ids):
            raise MethodFailed(
                f"{self.method_name}: the prompt without the document already takes {len(head_ids) + len(tail_ids)} "
                f"tokens, more than max_length {limit}",
                hint="raise max_length, or shorten the instruction, the query or the prompt_template",
            )
        rows = []
        lengths = []
        for body in bodies:
            ids = tokenizer.build_inputs_with_special_tokens(list(body[:budget]) + list(tail_ids))
            rows.append({"input_ids": ids, "attention_mask": [1] * len(ids)})
            lengths.append(len(body) + len(ids) - min(len(body), budget))
        return rows, lengths

    def count_tokens(self, query: str, texts: Sequence[str]) -> list[int]:
        """Tokens of each pair (or prompt) as the model sees it before truncation, specials included."""
        from rerank_core.encoders import model_lock

        self.load()
        with model_lock(self._model):  # reentrant: score() holds it already
            return self._encode(query, texts)[1]

    def _batch(self, rows: list[dict[str, list[int]]]) -> dict[str, Any]:
        """Pad a batch to its longest row (on the left for causal LMs, whose score is the last position)."""
        import torch

        longest = max(len(r["input_ids"]) for r in rows)
        pad = int(self._model.tokenizer.pad_token_id)
        features: dict[str, Any] = {}
        for key in rows[0]:
            fill = pad if key == "input_ids" else 0
            padded = []
            for r in rows:
                gap = [fill] * (longest - len(r[key]))
                padded.append(gap + r[key] if self._causal else r[key] + gap)
            features[key] = torch.tensor(padded, dtype=torch.long)
        if self._causal:
            features["logits_to_keep"] = 1
        return features

    # -- scoring -----------------------------------------------------------------------------------
    def score(self, query: str, candidates: Sequence[Candidate]) -> Scores:
        import torch

        from rerank_core.encoders import model_lock

        model = self._model
        texts = [c.full_text for c in candidates]
        limit = int(model.max_seq_length)
        # one call at a time per model: every session shares it, and its fast tokenizer refuses
        # concurrent use ("Already borrowed"); other models and hosted calls never wait for this lock
        with model_lock(model):
            rows, lengths = self._encode(query, texts)
            truncated = [n > limit for n in lengths]
            width = 2 if self._num_labels == 2 else 1
            raw = torch.zeros((len(texts), width), dtype=torch.float32)
            with torch.inference_mode(), autocast(self.precision):
                for batch in length_buckets(
                    [len(r["input_ids"]) for r in rows], self.batch_size, self.batch_tokens
                ):
                    out = model(self._batch([rows[i] for i in batch]))["scores"]
                    raw[batch] = out.float().reshape(len(batch), width).cpu()
        if self._num_labels == 2:
            values = torch.softmax(raw, dim=-1)[:, 1]
        else:
            values = raw.reshape(len(texts))
            if self._apply_model_activation:
                values = model.activation_fn(values)
        what = "(query, passage) pairs" if self._template is None else "prompts"
        return Scores(
            values=values.tolist(),
            truncated=truncated,
            notes=self._notes + truncation_note(truncated, limit, what),
        )
