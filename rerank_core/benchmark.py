"""The benchmark behind the app's Benchmark page: one evaluation, then the statistics that say
whether reranking pays.

:func:`run_benchmark` calls :func:`rerank_core.evaluation.run_evaluation` exactly as the
``evaluate`` command does (same dataset, first stage, depth, methods and query limit give the same
metrics), then adds, from the per-query values it keeps:

- a 95% percentile-bootstrap interval for every measure of every method;
- a paired randomisation test of each method against the first stage on nDCG@10;
- a depth sweep per pointwise reranker: nDCG@10 when only the top d first-stage candidates are
  reranked, for each d of the sweep (capped at the corpus size), and its knee. When the deepest
  sweep depth is within the evaluated depth, the sweep is derived from the evaluation's own scores
  (no extra model call); otherwise each pointwise reranker scores the deepest candidate list once
  more, and the smaller depths are derived from those scores;
- the verdict (:func:`rerank_core.answers.report_verdict`, the rule of the evaluate report too)
  from the first stage's Recall@50 and Recall@3 and each reranker's nDCG@10 lift with its 95%
  paired-bootstrap interval, p-value and p95 latency: ``reranker-pays`` only when the interval is
  above zero (the randomisation test's p is shown beside it), else ``inconclusive`` with the queries
  a clear answer would need (or ``fix-retrieval-first`` / ``already-good``);
- the adaptive policy curve per reranker: rerank only when the first stage is unsure.

Listwise rerankers (an LLM ordering the whole list) get no derived sweep: their order for a
shorter list cannot be read off one deep run, and rerunning them per depth is left to the
command line's ``depth_sweep``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from rerank_core.analysis import (
    DEFAULT_DEPTHS,
    PAIRED_TEST_NAME,
    PairedResult,
    PolicyPoint,
    SweepPoint,
    Verdict,
    adaptive_policy,
    bootstrap_ci,
    effective_depths,
    find_knee,
    paired_test,
    policy_thresholds,
    sweep_from_scores,
)
from rerank_core.answers import fallback_note, report_verdict
from rerank_core.config import Settings, load_settings
from rerank_core.cost import Budget, CostMeter
from rerank_core.errors import CorpusFormatError
from rerank_core.evaluation import (
    FIRST_STAGE,
    RERANKER,
    EvaluationReport,
    MethodEvaluation,
    run_evaluation,
)
from rerank_core.metrics import DEFAULT_MEASURES, evaluate, rank_documents
from rerank_core.pipeline import Runtime
from rerank_core.progress import Cancelled, ProgressFn, report
from rerank_core.registry import is_fusion
from rerank_core.rerankers.base import Reranker
from rerank_core.types import Dataset, ScoreScale

KEY_MEASURE = "nDCG@10"
SWEEP_K = 10


@dataclass(frozen=True)
class Interval:
    """A mean over queries with its 95% bootstrap interval."""

    mean: float
    low: float
    high: float

    def to_json(self) -> dict[str, float]:
        return {"mean": self.mean, "low": self.low, "high": self.high}


@dataclass(frozen=True)
class MethodSummary:
    """One method's row of the benchmark table."""

    name: str
    kind: str  # FIRST_STAGE or RERANKER
    label: str
    available: bool
    error: str | None
    intervals: dict[str, Interval] = field(default_factory=dict)
    paired: PairedResult | None = None  # against the first stage on KEY_MEASURE
    latency: dict[str, float] | None = None  # p50, p95, p99, mean of the method's own query time
    pipeline_latency: dict[str, float] | None = None  # first stage + reranker, per query
    model_load_s: float = 0.0
    prepare_s: float | None = None
    fallback_queries: int = 0  # queries that kept the first-stage order after an error
    metrics_note: str | None = None  # the mark on its metrics when some queries fell back

    @property
    def marked(self) -> bool:
        """True when the metrics do not all come from the method itself (fallback queries)."""
        return self.fallback_queries > 0

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "label": self.label,
            "available": self.available,
            "error": self.error,
            "intervals_95": {m: iv.to_json() for m, iv in self.intervals.items()},
            "paired_vs_first_stage": None
            if self.paired is None
            else {
                "measure": KEY_MEASURE,
                "diff": self.paired.diff_mean,
                "p_value": self.paired.p_value,
                "queries": self.paired.n,
                "test": self.paired.test_name,
            },
            "latency_ms": self.latency,
            "pipeline_latency_ms": self.pipeline_latency,
            "model_load_s": self.model_load_s,
            "prepare_s": self.prepare_s,
            "fallback_queries": self.fallback_queries,
            "metrics_note": self.metrics_note,
        }


