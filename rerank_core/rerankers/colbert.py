"""ColBERT late-interaction reranking through RAGatouille 0.0.9.post2 (Stanford ColBERT backend).

The query and each passage are encoded into one vector per token; a passage's score is the sum over
query tokens of the best dot product with any of its tokens (MaxSim). It uses RAGatouille's
index-free ``rerank``: nothing is indexed, every call encodes the candidates.

Models: ``colbert-ir/colbertv2.0`` (default), ``answerdotai/answerai-colbert-small-v1``, or a local
checkpoint folder. A usable folder holds ``artifact.metadata`` (written by colbert-ai next to the
weights); a plain BERT or sentence-transformers folder is not a ColBERT checkpoint (for MaxSim over
MiniLM token vectors use the ``late-interaction`` method). Local folders are handed over as absolute
paths: RAGatouille treats anything else as a hub id.

Options: ``max_length`` (passage tokens, default the model's limit: max positions - 4, 508 for
BERT), ``batch_size`` (passages per encoding batch, default 32), ``precision``: ``fp32``
(default), ``bf16`` (torch autocast around RAGatouille's encoding) or ``auto`` (bf16 where the CPU
has AMX-BF16, else fp32). RAGatouille has no ONNX path, so ``onnx``/``onnx-int8`` are refused.

The first load compiles colbert-ai's C++ MaxSim extension (about 30 s on 2 cores); it is cached in
``TORCH_EXTENSIONS_DIR``, which is pointed at ``<data_dir>/torch_extensions`` unless already set.
"""

from __future__ import annotations

import os
import threading
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rerank_core.config import Settings
from rerank_core.errors import MethodFailed, ModelNotFound
from rerank_core.models import resolve_model
from rerank_core.precision import TORCH_ONLY, TORCH_PRECISIONS, autocast, check_precision, resolve
from rerank_core.rerankers.base import Reranker
from rerank_core.rerankers.local_common import check_options, positive_int, quiet, truncation_note
from rerank_core.types import Candidate, Scores, ScoreScale

KNOWN_MODELS: tuple[str, ...] = ("colbert-ir/colbertv2.0", "answerdotai/answerai-colbert-small-v1")
MARKER = "artifact.metadata"


def map_results(results: Sequence[dict], documents: Sequence[str]) -> list[float]:
    """One score per document, in the documents' order, from RAGatouille's ranked result dicts.

    Uses ``result_index`` when present; otherwise matches on ``content``, giving equal texts their
    results in order so duplicates never collide. Raises :class:`MethodFailed` when a document gets
    no score.
    """
    values: list[float | None] = [None] * len(documents)
    if all("result_index" in r for r in results):
        for r in results:
            values[int(r["result_index"])] = float(r["score"])
    else:
        slots: dict[str, list[int]] = defaultdict(list)
        for i, text in enumerate(documents):
            slots[text].append(i)
        for r in results:
            free = slots.get(r["content"])
            if not free:
                raise MethodFailed("RAGatouille returned a passage that was not among the candidates")
            values[free.pop(0)] = float(r["score"])
    missing = [i for i, v in enumerate(values) if v is None]
    if missing:
        raise MethodFailed(f"RAGatouille returned no score for {len(missing)} of {len(documents)} candidates")
    return [float(v) for v in values if v is not None]


