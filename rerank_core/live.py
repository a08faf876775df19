"""Live metrics of one query: what the Compare and Labels pages show while people label.

Computed by :mod:`rerank_core.metrics` exactly as ``evaluate`` computes them (the order's scores as
a run, trec_eval's tie-breaking), from the query's judgements. An unjudged or skipped document
counts as not relevant and is counted as unjudged; Coverage@k is the share of the shown top ``k``
that carries a grade (:mod:`rerank_core.coverage`'s definition, one query at a time), so every
figure says how many judgements it rests on.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rerank_core.metrics import evaluate
from rerank_core.trec import results_to_run
from rerank_core.types import RerankResult

LIVE_QUERY = "live"  # the query id under which one query's live metrics are computed


def coverage_name(k: int) -> str:
    return f"Coverage@{k}"


def live_metrics(
    grades: Mapping[str, int | None], results: Mapping[str, RerankResult], k: int
) -> list[dict[str, Any]]:
    """Per order: ``nDCG@k``, ``P@k``, ``RR@k``, ``unjudged`` (shown documents without a grade),
    ``Coverage@k`` (the share of the shown top ``k`` with a grade) and ``shown``. An order with
    nothing shown (a method that did not run) has None for every figure."""
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    judged = {d: g for d, g in grades.items() if g is not None}
    measures = [f"nDCG@{k}", f"P@{k}", f"RR@{k}"]
    cov = coverage_name(k)
    rows = []
    for method, res in results.items():
        shown = res.ids[:k]
        row: dict[str, Any] = {
            "method": method,
            **dict.fromkeys(measures),
            "unjudged": None,
            cov: None,
            "shown": len(shown),
        }
        if shown and judged:
            run = results_to_run({LIVE_QUERY: res})
            values = evaluate(run, {LIVE_QUERY: judged}, measures)
            row.update({m: values[m][LIVE_QUERY] for m in measures})
        elif shown:
            row.update(dict.fromkeys(measures, 0.0))
        if shown:
            missing = sum(1 for d in shown if d not in judged)
            row["unjudged"] = missing
            row[cov] = (len(shown) - missing) / len(shown)
        rows.append(row)
    return rows
