"""Does reranking pay? Confidence intervals, paired tests, depth sweeps, a verdict, adaptive policies.

Everything here works on plain numbers (per-query metric values and latencies), so the pages, the
command line and the tests call the same functions. No UI, no models: numpy and scipy only.

Per-query values are ``dict[query_id, float]``; per-method tables are ``dict[method, dict[qid, float]]``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

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
VERDICT_KINDS = ("fix-retrieval-first", "reranker-pays", "already-good")


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
    """The verdict's rules and thresholds in one plain paragraph (the page shows it with the verdict)."""
    return (
        f"Rules: if the first stage's Recall@50 is below {FIX_RETRIEVAL_RECALL_AT_50:.0%}, fix retrieval first. "
        f"Otherwise, if its top 3 holds at least {ALREADY_GOOD_RECALL_AT_3:.0%} of the relevant documents it "
        f"could hold (Recall@3 divided by the best attainable Recall@3, min(3, R) / R for a query with R "
        f"relevant documents, averaged over queries), it is already good. Otherwise a reranker pays. A lift "
        f"below {MIN_USEFUL_LIFT} {metric_name} is reported as not worth its latency."
    )


@dataclass(frozen=True)
class Verdict:
    """Where the headroom is, and what the best measured reranker buys.

    ``kind`` says where the headroom is (see :func:`verdict`); ``best_method`` is the method with
    the largest lift (None when no method was measured) and ``worth_it`` says whether that lift
    reaches :data:`MIN_USEFUL_LIFT`. ``recall_at_3`` is the first stage's mean Recall@3 and
    ``recall_at_3_of_ideal`` the mean of Recall@3 / ideal Recall@3 the rule used. ``text`` is the
    paragraph shown to the user, rule and thresholds included.
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


def _ms(value: float) -> str:
    return f"{value:,.0f} ms" if abs(value) >= 10 else f"{value:.1f} ms"


def verdict(
    first_stage_recall50: float,
    first_stage_recall3: float,
    method_lifts: Mapping[str, tuple[float, float]],
    metric_name: str = "nDCG@10",
    baseline: float | None = None,
    *,
    recall3_of_ideal: float | None = None,
) -> Verdict:
    """Decide whether reranking pays, from first-stage recall and each method's measured lift.

    ``method_lifts[method] = (lift, added_p95_ms)``: the method's mean ``metric_name`` minus the
    first stage's, and its p95 latency on top of the first stage. ``recall3_of_ideal`` is the mean
    over queries of :func:`recall_of_ideal` at k = 3; when omitted, the raw ``first_stage_recall3``
    stands in for it (the two are equal when no query has more than 3 relevant documents). Rules,
    in order:

    1. mean Recall@50 < :data:`FIX_RETRIEVAL_RECALL_AT_50` -> ``fix-retrieval-first`` (a reranker
       only reorders what the first stage found);
    2. mean Recall@3 / ideal Recall@3 >= :data:`ALREADY_GOOD_RECALL_AT_3` -> ``already-good`` (the
       top 3 is close to the best it can be: little room left);
    3. otherwise -> ``reranker-pays`` (the answers are in the candidates but ranked too low).

    The best method is the one with the largest lift (ties: the lower added latency).
    """
    top3 = first_stage_recall3 if recall3_of_ideal is None else recall3_of_ideal
    for name, value in (
        ("recall@50", first_stage_recall50),
        ("recall@3", first_stage_recall3),
        ("recall@3 of ideal", top3),
    ):
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"{name} must be between 0 and 1, got {value}")
    lifts = {m: (float(li), float(la)) for m, (li, la) in method_lifts.items()}
    best_name: str | None = None
    lift = added = 0.0
    if lifts:
        best_name, (lift, added) = min(lifts.items(), key=lambda kv: (-kv[1][0], kv[1][1], kv[0]))
    worth_it = best_name is not None and lift >= MIN_USEFUL_LIFT
    r50, r3 = first_stage_recall50, first_stage_recall3

    if best_name is None:
        measured = "No reranker was measured yet."
    else:
        change = f"{lift:+.3f} {metric_name}"
        if baseline is not None:
            change += f" ({baseline:.3f} -> {baseline + lift:.3f})"
        measured = (
            f"The best reranker measured, {best_name}, changes {change} for {_ms(added)} more p95 latency."
        )
        cheaper = [
            (m, la)
            for m, (li, la) in lifts.items()
            if m != best_name and lift > 0 and li >= 0.9 * lift and la <= 0.5 * added
        ]
        if worth_it and cheaper:
            m, la = min(cheaper, key=lambda x: x[1])
            measured += f" {m} gets at least 90% of that lift for {_ms(la)}."

    top3_fact = (
        f"its top 3 holds {top3:.0%} of the relevant documents it could hold (Recall@3 {r3:.2f}; a query "
        f"with R relevant documents can reach at most min(3, R) / R)"
    )
    if r50 < FIX_RETRIEVAL_RECALL_AT_50:
        kind = "fix-retrieval-first"
        text = (
            f"Fix retrieval first. The first stage finds only {r50:.0%} of the relevant documents in its "
            f"top 50 (Recall@50 {r50:.2f}; the rule: below {FIX_RETRIEVAL_RECALL_AT_50:.0%} means fix "
            f"retrieval first), and a reranker can only reorder what it is given. Try hybrid or dense "
            f"retrieval, better chunking or a deeper candidate list before paying for reranking. {measured}"
        )
    elif top3 >= ALREADY_GOOD_RECALL_AT_3:
        kind = "already-good"
        text = (
            f"The first stage is already good: it finds {r50:.0%} of the relevant documents in its top 50 "
            f"and {top3_fact}. The rule: {ALREADY_GOOD_RECALL_AT_3:.0%} or more of the attainable means "
            f"already good, so a reranker has little room to help. {measured} Keep the first stage alone "
            f"unless those points matter to you."
        )
    else:
        kind = "reranker-pays"
        text = (
            f"This is where a reranker pays: the first stage finds {r50:.0%} of the relevant documents in "
            f"its top 50 (at least {FIX_RETRIEVAL_RECALL_AT_50:.0%} is needed), but {top3_fact}, below the "
            f"{ALREADY_GOOD_RECALL_AT_3:.0%} that would mean already good. The answers are there but ranked "
            f"too low. {measured}"
        )
        if best_name is not None and not worth_it:
            text += (
                f" None of the tested rerankers lifted {metric_name} by at least {MIN_USEFUL_LIFT}, "
                f"so try a stronger model before adding the latency."
            )
    return Verdict(
        kind=kind,
        text=text,
        recall_at_50=r50,
        recall_at_3=r3,
        best_method=best_name,
        lift=lift if best_name is not None else None,
        added_p95_ms=added if best_name is not None else None,
        worth_it=worth_it,
        recall_at_3_of_ideal=top3,
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