@dataclass
class Benchmark:
    """Everything the Benchmark page shows, computed once and kept in the session."""

    report: EvaluationReport
    summaries: dict[str, MethodSummary]
    sweep_depths: list[int]
    sweeps: dict[str, list[SweepPoint]] = field(default_factory=dict)
    knees: dict[str, int] = field(default_factory=dict)
    sweep_notes: dict[str, str] = field(default_factory=dict)  # method -> why there is no sweep
    sweep_extra_pass: bool = False  # True when the rerankers scored a deeper list for the sweep
    verdict: Verdict | None = None
    verdict_note: str | None = None
    first_stage_recall3: float | None = None
    policies: dict[str, list[PolicyPoint]] = field(default_factory=dict)
    max_queries: int | None = None

    @property
    def first_stage(self) -> MethodEvaluation:
        return _first_stage_eval(self.report)

    @property
    def measures(self) -> tuple[str, ...]:
        return self.report.measures

    def to_json(self) -> dict[str, Any]:
        """The evaluation report (as the ``evaluate`` command writes it) plus the analysis."""
        out = self.report.to_json()
        out["max_queries"] = self.max_queries
        out["analysis"] = {
            "methods": {name: s.to_json() for name, s in self.summaries.items()},
            "depth_sweep": {
                "measure": KEY_MEASURE,
                "depths": self.sweep_depths,
                "extra_scoring_pass": self.sweep_extra_pass,
                "methods": {
                    name: {
                        "points": [
                            {"depth": p.depth, "value": p.value, "queries": p.n_queries} for p in points
                        ],
                        "knee": self.knees.get(name),
                    }
                    for name, points in self.sweeps.items()
                },
                "not_swept": self.sweep_notes,
            },
            "verdict": None
            if self.verdict is None
            else {
                "kind": self.verdict.kind,
                **self.verdict.to_json(),
                "text": self.verdict.text,
                "recall_at_50": self.verdict.recall_at_50,
                "recall_at_3": self.verdict.recall_at_3,
                "recall_at_3_of_ideal": self.verdict.recall_at_3_of_ideal,
                "best_method": self.verdict.best_method,
                "lift": self.verdict.lift,
                "added_p95_ms": self.verdict.added_p95_ms,
                "worth_it": self.verdict.worth_it,
            },
            "verdict_note": self.verdict_note,
            "adaptive_policy": {
                name: [
                    {
                        "threshold": None if math.isinf(p.threshold) else p.threshold,
                        "always": math.isinf(p.threshold),
                        "share_reranked": p.share_reranked,
                        "mean_metric": p.mean_metric,
                        "mean_latency_ms": p.mean_latency_ms,
                        "p95_latency_ms": p.p95_latency_ms,
                    }
                    for p in points
                ]
                for name, points in self.policies.items()
            },
        }
        return out

    def dumps(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_json(), indent=indent, allow_nan=False)


# ---------------------------------------------------------------------------------------------
# datasets from the label store


def labelled_dataset(
    corpus_queries: Mapping[str, str],
    qrels: Mapping[str, Mapping[str, int]],
    corpus: Any,
    name: str,
) -> Dataset:
    """A dataset of the labelled queries: the store's query texts and merged qrels over ``corpus``.

    Queries whose text is unknown cannot be run and are left out (as ``Dataset.judged_query_ids``
    does); the caller can report how many.
    """
    return Dataset(
        name=name,
        corpus=corpus,
        queries=dict(corpus_queries),
        qrels={q: dict(d) for q, d in qrels.items() if d},
    )


def qrels_coverage(dataset: Dataset) -> tuple[int, int]:
    """(judged documents found in the corpus, judged documents) over the judged queries."""
    judged = found = 0
    for q in dataset.judged_query_ids:
        for doc_id in dataset.qrels[q]:
            judged += 1
            found += doc_id in dataset.corpus
    return found, judged


# ---------------------------------------------------------------------------------------------
# the runner


def _first_stage_eval(rep: EvaluationReport) -> MethodEvaluation:
    fs = rep.methods.get(rep.first_stage)
    if fs is None:  # pragma: no cover - run_benchmark always lists the first stage
        raise KeyError(f"the report has no entry for the first stage {rep.first_stage!r}")
    return fs


def is_pointwise(reranker: Reranker) -> bool:
    """Whether a reranker scores each candidate on its own (so smaller depths follow from one run)."""
    if reranker.scale == ScoreScale.LLM_LISTWISE:
        return False
    return str(reranker.options.get("mode", "pointwise")) != "listwise"


def _interval(values: Mapping[str, float]) -> Interval:
    mean, low, high = bootstrap_ci(values)
    return Interval(mean, low, high)


