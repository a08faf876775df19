"""FlashRank: small cross-encoders run with ONNX Runtime (no torch).

Models are the names of ``flashrank.Config.model_file_map``: ``ms-marco-TinyBERT-L-2-v2`` (default,
about 4 MB), ``ms-marco-MiniLM-L-12-v2``, ``ms-marco-MultiBERT-L-12``, ``ce-esci-MiniLM-L12-v2``,
``rank-T5-flan``, ``miniReranker_arabic_v1``. FlashRank keeps each model in
``<cache_dir>/<model_name>/`` and downloads a zip from the Hugging Face hub only when that folder is
missing. Here the folder is looked for in the cache directory (option ``cache_dir``, else the
``flashrank_cache_dir`` setting, else ``<data_dir>/flashrank``) and then in the models directory
(``<models_dir>/<model_name>/``); a local folder can also be given as the model. When neither has it
and the hub cannot be reached, the method reports :class:`ModelNotFound` at once instead of letting
FlashRank try to download.

Options: ``batch_size`` and ``batch_tokens`` (pairs are sorted by token length and cut into
batches of at most ``batch_size`` pairs, default unlimited, and ``batch_tokens`` padded tokens,
default 4096, then put back in order: FlashRank itself pads every candidate to the longest in one
pass), ``max_length`` (default 512, capped by the model's tokenizer), ``cache_dir``, ``precision``.
Scores are FlashRank's sigmoid (or two-class soft-max) probabilities.

Precision: FlashRank's files are ONNX already, most of them int8 (``ms-marco-TinyBERT-L-2-v2`` is
4.3 MB for 4.4M parameters). ``auto`` (the default) runs the file as it ships and reports what it
is (``onnx-int8`` when the graph has quantised operators, else ``onnx``); ``onnx-int8`` quantises an
fp32 file once into ``<data_dir>/onnx-cache``; ``onnx`` refuses an int8-only file rather than
pretend it runs fp32. FlashRank loads the model (session, tokenizer set to the max length); the scoring
pass repeats ``Ranker.rerank``'s few lines over one tokenization that also yields the truncation
flags (calling ``Ranker.rerank`` and counting tokens apart cost a second tokenization, about 20%
more time for this small model).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rerank_core.batching import DEFAULT_BATCH_TOKENS, length_buckets
from rerank_core.config import Settings
from rerank_core.errors import InvalidMethod, MethodFailed, ModelNotFound
from rerank_core.models import hub_offline, hub_reachable
from rerank_core.precision import AUTO, ONNX, ONNX_INT8, check_precision
from rerank_core.rerankers.base import Reranker
from rerank_core.rerankers.local_common import (
    check_options,
    keep_root_logging,
    positive_int,
    quiet,
    truncation_note,
)
from rerank_core.types import Candidate, Scores, ScoreScale

DEFAULT_MAX_LENGTH = 512


def flashrank_models() -> dict[str, str]:
    """FlashRank's model names mapped to their ONNX file names (the pairwise ones this method runs)."""
    from flashrank.Config import listwise_rankers, model_file_map

    return {name: file for name, file in model_file_map.items() if name not in listwise_rankers}


def _session(path: Path) -> Any:
    """An ONNX Runtime session on ``path`` with as many intra-op threads as torch has.

    FlashRank's own session takes one thread per core whatever the process was told; torch's count
    is what ``[limits] torch_threads`` (or the automatic choice for a shared server) set, so every
    local model keeps to it."""
    import onnxruntime as ort
    import torch

    options = ort.SessionOptions()
    options.intra_op_num_threads = max(1, int(torch.get_num_threads()))
    return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])


