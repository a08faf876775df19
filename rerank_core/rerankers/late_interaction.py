"""Zero-shot late interaction: MaxSim over a sentence-transformers model's token embeddings.

This is the ColBERT scoring rule (for each query token, the best cosine over the document's tokens,
summed over query tokens) applied to the contextual token embeddings of an ordinary bi-encoder,
by default the packaged all-MiniLM-L6-v2. It runs fully offline, but it is NOT a trained ColBERT:
the model never learnt to make token-level matches meaningful, and the label says so.

Token choice: padding and the tokenizer's special tokens ([CLS], [SEP], and any BOS/EOS/PAD/MASK)
are dropped on both sides; [UNK] and punctuation are kept, since they stand for real text. Every
remaining token vector is L2-normalised, so a dot product is a cosine.

Document token embeddings are computed once per text and kept in a token store on disk
(:class:`rerank_core.artifacts.TokenStore` in the cache folder), keyed by
:attr:`Candidate.text_hash` (title + text, the text the model sees), as float16 to halve the size,
memory-mapped when read, bounded in size (``token_store_max_mb``), shared by every session and kept
across restarts. :meth:`LateInteractionReranker.prepare` fills the store for a whole corpus; at query
time only the query is encoded, and candidates missing from the store are encoded and added.
``cache_documents=False`` turns the store off, so every candidate is encoded on every query (the
baseline the store is measured against).
Document vectors are rounded to float16 whether or not they are stored, so scores do not depend on
the store.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from rerank_core.artifacts import TokenMatrix, TokenStore, encoder_identity, text_key, token_store
from rerank_core.config import Settings
from rerank_core.encoders import (
    encoder_precision,
    encoding,
    load_sentence_transformer,
    model_lock,
    short_model_name,
)
from rerank_core.errors import ConfigError, MethodFailed
from rerank_core.models import MINILM_ID, resolve_model
from rerank_core.precision import ENCODER, PRECISIONS, auto_note, check_precision
from rerank_core.progress import ProgressFn, report
from rerank_core.rerankers.base import Reranker
from rerank_core.types import Candidate, Corpus, Scores, ScoreScale

DEFAULTS: dict[str, Any] = {
    "batch_size": 32,
    "cache_documents": True,
    "token_store_max_mb": 8192,
    "precision": None,
}
STORE_DTYPE = np.float16
text_hash = text_key  # the store key of a text; equal to Candidate.text_hash for the same title + text
__all__ = ["LateInteractionReranker", "TokenMatrix", "maxsim_scores", "text_hash"]


def maxsim_scores(query: np.ndarray, documents: Sequence[np.ndarray]) -> np.ndarray:
    """``sum over query tokens of max over document tokens of q . d`` for every document.

    ``query`` is (q, dim); each document is (n_i, dim). Vectors are expected unit length (then the
    dot product is a cosine). All documents are scored with one matrix product: their token rows
    are stacked and the per-document maximum is taken with ``np.maximum.reduceat`` over segment
    starts, so no padding is allocated. A document (or query) with no tokens scores 0.
    """
    n = len(documents)
    out = np.zeros(n, dtype=np.float32)
    if n == 0 or query.shape[0] == 0:
        return out
    lengths = np.array([d.shape[0] for d in documents])
    nonempty = np.flatnonzero(lengths > 0)
    if nonempty.size == 0:
        return out
    stacked = np.concatenate([documents[int(i)] for i in nonempty], axis=0).astype(np.float32, copy=False)
    sims = stacked @ np.asarray(query, dtype=np.float32).T  # (total tokens, q)
    starts = np.concatenate(([0], np.cumsum(lengths[nonempty])[:-1]))
    best = np.maximum.reduceat(sims, starts, axis=0)  # (documents, q): best document token per query token
    out[nonempty] = best.sum(axis=1)
    return out


def _check_options(options: dict[str, Any]) -> dict[str, Any]:
    opts = {**DEFAULTS, **options}
    unknown = set(opts) - set(DEFAULTS)
    if unknown:
        raise ConfigError(
            f"unknown late-interaction option(s): {', '.join(sorted(unknown))}.",
            hint=f"late-interaction options are: {', '.join(DEFAULTS)}",
        )
    if not isinstance(opts["batch_size"], int) or opts["batch_size"] < 1:
        raise ConfigError(
            f"late-interaction batch_size must be a positive integer, not {opts['batch_size']!r}.",
            hint="for example 32",
        )
    opts["cache_documents"] = bool(opts["cache_documents"])
    opts["precision"] = check_precision("late-interaction", opts["precision"])
    try:
        opts["token_store_max_mb"] = float(opts["token_store_max_mb"])
    except (TypeError, ValueError):
        opts["token_store_max_mb"] = -1.0
    if opts["token_store_max_mb"] <= 0:
        raise ConfigError(
            f"late-interaction token_store_max_mb must be a positive number of megabytes, not "
            f"{options.get('token_store_max_mb')!r}.",
            hint="for example 8192 (8 GB on disk)",
        )
    return opts


class LateInteractionReranker(Reranker):
    """MaxSim over token embeddings of a sentence-transformers model (not a trained ColBERT)."""

    name: ClassVar[str] = "late-interaction"
    scale: ScoreScale = ScoreScale.MAXSIM
    default_model: ClassVar[str | None] = MINILM_ID
    reads: ClassVar[tuple[str, ...]] = ("models_dir", "device", "data_dir", "cache_dir")
    precisions: ClassVar[tuple[str, ...]] = PRECISIONS
    title: ClassVar[str] = "Late interaction"
    description: ClassVar[str] = "MaxSim over the MiniLM token embeddings: zero-shot, not a trained ColBERT"

    def __init__(self, model: str | None = None, settings: Settings | None = None, **options: Any) -> None:
        super().__init__(model=model, settings=settings, **options)
        self.options = _check_options(self.options)
        self._encoder: Any = None
        self._max_length = 512
        self._store: TokenStore | None = None

    @property
    def label(self) -> str:
        return f"zero-shot MaxSim over {short_model_name(self.model or '')} token embeddings — not a trained ColBERT"

    @property
    def cache_documents(self) -> bool:
        return self.options["cache_documents"]

    # -- loading and encoding ----------------------------------------------------------------
    def _load(self) -> None:
        # its own copy of the model, behind its own lock: a query's token encode never waits for the
        # bi-encoder's or the dense index's use of the same weights
        encoder = load_sentence_transformer(
            self.model or MINILM_ID, self.settings, precision=self.options["precision"], copy="tokens"
        )
        if getattr(encoder, "tokenizer", None) is None:
            raise MethodFailed(
                f"{self.method_name}: the model has no text tokenizer, so it has no token embeddings to compare.",
                hint="use a text sentence-transformers model such as sentence-transformers/all-MiniLM-L6-v2",
            )
        self._max_length = int(encoder.max_seq_length or encoder.tokenizer.model_max_length)
        if self.cache_documents:
            location = resolve_model(self.model or MINILM_ID, self.settings.models_dir).location
            identity = encoder_identity(
                location, encoder_precision(encoder), tokens=True, max_length=self._max_length
            )
            self._store = token_store(
                self.settings.resolved_cache_dir,
                identity,
                {"model": self.model, "location": location, "max_length": self._max_length},
                max_bytes=int(self.options["token_store_max_mb"] * 1024 * 1024),
            )
        self._encoder = encoder
        self.precision = encoder_precision(encoder)
        self.precision_note = auto_note(self.options["precision"], ENCODER)

    def _kept_tokens(self, texts: list[str]) -> tuple[list[np.ndarray], list[bool]]:
        """Per text: which positions of the model's (truncated) token sequence to keep, and whether
        the text was longer than the model's maximum length.

        Positions of the special tokens the tokenizer adds ([CLS], [SEP], ...) are dropped; [UNK]
        and punctuation come from the text and are kept.
        """
        tokenizer = self._encoder.tokenizer
        stripped = [t.strip() for t in texts]  # sentence-transformers strips texts before tokenising
        cut = tokenizer(
            stripped,
            add_special_tokens=True,
            truncation=True,
            max_length=self._max_length,
            return_special_tokens_mask=True,
            return_overflowing_tokens=True,  # one pass: a text that overflows was cut
            verbose=False,
        )
        samples = cut.get("overflow_to_sample_mapping")
        if samples is None:  # a slow tokenizer: no sample mapping, tokenise again without the limit
            full = tokenizer(stripped, add_special_tokens=True, truncation=False, verbose=False)
            keep = [np.asarray(mask, dtype=np.int8) == 0 for mask in cut["special_tokens_mask"]]
            return keep, [len(ids) > self._max_length for ids in full["input_ids"]]
        kept: list[np.ndarray | None] = [None] * len(texts)
        truncated = [False] * len(texts)
        for row, sample in enumerate(samples):
            if kept[sample] is None:  # the first window of a text is what the model reads
                kept[sample] = np.asarray(cut["special_tokens_mask"][row], dtype=np.int8) == 0
            else:
                truncated[sample] = True
        return [k if k is not None else np.zeros(0, dtype=bool) for k in kept], truncated

    def encode_tokens(self, texts: list[str], *, document: bool = True) -> list[TokenMatrix]:
        """Kept, unit-length token vectors of each text (float16 for documents, float32 for queries)."""
        if not texts:
            return []
        self.load()
        with model_lock(self._encoder), encoding(self._encoder):
            outputs = self._encoder.encode(
                texts,
                batch_size=self.options["batch_size"],
                output_value="token_embeddings",
                show_progress_bar=False,
            )
            keeps, truncated = self._kept_tokens(texts)
        result = []
        for text, out, keep, cut in zip(texts, outputs, keeps, truncated, strict=True):
            vectors = out.float().cpu().numpy()  # padding already trimmed by sentence-transformers
            if vectors.shape[0] != keep.shape[0]:
                raise MethodFailed(
                    f"{self.method_name}: the model returned {vectors.shape[0]} token vectors for a text its "
                    f"tokenizer splits into {keep.shape[0]} tokens ({text[:40]!r}...).",
                    hint="use a sentence-transformers model whose first module is a plain Transformer",
                )
            vectors = vectors[keep]
            norms = np.linalg.norm(vectors, axis=1, keepdims=True)
            vectors = vectors / np.maximum(norms, 1e-12)
            result.append(
                TokenMatrix(vectors=vectors.astype(STORE_DTYPE if document else np.float32), truncated=cut)
            )
        return result

    # -- the document store ------------------------------------------------------------------
    @property
    def store(self) -> TokenStore | None:
        """The token store (None with ``cache_documents=False``); loads the model first."""
        if not self.cache_documents:
            return None
        self.load()
        return self._store

    @property
    def store_size(self) -> int:
        """How many distinct document texts have token embeddings in the store."""
        store = self.store
        return len(store) if store is not None else 0

    @property
    def store_bytes(self) -> int:
        store = self.store
        return store.nbytes if store is not None else 0

    def clear_store(self) -> None:
        store = self.store
        if store is not None:
            store.clear()

    def prepared(self, corpus: Corpus) -> bool:
        """Every document of ``corpus`` has its token embeddings in the store."""
        store = self.store
        return store is None or not store.missing([text_key(d.full_text) for d in corpus])

    def prepare(self, corpus: Corpus, progress: ProgressFn | None = None) -> None:
        """Encode every document of ``corpus`` not yet in the store (no-op with ``cache_documents=False``).

        Two sessions (or processes) preparing the same corpus encode it once: the store's build lock."""
        store = self.store
        if store is None:
            return
        keys = [text_key(d.full_text) for d in corpus]
        if not store.missing(keys):
            return
        with store.building():
            texts = dict(zip(keys, (d.full_text for d in corpus), strict=True))
            todo = store.missing(keys)
            total = len(todo)
            message = f"late-interaction: encoding document tokens with {short_model_name(self.model or '')}"
            report(progress, 0, total, message)
            chunk = max(self.options["batch_size"] * 8, 256)
            for start in range(0, total, chunk):
                part = todo[start : start + chunk]
                store.put(part, self.encode_tokens([texts[k] for k in part]))
                report(progress, min(start + chunk, total), total, message)

    def _documents(self, candidates: Sequence[Candidate]) -> tuple[list[TokenMatrix], int]:
        """Token matrices for the candidates (from the store where possible) and how many were encoded now."""
        keys = [c.text_hash for c in candidates]
        store = self.store
        if store is None:
            return self.encode_tokens([c.full_text for c in candidates]), len(candidates)
        missing = store.missing(keys)
        if missing:
            by_key = {c.text_hash: c.full_text for c in candidates}
            with store.building():
                missing = store.missing(keys)
                if missing:
                    store.put(missing, self.encode_tokens([by_key[k] for k in missing]))
        return [store.get(k) for k in keys], len(missing)

    # -- scoring -----------------------------------------------------------------------------
    def score(self, query: str, candidates: Sequence[Candidate]) -> Scores:
        query_matrix = self.encode_tokens([query], document=False)[0]
        docs, encoded_now = self._documents(candidates)
        values = maxsim_scores(query_matrix.vectors, [d.vectors for d in docs])
        notes: list[str] = []
        if query_matrix.truncated:
            notes.append(f"the query was cut at {self._max_length} tokens")
        if not self.cache_documents:
            notes.append("document store off: every candidate was encoded at query time")
        elif self._store is not None and self._store.problem:
            notes.append(self._store.problem)
        elif encoded_now:
            notes.append(f"{encoded_now} candidate text(s) were not prepared and were encoded at query time")
        empty = sum(1 for d in docs if d.vectors.shape[0] == 0)
        if empty:
            notes.append(f"{empty} candidate(s) have no text tokens and score 0")
        return Scores(values=values.tolist(), truncated=[d.truncated for d in docs], notes=tuple(notes))
