"""Does reranking pay? Confidence intervals, paired tests, depth sweeps, a verdict, adaptive policies.

Everything here works on plain numbers (per-query metric values and latencies), so the pages, the
command line and the tests call the same functions. No UI, no models: numpy and scipy only.

Per-query values are ``dict[query_id, float]``; per-method tables are ``dict[method, dict[qid, float]]``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

# --------------------------------------------------------------------------------------------------
# thresholds of the verdict (documented constants, shown to the user with the verdict)
# --------------------------------------------------------------------------------------------------
#: below this mean Recall@50 the first stage misses too much for any reranker to fix: fix retrieval
FIX_RETRIEVAL_RECALL_AT_50 = 0.6
#: at or above this share of the ATTAINABLE Recall@3 (see :func:`recall_of_ideal`) the first stage already
#: ranks the answers on top. Raw Recall@3 cannot reach it when a query has more than 3 relevant documents
#: (7 relevant: at most 3/7), so the verdict compares Recall@3 / ideal Recall@3, averaged over queries.
ALREADY_GOOD_RECALL_AT_3 = 0.8
#: a reranker whose nDCG@10 lift is below this is reported as not worth it
MIN_USEFUL_LIFT = 0.01
#: nDCG@10 depths of the depth sweep (capped at the corpus size)
DEFAULT_DEPTHS: tuple[int, ...] = (10, 25, 50, 100, 200)
#: a deeper candidate list that gains less than this in nDCG@10 is not worth its latency
KNEE_TOLERANCE = 0.005


def _as_array(values: Mapping[str, float] | Iterable[float]) -> np.ndarray:
    if isinstance(values, Mapping):
        values = values.values()
    arr = np.asarray(list(values), dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError("expected a flat list of numbers")
    if not np.all(np.isfinite(arr)):
        raise ValueError("values must be finite numbers (no NaN or infinity)")
    return arr


# --------------------------------------------------------------------------------------------------
# uncertainty
# --------------------------------------------------------------------------------------------------
def bootstrap_ci(
    values: Mapping[str, float] | Iterable[float],
    n_resamples: int = 1000,
    alpha: float = 0.05,
    seed: int = 0,
) -> tuple[float, float, float]:
    """``(mean, low, high)``: the mean and its percentile-bootstrap ``1 - alpha`` interval.

    Queries are resampled with replacement ``n_resamples`` times (``scipy.stats.bootstrap``,
    ``method="percentile"``); the interval is the ``alpha/2`` and ``1 - alpha/2`` quantiles of the
    resampled means. Deterministic for a given ``seed``. A single value (or identical values) gives a
    zero-width interval.
    """
    arr = _as_array(values)
    if arr.size == 0:
        raise ValueError("bootstrap_ci needs at least one value")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be between 0 and 1, got {alpha}")
    mean = float(arr.mean())
    if arr.size == 1 or np.all(arr == arr[0]):
        return mean, mean, mean
    from scipy import stats

    res = stats.bootstrap(
        (arr,),
        np.mean,
        n_resamples=int(n_resamples),
        confidence_level=1.0 - alpha,
        method="percentile",
        vectorized=True,
        rng=np.random.default_rng(seed),
    )
    low, high = float(res.confidence_interval.low), float(res.confidence_interval.high)
    return mean, min(low, mean), max(high, mean)


@dataclass(frozen=True)
class PairedResult:
    """``diff_mean`` is mean(b - a) over the shared queries: positive when b is better."""

    diff_mean: float
    p_value: float
    test_name: str
    n: int = 0

    def significant(self, level: float = 0.05) -> bool:
        return self.p_value < level


PAIRED_TEST_NAME = "paired randomisation test (sign flips of per-query differences, two-sided)"


def paired_test(
    a: Mapping[str, float], b: Mapping[str, float], n_resamples: int = 10_000, seed: int = 0
) -> PairedResult:
    """Is b's per-query metric different from a's? A two-sided paired randomisation test.

    Under the null hypothesis the two methods are exchangeable on every query, so each per-query
    difference ``b - a`` is as likely to have either sign. The p-value is the share of sign-flip
    assignments whose mean difference is at least as far from 0 as the observed one (exact when
    ``2**n <= n_resamples``, else ``n_resamples`` random flips with the usual +1 correction; via
    ``scipy.stats.permutation_test``). Only queries in both ``a`` and ``b`` count. Identical inputs
    give p = 1.
    """
    shared = [q for q in a if q in b]
    if not shared:
        raise ValueError("the two methods share no query to compare")
    diffs = _as_array([float(b[q]) - float(a[q]) for q in shared])
    diff_mean = float(diffs.mean())
    if np.all(diffs == 0.0):
        return PairedResult(0.0, 1.0, PAIRED_TEST_NAME, len(shared))
    from scipy import stats

    res = stats.permutation_test(
        (diffs,),
        lambda x, axis: np.mean(x, axis=axis),
        permutation_type="samples",
        vectorized=True,
        n_resamples=int(n_resamples),
        alternative="two-sided",
        rng=np.random.default_rng(seed),
    )
    return PairedResult(diff_mean, float(min(1.0, res.pvalue)), PAIRED_TEST_NAME, len(shared))


# --------------------------------------------------------------------------------------------------
# depth sweep
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SweepPoint:
    """nDCG@k (mean over queries) when the top ``depth`` first-stage candidates are reranked."""

    depth: int
    value: float
    n_queries: int
    per_query: dict[str, float] = field(default_factory=dict, compare=False, repr=False)


def effective_depths(depths: Iterable[int], max_depth: int) -> list[int]:
    """The depths capped at ``max_depth`` (corpus size or candidate-list length), sorted, unique."""
    if max_depth < 1:
        raise ValueError("there are no candidates to rerank")
    out = sorted({min(int(d), max_depth) for d in depths})
    if not out or out[0] < 1:
        raise ValueError(f"depths must be positive integers, got {list(depths)}")
    return out


def _judged(qrels: Mapping[str, Mapping[str, int]], rankings: Mapping[str, Sequence[str]]) -> list[str]:
    return [q for q in rankings if qrels.get(q)]


def _reorder(candidates: Sequence[str], scores: Mapping[str, float], qid: str) -> list[str]:
    """Candidates by score descending, ties by first-stage position (the reranker base's order)."""
    missing = [d for d in candidates if d not in scores]
    if missing:
        raise ValueError(
            f"query {qid!r}: no reranker score for {len(missing)} of the top {len(candidates)} candidates "
            f"(e.g. {missing[0]!r}); score the deepest candidate list once"
        )

    def key(i: int) -> tuple[float, int]:
        v = float(scores[candidates[i]])
        return (-(v if not math.isnan(v) else -math.inf), i)

    return [candidates[i] for i in sorted(range(len(candidates)), key=key)]


def sweep_from_scores(
    first_stage_ranking: Mapping[str, Sequence[str]],
    method_scores: Mapping[str, Mapping[str, float]],
    qrels: Mapping[str, Mapping[str, int]],
    depths: Iterable[int] = DEFAULT_DEPTHS,
    k: int = 10,
    corpus_size: int | None = None,
    pointwise: bool = True,
) -> list[SweepPoint]:
    """nDCG@k against rerank depth, derived from ONE scoring of the deepest candidate list.

    For each depth d, the top d first-stage candidates are reordered by the method's scores (ties
    keep the first-stage order) and nDCG@k of that list is averaged over the judged queries of
    ``first_stage_ranking``. This is exactly what reranking only d candidates gives when the method
    is POINTWISE: a document's score does not depend on which other documents are in the list
    (cross-encoder, ColBERT / MaxSim, FlashRank, pointwise LLM, Cohere's per-document relevance).
    It is NOT valid for listwise LLM reranking, whose output depends on the whole list; pass
    ``pointwise=False`` and this raises, use :func:`depth_sweep` with ``pointwise=False`` instead.
    Depths are capped at ``corpus_size`` (default: the longest candidate list).
    """
    if not pointwise:
        raise ValueError(
            "scores of a listwise method depend on the other candidates, so smaller depths cannot be "
            "derived from one deep run; use depth_sweep(..., pointwise=False) to rerank every depth"
        )
    from rerank_core.metrics import ndcg_at_k

    longest = max((len(r) for r in first_stage_ranking.values()), default=0)
    levels = effective_depths(depths, min(corpus_size, longest) if corpus_size else longest)
    queries = _judged(qrels, first_stage_ranking)
    points = []
    for d in levels:
        per_query = {
            q: ndcg_at_k(_reorder(list(first_stage_ranking[q][:d]), method_scores.get(q, {}), q), qrels[q], k)
            for q in queries
        }
        value = float(np.mean(list(per_query.values()))) if per_query else 0.0
        points.append(SweepPoint(depth=d, value=value, n_queries=len(per_query), per_query=per_query))
    return points


RerankFn = Callable[[str, Sequence[str]], Sequence[float]]


def depth_sweep(
    rerank: RerankFn,
    first_stage_ranking: Mapping[str, Sequence[str]],
    qrels: Mapping[str, Mapping[str, int]],
    depths: Iterable[int] = DEFAULT_DEPTHS,
    *,
    pointwise: bool,
    k: int = 10,
    corpus_size: int | None = None,
) -> list[SweepPoint]:
    """nDCG@k against rerank depth. ``rerank(query_id, doc_ids)`` returns one score per doc id.

    ``pointwise=True`` calls ``rerank`` once per judged query with the deepest candidate list and
    derives every smaller depth from those scores (see :func:`sweep_from_scores`): cost of one
    run. ``pointwise=False`` (listwise methods) calls it once per query AND depth.
    """
    longest = max((len(r) for r in first_stage_ranking.values()), default=0)
    levels = effective_depths(depths, min(corpus_size, longest) if corpus_size else longest)
    queries = _judged(qrels, first_stage_ranking)

    def scored(qid: str, docs: Sequence[str]) -> dict[str, float]:
        values = list(rerank(qid, docs))
        if len(values) != len(docs):
            raise ValueError(f"query {qid!r}: rerank returned {len(values)} scores for {len(docs)} documents")
        return dict(zip(docs, (float(v) for v in values), strict=True))

    if pointwise:
        deepest = levels[-1]
        scores = {q: scored(q, list(first_stage_ranking[q][:deepest])) for q in queries}
        return sweep_from_scores(first_stage_ranking, scores, qrels, levels, k=k, corpus_size=deepest)

    from rerank_core.metrics import ndcg_at_k

    points = []
    for d in levels:
        per_query = {}
        for q in queries:
            docs = list(first_stage_ranking[q][:d])
            per_query[q] = ndcg_at_k(_reorder(docs, scored(q, docs), q), qrels[q], k)
        value = float(np.mean(list(per_query.values()))) if per_query else 0.0
        points.append(SweepPoint(depth=d, value=value, n_queries=len(per_query), per_query=per_query))
    return points


def find_knee(depths: Sequence[int], values: Sequence[float], tolerance: float = KNEE_TOLERANCE) -> int:
    """The smallest depth beyond which more candidates never gain ``tolerance`` or more.

    Rule: with the points sorted by depth, the knee is the first depth d_i such that every deeper
    point d_j satisfies ``value_j - value_i < tolerance``. The deepest depth always qualifies, so
    there is always an answer; a curve that keeps climbing gives the deepest depth, a flat one the
    shallowest. A dip followed by a recovery does not end the search early.
    """
    if len(depths) != len(values):
        raise ValueError("depths and values must have the same length")
    if not depths:
        raise ValueError("find_knee needs at least one point")
    pairs = sorted(zip((int(d) for d in depths), (float(v) for v in values), strict=True))
    for i, (depth, value) in enumerate(pairs):
        if all(later - value < tolerance for _, later in pairs[i + 1 :]):
            return depth
    return pairs[-1][0]  # pragma: no cover - the last point always qualifies


# --------------------------------------------------------------------------------------------------
# verdict
# --------------------------------------------------------------------------------------------------
VERDICT_KINDS = ("fix-retrieval-first", "reranker-pays", "already-good", "inconclusive")
#: confidence of the lift's interval and significance level of the sample-size estimate
VERDICT_ALPHA = 0.05
#: power of the sample-size estimate (:func:`queries_needed`)
VERDICT_POWER = 0.8
#: resamples of the paired bootstrap behind the lift's interval, and its seed
LIFT_BOOTSTRAP_RESAMPLES = 10_000
LIFT_BOOTSTRAP_SEED = 0
#: resamples are drawn in blocks of this many rows (part of the recipe: it fixes the random stream)
BOOTSTRAP_BLOCK = 1_000


def expanded_alpha(n: int, alpha: float = VERDICT_ALPHA) -> float:
    """The tail level the expanded percentile bootstrap uses for a mean of ``n`` values.

    Hesterberg's expansion: the plain percentile interval of a mean is too narrow in small samples
    (it behaves like ``mean +- z * s / sqrt(n)`` with the divisor-n standard deviation), so the
    quantiles are taken at ``alpha' = 2 * Phi(-sqrt(n / (n - 1)) * t(1 - alpha / 2, n - 1))``,
    which gives the width of the t interval for symmetric data: 0.032 instead of 0.05 for 20
    queries, 0.048 for 225. ``n < 2`` keeps ``alpha``.
    """
    if n < 2:
        return alpha
    from scipy.stats import norm, t

    return float(2.0 * norm.cdf(-math.sqrt(n / (n - 1)) * t.ppf(1 - alpha / 2, n - 1)))


def paired_bootstrap_ci(
    differences: Mapping[str, float] | Iterable[float],
    n_resamples: int = LIFT_BOOTSTRAP_RESAMPLES,
    alpha: float = VERDICT_ALPHA,
    seed: int = LIFT_BOOTSTRAP_SEED,
    expanded: bool = True,
) -> tuple[float, float, float]:
    """``(mean, low, high)`` of per-query paired differences: an expanded percentile bootstrap, seeded.

    The recipe, exactly (so anyone can recompute it): ``rng = numpy.random.default_rng(seed)``;
    in blocks of :data:`BOOTSTRAP_BLOCK` resamples, ``idx = rng.integers(0, n, size=(block, n))``
    draws n queries with replacement per resample and the resample's statistic is
    ``differences[idx].mean(axis=1)``; the interval is ``numpy.quantile(means, [a / 2, 1 - a / 2])``
    (numpy's default linear interpolation) with ``a = expanded_alpha(n, alpha)`` (see
    :func:`expanded_alpha`; ``a = alpha`` with ``expanded=False``, the plain percentile interval).
    Resampling the *differences* of the same queries keeps the pairing: a query that is hard for
    both methods moves both together. Deterministic for a given seed; one difference, or
    identical ones, give a zero-width interval.
    """
    arr = _as_array(differences)
    if arr.size == 0:
        raise ValueError("paired_bootstrap_ci needs at least one per-query difference")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be between 0 and 1, got {alpha}")
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be at least 1, got {n_resamples}")
    mean = float(arr.mean())
    if arr.size == 1 or np.all(arr == arr[0]):
        return mean, mean, mean
    rng = np.random.default_rng(seed)
    n = arr.size
    means = np.empty(int(n_resamples), dtype=np.float64)
    for start in range(0, int(n_resamples), BOOTSTRAP_BLOCK):
        block = min(BOOTSTRAP_BLOCK, int(n_resamples) - start)
        idx = rng.integers(0, n, size=(block, n))
        means[start : start + block] = arr[idx].mean(axis=1)
    a = expanded_alpha(n, alpha) if expanded else alpha
    low, high = np.quantile(means, [a / 2, 1 - a / 2])
    return mean, float(low), float(high)


def queries_needed(
    differences: Mapping[str, float] | Iterable[float],
    alpha: float = VERDICT_ALPHA,
    power: float = VERDICT_POWER,
) -> int | None:
    """How many queries a paired comparison needs to tell a difference of the observed size.

    A power calculation for a two-sided paired test at level ``alpha`` with power ``power``, by
    the normal approximation: ``n = ceil(((z(1 - alpha/2) + z(power)) * s / |d|) ** 2)`` where
    ``d`` is the mean and ``s`` the sample standard deviation (``ddof=1``) of the observed
    per-query differences, and ``z`` the standard normal quantile (1.960 and 0.842 at the
    defaults, so ``n = ceil(7.85 * s**2 / d**2)``). It is the total number of queries (not the
    additional ones) at which a true difference ``d`` would be found 80% of the time. None when it
    cannot be estimated: fewer than two differences or a mean difference of exactly 0 (no effect
    to size). Identical non-zero differences need 2 (the fewest a spread can be measured on).
    """
    arr = _as_array(differences)
    if not 0.0 < alpha < 1.0 or not 0.0 < power < 1.0:
        raise ValueError(f"alpha and power must be between 0 and 1, got {alpha} and {power}")
    if arr.size < 2:
        return None
    d = float(arr.mean())
    if d == 0.0:
        return None
    from scipy.stats import norm

    s = float(arr.std(ddof=1))
    z = float(norm.ppf(1 - alpha / 2) + norm.ppf(power))
    return max(2, math.ceil((z * s / abs(d)) ** 2))


@dataclass(frozen=True)
class LiftEstimate:
    """One method against the first stage on the verdict's measure, over the queries both have.

    ``lift`` is the mean per-query difference (method minus first stage); ``ci_low``/``ci_high``
    its 95% expanded percentile paired-bootstrap interval (:func:`paired_bootstrap_ci`); ``p_value`` the two-sided
    paired randomisation test (:func:`paired_test`); ``queries_needed`` the power calculation
    (:func:`queries_needed`); ``added_p95_ms`` the method's p95 latency on top of the first stage.
    """

    method: str
    lift: float
    ci_low: float
    ci_high: float
    p_value: float
    n: int
    queries_needed: int | None
    added_p95_ms: float | None = None
    fallback_queries: int = 0

    @property
    def clearly_positive(self) -> bool:
        """The lift's 95% interval lies above zero (the verdict's rule for ``reranker-pays``)."""
        return self.ci_low > 0.0

    @property
    def clearly_negative(self) -> bool:
        return self.ci_high < 0.0


def estimate_lift(
    method: str,
    first_stage: Mapping[str, float],
    reranked: Mapping[str, float],
    *,
    added_p95_ms: float | None = None,
    fallback_queries: int = 0,
) -> LiftEstimate:
    """The lift of ``reranked`` over ``first_stage`` (per-query values of one measure), with its
    interval, p-value and the queries a clear answer needs. Only shared queries count."""
    shared = [q for q in first_stage if q in reranked]
    if not shared:
        raise ValueError(f"{method}: no query in common with the first stage")
    diffs = [float(reranked[q]) - float(first_stage[q]) for q in shared]
    mean, low, high = paired_bootstrap_ci(diffs)
    p = paired_test({q: first_stage[q] for q in shared}, {q: reranked[q] for q in shared}).p_value
    return LiftEstimate(
        method=method,
        lift=mean,
        ci_low=low,
        ci_high=high,
        p_value=p,
        n=len(shared),
        queries_needed=queries_needed(diffs),
        added_p95_ms=None if added_p95_ms is None else float(added_p95_ms),
        fallback_queries=int(fallback_queries),
    )


def ideal_recall_at_k(judgements: Mapping[str, int], k: int) -> float:
    """The best Recall@k any ranking can reach for one query: ``min(k, R) / R`` for R relevant documents.

    Relevant means grade >= 1 (as in :mod:`rerank_core.metrics`); a query without any relevant
    document gives 0 (as its Recall@k does)."""
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    n_rel = sum(1 for g in judgements.values() if g >= 1)
    return min(k, n_rel) / n_rel if n_rel else 0.0


def recall_of_ideal(
    run: Mapping[str, Mapping[str, float]], qrels: Mapping[str, Mapping[str, int]], k: int = 3
) -> dict[str, float]:
    """Per query, Recall@k divided by the best attainable Recall@k: ``hits in the top k / min(k, R)``.

    ``run`` is ``{query: {doc: score}}`` (ordered as :func:`rerank_core.metrics.rank_documents` orders
    it, the order every metric uses); R is the query's number of relevant (grade >= 1) documents.
    1.0 means the top k is as good as it can be: all relevant documents when R <= k, only relevant
    ones when R > k. Queries with no relevant document have nothing to attain and are left out; a
    judged query missing from the run scores 0.
    """
    from rerank_core.metrics import rank_documents

    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    out: dict[str, float] = {}
    for qid, judgements in qrels.items():
        n_rel = sum(1 for g in judgements.values() if g >= 1)
        if not n_rel:
            continue
        top = rank_documents(run.get(qid) or {})[:k]
        hits = sum(1 for d in top if judgements.get(d, 0) >= 1)
        out[qid] = hits / min(k, n_rel)
    return out


def verdict_rules(metric_name: str = "nDCG@10") -> str:
    """The verdict's rules and thresholds in one plain paragraph (shown with the verdict, written
    into reports). :func:`verdict` applies exactly these, in this order."""
    level = f"{1 - VERDICT_ALPHA:.0%}"
    return (
        f"Rules, in order: (1) if the first stage's Recall@50 is below {FIX_RETRIEVAL_RECALL_AT_50:.0%}, "
        f"fix retrieval first. (2) If a reranker's {metric_name} lift over the first stage has its {level} "
        f"interval above zero (expanded percentile bootstrap of the per-query differences), the reranker "
        f"pays; the one with the largest such lift is named (the paired randomisation test's p is shown "
        f"beside it, and a disagreement is pointed out). (3) Otherwise, if the first stage's top 3 holds at least "
        f"{ALREADY_GOOD_RECALL_AT_3:.0%} of the relevant documents it could hold (Recall@3 divided by the "
        f"best attainable Recall@3, min(3, R) / R for a query with R relevant documents, averaged over "
        f"queries), it is already good. (4) Otherwise the measurements are inconclusive, with the number of "
        f"queries a paired test would need (two-sided at the {VERDICT_ALPHA:.0%} level, {VERDICT_POWER:.0%} power) to tell "
        f"the best reranker's lift from zero. A lift below {MIN_USEFUL_LIFT} {metric_name} is called "
        f"small."
    )


@dataclass(frozen=True)
class Verdict:
    """The call, and what the best measured reranker buys, with its uncertainty.

    ``kind`` is the call (one of :data:`VERDICT_KINDS`, see :func:`verdict`). ``best_method`` is
    the method the call is about (None when no reranker was measured): for ``reranker-pays`` the
    largest lift that is clearly positive (:attr:`LiftEstimate.clearly_positive`), otherwise the
    largest lift. ``lift``, ``ci_low``,
    ``ci_high``, ``p_value`` and ``n_queries`` describe that method; ``queries_needed`` is set
    only for ``inconclusive`` (how many queries in all would tell its lift from zero).
    ``worth_it`` says the call is ``reranker-pays`` with a lift of at least
    :data:`MIN_USEFUL_LIFT`. ``recall_at_3`` is the first stage's mean Recall@3 and
    ``recall_at_3_of_ideal`` the mean of Recall@3 / ideal Recall@3 the rule used. ``text`` is
    the paragraph shown to the user. ``estimates`` holds every method's :class:`LiftEstimate`.
    """

    kind: str
    text: str
    recall_at_50: float
    recall_at_3: float
    best_method: str | None = None
    lift: float | None = None
    added_p95_ms: float | None = None
    worth_it: bool = False
    recall_at_3_of_ideal: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    p_value: float | None = None
    n_queries: int | None = None
    queries_needed: int | None = None
    estimates: Mapping[str, LiftEstimate] = field(default_factory=dict, compare=False, repr=False)

    @property
    def call(self) -> str:
        return self.kind

    def to_json(self) -> dict[str, Any]:
        """``{"call", "method", "lift", "ci": [lo, hi], "p", "queries_needed"}``, exactly these keys."""
        return {
            "call": self.kind,
            "method": self.best_method,
            "lift": self.lift,
            "ci": None if self.ci_low is None or self.ci_high is None else [self.ci_low, self.ci_high],
            "p": self.p_value,
            "queries_needed": self.queries_needed,
        }


def _ms(value: float) -> str:
    return f"{value:,.0f} ms" if abs(value) >= 10 else f"{value:.1f} ms"


def signed(value: float, digits: int = 3) -> str:
    """``+0.023``; a value that would round to zero keeps two more digits (``-0.00030``)."""
    text = f"{value:+.{digits}f}"
    return f"{value:+.{digits + 2}f}" if value != 0 and float(text) == 0 else text


def p_text(p: float) -> str:
    """``p = 0.052``, or ``p < 0.001``."""
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"


def _why_not(e: LiftEstimate) -> str:
    """Why a lift is not called: the interval reaches zero, or the test disagrees with it."""
    where = f"({signed(e.ci_low)} to {signed(e.ci_high)})"
    if e.ci_high < 0:
        return f"its 95% interval {where} lies below zero"
    if e.ci_low <= 0:
        return f"its 95% interval {where} includes zero"
    return (
        f"its 95% interval {where} is just above zero but the paired randomisation test gives "
        f"{p_text(e.p_value)}, not below {VERDICT_ALPHA:g}: the two disagree at the edge"
    )


def _describe(e: LiftEstimate, metric_name: str, baseline: float | None) -> str:
    facts = [f"95% interval {signed(e.ci_low)} to {signed(e.ci_high)}", p_text(e.p_value), f"{e.n} queries"]
    if baseline is not None:
        facts.insert(0, f"{baseline:.3f} -> {baseline + e.lift:.3f}")
    change = f"{metric_name} by {signed(e.lift)} ({'; '.join(facts)})"
    cost = f" for {_ms(e.added_p95_ms)} more p95 latency" if e.added_p95_ms is not None else ""
    fell = (
        f" ({e.fallback_queries} of its queries fell back to the first-stage order: those count as no change)"
        if e.fallback_queries
        else ""
    )
    return f"{e.method} changes {change}{cost}{fell}."


def verdict(
    first_stage_recall50: float,
    first_stage_recall3: float,
    estimates: Mapping[str, LiftEstimate],
    metric_name: str = "nDCG@10",
    baseline: float | None = None,
    *,
    recall3_of_ideal: float | None = None,
) -> Verdict:
    """The call on whether reranking pays, from first-stage recall and each reranker's lift.

    ``estimates[method]`` is the method's :class:`LiftEstimate` (see :func:`estimate_lift`) on
    ``metric_name``. ``recall3_of_ideal`` is the mean over queries of :func:`recall_of_ideal` at
    k = 3; when omitted, the raw ``first_stage_recall3`` stands in for it (the two are equal when
    no query has more than 3 relevant documents). The rules, in order (:func:`verdict_rules`
    states them for people):

    1. mean Recall@50 < :data:`FIX_RETRIEVAL_RECALL_AT_50` -> ``fix-retrieval-first`` (a reranker
       only reorders what the first stage found);
    2. some method's lift has its 95% interval above zero (:attr:`LiftEstimate.clearly_positive`;
       the expanded bootstrap interval is as wide as a t-interval on few queries, so it rarely
       disagrees with the randomisation test, and the text says so when it does) ->
       ``reranker-pays``, about the largest such lift (ties: the lower added latency, then the name);
    3. mean Recall@3 / ideal Recall@3 >= :data:`ALREADY_GOOD_RECALL_AT_3` -> ``already-good``;
    4. otherwise ``inconclusive``, about the largest lift, with :func:`queries_needed` for it
       (None when no reranker was measured, when its lift is exactly 0, or when its interval is
       wholly below zero: more queries would not make it pay).
    """
    top3 = first_stage_recall3 if recall3_of_ideal is None else recall3_of_ideal
    for name, value in (
        ("recall@50", first_stage_recall50),
        ("recall@3", first_stage_recall3),
        ("recall@3 of ideal", top3),
    ):
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"{name} must be between 0 and 1, got {value}")
    r50, r3 = first_stage_recall50, first_stage_recall3

    def rank_key(e: LiftEstimate) -> tuple[float, float, str]:
        return (-e.lift, e.added_p95_ms if e.added_p95_ms is not None else math.inf, e.method)

    ranked = sorted(estimates.values(), key=rank_key)
    paying = [e for e in ranked if e.clearly_positive]
    top = ranked[0] if ranked else None
    top3_fact = (
        f"its top 3 holds {top3:.0%} of the relevant documents it could hold (Recall@3 {r3:.2f}; a query "
        f"with R relevant documents can reach at most min(3, R) / R)"
    )
    others = ""
    if len(ranked) > 1:
        others = (
            " Others: "
            + "; ".join(
                f"{e.method} {signed(e.lift)} ({signed(e.ci_low)} to {signed(e.ci_high)})"
                for e in ranked
                if e is not (paying[0] if paying else top)
            )
            + "."
        )

    chosen: LiftEstimate | None
    needed: int | None = None
    if r50 < FIX_RETRIEVAL_RECALL_AT_50:
        kind, chosen = "fix-retrieval-first", (paying[0] if paying else top)
        measured = _describe(chosen, metric_name, baseline) if chosen else "No reranker was measured yet."
        text = (
            f"Fix retrieval first. The first stage finds only {r50:.0%} of the relevant documents in its "
            f"top 50 (Recall@50 {r50:.2f}; the rule: below {FIX_RETRIEVAL_RECALL_AT_50:.0%} means fix "
            f"retrieval first), and a reranker can only reorder what it is given. Try hybrid or dense "
            f"retrieval, better chunking or a deeper candidate list before paying for reranking. {measured}"
        )
    elif paying:
        kind, chosen = "reranker-pays", paying[0]
        text = (
            f"A reranker pays here: {_describe(chosen, metric_name, baseline)} The lift's 95% interval is "
            f"above zero, so it is not chance on these {chosen.n} queries"
            + (
                f" (the paired randomisation test is less sure: {p_text(chosen.p_value)}; more queries would settle it)"
                if chosen.p_value >= VERDICT_ALPHA
                else ""
            )
            + f". The first stage finds {r50:.0%} of the relevant documents in its top 50 and {top3_fact}."
        )
        if chosen.lift < MIN_USEFUL_LIFT:
            text += (
                f" The lift is real but small (below {MIN_USEFUL_LIFT} {metric_name}): weigh it against the "
                f"added latency."
            )
        if top is not None and top is not chosen:
            text += f" {top.method} measured a larger lift ({signed(top.lift)}), but {_why_not(top)}."
    elif top3 >= ALREADY_GOOD_RECALL_AT_3:
        kind, chosen = "already-good", top
        measured = (
            f"{_describe(chosen, metric_name, baseline)} It is not called: {_why_not(chosen)}."
            if chosen
            else "No reranker was measured yet."
        )
        text = (
            f"The first stage is already good: it finds {r50:.0%} of the relevant documents in its top 50 "
            f"and {top3_fact}. The rule: {ALREADY_GOOD_RECALL_AT_3:.0%} or more of the attainable means "
            f"already good, and no reranker showed a lift that is clearly not chance. {measured} Keep the "
            f"first stage alone."
        )
    else:
        kind, chosen = "inconclusive", top
        room = (
            f"The first stage finds {r50:.0%} of the relevant documents in its top 50, but {top3_fact}, "
            f"below the {ALREADY_GOOD_RECALL_AT_3:.0%} that would mean already good: there is room."
        )
        if chosen is None:
            text = f"Inconclusive: no reranker was measured yet. {room} Add a reranker to the comparison."
        elif chosen.clearly_negative:
            text = (
                f"Inconclusive as to whether a reranker pays: every reranker measured made {metric_name} "
                f"worse. {_describe(chosen, metric_name, baseline)} {room} Try a stronger reranker."
            )
        else:
            needed = chosen.queries_needed
            if needed is None:
                how_many = "Its lift is exactly zero on these queries, so no number of queries would size it."
            else:
                more = max(0, needed - chosen.n)
                how_many = (
                    f"A paired test (two-sided at the {VERDICT_ALPHA:.0%} level, {VERDICT_POWER:.0%} power) would need "
                    f"about {needed:,} queries to tell a lift of this size from zero"
                    + (f" ({more:,} more than the {chosen.n} here)." if more else f"; {chosen.n} were used.")
                )
            text = (
                f"Inconclusive: {_describe(chosen, metric_name, baseline)} It cannot be told from chance on "
                f"these {chosen.n} queries: {_why_not(chosen)}. {how_many} {room}"
            )
    text += others
    return Verdict(
        kind=kind,
        text=text,
        recall_at_50=r50,
        recall_at_3=r3,
        best_method=chosen.method if chosen else None,
        lift=chosen.lift if chosen else None,
        added_p95_ms=chosen.added_p95_ms if chosen else None,
        worth_it=kind == "reranker-pays" and chosen is not None and chosen.lift >= MIN_USEFUL_LIFT,
        recall_at_3_of_ideal=top3,
        ci_low=chosen.ci_low if chosen else None,
        ci_high=chosen.ci_high if chosen else None,
        p_value=chosen.p_value if chosen else None,
        n_queries=chosen.n if chosen else None,
        queries_needed=needed,
        estimates=dict(estimates),
    )


