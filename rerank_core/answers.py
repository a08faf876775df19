"""What an evaluation answers: the verdict, per-query wins and losses, judged coverage, cost and
score distributions, computed from an :class:`~rerank_core.evaluation.EvaluationReport`.

One place for the rule: the ``evaluate`` report (:func:`add_answers`, called by
``EvaluationReport.to_json``) and the Benchmark page (:mod:`rerank_core.benchmark`) both take the
verdict from :func:`report_verdict`.

Keys added to the report JSON (existing keys are never changed):

- ``verdict``: ``{"call", "method", "lift", "ci": [lo, hi], "p", "queries_needed"}`` (null when
  the first stage did not run); ``verdict_detail``: the text, the rules, the first stage's recall
  and every reranker's lift, interval, p-value, queries needed and fallback count;
- ``per_query_analysis``: per method against the first stage on nDCG@10: wins, losses, ties, the
  queries sorted by difference with the attribution of missing relevant documents, and
  ``by_tag`` (the same per query tag);
- ``coverage_warning``: the low-coverage warning of the comparison at k = 10 (or null);
- ``query_texts``, ``query_tags``, ``settings`` (incl. ``prices``), ``versions``;
- per method: ``scale``, ``per_query`` (every measure per query), ``coverage`` (mean Coverage@k,
  keyed ``"@k"`` for each measure's cutoff), ``cost`` (per 1,000 queries, null with a reason),
  ``score_distribution`` (histogram, scale named), and, for a method with fallbacks,
  ``fallback_query_ids`` and ``metrics_note``.

The same figures as objects, for pages: :func:`report_verdict`, :func:`lift_estimates`,
:func:`per_query_results` (then :func:`rerank_core.per_query.per_tag` or :func:`tag_tables`), :func:`coverages`,
:func:`method_costs`, :func:`score_histograms` and :func:`fallback_note`.
"""

from __future__ import annotations

import platform
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from rerank_core.analysis import (
    LiftEstimate,
    Verdict,
    estimate_lift,
    paired_bootstrap_ci,
    recall_of_ideal,
    verdict,
    verdict_rules,
)
from rerank_core.cost import CostEstimate, cost_per_1000
from rerank_core.coverage import DEFAULT_COVERAGE_K, coverage_cutoffs, coverage_table, coverage_warning
from rerank_core.distributions import DEFAULT_BINS, ScoreHistogram, score_histogram
from rerank_core.metrics import evaluate
from rerank_core.per_query import ATTRIBUTION_TEXT, WinLoss, per_tag, wins_and_losses

if TYPE_CHECKING:
    from rerank_core.evaluation import EvaluationReport, MethodEvaluation

KEY_MEASURE = "nDCG@10"
KEY_K = 10
RERANKER_KIND = "reranker"


def first_stage_of(rep: EvaluationReport) -> MethodEvaluation | None:
    """The first stage's evaluation (also when it was not listed among the methods)."""
    return rep.methods.get(rep.first_stage) or rep.first_stage_eval


def _usable(m: MethodEvaluation | None) -> bool:
    return m is not None and m.available and bool(m.per_query.get(KEY_MEASURE))


def lift_estimates(rep: EvaluationReport) -> dict[str, LiftEstimate]:
    """Each reranker that ran against the first stage on nDCG@10 (interval, p, queries needed)."""
    fs = first_stage_of(rep)
    if not _usable(fs):
        return {}
    assert fs is not None
    out = {}
    for name, m in rep.methods.items():
        if m.kind != RERANKER_KIND or not _usable(m):
            continue
        out[name] = estimate_lift(
            name,
            fs.per_query[KEY_MEASURE],
            m.per_query[KEY_MEASURE],
            added_p95_ms=m.latency["p95"] if m.latency else None,
            fallback_queries=len(m.fallback_queries),
        )
    return out


