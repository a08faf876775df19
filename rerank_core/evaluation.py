"""The evaluation runner shared by the ``evaluate`` command and the benchmark page.

:func:`run_evaluation` runs every judged query (or the first N) through the first stage once and
hands the SAME top-``depth`` candidates to each reranker, which orders all of them (the full
permutation goes into its run). A first-stage name among the methods (``bm25``, ``dense``,
``hybrid``) is evaluated as a retriever over the whole corpus with its own top ``depth``.

Timing, per method: the model load (``model_load_s``) and the per-corpus precomputation
(``prepare_s``, e.g. document token embeddings for late interaction) happen before any timed query;
one warm-up query follows and is reported apart (``warmup_ms``; its text is not one of the
evaluated queries, so answer caches cannot turn a timed query into a hit); then each query is timed. A
reranker's ``latency_ms`` is its own scoring time for the candidates (the first stage's time is
added in ``pipeline_latency_ms``). For a first stage, ``model_load_s`` is its index build time,
which includes loading an encoder (also given as ``index_build_s``).

Query ids flow through: each query is asked with its dataset id, so a run-file first stage
(``run:PATH``) serves the candidates it lists for that id; a judged query the run does not list has
no candidates (it scores 0) and is counted in ``first_stage_warnings`` with the run's own warnings.

``fusion:A+B+...`` is evaluated after the methods it fuses, from their results on the same
candidates (components that are not listed are computed too, and not reported); see
:mod:`rerank_core.fusion`. Its ``latency_ms`` is its components' query times one after another plus
the fusion (the first stage's own time is in ``pipeline_latency_ms``, as for a reranker).

``concurrency`` > 1 runs up to that many queries of a hosted method (``method_info(name).hosted``)
at once; each query's ``latency_ms`` is still its own call's (waits for a rate limit's turn
excluded), and usage a service reports is kept per query.

A method that cannot run is reported ``available: false`` with the error and what to do; the
others go on. A query on which a hosted reranker failed keeps the first-stage order (a *fallback*,
counted per method as ``fallback_queries``), with the first stage's scores under the first stage's
scale.

A budget (:class:`~rerank_core.cost.Budget`: dollars of priced methods, seconds of measured query
time) is checked before each query of each method and counted after it
(:class:`~rerank_core.cost.CostMeter`); a run that would go over stops with
:class:`~rerank_core.cost.BudgetExceeded`, whose message says where and how much was spent. Per-query values stay on the report (``MethodEvaluation.per_query``) for bootstrap
intervals and paired tests.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rerank_core.config import Settings, load_settings
from rerank_core.cost import Budget, CostMeter
from rerank_core.errors import CorpusFormatError, InvalidMethod
from rerank_core.metrics import (
    DEFAULT_MEASURES,
    Qrels,
    Run,
    aggregate,
    evaluate,
    latency_summary,
    parse_measure,
)
from rerank_core.pipeline import Runtime
from rerank_core.progress import Cancelled, ProgressFn, report
from rerank_core.registry import RERANKERS, RETRIEVERS, is_fusion, method_info
from rerank_core.rerankers.base import Reranker
from rerank_core.retrieval.base import NoCandidatesForQuery, Retriever
from rerank_core.trec import results_to_run, write_run
from rerank_core.types import Candidate, Dataset, MethodError, MethodSpec, RerankResult, ScoreScale

FIRST_STAGE = "first-stage"
RERANKER = "reranker"


def _error_text(exc: BaseException) -> str:
    if isinstance(exc, ImportError):
        missing = getattr(exc, "name", None) or ""
        if missing.startswith("rerank_core"):
            return f"its backend module {missing} is not part of this installation. Fix: update Rerank Playground"
        return f"a package it needs is not installed ({exc}). Fix: pip install -r requirements.txt"
    return str(MethodError.from_exception(exc))


def _summary(values: Sequence[float]) -> dict[str, float] | None:
    if not values:
        return None
    s = latency_summary(values)
    return {"p50": s["p50"], "p95": s["p95"], "mean": s["mean"]}


@dataclass
class MethodEvaluation:
    """One method's outcome. ``per_query[measure][qid]`` and ``latencies_ms[qid]`` keep every value."""

    name: str
    kind: str  # FIRST_STAGE or RERANKER
    available: bool = False
    error: str | None = None
    label: str = ""
    per_query: dict[str, dict[str, float]] = field(default_factory=dict)
    latencies_ms: dict[str, float] = field(default_factory=dict)
    pipeline_latencies_ms: dict[str, float] = field(default_factory=dict)
    model_load_s: float = 0.0
    prepare_s: float | None = None
    index_build_s: float | None = None
    warmup_ms: float | None = None
    run: Run = field(default_factory=dict)
    failed_queries: dict[str, str] = field(default_factory=dict)  # qid -> error
    fallback_queries: dict[str, str] = field(default_factory=dict)  # qid -> error (first-stage order kept)
    # for the answers (rerank_core.answers): the score scale and what a service billed, per query
    scale: str = ""
    usage: dict[str, dict[str, float]] = field(default_factory=dict)  # qid -> {"search_units": ...}
    # each query's result (what a fusion fuses), counted problems of what it serves, and how many
    # queries ran at once (hosted methods with concurrency > 1)
    results: dict[str, RerankResult] = field(default_factory=dict, repr=False, compare=False)
    warnings: list[str] = field(default_factory=list)
    concurrency: int = 1
    precision: str = ""  # the numeric path the scores came from (fp32, onnx-int8, ...); "" = n/a

    def record(self, qid: str, res: RerankResult, first_stage_ms: float) -> None:
        """Count one query's outcome: a fallback, a failure, or its latency (alone and after the first
        stage's ``first_stage_ms``)."""
        if res.error is not None and res.fallback:
            self.fallback_queries[qid] = str(res.error)
        elif res.error is not None:
            self.failed_queries[qid] = str(res.error)
        else:
            self.latencies_ms[qid] = res.latency_ms
            self.pipeline_latencies_ms[qid] = first_stage_ms + res.latency_ms

    @property
    def metrics(self) -> dict[str, float] | None:
        """Mean of each measure over the evaluated queries (None when the method did not run)."""
        if not self.available or not self.per_query:
            return None
        return aggregate(self.per_query)

    @property
    def latency(self) -> dict[str, float] | None:
        """p50, p95, p99 and mean of the timed queries (warm-up and failed queries excluded)."""
        return latency_summary(self.latencies_ms.values()) if self.latencies_ms else None

    def values(self, measure: str, query_ids: Sequence[str]) -> np.ndarray:
        """Per-query values of ``measure`` in the order of ``query_ids`` (for paired statistics)."""
        per = self.per_query[str(parse_measure(measure))]
        return np.array([per[q] for q in query_ids], dtype=np.float64)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "available": self.available,
            "error": self.error,
            "metrics": self.metrics,
            "latency_ms": _summary(list(self.latencies_ms.values())) if self.available else None,
            "model_load_s": float(self.model_load_s),
            "kind": self.kind,
            "label": self.label,
            "warmup_ms": self.warmup_ms,
        }
        if self.kind == RERANKER:
            out["prepare_s"] = self.prepare_s
            out["pipeline_latency_ms"] = (
                _summary(list(self.pipeline_latencies_ms.values())) if self.available else None
            )
        else:
            out["index_build_s"] = self.index_build_s
        if self.failed_queries:
            out["failed_queries"] = len(self.failed_queries)
        if self.fallback_queries:
            out["fallback_queries"] = len(self.fallback_queries)
        if self.warnings:
            out["warnings"] = list(self.warnings)
        if self.concurrency > 1:
            out["concurrency"] = self.concurrency
        if self.precision:
            out["precision"] = self.precision
        return out