# --------------------------------------------------------------------------------------------------
# adaptive reranking policy
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PolicyPoint:
    """Rerank a query only when its normalised first-stage margin is below ``threshold``."""

    threshold: float
    share_reranked: float
    mean_metric: float
    mean_latency_ms: float
    p95_latency_ms: float = 0.0


def normalised_margin(scores: Sequence[float]) -> float:
    """How sure the first stage is: ``(top1 - top2) / max(|top1|, |top2|)``, 0 when unsure.

    For BM25 (scores >= 0) this is the margin over the top-1 score, in [0, 1]; it is scale-free, so
    one threshold works across queries whose raw BM25 scores differ a lot. Cosine and RRF scores
    are handled the same way. Fewer than two candidates, or two zero scores, give 0 (nothing to be
    sure about). The value is never negative, so a threshold of 0 never reranks and an infinite
    threshold always does.
    """
    values = sorted((float(s) for s in scores if not math.isnan(float(s))), reverse=True)
    if len(values) < 2:
        return 0.0
    s1, s2 = values[0], values[1]
    denom = max(abs(s1), abs(s2))
    if denom == 0.0 or math.isinf(denom):
        return 0.0 if denom == 0.0 else (math.inf if s1 > s2 else 0.0)
    return (s1 - s2) / denom