def first_stage_recall(rep: EvaluationReport) -> tuple[float, float, float | None] | None:
    """``(mean Recall@50, mean Recall@3, mean Recall@3 of ideal)`` of the first stage, or None."""
    fs = first_stage_of(rep)
    if fs is None or not fs.available:
        return None
    values = evaluate(fs.run, rep.qrels, ["R@50", "R@3"])
    if not values["R@50"]:
        return None
    r50 = sum(values["R@50"].values()) / len(values["R@50"])
    r3 = sum(values["R@3"].values()) / len(values["R@3"])
    of_ideal = recall_of_ideal(fs.run, rep.qrels, 3)
    return r50, r3, (sum(of_ideal.values()) / len(of_ideal) if of_ideal else None)


def report_verdict(rep: EvaluationReport) -> Verdict | None:
    """The verdict (:func:`rerank_core.analysis.verdict`) of an evaluation; None when the first stage
    did not run. The one rule used by the evaluate report and the Benchmark page."""
    recall = first_stage_recall(rep)
    fs = first_stage_of(rep)
    if recall is None or fs is None:
        return None
    r50, r3, of_ideal = recall
    baseline = fs.metrics.get(KEY_MEASURE) if fs.metrics else None
    return verdict(
        r50, r3, lift_estimates(rep), metric_name=KEY_MEASURE, baseline=baseline, recall3_of_ideal=of_ideal
    )


def per_query_results(rep: EvaluationReport, k: int = KEY_K) -> dict[str, WinLoss]:
    """Wins, losses, ties and attribution per reranker that ran, against the first stage whose
    candidates it reordered (other retrievers have other candidates: attribution does not apply)."""
    fs = first_stage_of(rep)
    if fs is None or not fs.available:
        return {}
    out = {}
    for name, m in rep.methods.items():
        if m.kind != RERANKER_KIND or not m.available:
            continue
        out[name] = wins_and_losses(
            fs.run, m.run, rep.qrels, depth=rep.depth, method=name, measure=KEY_MEASURE, k=k, tags=rep.tags
        )
    return out


def coverages(rep: EvaluationReport, k: int = DEFAULT_COVERAGE_K) -> dict[str, float | None]:
    """Mean Coverage@k of every method that ran (for the coverage chip and :func:`coverage_warning`)."""
    return {
        name: coverage_table(m.run, rep.qrels, [k])[f"@{k}"] for name, m in rep.methods.items() if m.available
    }


def method_costs(rep: EvaluationReport) -> dict[str, CostEstimate]:
    """Cost per 1,000 queries of every method that ran, from the report's prices (None with a reason)."""
    return {
        name: cost_per_1000(name, rep.prices, m.latencies_ms, m.usage)
        for name, m in rep.methods.items()
        if m.available
    }


def score_histograms(rep: EvaluationReport, bins: int = DEFAULT_BINS) -> dict[str, ScoreHistogram]:
    """The score distribution of every method that ran, scale named, fallback queries left out."""
    out = {}
    for name, m in rep.methods.items():
        if not m.available:
            continue
        hist = score_histogram(
            m.run, method=name, scale=m.scale, exclude_queries=m.fallback_queries, bins=bins
        )
        if hist is not None:
            out[name] = hist
    return out


def fallback_note(m: MethodEvaluation, n_queries: int) -> str | None:
    """The mark on a method's metrics when some queries fell back to the first-stage order."""
    if not m.fallback_queries:
        return None
    return (
        f"{len(m.fallback_queries)} of {n_queries} queries fell back to the first-stage order after an "
        f"error: on those its metrics are the first stage's"
    )