@dataclass
class EvaluationReport:
    dataset: str
    query_ids: list[str]
    depth: int
    first_stage: str
    measures: tuple[str, ...]
    methods: dict[str, MethodEvaluation]
    qrels: Qrels  # the judgements of the evaluated queries
    first_stage_build_s: float | None = None
    # for the answers (rerank_core.answers): query texts and tags, prices and the settings used
    query_texts: dict[str, str] = field(default_factory=dict)
    tags: dict[str, list[str]] = field(default_factory=dict)
    prices: dict[str, dict[str, float]] = field(default_factory=dict)
    settings_used: dict[str, Any] = field(default_factory=dict)
    first_stage_eval: MethodEvaluation | None = None  # also when the first stage is not among the methods
    # per fusion: {component: {qid: result on the candidates}} (fitting weights reads it; not in the JSON)
    fusion_inputs: dict[str, dict[str, dict[str, RerankResult]]] = field(default_factory=dict, repr=False)

    @property
    def queries(self) -> int:
        return len(self.query_ids)

    def to_json(self) -> dict[str, Any]:
        """The report as a JSON-ready dict (see the module docstring for the extra method keys)."""
        out = {
            "dataset": self.dataset,
            "queries": self.queries,
            "depth": self.depth,
            "first_stage": self.first_stage,
            "methods": {name: m.to_json() for name, m in self.methods.items()},
        }
        if self.first_stage_eval is not None and self.first_stage_eval.warnings:
            out["first_stage_warnings"] = list(self.first_stage_eval.warnings)
        # verdict, per-query analysis, coverage, cost, score distributions, settings and versions
        from rerank_core.answers import add_answers

        return add_answers(self, out)

    def dumps(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_json(), indent=indent, allow_nan=False)

    def write_runs(self, run_dir: str | Path) -> dict[str, Path]:
        """One TREC run file per available method, ``<run_dir>/<run_file_name(method)>.run``."""
        names = run_file_names(list(self.methods))
        out: dict[str, Path] = {}
        for name, m in self.methods.items():
            if m.available:
                out[name] = write_run(Path(run_dir) / f"{names[name]}.run", m.run, run_name=names[name])
        return out