class ColbertReranker(Reranker):
    name = "colbert"
    scale = ScoreScale.MAXSIM
    default_model = KNOWN_MODELS[0]
    title = "ColBERT"
    description = "trained late interaction (RAGatouille)"
    OPTIONS = {"max_length", "batch_size", "precision"}
    precisions = TORCH_PRECISIONS

    def __init__(self, model: str | None = None, settings: Settings | None = None, **options: Any) -> None:
        super().__init__(model=model, settings=settings, **options)
        check_options(self.name, self.options, self.OPTIONS)
        self.max_length = positive_int(self.name, self.options, "max_length", None)
        self.batch_size = positive_int(self.name, self.options, "batch_size", 32)
        self.requested_precision = check_precision(self.name, self.options.get("precision"), self.precisions)
        self._rag: Any = None
        self._notes: tuple[str, ...] = ()
        # RAGatouille keeps per-call state (token limits) on the model: one call at a time
        self._call_lock = threading.RLock()  # the model and its tokenizers: one call at a time

    @property
    def label(self) -> str:
        return f"ColBERT {self.model} (MaxSim, RAGatouille)"

    def _load(self) -> None:
        assert self.model is not None
        hint = (
            f"a ColBERT checkpoint folder holds {MARKER} next to its weights; a plain BERT or "
            "sentence-transformers folder is not a ColBERT model (for MaxSim over MiniLM use the "
            f"late-interaction method). Download {' or '.join(KNOWN_MODELS)} once with network access "
            "(it is then cached), or put the checkpoint folder under the models directory "
            "(RERANK_MODELS_DIR) or give its path."
        )
        folder = Path(os.path.expanduser(self.model))
        if folder.is_dir() and not (folder / MARKER).exists():
            raise ModelNotFound(
                self.model,
                [f"{folder.resolve()} (a model folder without {MARKER}: not a ColBERT checkpoint)"],
                hint=hint,
            )
        resolved = resolve_model(self.model, self.settings.models_dir, marker=MARKER, hint=hint)
        os.environ.setdefault(
            "TORCH_EXTENSIONS_DIR", str((Path(self.settings.data_dir) / "torch_extensions").resolve())
        )
        index_root = str((Path(self.settings.data_dir) / "ragatouille").resolve())
        with quiet():
            from ragatouille import RAGPretrainedModel

            rag = RAGPretrainedModel.from_pretrained(resolved.location, verbose=0, index_root=index_root)
        colbert = rag.model
        limit = int(colbert.base_model_max_tokens)
        notes: list[str] = []
        if self.max_length is not None:
            if self.max_length > limit:
                notes.append(
                    f"max_length {self.max_length} is more than {self.model} can read; using {limit}."
                )
            colbert.base_model_max_tokens = min(self.max_length, limit)
        choice = resolve(self.requested_precision, TORCH_ONLY)
        if choice.reason:
            notes.append(choice.reason + ".")
        self._notes = tuple(notes)
        self._rag = rag
        self.precision = choice.precision

    @property
    def effective_max_length(self) -> int | None:
        """Tokens per passage the model reads ([CLS], [D] and [SEP] included), after loading."""
        return None if self._rag is None else int(self._rag.model.base_model_max_tokens)

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Tokens of each passage as ColBERT sees it before truncation: [CLS] [D] text [SEP]."""
        self.load()
        with self._call_lock:  # a fast tokenizer refuses concurrent use ("Already borrowed")
            tok = self._rag.model.inference_ckpt.doc_tokenizer.tok
            enc = tok(list(texts), add_special_tokens=True, truncation=False, verbose=False)
        return [len(ids) + 1 for ids in enc["input_ids"]]  # + the [D] marker

    def score(self, query: str, candidates: Sequence[Candidate]) -> Scores:
        texts = [c.full_text for c in candidates]
        with self._call_lock, quiet(), autocast(self.precision):
            results = self._rag.rerank(query, texts, k=len(texts), bsize=self.batch_size)
            doc_limit = int(self._rag.model.inference_ckpt.doc_tokenizer.doc_maxlen)
            query_limit = int(self._rag.model.inference_ckpt.query_tokenizer.query_maxlen)
        if results is None:
            raise MethodFailed(f"RAGatouille returned no ranking for {len(texts)} candidates")
        if results and isinstance(results[0], list):  # a list per query: we sent one
            results = results[0]
        values = map_results(results, texts)
        truncated = [n > doc_limit for n in self.count_tokens(texts)]
        notes = list(self._notes) + list(truncation_note(truncated, doc_limit))
        with self._call_lock:
            query_tok = self._rag.model.inference_ckpt.query_tokenizer.tok
            query_tokens = len(query_tok(query, add_special_tokens=True)["input_ids"]) + 1  # + the [Q] marker
        if query_tokens > query_limit:
            notes.append(f"the query was cut at {query_limit} tokens.")
        return Scores(values=values, truncated=truncated, notes=tuple(notes))
