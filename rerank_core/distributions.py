"""Score distributions per method over a run, with the scale named, for people setting thresholds.

A cross-encoder's logits, a bi-encoder's cosines and Cohere's 0-1 relevance are different
scales: a threshold only means something against the method's own distribution. Scores of
queries that fell back to the first-stage order are first-stage scores, on another scale, and are
left out (and counted); so are non-finite scores (a failed pointwise LLM answer). Scores are read
from the method's run, where tied scores are nudged apart at float32 precision to keep the
method's order (:func:`rerank_core.trec.results_to_run`): a change in the 7th significant digit.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

DEFAULT_BINS = 30
QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)


@dataclass(frozen=True)
class ScoreHistogram:
    """Counts of a method's scores in equal-width bins (``edges`` has one more entry than ``counts``)."""

    method: str
    scale: str
    edges: tuple[float, ...]
    counts: tuple[int, ...]
    scores: int  # how many scores the histogram holds
    queries: int  # how many queries they came from
    excluded_queries: int = 0  # fallback queries left out
    non_finite: int = 0  # scores left out for not being finite numbers
    quantiles: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "scale": self.scale,
            "edges": list(self.edges),
            "counts": list(self.counts),
            "scores": self.scores,
            "queries": self.queries,
            "excluded_fallback_queries": self.excluded_queries,
            "non_finite": self.non_finite,
            "quantiles": dict(self.quantiles),
        }


def score_histogram(
    run: Mapping[str, Mapping[str, float]],
    *,
    method: str,
    scale: str,
    exclude_queries: Iterable[str] = (),
    queries: Iterable[str] | None = None,
    bins: int = DEFAULT_BINS,
) -> ScoreHistogram | None:
    """The histogram of every score in ``run`` (all documents of all queries), or None if it has none.

    ``queries`` limits the run to those queries; ``exclude_queries`` (the method's fallback
    queries) are left out and counted. Bins are ``bins`` equal-width bins from the smallest to the
    largest score (numpy's ``histogram``; one bin of width 1 around a single value).
    """
    if bins < 1:
        raise ValueError(f"bins must be at least 1, got {bins}")
    excluded = set(exclude_queries)
    wanted = None if queries is None else set(queries)
    values: list[float] = []
    non_finite = 0
    used = 0
    skipped = 0
    for qid, scores in run.items():
        if wanted is not None and qid not in wanted:
            continue
        if qid in excluded:
            skipped += 1
            continue
        used += 1
        for v in scores.values():
            if math.isfinite(float(v)):
                values.append(float(v))
            else:
                non_finite += 1
    if not values:
        return None
    arr = np.asarray(values, dtype=np.float64)
    lo, hi = float(arr.min()), float(arr.max())
    if lo == hi:
        lo, hi = lo - 0.5, hi + 0.5
    counts, edges = np.histogram(arr, bins=bins, range=(lo, hi))
    qs = np.quantile(arr, QUANTILES)
    return ScoreHistogram(
        method=method,
        scale=scale,
        edges=tuple(float(e) for e in edges),
        counts=tuple(int(c) for c in counts),
        scores=int(arr.size),
        queries=used,
        excluded_queries=skipped,
        non_finite=non_finite,
        quantiles={f"p{round(q * 100)}": float(v) for q, v in zip(QUANTILES, qs, strict=True)},
    )