# ---------------------------------------------------------------------------------------------
# run-file names

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def run_file_name(method: str) -> str:
    """A file-system-safe name for a method: ``:`` becomes ``__``, ``/`` (and ``\\``) ``--``, any
    other character outside ``A-Z a-z 0-9 . _ -`` becomes ``_``.

    ``cross-encoder:BAAI/bge-reranker-v2-m3`` -> ``cross-encoder__BAAI--bge-reranker-v2-m3``.
    """
    name = method.strip().replace(":", "__").replace("/", "--").replace("\\", "--")
    name = _UNSAFE.sub("_", name).lstrip(".")
    return name or "method"


def run_file_names(methods: Sequence[str]) -> dict[str, str]:
    """Run-file names for several methods; two methods that would share a file are an error."""
    out: dict[str, str] = {}
    seen: dict[str, str] = {}
    for m in methods:
        name = run_file_name(m)
        if name in seen and seen[name] != m:
            raise InvalidMethod(
                f"methods {seen[name]!r} and {m!r} would write the same run file {name}.run",
                hint="rename one of the model folders",
            )
        seen[name] = m
        out[m] = name
    return out


# ---------------------------------------------------------------------------------------------
# the runner


class _Steps:
    """Turns the phases of an evaluation into one progress bar."""

    def __init__(self, progress: ProgressFn | None, total: int) -> None:
        self.progress = progress
        self.total = total
        self.done = 0

    def step(self, message: str) -> None:
        self.done += 1
        report(self.progress, min(self.done, self.total), self.total, message)

    def note(self, message: str) -> None:
        report(self.progress, min(self.done, self.total), self.total, message)

    def sub(self, prefix: str) -> ProgressFn:
        def inner(done: int, total: int, message: str = "") -> None:
            detail = f" {done}/{total}" if total else ""
            self.note(f"{prefix}{detail}{': ' + message if message else ''}")

        return inner


def _check_methods(first_stage: str, methods: Sequence[str], depth: int) -> list[str]:
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 1:
        raise InvalidMethod(
            f"depth must be a positive integer, got {depth!r}", hint="for example --depth 100"
        )
    fs = MethodSpec.parse(first_stage)
    if fs.name == "fusion":
        raise InvalidMethod(
            f"{first_stage!r} fuses orders of the same candidates, so it cannot make them",
            hint="for a fused first stage use hybrid:A+B (e.g. hybrid:bm25+pgvector)",
        )
    if fs.name not in RETRIEVERS:
        raise InvalidMethod(
            f"unknown first stage {first_stage!r}", hint=f"choose one of: {', '.join(sorted(RETRIEVERS))}"
        )
    clean = [m.strip() for m in methods if m and m.strip()]
    if not clean:
        raise InvalidMethod(
            "no methods to evaluate", hint="give at least one, for example bm25,cross-encoder"
        )
    seen: set[str] = set()
    for m in clean:
        if m in seen:
            raise InvalidMethod(f"method {m!r} is listed twice", hint="list each method once")
        seen.add(m)
        spec = MethodSpec.parse(m)
        if spec.name == "fusion":
            from rerank_core.fusion import check_components, split_components

            if spec.model and "+" in spec.model:
                check_components(split_components(spec.model))
            continue
        if spec.name not in RETRIEVERS and spec.name not in RERANKERS:
            known = sorted(set(RETRIEVERS) | set(RERANKERS))
            raise InvalidMethod(f"unknown method {m!r}", hint=f"choose from: {', '.join(known)}")
    run_file_names(clean)
    return clean