def summarise(rep: EvaluationReport) -> dict[str, MethodSummary]:
    """Intervals, the paired test against the first stage and latencies, per method."""
    fs = _first_stage_eval(rep)
    out: dict[str, MethodSummary] = {}
    for name, m in rep.methods.items():
        if not m.available or not m.per_query:
            out[name] = MethodSummary(
                name, m.kind, m.label, False, m.error, model_load_s=m.model_load_s, prepare_s=m.prepare_s
            )
            continue
        intervals = {measure: _interval(values) for measure, values in m.per_query.items() if values}
        paired = None
        if name != rep.first_stage and fs.available and fs.per_query.get(KEY_MEASURE):
            paired = paired_test(fs.per_query[KEY_MEASURE], m.per_query[KEY_MEASURE])
        pipeline = None
        if m.kind == RERANKER and m.pipeline_latencies_ms:
            from rerank_core.metrics import latency_summary

            pipeline = latency_summary(m.pipeline_latencies_ms.values())
        out[name] = MethodSummary(
            name=name,
            kind=m.kind,
            label=m.label,
            available=True,
            error=m.error,
            intervals=intervals,
            paired=paired,
            latency=m.latency,
            pipeline_latency=pipeline,
            model_load_s=m.model_load_s,
            prepare_s=m.prepare_s,
            fallback_queries=len(m.fallback_queries),
            metrics_note=fallback_note(m, len(rep.query_ids)),
        )
    return out


def run_benchmark(
    dataset: Dataset,
    first_stage: str,
    depth: int,
    methods: Sequence[str],
    *,
    max_queries: int | None = None,
    sweep_depths: Sequence[int] = DEFAULT_DEPTHS,
    settings: Settings | None = None,
    progress: ProgressFn | None = None,
    runtime: Runtime | None = None,
    concurrency: int = 1,
    budget: Budget | None = None,
    tags: Mapping[str, Sequence[str]] | None = None,
) -> Benchmark:
    """Evaluate ``methods`` (the first stage is added first if missing) and analyse the outcome.

    Models and indexes come from ``runtime`` (the app passes its process-wide one; by default a new
    one). ``progress(done, total, message)`` may raise :class:`~rerank_core.progress.Cancelled`, which
    stops the run and propagates. ``concurrency`` is how many queries of a hosted method run at once.
    ``budget`` covers the whole run, the depth sweep's extra scoring included: going over raises
    :class:`~rerank_core.cost.BudgetExceeded`. ``tags[query_id]`` group the per-query analysis.
    """
    settings = settings or load_settings()
    runtime = runtime or Runtime()
    meter = CostMeter(budget, settings.prices) if budget is not None else None
    methods = [m.strip() for m in methods if m and m.strip()]
    if first_stage not in methods:
        methods = [first_stage, *methods]
    if not dataset.judged_query_ids:
        raise CorpusFormatError(
            f"{dataset.name!r} has no query with relevance judgements",
            hint="label some results on the Compare page, import qrels on the Labels page, "
            "or load a dataset that has qrels",
        )

    def phase(prefix: str) -> ProgressFn | None:
        if progress is None:
            return None

        def inner(done: int, total: int, message: str = "") -> None:
            progress(done, total, f"{prefix}{message}")

        return inner

    rep = run_evaluation(
        dataset,
        first_stage,
        depth,
        methods,
        max_queries=max_queries,
        settings=settings,
        progress=phase(""),
        runtime=runtime,
        measures=DEFAULT_MEASURES,
        concurrency=concurrency,
        tags=tags,
        meter=meter,
    )
    bench = Benchmark(report=rep, summaries=summarise(rep), sweep_depths=[], max_queries=max_queries)
    fs = _first_stage_eval(rep)
    if not fs.available:
        bench.verdict_note = (
            f"The first stage {first_stage!r} did not run, so there is nothing to compare: {fs.error}"
        )
        return bench

    # -- depth sweep ------------------------------------------------------------------------------
    corpus_size = len(dataset.corpus)
    levels = effective_depths(sweep_depths or DEFAULT_DEPTHS, corpus_size)
    bench.sweep_depths = levels
    deepest = levels[-1]
    rerankers = {
        name: runtime.reranker(name, settings)
        for name, m in rep.methods.items()
        if m.kind == RERANKER and m.available and not is_fusion(name)
    }
    swept = [name for name, r in rerankers.items() if is_pointwise(r)]
    for name, m in rep.methods.items():
        if m.kind != RERANKER:
            continue
        if is_fusion(name) and m.available:
            bench.sweep_notes[name] = "a fusion is not swept: sweep the methods it fuses"
        elif not m.available or name not in rerankers:
            bench.sweep_notes[name] = "did not run"
        elif name not in swept:
            bench.sweep_notes[name] = (
                "a listwise method's order for a shorter list cannot be derived from one run; "
                "use depth_sweep(..., pointwise=False) from the command line"
            )
    if swept:
        if deepest <= depth:
            fs_ranking = {q: rank_documents(fs.run.get(q, {}))[:deepest] for q in rep.query_ids}
            scores = {name: rep.methods[name].run for name in swept}
        else:
            bench.sweep_extra_pass = True
            fs_ranking, scores = _deep_scores(
                dataset,
                rep,
                first_stage,
                deepest,
                swept,
                settings,
                runtime,
                phase("depth sweep: "),
                meter,
            )
        for name in swept:
            usable = {
                q: ranking
                for q, ranking in fs_ranking.items()
                if ranking and all(d in scores[name].get(q, {}) for d in ranking)
            }
            if not usable:
                bench.sweep_notes[name] = "no query was scored for the sweep"
                continue
            points = sweep_from_scores(
                usable, scores[name], rep.qrels, levels, k=SWEEP_K, corpus_size=corpus_size
            )
            bench.sweeps[name] = points
            bench.sweep_depths = [p.depth for p in points]  # capped at the longest candidate list
            bench.knees[name] = find_knee([p.depth for p in points], [p.value for p in points])
            if len(usable) < len(fs_ranking):
                bench.sweep_notes[name] = (
                    f"swept on {len(usable)} of {len(fs_ranking)} queries (the others failed for this method)"
                )

    # -- verdict ----------------------------------------------------------------------------------
    # the one rule of the evaluate report too (rerank_core.answers.report_verdict)
    recall3 = evaluate(fs.run, rep.qrels, ["R@3"])["R@3"]
    bench.first_stage_recall3 = sum(recall3.values()) / len(recall3) if recall3 else 0.0
    bench.verdict = report_verdict(rep)
    if depth < 50:
        bench.verdict_note = (
            f"The first stage returned only {depth} candidates per query, so its Recall@50 is its "
            f"Recall@{depth}: raise the depth to 50 or more for the verdict's recall figure."
        )

    # -- adaptive policy --------------------------------------------------------------------------
    for name, m in rep.methods.items():
        if m.kind != RERANKER or not m.available:
            continue
        queries = [
            q
            for q in rep.query_ids
            if q in fs.latencies_ms
            and q in m.latencies_ms
            and fs.run.get(q)
            and q in m.per_query[KEY_MEASURE]
        ]
        if not queries:
            continue
        fs_scores = {q: sorted(fs.run[q].values(), reverse=True) for q in queries}
        bench.policies[name] = adaptive_policy(
            fs_scores,
            {q: fs.per_query[KEY_MEASURE][q] for q in queries},
            {q: m.per_query[KEY_MEASURE][q] for q in queries},
            {q: fs.latencies_ms[q] for q in queries},
            {q: m.latencies_ms[q] for q in queries},
            policy_thresholds(fs_scores),
        )
    return bench


