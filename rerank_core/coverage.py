"""Judged coverage: how much of what a metric looks at was judged at all.

Coverage@k of one query is the share of its top ``k`` documents that carry a judgement, of any
grade, 0 included (an unjudged document counts as not relevant in every metric, so a metric on
a top 10 with 3 judged documents rests on 3 judgements). When fewer than ``k`` documents were
retrieved, the share is over those retrieved. A query with nothing retrieved has no top k and is
left out of the mean. Orders are TREC order, as in :mod:`rerank_core.metrics`.

:func:`coverage_warning` is the one rule every page and report uses to say a comparison rests
on too few judgements.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from rerank_core.metrics import parse_measure, rank_documents

#: below this mean Coverage@k a metric rests on too few judgements to compare methods on
LOW_COVERAGE = 0.5
#: the cutoff used when a measure has none (RR, AP): what a person looks at
DEFAULT_COVERAGE_K = 10


def coverage_at_k(ranking: Sequence[str], judgements: Mapping[str, int], k: int) -> float | None:
    """Share of ``ranking[:k]`` that is judged (any grade); None when the ranking is empty."""
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    top = list(ranking[:k])
    if not top:
        return None
    return sum(1 for d in top if d in judgements) / len(top)


def run_coverage(
    run: Mapping[str, Mapping[str, float]], qrels: Mapping[str, Mapping[str, int]], k: int
) -> dict[str, float]:
    """Coverage@k per judged query of ``qrels`` (queries with nothing retrieved are left out)."""
    out: dict[str, float] = {}
    for qid, judgements in qrels.items():
        if not judgements:
            continue
        value = coverage_at_k(rank_documents(run.get(qid) or {}), judgements, k)
        if value is not None:
            out[qid] = value
    return out


def mean_coverage(per_query: Mapping[str, float]) -> float | None:
    return sum(per_query.values()) / len(per_query) if per_query else None


def coverage_cutoffs(measures: Iterable[str]) -> list[int]:
    """The cutoffs to report coverage at: each measure's (``nDCG@10`` -> 10), else 10; sorted."""
    cuts = {parse_measure(m).cutoff or DEFAULT_COVERAGE_K for m in measures}
    return sorted(cuts or {DEFAULT_COVERAGE_K})


def coverage_key(k: int) -> str:
    """The key coverage is reported under: ``"@10"``."""
    return f"@{k}"


def coverage_table(
    run: Mapping[str, Mapping[str, float]],
    qrels: Mapping[str, Mapping[str, int]],
    cutoffs: Iterable[int] = (DEFAULT_COVERAGE_K,),
) -> dict[str, float | None]:
    """Mean Coverage@k per cutoff, keyed ``"@k"`` (None when no query retrieved anything)."""
    return {coverage_key(k): mean_coverage(run_coverage(run, qrels, k)) for k in cutoffs}


def is_low(coverage: float | None, threshold: float = LOW_COVERAGE) -> bool:
    """True when a coverage figure is below ``threshold`` (or unknown)."""
    return coverage is None or coverage < threshold


def coverage_warning(
    coverages: Mapping[str, float | None], k: int = DEFAULT_COVERAGE_K, threshold: float = LOW_COVERAGE
) -> str | None:
    """A warning when any compared method's mean Coverage@k is below ``threshold``, else None.

    ``coverages[method]`` is the method's mean Coverage@k. The text names the methods and says
    what to do (judge the unjudged shown documents, or let an LLM judge fill the gaps, labelled).
    """
    low = {m: c for m, c in coverages.items() if is_low(c, threshold)}
    if not low:
        return None
    parts = ", ".join(f"{m} {c:.0%}" if c is not None else f"{m} (nothing retrieved)" for m, c in low.items())
    return (
        f"Low judged coverage: under {threshold:.0%} of the top {k} is judged for {parts}. Unjudged documents "
        f"count as not relevant, so these metrics rest on few judgements and can favour the method whose "
        f"results were judged. Judge the unjudged shown documents, or add LLM judgements for the gaps "
        f"(reported apart from people's)."
    )