def _is_retriever(method: str) -> bool:
    return MethodSpec.parse(method).name in RETRIEVERS


def _warmup_query(dataset: Dataset, query_ids: Sequence[str]) -> str:
    """A query text that is not evaluated, so no answer cache (the LLM's) turns a timed query into a hit."""
    evaluated = set(query_ids)
    texts = {dataset.queries[q] for q in query_ids}
    for qid, text in dataset.queries.items():
        if qid not in evaluated and text.strip() and text not in texts:
            return text
    first = next((dataset.queries[q] for q in query_ids if dataset.queries[q].strip()), "warm-up")
    return f"{first} (warm-up)"


def _finish(m: MethodEvaluation, qrels: Qrels, measures: Sequence[str], n_queries: int) -> None:
    """Metrics from the run, and the error summary for partly failed methods."""
    bad = len(m.failed_queries) + len(m.fallback_queries)
    if n_queries and bad >= n_queries:
        m.available = False
        first = next(iter({**m.failed_queries, **m.fallback_queries}.values()))
        m.error = f"every query failed: {first}"
        m.per_query = {}
        m.latencies_ms = {}
        m.pipeline_latencies_ms = {}
        return
    m.per_query = evaluate(m.run, qrels, measures)
    parts = []
    if m.failed_queries:
        first = next(iter(m.failed_queries.values()))
        parts.append(
            f"{len(m.failed_queries)} of {n_queries} queries failed and score 0 (first error: {first})"
        )
    if m.fallback_queries:
        first = next(iter(m.fallback_queries.values()))
        parts.append(
            f"{len(m.fallback_queries)} of {n_queries} queries kept the first-stage order after an error "
            f"(first error: {first})"
        )
    m.error = "; ".join(parts) or None


def _evaluate_retriever(
    name: str,
    dataset: Dataset,
    query_ids: Sequence[str],
    depth: int,
    settings: Settings,
    runtime: Runtime,
    steps: _Steps,
    meter: CostMeter | None = None,
) -> tuple[MethodEvaluation, Retriever | None, dict[str, tuple[list[Candidate], float]]]:
    """Get the first stage from the runtime (in memory, saved, or built) and run the queries; also
    returns the candidates per query."""
    m = MethodEvaluation(name=name, kind=FIRST_STAGE, label=name)
    candidates: dict[str, tuple[list[Candidate], float]] = {}
    try:
        was_cached = runtime.first_stage_ready(name, dataset.corpus, settings) is not None
        retriever = runtime.first_stage(
            name, dataset.corpus, settings, steps.sub(f"{name}: building the index")
        )
    except Cancelled:
        raise
    except Exception as exc:  # noqa: BLE001 - reported in the method's entry
        m.error = _error_text(exc)
        steps.step(f"{name}: unavailable")
        for _ in query_ids:
            steps.step(f"{name}: unavailable")
        return m, None, candidates
    m.label = retriever.label
    m.scale = str(retriever.scale)
    m.precision = str(getattr(retriever, "precision", "") or "")
    m.index_build_s = retriever.build_s
    m.model_load_s = retriever.build_s
    m.available = True
    m.warnings = list(retriever.warnings)
    try:
        _, warm = retriever.candidates(_warmup_query(dataset, query_ids), depth)
        m.warmup_ms = warm.latency_ms
    except Cancelled:
        raise
    except Exception:  # noqa: BLE001 - the timed queries report failures
        m.warmup_ms = None
    steps.step(f"{name}: index ready{' (cached)' if was_cached else ''}")
    results: dict[str, RerankResult] = {}
    without: list[str] = []
    for i, qid in enumerate(query_ids, start=1):
        if meter is not None:
            meter.check(name)
        try:
            cands, res = retriever.candidates(dataset.queries[qid], depth, qid)
        except Cancelled:
            raise
        except NoCandidatesForQuery:  # a run file that does not list the query: no candidates, scores 0
            without.append(qid)
            candidates[qid] = ([], 0.0)
            results[qid] = RerankResult(method=name, scale=retriever.scale)
        except Exception as exc:  # noqa: BLE001 - one failed query must not stop the others
            m.failed_queries[qid] = _error_text(exc)
            candidates[qid] = ([], 0.0)
            results[qid] = RerankResult(method=name, scale=retriever.scale)
        else:
            candidates[qid] = (cands, res.latency_ms)
            results[qid] = res
            m.latencies_ms[qid] = res.latency_ms
            if meter is not None:
                meter.record(name, res.usage, res.latency_ms / 1000.0)
        steps.step(f"{name}: query {i}/{len(query_ids)}")
    if without:
        shown = ", ".join(without[:5]) + (", ..." if len(without) > 5 else "")
        m.warnings.append(
            f"{len(without)} of {len(query_ids)} judged queries have no candidates in it ({shown}); they score 0"
        )
    m.run = results_to_run(results)
    m.results = results
    return m, retriever, candidates


