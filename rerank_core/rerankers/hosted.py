"""What hosted rerankers share besides the HTTP layer: reading an answer of (index, score) results.

The retry, backoff, timeout and redaction policy lives in :mod:`rerank_core.http` (one
implementation for every hosted backend); its names are re-exported here for the backends that
have always imported them from this module.

:class:`IndexedScores` maps the results of a rerank answer back to the candidates by index, over
one or several batches, the same way for every server: an answer that leaves candidates out,
repeats an index or names one out of range is still used. Valid results keep their score; the
candidates without one are flagged and kept after the scored ones in first-stage order (score: the
lowest returned score minus 1); notes say what happened. An answer with no valid result at all
fails the query (the hosted fallback then keeps the first-stage order, flagged).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

from rerank_core.errors import MethodFailed
from rerank_core.http import (
    RETRY_ON,
    CallStats,
    RetryStats,
    call_with_retries,
    describe_stats,
    redact,
    retry_after_s,
    safe_url,
)
from rerank_core.types import Candidate, Scores

__all__ = [
    "RETRY_ON",
    "CallStats",
    "IndexedScores",
    "RetryStats",
    "call_with_retries",
    "describe_stats",
    "redact",
    "retry_after_s",
    "safe_url",
]


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and not math.isnan(float(value))


class IndexedScores:
    """Collects (index, score) results of one query's answers, batch by batch, for ``n`` candidates."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.values: list[float | None] = [None] * n
        self.duplicates = 0
        self.invalid = 0

    def add(self, results: Iterable[tuple[Any, Any]], *, start: int = 0, size: int | None = None) -> None:
        """Results of one batch: ``(index within the batch, score)``; the batch covers candidates
        ``start .. start + size``."""
        size = self.n - start if size is None else size
        for idx, score in results:
            if not isinstance(idx, int) or isinstance(idx, bool) or not 0 <= idx < size:
                self.invalid += 1
                continue
            if not _is_number(score):
                self.invalid += 1
                continue
            pos = start + idx
            if self.values[pos] is not None:
                self.duplicates += 1
                continue
            self.values[pos] = float(score)

    def scores(
        self,
        candidates: Sequence[Candidate],
        *,
        method: str,
        server_hint: str,
        notes: Sequence[str] = (),
        usage: dict[str, float] | None = None,
    ) -> Scores:
        """The :class:`Scores` for ``candidates``; raises :class:`MethodFailed` with ``server_hint``
        when no result was usable."""
        scored = [v for v in self.values if v is not None]
        if not scored:
            raise MethodFailed(
                f"{method} returned no usable result for {self.n} documents "
                f"({self.invalid} invalid, {self.duplicates} duplicate).",
                hint=server_hint,
            )
        floor = min(scored) - 1.0
        missing = [i for i, v in enumerate(self.values) if v is None]
        out = list(notes)
        if missing:
            ids = ", ".join(candidates[i].doc_id for i in missing[:10]) + (
                ", ..." if len(missing) > 10 else ""
            )
            out.append(
                f"{len(missing)} of {self.n} documents had no score in the answer ({ids}): flagged and kept "
                "after the scored ones, in first-stage order"
            )
        if self.duplicates:
            out.append(f"{self.duplicates} duplicate result index(es) ignored (the first was kept)")
        if self.invalid:
            out.append(f"{self.invalid} result(s) with an invalid index or score ignored")
        return Scores(
            values=[floor if v is None else v for v in self.values],
            flagged=[v is None for v in self.values],
            notes=tuple(out),
            usage=dict(usage or {}),
        )
