"""The one reranker interface.

A backend implements :meth:`Reranker.score` (one float per candidate, in the candidates' order)
and, if it has weights, :meth:`Reranker._load`. The base class does the shared work: input checks,
loading once (timed apart from queries), timing the query (waits for a rate limit's turn excluded),
a stable sort (score descending, ties by first-stage rank), top-k, the result, and turning failures
into a typed error in the result so the other methods go on. Hosted backends fall back to the
first-stage order, flagged; the scores of a fallback are the first stage's, so its result carries the
first stage's scale (given by the caller that knows it, else :attr:`ScoreScale.FIRST_STAGE`), never the
reranker's own.
"""

from __future__ import annotations

import math
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import ClassVar

from rerank_core.config import Settings, load_settings
from rerank_core.errors import BackendUnavailable, MethodFailed, RerankError
from rerank_core.progress import Cancelled, ProgressFn
from rerank_core.types import (
    RERANKER_KIND,
    Candidate,
    Corpus,
    MethodError,
    MethodInfo,
    RankedItem,
    RerankResult,
    Scores,
    ScoreScale,
)


class Reranker(ABC):
    #: registry key, e.g. "cross-encoder"
    name: ClassVar[str] = ""
    #: what the scores mean
    scale: ScoreScale = ScoreScale.LOGIT
    #: the model used when none is given
    default_model: ClassVar[str | None] = None
    #: a hosted API: failures fall back to the first-stage order instead of no order
    hosted: ClassVar[bool] = False
    #: what the app shows: a short title and one line on what it does
    title: ClassVar[str] = ""
    description: ClassVar[str] = ""
    #: runs with no network, given local weights (a hosted API never does)
    offline: ClassVar[bool] = True
    #: secrets it reads, by environment-variable name: the only secrets its settings will hold
    secrets: ClassVar[tuple[str, ...]] = ()
    #: settings fields it reads besides its ``[methods.<name>]`` options (part of its cache key)
    reads: ClassVar[tuple[str, ...]] = ("models_dir", "device")
    #: the numeric path its scores come from (fp32, bf16, onnx, onnx-int8), set by ``_load``; "" = n/a
    precision: str = ""
    #: why ``auto`` ran ``precision`` ("auto: openvino-int8 (...)"), added to the result's notes; "" = not auto
    precision_note: str = ""
    #: the values its ``precision`` option takes (see :mod:`rerank_core.precision`); () = no such option
    precisions: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def info(cls) -> MethodInfo:
        """The method's metadata, as the registry exposes it."""
        return MethodInfo.of(cls, RERANKER_KIND, prepares=cls.prepare is not Reranker.prepare)

    @classmethod
    def default_model_for(cls, settings: Settings) -> str | None:
        """The model used when none is given, under these settings (a hosted backend may read it there)."""
        return cls.default_model

    def __init__(self, model: str | None = None, settings: Settings | None = None, **options):
        # a backend sees only the secrets it declares, so a forgotten declaration cannot leak a key
        self.settings = (settings or load_settings()).only_secrets(self.secrets)
        self.model = model or self.default_model
        self.options = {**self.settings.method_options(self.name), **options}
        self.model_load_s = 0.0
        self._loaded = False
        self._load_error: BaseException | None = None
        self._load_lock = threading.Lock()

    # -- what a backend implements -------------------------------------------------------------
    def _load(self) -> None:
        """Load weights / clients. Raise BackendUnavailable (or ModelNotFound) with a fix."""

    @abstractmethod
    def score(self, query: str, candidates: Sequence[Candidate]) -> Scores | Sequence[float]:
        """One score per candidate, in the candidates' order. Higher is more relevant.

        Return :class:`Scores` to add flags, notes or the usage a service reported (it goes to
        ``RerankResult.usage``)."""

    def prepare(self, corpus: Corpus, progress: ProgressFn | None = None) -> None:
        """Optional per-corpus precomputation (document encodings). Default: nothing."""

    @property
    def label(self) -> str:
        """A short human description shown next to the method's name."""
        return self.method_name

    # -- shared work -----------------------------------------------------------------------------
    @property
    def method_name(self) -> str:
        return f"{self.name}:{self.model}" if self.model else self.name

    @property
    def loaded(self) -> bool:
        return self._loaded

    def load(self) -> float:
        """Load once per instance; returns the seconds the load took. Failures are remembered."""
        with self._load_lock:
            if self._loaded:
                return self.model_load_s
            if self._load_error is not None:
                raise self._load_error
            t0 = time.perf_counter()
            try:
                self._load()
            except BaseException as exc:
                if not isinstance(exc, (RerankError, ImportError)):
                    exc = MethodFailed(f"loading {self.method_name} failed: {type(exc).__name__}: {exc}")
                elif isinstance(exc, ImportError):
                    exc = BackendUnavailable(
                        f"{self.method_name} needs a package that is not installed ({exc}).",
                        hint="pip install -r requirements.txt",
                    )
                if not isinstance(exc, Cancelled):
                    self._load_error = exc
                raise exc from None
            self.model_load_s = time.perf_counter() - t0
            self._loaded = True
            return self.model_load_s

    def rerank(
        self,
        query: str,
        candidates: Sequence[Candidate],
        top_k: int | None = None,
        *,
        first_stage_scale: ScoreScale | None = None,
    ) -> RerankResult:
        """Rerank ``candidates`` for ``query``. Never raises for a backend failure.

        ``first_stage_scale`` is the scale of the candidates' first-stage scores: a hosted backend
        that fails falls back to the first-stage order, and its result then shows those scores under
        that scale (:attr:`ScoreScale.FIRST_STAGE` when not given)."""
        if not isinstance(query, str):
            raise TypeError("query must be a string")
        if top_k is not None and top_k < 0:
            raise ValueError("top_k must be >= 0")
        candidates = list(candidates)
        try:
            self.load()
        except Cancelled:
            raise
        except BaseException as exc:  # noqa: BLE001 - reported in the result
            return self._failure(
                self._result_base(), exc, candidates, top_k, fallback_scale=first_stage_scale
            )
        # read after loading: a backend may learn its scale or label from the model it loaded
        base = self._result_base()
        if not candidates:
            return RerankResult(**base, model_load_s=self.model_load_s)
        from rerank_core.http import rate_wait_meter

        t0 = time.perf_counter()
        # waiting for a turn under a rate limit is queueing, not this query's own call time
        with rate_wait_meter() as queued:
            try:
                raw = self.score(query, candidates)
            except Cancelled:
                raise
            except BaseException as exc:  # noqa: BLE001 - reported in the result
                latency_ms = (time.perf_counter() - t0 - queued.waited_s) * 1e3
                return self._failure(
                    base, exc, candidates, top_k, latency_ms=latency_ms, fallback_scale=first_stage_scale
                )
        latency_ms = (time.perf_counter() - t0 - queued.waited_s) * 1e3
        scores = raw if isinstance(raw, Scores) else Scores(values=list(raw))
        if len(scores.values) != len(candidates):
            err = MethodFailed(
                f"{self.method_name} returned {len(scores.values)} scores for {len(candidates)} candidates"
            )
            return self._failure(
                base, err, candidates, top_k, latency_ms=latency_ms, fallback_scale=first_stage_scale
            )
        return RerankResult(
            **base,
            items=tuple(self._order(candidates, scores, top_k)),
            latency_ms=latency_ms,
            model_load_s=self.model_load_s,
            notes=tuple(scores.notes)
            + (
                (self.precision_note,)
                if self.precision_note and self.precision_note not in scores.notes
                else ()
            ),
            usage=dict(scores.usage),
        )

    def _result_base(self) -> dict:
        return {
            "method": self.method_name,
            "scale": self.scale,
            "label": self.label,
            "precision": self.precision,
        }

    @staticmethod
    def _order(candidates: Sequence[Candidate], scores: Scores, top_k: int | None) -> list[RankedItem]:
        n = len(candidates)
        trunc = list(scores.truncated) if scores.truncated is not None else [False] * n
        flags = list(scores.flagged) if scores.flagged is not None else [False] * n
        values = [float(v) for v in scores.values]
        for i, v in enumerate(values):
            if math.isnan(v):
                values[i] = float("-inf")
                flags[i] = True
        order = sorted(
            range(n), key=lambda i: (-values[i], candidates[i].first_stage_rank, candidates[i].doc_id)
        )
        if top_k is not None:
            order = order[:top_k]
        return [
            RankedItem(
                doc_id=candidates[i].doc_id,
                rank=pos,
                score=values[i],
                first_stage_rank=candidates[i].first_stage_rank,
                truncated=bool(trunc[i]),
                flagged=bool(flags[i]),
            )
            for pos, i in enumerate(order, start=1)
        ]

    def _failure(
        self,
        base: dict,
        exc: BaseException,
        candidates: Sequence[Candidate],
        top_k: int | None,
        latency_ms: float = 0.0,
        fallback_scale: ScoreScale | None = None,
    ) -> RerankResult:
        error = MethodError.from_exception(exc)
        if self.hosted and candidates and error.kind not in {"missing-api-key"}:
            kept = first_stage_items(candidates, top_k)
            # the scores shown are the first stage's: its scale, not this reranker's
            return RerankResult(
                **{**base, "scale": fallback_scale or ScoreScale.FIRST_STAGE},
                items=tuple(kept),
                latency_ms=latency_ms,
                model_load_s=self.model_load_s,
                error=error,
                fallback=True,
                notes=("fell back to the first-stage order",),
            )
        return RerankResult(**base, latency_ms=latency_ms, model_load_s=self.model_load_s, error=error)


def first_stage_items(candidates: Sequence[Candidate], top_k: int | None = None) -> list[RankedItem]:
    """The candidates in first-stage order, as ranked items (flagged: not a reranker's judgement)."""
    ordered = sorted(candidates, key=lambda c: c.first_stage_rank)
    if top_k is not None:
        ordered = ordered[:top_k]
    return [
        RankedItem(
            doc_id=c.doc_id,
            rank=pos,
            score=c.first_stage_score,
            first_stage_rank=c.first_stage_rank,
            flagged=True,
        )
        for pos, c in enumerate(ordered, start=1)
    ]