def _rerank_queries(
    reranker: Reranker,
    name: str,
    dataset: Dataset,
    query_ids: Sequence[str],
    candidates: Mapping[str, tuple[list[Candidate], float]],
    concurrency: int,
    steps: _Steps,
    first_stage_scale: ScoreScale | None = None,
    meter: CostMeter | None = None,
) -> dict[str, RerankResult]:
    """Each query's result, in query order. With ``concurrency`` > 1 up to that many queries run at
    once (each result's latency is still its own call's); a cancelled run cancels what has not started.
    The budget ``meter`` is checked before a query starts and charged when it ends, in this thread."""

    def one(qid: str) -> RerankResult:
        return reranker.rerank(dataset.queries[qid], candidates[qid][0], first_stage_scale=first_stage_scale)

    def charge(res: RerankResult) -> None:
        if meter is not None:
            meter.record(name, res.usage, res.latency_ms / 1000.0)

    if concurrency <= 1:
        out = {}
        for i, qid in enumerate(query_ids, start=1):
            if meter is not None:
                meter.check(name)
            out[qid] = one(qid)
            charge(out[qid])
            steps.step(f"{name}: query {i}/{len(query_ids)}")
        return out
    done: dict[str, RerankResult] = {}
    pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix=f"eval-{name}")
    try:
        pending = list(query_ids)
        running: dict = {}
        finished = 0
        while pending or running:
            while pending and len(running) < concurrency:
                if meter is not None:
                    meter.check(name)
                qid = pending.pop(0)
                running[pool.submit(one, qid)] = qid
            future = next(as_completed(running))
            qid = running.pop(future)
            done[qid] = future.result()
            charge(done[qid])
            finished += 1
            steps.step(f"{name}: query {finished}/{len(query_ids)} ({concurrency} at once)")
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return {qid: done[qid] for qid in query_ids}


def _evaluate_reranker(
    name: str,
    dataset: Dataset,
    query_ids: Sequence[str],
    candidates: Mapping[str, tuple[list[Candidate], float]],
    settings: Settings,
    runtime: Runtime,
    steps: _Steps,
    concurrency: int = 1,
    first_stage_scale: ScoreScale | None = None,
    meter: CostMeter | None = None,
) -> MethodEvaluation:
    m = MethodEvaluation(name=name, kind=RERANKER, label=name)
    try:
        reranker = runtime.reranker(name, settings)
        m.label = reranker.label
        steps.note(f"{name}: loading the model")
        ready = runtime.ready(reranker, dataset.corpus, steps.sub(f"{name}: preparing the corpus"))
        m.model_load_s = ready.load_s
        m.prepare_s = ready.prepare_s if ready.prepare_s is not None else 0.0
        m.label = reranker.label
        m.scale = str(reranker.scale)
        m.precision = reranker.precision
    except Cancelled:
        raise
    except Exception as exc:  # noqa: BLE001 - reported in the method's entry
        m.error = _error_text(exc)
        for _ in range(len(query_ids) + 1):
            steps.step(f"{name}: unavailable")
        return m
    m.available = True
    warm_qid = next((q for q in query_ids if candidates[q][0]), None)
    if warm_qid is not None:
        warm = reranker.rerank(
            _warmup_query(dataset, query_ids), candidates[warm_qid][0], first_stage_scale=first_stage_scale
        )
        m.warmup_ms = warm.latency_ms if warm.ok else None
        if meter is not None:  # a warm-up call to a paid service is spent money too
            meter.record(name, warm.usage, warm.latency_ms / 1000.0)
    steps.step(f"{name}: model ready")
    m.concurrency = max(1, concurrency) if method_info(name).hosted else 1
    results = _rerank_queries(
        reranker, name, dataset, query_ids, candidates, m.concurrency, steps, first_stage_scale, meter
    )
    for qid in query_ids:
        res = results[qid]
        m.record(qid, res, candidates[qid][1])
        if res.usage:
            m.usage[qid] = {k: float(v) for k, v in res.usage.items()}
    m.run = results_to_run(results)
    m.results = results
    return m


