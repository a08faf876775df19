"""IR metrics and latency summaries, following trec_eval's conventions.

A *run* is ``{query_id: {doc_id: score}}`` with TREC semantics: documents are ordered by score,
highest first, and ties are broken by doc id in DESCENDING order (what trec_eval, and ir_measures'
pytrec_eval provider, do). Like trec_eval, scores are compared after rounding to 32-bit floats:
scores that differ only beyond about 7 significant digits tie (measured with ir_measures 0.4.3). :func:`ranked_run` turns ranked lists into such a run; the per-query
functions take a ranked list of doc ids directly.

*Qrels* are ``{query_id: {doc_id: grade}}``. Conventions (all checked against ir_measures):

- a document counts as relevant when its grade is >= 1; grades <= 0 are non-relevant and give no
  gain (a negative grade never lowers a score);
- nDCG uses LINEAR gain (the grade itself) and the discount ``1 / log2(rank + 1)``; the ideal
  ordering is built from every judged relevant document of the query, not only retrieved ones;
- P@k divides by k even when fewer than k documents were retrieved;
- R@k and AP divide by the number of relevant judged documents; a query without any relevant
  document scores 0 on every measure (trec_eval and ir_measures give 0, and keep the query in the
  mean);
- a query that has judgements but is missing from the run scores 0 on every measure, and counts
  in the mean. Queries of the run without judgements are ignored; so are queries whose judgement
  set is empty.

Measure names are written as in ir_measures: ``nDCG``, ``nDCG@10``, ``R@50``, ``P@5``, ``RR``,
``RR@10``, ``AP``, ``AP@100``. P and R need a cutoff. ``AP@k`` is trec_eval's ``map_cut_k``
(precision summed over relevant documents within the top k, divided by ALL relevant documents).
One known difference: ir_measures computes ``RR@k`` with its MS MARCO provider, which breaks score
ties by doc id ASCENDING; this module uses trec_eval's order for every measure, so on runs with
tied scores ``RR@k`` can differ from ir_measures' (``RR`` without a cutoff matches).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

Run = dict[str, dict[str, float]]
Qrels = dict[str, dict[str, int]]

DEFAULT_MEASURES: tuple[str, ...] = ("nDCG@10", "R@10", "R@50", "RR", "P@5")
MEASURE_NAMES: tuple[str, ...] = ("nDCG", "R", "P", "RR", "AP")
_NEEDS_CUTOFF = frozenset({"R", "P"})
_MEASURE_RE = re.compile(r"^\s*([A-Za-z]+)\s*(?:@\s*(\d+))?\s*$")

# ---------------------------------------------------------------------------------------------
# ordering


def trec_score(score: float) -> float:
    """A score as trec_eval compares it: rounded to a 32-bit float (trec_eval stores it so)."""
    with np.errstate(over="ignore"):
        return float(np.float32(score))


def rank_documents(scores: Mapping[str, float]) -> list[str]:
    """Doc ids in TREC order: score descending, ties by doc id descending.

    Scores are compared as 32-bit floats, as trec_eval does, so two scores closer than float32
    precision (about 7 significant digits) tie and the doc ids decide.
    """
    return sorted(scores, key=lambda d: (trec_score(scores[d]), d), reverse=True)


def ranked_run(rankings: Mapping[str, Sequence[str]]) -> Run:
    """A run whose TREC order is exactly the given ranked lists (scores n, n-1, ..., 1)."""
    run: Run = {}
    for qid, ranking in rankings.items():
        _check_unique(ranking, qid)
        n = len(ranking)
        run[qid] = {doc_id: float(n - i) for i, doc_id in enumerate(ranking)}
    return run


def _check_unique(ranking: Sequence[str], qid: str = "") -> None:
    if len(set(ranking)) == len(ranking):
        return
    seen: set[str] = set()
    for doc_id in ranking:
        if doc_id in seen:
            where = f" for query {qid!r}" if qid else ""
            raise ValueError(f"document {doc_id!r} appears twice in the ranking{where}")
        seen.add(doc_id)


# ---------------------------------------------------------------------------------------------
# per-query measures (ranking = doc ids, best first)


def _grades(ranking: Sequence[str], judgements: Mapping[str, int], k: int | None) -> np.ndarray:
    """Grades of the top ``k`` documents (unjudged = 0), as floats."""
    _check_unique(ranking)
    top = ranking if k is None else ranking[:k]
    return np.array([float(judgements.get(d, 0)) for d in top], dtype=np.float64)


def _num_relevant(judgements: Mapping[str, int]) -> int:
    return sum(1 for g in judgements.values() if g >= 1)


def _check_k(k: int | None, required: bool = False) -> None:
    if k is None:
        if required:
            raise ValueError("this measure needs a cutoff k")
        return
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"cutoff k must be a positive integer, got {k!r}")


def _discounts(n: int) -> np.ndarray:
    return 1.0 / np.log2(np.arange(2, n + 2, dtype=np.float64))


def ndcg_at_k(ranking: Sequence[str], judgements: Mapping[str, int], k: int | None = None) -> float:
    """nDCG with linear gain max(grade, 0) and discount 1/log2(rank+1); ideal from all judgements."""
    _check_k(k)
    gains = np.maximum(_grades(ranking, judgements, k), 0.0)
    ideal = np.sort(np.array([float(g) for g in judgements.values() if g > 0], dtype=np.float64))[::-1]
    if k is not None:
        ideal = ideal[:k]
    idcg = float(np.dot(ideal, _discounts(len(ideal))))
    if idcg <= 0.0:
        return 0.0
    dcg = float(np.dot(gains, _discounts(len(gains))))
    return dcg / idcg


def recall_at_k(ranking: Sequence[str], judgements: Mapping[str, int], k: int) -> float:
    """Relevant (grade >= 1) documents in the top k over all relevant judged; 0 if none is relevant."""
    _check_k(k, required=True)
    n_rel = _num_relevant(judgements)
    if n_rel == 0:
        return 0.0
    return float(np.count_nonzero(_grades(ranking, judgements, k) >= 1)) / n_rel


def precision_at_k(ranking: Sequence[str], judgements: Mapping[str, int], k: int) -> float:
    """Relevant documents in the top k over k (k, not the number retrieved)."""
    _check_k(k, required=True)
    return float(np.count_nonzero(_grades(ranking, judgements, k) >= 1)) / k


def reciprocal_rank(ranking: Sequence[str], judgements: Mapping[str, int], k: int | None = None) -> float:
    """1 / rank of the first relevant document (within the top k if given), else 0."""
    _check_k(k)
    hits = np.flatnonzero(_grades(ranking, judgements, k) >= 1)
    return 0.0 if hits.size == 0 else 1.0 / float(hits[0] + 1)


def average_precision(ranking: Sequence[str], judgements: Mapping[str, int], k: int | None = None) -> float:
    """Mean of the precision at each relevant rank (within the top k), over ALL relevant judged."""
    _check_k(k)
    n_rel = _num_relevant(judgements)
    if n_rel == 0:
        return 0.0
    rel = _grades(ranking, judgements, k) >= 1
    if not rel.any():
        return 0.0
    ranks = np.flatnonzero(rel) + 1.0
    precisions = np.arange(1, ranks.size + 1, dtype=np.float64) / ranks
    return float(precisions.sum()) / n_rel


# ---------------------------------------------------------------------------------------------
# measure names


@dataclass(frozen=True)
class Measure:
    """A parsed measure name such as ``nDCG@10`` (``cutoff`` None = the whole ranking)."""

    name: str
    cutoff: int | None = None

    def __str__(self) -> str:
        return self.name if self.cutoff is None else f"{self.name}@{self.cutoff}"

    def compute(self, ranking: Sequence[str], judgements: Mapping[str, int]) -> float:
        if self.name == "nDCG":
            return ndcg_at_k(ranking, judgements, self.cutoff)
        if self.name == "R":
            return recall_at_k(ranking, judgements, self.cutoff)  # type: ignore[arg-type]
        if self.name == "P":
            return precision_at_k(ranking, judgements, self.cutoff)  # type: ignore[arg-type]
        if self.name == "RR":
            return reciprocal_rank(ranking, judgements, self.cutoff)
        if self.name == "AP":
            return average_precision(ranking, judgements, self.cutoff)
        raise AssertionError(self.name)  # pragma: no cover - parse_measure guards this


_CANONICAL = {n.lower(): n for n in MEASURE_NAMES} | {"ndcg_cut": "nDCG", "map": "AP", "recall": "R"}


def parse_measure(text: str | Measure) -> Measure:
    """Parse an ir_measures-style name: ``nDCG@10``, ``R@50``, ``P@5``, ``RR``, ``RR@10``, ``AP``."""
    if isinstance(text, Measure):
        return text
    m = _MEASURE_RE.match(str(text))
    name = _CANONICAL.get(m.group(1).lower()) if m else None
    if m is None or name is None:
        raise ValueError(
            f"unknown measure {text!r}: use one of nDCG[@k], R@k, P@k, RR[@k], AP[@k] (for example nDCG@10)"
        )
    cutoff = int(m.group(2)) if m.group(2) is not None else None
    if cutoff is not None and cutoff < 1:
        raise ValueError(f"measure {text!r}: the cutoff must be >= 1")
    if cutoff is None and name in _NEEDS_CUTOFF:
        raise ValueError(f"measure {text!r} needs a cutoff, for example {name}@10")
    return Measure(name, cutoff)


# ---------------------------------------------------------------------------------------------
# whole runs


def evaluated_queries(qrels: Mapping[str, Mapping[str, int]]) -> list[str]:
    """The queries a run is scored on: those with at least one judgement (in the qrels' order)."""
    return [qid for qid, judged in qrels.items() if judged]


def evaluate(
    run: Mapping[str, Mapping[str, float]],
    qrels: Mapping[str, Mapping[str, int]],
    measures: Iterable[str | Measure] = DEFAULT_MEASURES,
) -> dict[str, dict[str, float]]:
    """Per-query values: ``{measure name: {query id: value}}`` for every judged query.

    A judged query missing from the run (or with no documents) scores 0.
    """
    parsed = [parse_measure(m) for m in measures]
    out: dict[str, dict[str, float]] = {str(m): {} for m in parsed}
    for qid in evaluated_queries(qrels):
        judgements = qrels[qid]
        ranking = rank_documents(run.get(qid) or {})
        for m in parsed:
            out[str(m)][qid] = m.compute(ranking, judgements)
    return out


def aggregate(per_query: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
    """The mean of each measure over its queries (as :func:`evaluate` returns them)."""
    out: dict[str, float] = {}
    for measure, values in per_query.items():
        if not values:
            raise ValueError(f"no queries to average for {measure}: the qrels have no judged query")
        out[measure] = float(np.mean(np.fromiter(values.values(), dtype=np.float64, count=len(values))))
    return out


# ---------------------------------------------------------------------------------------------
# latency


def latency_summary(ms_list: Iterable[float]) -> dict[str, float]:
    """p50, p95, p99 and mean of latencies in milliseconds.

    Percentiles use numpy's default ``linear`` interpolation (type 7 of Hyndman and Fan: the value
    at position ``p/100 * (n-1)`` of the sorted sample, interpolated between neighbours), so p99 of
    fewer than 100 samples lies between the two largest values rather than being the maximum.
    """
    values = np.asarray(list(ms_list), dtype=np.float64)
    if values.size == 0:
        raise ValueError("latency_summary needs at least one latency")
    if not np.all(np.isfinite(values)):
        raise ValueError("latencies must be finite numbers")
    p50, p95, p99 = np.percentile(values, [50, 95, 99], method="linear")
    return {"p50": float(p50), "p95": float(p95), "p99": float(p99), "mean": float(values.mean())}