def _prefixed(progress: ProgressFn | None, prefix: str) -> ProgressFn | None:
    if progress is None:
        return None

    def inner(done: int, total: int, message: str = "") -> None:
        progress(done, total, f"{prefix}{done}/{total}" + (f": {message}" if message else ""))

    return inner


def _deep_scores(
    dataset: Dataset,
    rep: EvaluationReport,
    first_stage: str,
    deepest: int,
    swept: Sequence[str],
    settings: Settings,
    runtime: Runtime,
    progress: ProgressFn | None,
    meter: CostMeter | None = None,
) -> tuple[dict[str, list[str]], dict[str, dict[str, dict[str, float]]]]:
    """The first stage's top ``deepest`` per query and every swept reranker's scores for them."""
    retriever = runtime.first_stage(first_stage, dataset.corpus, settings)
    total = len(rep.query_ids) * (1 + len(swept))
    done = 0
    candidates = {}
    for qid in rep.query_ids:
        cands, _ = retriever.candidates(dataset.queries[qid], deepest)
        candidates[qid] = cands
        done += 1
        report(progress, done, total, f"first stage top {deepest}")
    fs_ranking = {q: [c.doc_id for c in cands] for q, cands in candidates.items()}
    scores: dict[str, dict[str, dict[str, float]]] = {}
    for name in swept:
        reranker = runtime.reranker(name, settings)
        per_query: dict[str, dict[str, float]] = {}
        for qid in rep.query_ids:
            if meter is not None:
                meter.check(name)
            res = reranker.rerank(dataset.queries[qid], candidates[qid], first_stage_scale=retriever.scale)
            if meter is not None:
                meter.record(name, res.usage, res.latency_ms / 1000.0)
            if res.ok and res.items:
                per_query[qid] = {it.doc_id: it.score for it in res.items}
            done += 1
            report(progress, done, total, f"{name} on {deepest} candidates")
        scores[name] = per_query
    return fs_ranking, scores


__all__ = [
    "FIRST_STAGE",
    "KEY_MEASURE",
    "PAIRED_TEST_NAME",
    "RERANKER",
    "Benchmark",
    "Cancelled",
    "Interval",
    "MethodSummary",
    "is_pointwise",
    "labelled_dataset",
    "qrels_coverage",
    "run_benchmark",
    "summarise",
]