def _fusion_inputs(
    spec: str,
    config: Any,
    first_stage: str,
    dataset: Dataset,
    query_ids: Sequence[str],
    fs_eval: MethodEvaluation,
    evaluated: Mapping[str, MethodEvaluation],
    candidates: Mapping[str, tuple[list[Candidate], float]],
    settings: Settings,
    runtime: Runtime,
    steps: _Steps,
    concurrency: int,
    computed: dict[str, Any],
) -> tuple[dict[str, dict[str, RerankResult]], str | None]:
    """Each component's results on the candidates: the first stage's own, a listed reranker's, or
    computed now (another first stage ranks the candidates by its own top ``config.depth``). Returns
    the results and the first component that could not run (its error), if any. ``computed`` keeps
    what was computed here for the next fusion of the same evaluation."""
    from rerank_core.fusion import first_stage_on_candidates

    out: dict[str, dict[str, RerankResult]] = {}
    for comp in config.components:
        if str(MethodSpec.parse(comp)) == str(MethodSpec.parse(first_stage)):
            out[comp] = fs_eval.results
            continue
        if comp in evaluated and evaluated[comp].kind == RERANKER:
            m = evaluated[comp]
        elif comp in computed:
            if isinstance(computed[comp], str):
                return out, computed[comp]
            if isinstance(computed[comp], MethodEvaluation):
                m = computed[comp]
            else:
                out[comp] = computed[comp]
                continue
        elif _is_retriever(comp):
            try:
                retriever = runtime.first_stage(
                    comp, dataset.corpus, settings, steps.sub(f"{comp}: building")
                )
            except Cancelled:
                raise
            except Exception as exc:  # noqa: BLE001 - reported in the fusion's entry
                computed[comp] = f"its component {comp} is unavailable: {_error_text(exc)}"
                return out, computed[comp]
            per: dict[str, RerankResult] = {}
            for qid in query_ids:
                first = fs_eval.results[qid]
                try:
                    per[qid] = first_stage_on_candidates(
                        retriever, dataset.queries[qid], qid, first, config.depth
                    )
                except Cancelled:
                    raise
                except NoCandidatesForQuery:
                    per[qid] = RerankResult(method=comp, scale=retriever.scale)
                except Exception as exc:  # noqa: BLE001 - that query's fusion fails, the others go on
                    per[qid] = RerankResult(
                        method=comp, scale=retriever.scale, error=MethodError.from_exception(exc)
                    )
            out[comp] = computed[comp] = per
            continue
        else:  # a reranker that is not listed: computed on the same candidates, not reported
            m = computed[comp] = _evaluate_reranker(
                comp, dataset, query_ids, candidates, settings, runtime, steps, concurrency
            )
        if not m.available:
            return out, f"its component {comp} is unavailable: {m.error}"
        out[comp] = m.results
    return out, None