class FlashRankReranker(Reranker):
    name = "flashrank"
    scale = ScoreScale.PROBABILITY
    default_model = "ms-marco-TinyBERT-L-2-v2"
    title = "FlashRank"
    description = "ONNX cross-encoder on CPU"
    reads = ("models_dir", "flashrank_cache_dir", "data_dir")
    OPTIONS = {"batch_size", "batch_tokens", "max_length", "cache_dir", "precision"}
    precisions = (AUTO, ONNX, ONNX_INT8)  # FlashRank runs ONNX files only

    def __init__(self, model: str | None = None, settings: Settings | None = None, **options: Any) -> None:
        super().__init__(model=model, settings=settings, **options)
        check_options(self.name, self.options, self.OPTIONS)
        self.batch_size = positive_int(self.name, self.options, "batch_size", None)
        self.batch_tokens = positive_int(self.name, self.options, "batch_tokens", DEFAULT_BATCH_TOKENS)
        self.requested_precision = check_precision(self.name, self.options.get("precision"), self.precisions)
        self.max_length = positive_int(self.name, self.options, "max_length", DEFAULT_MAX_LENGTH)
        cache = self.options.get("cache_dir")
        self.cache_dir = (
            Path(os.path.expanduser(str(cache))) if cache else self.settings.resolved_flashrank_cache_dir
        )
        self._ranker: Any = None
        self._counter: Any = None  # the model's tokenizer without truncation or padding
        self._cutter: Any = None  # the model's tokenizer with truncation, without padding
        self._notes: tuple[str, ...] = ()
        self._limit = DEFAULT_MAX_LENGTH
        self.model_dir: Path | None = None

    @property
    def label(self) -> str:
        return f"FlashRank {self.model_name} (ONNX)"

    def _int8_copy(self, folder: Path, onnx_file: str) -> Path:
        """An int8 copy of an fp32 FlashRank folder, made once under ``<data_dir>/onnx-cache``."""
        from rerank_core.precision import build_once, cache_dir, model_revision

        target = cache_dir(
            self.settings.data_dir, f"flashrank-{self.model_name}", model_revision(folder), ONNX_INT8
        )

        def build(tmp: Path) -> None:
            quantize_flashrank_folder(folder, tmp / self.model_name, onnx_file)

        build_once(target, build)
        return target / self.model_name

    @property
    def model_name(self) -> str:
        """FlashRank's name of the model (the folder name when a path was given)."""
        assert self.model is not None
        return Path(os.path.expanduser(self.model)).name if self._is_path else self.model

    @property
    def _is_path(self) -> bool:
        assert self.model is not None
        return os.sep in self.model or self.model.startswith((".", "~"))

    def _find_model_dir(self, onnx_file: str) -> tuple[Path | None, list[str], Path | None]:
        """(usable folder or None, places looked, an existing folder missing its ONNX file)."""
        name = self.model_name
        if self._is_path:
            bases = [Path(os.path.expanduser(str(self.model))).resolve().parent]
        else:
            bases = [self.cache_dir.resolve()]
            if self.settings.models_dir is not None:
                bases.append(Path(self.settings.models_dir).resolve())
        looked: list[str] = []
        incomplete: Path | None = None
        for base in bases:
            folder = base / name
            if (folder / onnx_file).is_file():
                return folder, looked, None
            if folder.exists():
                looked.append(f"{folder} (exists but has no {onnx_file})")
                incomplete = incomplete or folder
            else:
                looked.append(f"{folder} (no such folder)")
        if not self._is_path and self.settings.models_dir is None:
            looked.append("models directory (not configured: set RERANK_MODELS_DIR)")
        return None, looked, incomplete

    def _load(self) -> None:
        models = flashrank_models()
        name = self.model_name
        if name not in models:
            from flashrank.Config import listwise_rankers

            why = (
                "is a listwise LLM (it needs llama-cpp and a GGUF file), which the flashrank method does not run"
                if name in listwise_rankers
                else "is not a FlashRank model"
            )
            raise InvalidMethod(
                f"{name!r} {why}",
                hint=f"choose one of: {', '.join(models)} (for LLM reranking use the llm method)",
            )
        onnx_file = models[name]
        folder, looked, incomplete = self._find_model_dir(onnx_file)
        layout = (
            f"a folder {name}/ holding {onnx_file}, config.json, tokenizer.json, tokenizer_config.json "
            "and special_tokens_map.json"
        )
        if folder is None:
            if incomplete is not None:
                raise ModelNotFound(
                    name,
                    looked,
                    hint=f"FlashRank does not download into an existing folder: delete {incomplete} "
                    f"(or complete it: {layout}).",
                )
            if self._is_path or not hub_reachable():
                if not self._is_path:
                    why = "HF_HUB_OFFLINE is set" if hub_offline() else "hub unreachable"
                    looked.append(f"FlashRank download from the Hugging Face hub ({why})")
                raise ModelNotFound(
                    name,
                    looked,
                    hint=f"run once with network access (FlashRank downloads it into {self.cache_dir.resolve()}), "
                    f"or put {layout} in the FlashRank cache directory (RERANK_FLASHRANK_CACHE) or the "
                    "models directory (RERANK_MODELS_DIR).",
                )
            folder = self.cache_dir / name  # FlashRank downloads it there

        from rerank_core.precision import is_int8_graph

        notes: list[str] = []
        int8 = is_int8_graph(folder / onnx_file)
        if self.requested_precision == ONNX and int8:
            raise InvalidMethod(
                f"FlashRank {name} ships an int8 file ({onnx_file}); there is no fp32 copy to run as 'onnx'",
                hint="use precision auto or onnx-int8 for this model",
            )
        if self.requested_precision == ONNX_INT8 and not int8:
            folder = self._int8_copy(folder, onnx_file)
            notes.append(f"onnx-int8: {onnx_file} quantised to int8 once, cached in {folder.parent}.")
            int8 = True

        from flashrank import Ranker
        from tokenizers import Tokenizer

        with keep_root_logging(), quiet():
            ranker = Ranker(
                model_name=name, cache_dir=str(folder.parent), max_length=self.max_length, log_level="WARNING"
            )
        if getattr(ranker, "llm_model", None) is not None or not hasattr(ranker, "session"):
            raise MethodFailed(f"FlashRank loaded {name} without an ONNX session")
        ranker.session = _session(folder / onnx_file)
        counter = Tokenizer.from_str(ranker.tokenizer.to_str())
        counter.no_truncation()
        counter.no_padding()
        cutter = Tokenizer.from_str(ranker.tokenizer.to_str())
        cutter.no_padding()
        truncation = ranker.tokenizer.truncation or {}
        self._limit = int(truncation.get("max_length") or self.max_length or 512)
        self._counter = counter
        self._cutter = cutter
        self._ranker = ranker
        self._notes = tuple(notes)
        self.model_dir = folder
        self.precision = ONNX_INT8 if int8 else ONNX

    @property
    def effective_max_length(self) -> int:
        """Tokens per (query, passage) pair the model reads (after loading)."""
        return self._limit

    def count_tokens(self, query: str, texts: Sequence[str]) -> list[int]:
        """Tokens of each (query, text) pair before truncation, specials included."""
        self.load()
        return [len(e.ids) for e in self._counter.encode_batch([(query, t) for t in texts])]

    def score(self, query: str, candidates: Sequence[Candidate]) -> Scores:
        texts = [c.full_text for c in candidates]
        n = len(texts)
        encodings = self._cutter.encode_batch([(query, t) for t in texts])
        truncated = [bool(e.overflowing) for e in encodings]
        values = [0.0] * n
        lengths = [len(e.ids) for e in encodings]
        for batch in length_buckets(lengths, self.batch_size or max(n, 1), self.batch_tokens):
            for i, v in zip(batch, self._run([encodings[i] for i in batch]), strict=True):
                values[i] = v
        return Scores(
            values=values,
            truncated=truncated,
            notes=self._notes + truncation_note(truncated, self._limit, "(query, passage) pairs"),
        )

    def _run(self, encodings: list[Any]) -> list[float]:
        """One ONNX pass, as ``flashrank.Ranker.rerank`` does it, over encodings made once.

        FlashRank's own ``rerank`` tokenizes internally and keeps no trace of truncation; doing the
        pass here with its session and tokenizer lets one tokenization give both the model inputs and
        the truncation flags. Inputs are fed by the names the ONNX graph declares.
        """
        import numpy as np

        longest = max(len(e.ids) for e in encodings)
        pad = int((self._ranker.tokenizer.padding or {}).get("pad_id", 0))
        columns = {
            "input_ids": [e.ids + [pad] * (longest - len(e.ids)) for e in encodings],
            "attention_mask": [e.attention_mask + [0] * (longest - len(e.ids)) for e in encodings],
            "token_type_ids": [e.type_ids + [0] * (longest - len(e.ids)) for e in encodings],
        }
        wanted = {i.name for i in self._ranker.session.get_inputs()}
        feed = {name: np.asarray(rows, dtype=np.int64) for name, rows in columns.items() if name in wanted}
        logits = np.asarray(self._ranker.session.run(None, feed)[0], dtype=np.float32)
        if logits.ndim == 1 or logits.shape[1] == 1:
            probs = 1 / (1 + np.exp(-logits.reshape(-1)))
        else:
            exp = np.exp(logits - logits.max(axis=1, keepdims=True))
            probs = exp[:, 1] / exp.sum(axis=1)
        return [float(p) for p in probs]


def quantize_flashrank_folder(source: Path, target: Path, onnx_file: str) -> None:
    """Copy a FlashRank model folder to ``target`` with its ONNX file quantised to int8
    (:func:`rerank_core.precision.quantize_file`)."""
    import shutil

    from rerank_core.precision import quantize_file

    target.mkdir(parents=True, exist_ok=True)
    for item in source.iterdir():
        if item.is_file() and item.name != onnx_file:
            shutil.copy2(item, target / item.name)
    quantize_file(source / onnx_file, target / onnx_file)