def versions() -> dict[str, str | None]:
    """Python and the versions of the packages the figures depend on (None: not installed)."""
    from importlib.metadata import PackageNotFoundError, version

    import rerank_core

    out: dict[str, str | None] = {
        "python": platform.python_version(),
        "rerank-playground": rerank_core.__version__,
    }
    for pkg in ("torch", "sentence-transformers", "transformers", "numpy", "scipy", "plotly"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = None
    return out


def _interval(values: list[float]) -> list[float] | None:
    if not values:
        return None
    _, lo, hi = paired_bootstrap_ci(values)
    return [lo, hi]


def tag_tables(results: Mapping[str, WinLoss]) -> dict[str, dict[str, Any]]:
    """Per query tag and method: queries, wins, losses, ties, mean difference, attribution and the
    95% interval of the mean difference (``report["per_query_analysis"]["by_tag"]``)."""
    out: dict[str, dict[str, Any]] = {}
    for name, result in results.items():
        for tag, sub in per_tag(result).items():
            row = sub.summary_json()
            row["ci"] = _interval([q.diff for q in sub.queries])
            out.setdefault(tag, {})[name] = row
    return out


def add_answers(rep: EvaluationReport, data: dict[str, Any]) -> dict[str, Any]:
    """``data`` (the report's base JSON) with the keys listed in the module docstring added."""
    v = report_verdict(rep)
    results = per_query_results(rep)
    cutoffs = coverage_cutoffs(rep.measures)
    n = len(rep.query_ids)
    key_coverage = coverages(rep)
    costs = method_costs(rep)
    hists = score_histograms(rep)
    for name, m in rep.methods.items():
        entry = data["methods"][name]
        entry["scale"] = m.scale or None
        if not m.available:
            continue
        entry["per_query"] = {measure: dict(values) for measure, values in m.per_query.items()}
        entry["coverage"] = coverage_table(m.run, rep.qrels, cutoffs)
        entry["cost"] = costs[name].to_json()
        entry["score_distribution"] = hists[name].to_json() if name in hists else None
        if m.fallback_queries:
            entry["fallback_query_ids"] = sorted(m.fallback_queries)
            entry["metrics_note"] = fallback_note(m, n)

    data["verdict"] = v.to_json() if v else None
    detail: dict[str, Any] = {"measure": KEY_MEASURE, "rules": verdict_rules(KEY_MEASURE)}
    if v is None:
        fs = first_stage_of(rep)
        detail["text"] = None
        detail["note"] = (
            f"The first stage {rep.first_stage!r} did not run, so there is nothing to compare"
            + (f": {fs.error}" if fs is not None and fs.error else ".")
        )
    else:
        detail["text"] = v.text
        detail["first_stage"] = {
            "recall_at_50": v.recall_at_50,
            "recall_at_3": v.recall_at_3,
            "recall_at_3_of_ideal": v.recall_at_3_of_ideal,
        }
        detail["methods"] = {
            name: {
                "lift": e.lift,
                "ci": [e.ci_low, e.ci_high],
                "p": e.p_value,
                "queries": e.n,
                "queries_needed": e.queries_needed,
                "added_p95_ms": e.added_p95_ms,
                "fallback_queries": e.fallback_queries,
            }
            for name, e in v.estimates.items()
        }
        if rep.depth < 50:
            detail["note"] = (
                f"The first stage returned only {rep.depth} candidates per query, so its Recall@50 is its "
                f"Recall@{rep.depth}: raise the depth to 50 or more for the verdict's recall figure."
            )
    data["verdict_detail"] = detail
    data["per_query_analysis"] = {
        "measure": KEY_MEASURE,
        "k": KEY_K,
        "depth": rep.depth,
        "attribution": dict(ATTRIBUTION_TEXT),
        "methods": {name: r.to_json() for name, r in results.items()},
        "by_tag": tag_tables(results),
    }
    data["coverage_warning"] = coverage_warning(key_coverage, DEFAULT_COVERAGE_K) if key_coverage else None
    data["query_texts"] = dict(rep.query_texts)
    data["query_tags"] = {q: list(t) for q, t in rep.tags.items()}
    data["settings"] = {**rep.settings_used, "prices": {k: dict(p) for k, p in rep.prices.items()}}
    data["versions"] = versions()
    return data