def _evaluate_fusion(
    spec: str,
    config: Any,
    first_stage: str,
    query_ids: Sequence[str],
    fs_eval: MethodEvaluation,
    inputs: Mapping[str, Mapping[str, RerankResult]],
    corpus: str,
    candidates: Mapping[str, tuple[list[Candidate], float]],
) -> MethodEvaluation:
    from rerank_core.fusion import fuse_results

    m = MethodEvaluation(name=spec, kind=RERANKER, label=config.describe(), available=True)
    m.scale = str(config.scale)
    m.model_load_s = 0.0
    m.prepare_s = 0.0
    own = next(
        (c for c in config.components if str(MethodSpec.parse(c)) == str(MethodSpec.parse(first_stage))), None
    )
    results: dict[str, RerankResult] = {}
    held = 0
    for qid in query_ids:
        first = fs_eval.results.get(qid) or RerankResult(method=first_stage, scale=config.scale)
        parts = {c: inputs[c][qid] for c in config.components}
        res = fuse_results(spec, config, first, parts, query_id=qid, corpus=corpus, own_first_stage=own)
        held += config.held_out(qid, corpus)
        m.record(qid, res, candidates[qid][1])
        results[qid] = res
    if config.fitted:
        m.warnings.append(
            f"fitted weights: {held} of {len(query_ids)} queries were among those it was fitted on and use the "
            "weights fitted without them (held out); the others use the weights fitted on all of them"
        )
    m.run = results_to_run(results)
    m.results = results
    return m


def run_evaluation(
    dataset: Dataset,
    first_stage: str,
    depth: int,
    methods: list[str],
    *,
    max_queries: int | None = None,
    settings: Settings | None = None,
    progress: ProgressFn | None = None,
    runtime: Runtime | None = None,
    measures: Sequence[str] = DEFAULT_MEASURES,
    tags: Mapping[str, Sequence[str]] | None = None,
    concurrency: int = 1,
    budget: Budget | None = None,
    meter: CostMeter | None = None,
) -> EvaluationReport:
    """Evaluate ``methods`` on the judged queries of ``dataset`` (the first ``max_queries``).

    First stages and rerankers come from ``runtime`` (the app passes its process-wide one, so what
    Compare built is reused; by default a new one, which still finds indexes and encodings saved in
    the data directory). Raises :class:`InvalidMethod` for unknown names and
    :class:`CorpusFormatError` when nothing is judged; a method that fails is reported in its entry
    instead. ``progress`` may raise ``Cancelled``. ``tags[query_id]`` (optional) are query tags the
    report's per-query analysis is grouped by. ``concurrency`` (>= 1) is how many queries of a hosted
    method run at once. ``budget`` stops the run with :class:`~rerank_core.cost.BudgetExceeded` before it
    goes over (priced by ``settings.prices``; with several queries in flight it is checked as each is
    started, so it can pass the budget by the queries already running); ``meter`` is a
    :class:`~rerank_core.cost.CostMeter` to count on instead (shared with later work of the same run, as
    the benchmark's depth sweep does).
    """
    settings = settings or load_settings()
    runtime = runtime or Runtime()
    if meter is None and budget is not None:
        meter = CostMeter(budget, settings.prices)
    methods = _check_methods(first_stage, methods, depth)
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise InvalidMethod(
            f"concurrency must be a positive integer, got {concurrency!r}", hint="for example --concurrency 8"
        )
    measures = tuple(str(parse_measure(x)) for x in measures)
    if max_queries is not None and max_queries < 1:
        raise InvalidMethod(
            f"max_queries must be >= 1, got {max_queries}", hint="omit it to use every judged query"
        )
    query_ids = dataset.judged_query_ids
    if not query_ids:
        raise CorpusFormatError(
            f"dataset {dataset.name!r} has no query with relevance judgements",
            hint="check that the qrels' query ids match the queries file, or label some results first",
        )
    if max_queries is not None:
        query_ids = query_ids[:max_queries]
    qrels: Qrels = {q: dict(dataset.qrels[q]) for q in query_ids}
    n = len(query_ids)
    fusions, hidden = _fusion_plan(methods, first_stage, settings)
    phases = 1 + sum(1 for m in methods if m != first_stage) + len(hidden)
    steps = _Steps(progress, phases * (n + 1))

    fs_eval, fs_retriever, candidates = _evaluate_retriever(
        first_stage, dataset, query_ids, depth, settings, runtime, steps, meter
    )
    fs_scale = fs_retriever.scale if fs_retriever is not None else None
    if fs_eval.available:
        _finish(fs_eval, qrels, measures, n)

    out: dict[str, MethodEvaluation] = {}
    inputs: dict[str, dict[str, dict[str, RerankResult]]] = {}
    computed: dict[str, Any] = {}
    for name in [m for m in methods if not is_fusion(m)] + [m for m in methods if is_fusion(m)]:
        if is_fusion(name):
            config = fusions[name]
            if isinstance(config, BaseException):
                m = MethodEvaluation(name=name, kind=RERANKER, label=name, error=_error_text(config))
            elif fs_eval.index_build_s is None:
                m = MethodEvaluation(name=name, kind=RERANKER, label=name)
                m.error = f"no candidates: the first stage {first_stage!r} is unavailable ({fs_eval.error})"
            else:
                got, problem = _fusion_inputs(
                    name, config, first_stage, dataset, query_ids, fs_eval, out, candidates,
                    settings, runtime, steps, concurrency, computed,
                )  # fmt: skip
                if problem is not None:
                    m = MethodEvaluation(name=name, kind=RERANKER, label=config.describe(), error=problem)
                else:
                    inputs[name] = got
                    m = _evaluate_fusion(
                        name,
                        config,
                        first_stage,
                        query_ids,
                        fs_eval,
                        got,
                        dataset.corpus.fingerprint,
                        candidates,
                    )
                    _finish(m, qrels, measures, n)
            for _ in range(n + 1):
                steps.step(f"{name}: fused")
            out[name] = m
            continue
        if name == first_stage:
            m = fs_eval
        elif _is_retriever(name):
            m, _, _ = _evaluate_retriever(name, dataset, query_ids, depth, settings, runtime, steps, meter)
            if m.available:
                _finish(m, qrels, measures, n)
        elif fs_eval.index_build_s is None:  # the first stage could not be built
            m = MethodEvaluation(name=name, kind=RERANKER, label=name)
            m.error = f"no candidates: the first stage {first_stage!r} is unavailable ({fs_eval.error})"
            for _ in range(n + 1):
                steps.step(f"{name}: skipped")
        else:
            m = _evaluate_reranker(
                name, dataset, query_ids, candidates, settings, runtime, steps, concurrency, fs_scale, meter
            )
            if m.available:
                _finish(m, qrels, measures, n)
        out[name] = m
    out = {name: out[name] for name in methods}
    return EvaluationReport(
        dataset=dataset.name,
        query_ids=list(query_ids),
        depth=depth,
        first_stage=first_stage,
        measures=measures,
        methods=out,
        qrels=qrels,
        first_stage_build_s=fs_eval.index_build_s,
        first_stage_eval=fs_eval,
        query_texts={q: dataset.queries[q] for q in query_ids},
        tags={q: [str(t) for t in (tags or {}).get(q, ())] for q in query_ids if (tags or {}).get(q)},
        prices={k: dict(v) for k, v in (settings.prices if settings else {}).items()},
        settings_used=_settings_used(settings, measures),
        fusion_inputs=inputs,
    )