def _per_query(values: Mapping[str, float] | float, queries: Sequence[str], name: str) -> np.ndarray:
    if isinstance(values, Mapping):
        missing = [q for q in queries if q not in values]
        if missing:
            raise ValueError(f"{name} has no value for {len(missing)} queries (e.g. {missing[0]!r})")
        return np.array([float(values[q]) for q in queries], dtype=np.float64)
    return np.full(len(queries), float(values), dtype=np.float64)


def adaptive_policy(
    first_stage_scores_per_query: Mapping[str, Sequence[float]],
    first_stage_metric: Mapping[str, float],
    reranked_metric: Mapping[str, float],
    first_stage_latency: Mapping[str, float] | float,
    rerank_latency: Mapping[str, float] | float,
    thresholds: Iterable[float],
) -> list[PolicyPoint]:
    """Quality and latency of "rerank only when the first stage is unsure", per threshold.

    A query is reranked when :func:`normalised_margin` of its first-stage scores is below the
    threshold; it then gets the reranked metric value and pays first-stage plus rerank latency,
    otherwise the first-stage value and latency. Threshold 0 never reranks (the first stage alone);
    ``math.inf`` always does. Queries are those of ``first_stage_metric``; the other per-query inputs
    must cover them (latencies may be one number for every query).
    """
    queries = list(first_stage_metric)
    if not queries:
        raise ValueError("adaptive_policy needs at least one query")
    missing = [q for q in queries if q not in first_stage_scores_per_query]
    if missing:
        raise ValueError(f"no first-stage scores for {len(missing)} queries (e.g. {missing[0]!r})")
    margins = np.array([normalised_margin(first_stage_scores_per_query[q]) for q in queries])
    base = _per_query(first_stage_metric, queries, "first_stage_metric")
    reranked = _per_query(reranked_metric, queries, "reranked_metric")
    base_ms = _per_query(first_stage_latency, queries, "first_stage_latency")
    extra_ms = _per_query(rerank_latency, queries, "rerank_latency")
    points = []
    for t in thresholds:
        t = float(t)
        chosen = margins < t
        metric = np.where(chosen, reranked, base)
        latency = base_ms + np.where(chosen, extra_ms, 0.0)
        points.append(
            PolicyPoint(
                threshold=t,
                share_reranked=float(chosen.mean()),
                mean_metric=float(metric.mean()),
                mean_latency_ms=float(latency.mean()),
                p95_latency_ms=float(np.percentile(latency, 95)),
            )
        )
    return points


def policy_thresholds(
    first_stage_scores_per_query: Mapping[str, Sequence[float]], n: int = 10
) -> list[float]:
    """Thresholds worth plotting: 0 (never rerank), ``n`` quantiles of the observed margins, infinity."""
    margins = np.array([normalised_margin(s) for s in first_stage_scores_per_query.values()])
    finite = margins[np.isfinite(margins)]
    inner = np.unique(np.quantile(finite, np.linspace(0, 1, n + 1)[1:])) if finite.size else np.array([])
    # a quantile equal to a margin would leave that query out; step just above it
    return [0.0, *[float(np.nextafter(x, np.inf)) for x in inner if x > 0], math.inf]