def _fusion_plan(
    methods: Sequence[str], first_stage: str, settings: Settings
) -> tuple[dict[str, Any], list[str]]:
    """Each fusion's configuration (or the error that makes it unavailable), and the rerankers some
    fusion needs that are not listed (computed on the same candidates, not reported)."""
    from rerank_core.fusion import fusion_config

    configs: dict[str, Any] = {}
    hidden: list[str] = []
    for name in methods:
        if not is_fusion(name):
            continue
        try:
            configs[name] = fusion_config(name, settings)
        except Exception as exc:  # noqa: BLE001 - reported in the fusion's entry
            configs[name] = exc
            continue
        for comp in configs[name].components:
            if comp not in methods and comp not in hidden and not _is_retriever(comp):
                hidden.append(comp)
    return configs, hidden


def _settings_used(settings: Settings | None, measures: Sequence[str]) -> dict[str, Any]:
    """The settings that shape the figures, for reports (no secrets, base URLs without credentials)."""
    from rerank_core.rerankers.hosted import safe_url

    s = settings or Settings()
    return {
        "measures": list(measures),
        "method_options": {k: dict(v) for k, v in s.methods.items()},
        "openai_model": s.openai_model,
        "openai_base_url": safe_url(s.openai_base_url) if s.openai_base_url else None,
        "cohere_model": s.cohere_model,
        "cohere_base_url": safe_url(s.cohere_base_url) if s.cohere_base_url else None,
        "request_timeout_s": s.request_timeout_s,
        "max_retries": s.max_retries,
        "device": s.device,
    }
