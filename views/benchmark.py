"""Benchmark page: does reranking pay on this corpus? Metrics with intervals, latency, a depth sweep,
a verdict and an adaptive policy, on labelled queries or a dataset's qrels.

The table comes from ``rerank_core.evaluation.run_evaluation``, the code behind
``python -m rerank_core evaluate``, so the same settings give the same figures. Results stay in the
session: changing a widget redraws, and only the Run button runs models again.
"""

from __future__ import annotations

import json

import streamlit as st

from rerank_core import access, analysis
from rerank_core.access import Permission
from rerank_core.agreement import merge_qrels
from rerank_core.analysis import DEFAULT_DEPTHS, KNEE_TOLERANCE
from rerank_core.answers import per_query_results, score_histograms, tag_tables
from rerank_core.benchmark import KEY_MEASURE, labelled_dataset, qrels_coverage
from rerank_core.cost import Budget, BudgetExceeded
from rerank_core.errors import RerankError
from rerank_core.progress import Cancelled
from rerank_core.registry import RERANKERS
from rerank_core.types import Dataset, MethodSpec
from ui import benchmark_view as view
from ui import identity, judging_view, keys, methods, own_stack, page, render, resources
from ui import report_view as reports

RESULT = keys.BENCH_RESULT
CANCEL = keys.BENCH_CANCEL
DEFAULT_DEPTH = 50
DEFAULT_MAX_QUERIES = 50
DEFAULT_METHODS = ("late-interaction", "cross-encoder")

render.inject_css()
st.title("Benchmark")

settings = page.settings_or_stop()
actor = identity.current(settings)
active = page.corpus_or_stop(settings)
corpus = active.corpus
corpus_id = active.id
runtime = resources.runtime()
st.caption(page.corpus_caption(active))

# -- sidebar: the depth sweep -----------------------------------------------------------------------------
with st.sidebar:
    st.markdown("**Depth sweep**")
    sweep_text = st.text_input(
        "Candidates to rerank (comma-separated)",
        value=", ".join(str(d) for d in DEFAULT_DEPTHS),
        key=keys.BENCH_SWEEP,
        help="nDCG@10 is measured when only the first stage's top d are reranked, for each d "
        f"(capped at the corpus size, {len(corpus):,}).",
    )
    try:
        sweep_depths = view.parse_depths(sweep_text or "")
    except ValueError as exc:
        st.error(f"Depth sweep: {render.md_escape(exc)}")
        sweep_depths = list(DEFAULT_DEPTHS)

# -- query sets -------------------------------------------------------------------------------------------
sources: dict[str, Dataset] = {}
store_problem: str | None = None
store = None
try:
    store = resources.label_store(settings)
    stored_qrels = store.qrels(corpus_id, people_only=True)
    stored_queries = store.queries(corpus_id)
except RerankError as exc:
    stored_qrels, stored_queries = {}, {}
    store_problem = str(exc)
labelled = labelled_dataset(stored_queries, stored_qrels, corpus, f"{active.name} (labels)")
if active.metric_qrels:  # the dataset's own judgements first: what a dataset is benchmarked on
    ds = active.dataset()
    if ds.judged_query_ids:
        split = f", qrels/{active.info.split}.tsv" if active.info.split else ""
        sources[f"Dataset qrels: {active.name}{split} ({len(ds.judged_query_ids)})"] = ds
if labelled.judged_query_ids:
    sources[f"Labelled queries ({len(labelled.judged_query_ids)})"] = labelled

if not sources:
    st.info(
        "There is nothing to benchmark yet: this corpus has no judged queries. Grade results on the Compare "
        "or Labels page, import qrels on the Labels page (a BEIR .zip brings its queries and qrels), or use "
        "the built-in sample corpus, which ships its own qrels.",
        icon=":material/fact_check:",
    )
    if store_problem:
        st.caption(f"The judgement store could not be read: {render.md_escape(store_problem)}")
    st.stop()

source = st.radio("Queries", list(sources), key=keys.BENCH_SOURCE, horizontal=True)
dataset = sources[source]

# -- answers: labelled queries on people's judgements only, or with an LLM judge filling the gaps; tags -----
basis = judging_view.Basis(fill=False, llm_judge=None)
judgements_label = f"the dataset's qrels ({active.name})"
if dataset is labelled and store is not None:
    basis = judging_view.basis_control(store, corpus_id, keys.BENCH_BASIS, keys.BENCH_LLM_JUDGE)
    judgements_label = merge_qrels(stored_qrels).label
    if basis.fill:
        filled, judgements_label = judging_view.qrels_for(store, corpus_id, basis)
        dataset = labelled_dataset(
            stored_queries, filled, corpus, f"{active.name} (labels + {basis.llm_judge})"
        )
    st.caption(f"Judgements: {render.md_escape(judgements_label)}.")
query_tags = (
    judging_view.merged_tags(store, corpus_id, active.tags) if store is not None else dict(active.tags)
)
# -----------------------------------------------------------------------------------------------------------
unrunnable = len(labelled.qrels) - len(labelled.judged_query_ids) if dataset is labelled else 0
if unrunnable:
    st.caption(f"{unrunnable} labelled queries have no stored text and are left out.")
found, judged = qrels_coverage(dataset)
if judged and found < 0.5 * judged:
    st.warning(
        f"Only {found} of the {judged} judged documents are in the corpus in use"
        + (" (it is chunked, and the judgements name whole documents)" if active.chunking.enabled else "")
        + ": the metrics will be low for that reason alone.",
        icon=":material/warning:",
    )

# -- settings -----------------------------------------------------------------------------------------------
c1, c2, c3 = st.columns([2, 1, 1], vertical_alignment="bottom")
with c1:
    first_stages = own_stack.offered_first_stages(methods.first_stages(settings), settings, corpus_id, None)
    first_stage = (
        st.segmented_control(
            "First stage",
            first_stages,
            default="bm25",
            format_func=methods.first_stage_title,
            key=keys.BENCH_FIRST_STAGE,
            required=True,
        )
        or "bm25"
    )
with c2:
    depth = int(
        st.number_input(
            "Candidates to rerank",
            min_value=1,
            max_value=1000,
            value=DEFAULT_DEPTH,
            step=10,
            key=keys.BENCH_DEPTH,
            help="Every reranker gets the first stage's same top N for each query.",
        )
    )
n_judged = len(dataset.judged_query_ids)
with c3:
    max_queries = min(  # no max_value: switching to a smaller query set must not make the widget invalid
        int(
            st.number_input(
                "Max queries",
                min_value=1,
                value=min(DEFAULT_MAX_QUERIES, n_judged),
                key=keys.BENCH_MAX_QUERIES,
                help=f"The first N of the {n_judged} judged queries.",
            )
        ),
        n_judged,
    )

rerankers = methods.rerankers()
options = [s for s in first_stages if s != first_stage] + rerankers
m1, m2 = st.columns([3, 1], vertical_alignment="bottom")
with m1:
    chosen = st.multiselect(
        "Methods to compare with the first stage",
        options,
        default=[m for m in DEFAULT_METHODS if m in options],
        format_func=lambda n: methods.title(n)
        if n in rerankers
        else f"{methods.first_stage_title(n)} (first stage)",
        key=keys.BENCH_METHODS,
    )
with m2:
    with st.popover("Models", icon=":material/tune:", width="stretch"):
        st.caption("A hub id, a folder under RERANK_MODELS_DIR, or a local path. Empty = the default.")
        models: dict[str, str] = {}
        for name in chosen:
            if name not in rerankers:
                continue
            default = methods.default_model(name, settings)
            models[name] = st.text_input(
                f"{methods.title(name)} model",
                value=default,
                key=keys.BENCH_MODEL_PREFIX + name,
                placeholder="automatic" if not default else default,
                help=methods.description(name),
            )
specs = [methods.spec_for(name, models.get(name)) if name in rerankers else name for name in chosen]

# -- own stack: fusions among the methods, concurrency for hosted methods -----------------------------------
f1, f2 = st.columns([3, 1], vertical_alignment="bottom")
with f1:
    fusions = st.multiselect(
        "Fusions",
        own_stack.fusion_options(
            first_stage, specs, settings, st.session_state.get(keys.BENCH_FUSIONS) or []
        ),
        key=keys.BENCH_FUSIONS,
        accept_new_options=True,
        placeholder="Fuse orders: the first stage with a method, or type fusion:A+B",
        help="Reciprocal rank fusion (k from [methods.fusion], 60 by default) of the methods' orders of the same "
        "candidates, or a fitted fusion (fusion:NAME, weights chosen by cross-validation).",
    )
with f2:
    concurrency = int(
        st.number_input(
            "Concurrent queries (hosted)",
            min_value=1,
            max_value=32,
            value=1,
            key=keys.BENCH_CONCURRENCY,
            help="Up to N queries of a hosted method at once (each query's latency is still its own call's). "
            "Rate limits: requests_per_second in [methods.<name>] or the settings.",
        )
    )
specs += [f if str(f).startswith("fusion:") else f"fusion:{f}" for f in fusions]
# -------------------------------------------------------------------------------------------------------------
methods = [first_stage, *specs]
signature = (
    source,
    corpus.fingerprint,
    first_stage,
    tuple(methods),
    depth,
    max_queries,
    tuple(sweep_depths),
    concurrency,
    basis,
)

deepest = min(max(sweep_depths), len(corpus))
if deepest > depth and any(MethodSpec.parse(s).name in RERANKERS for s in specs):
    st.caption(
        f"The depth sweep goes to {deepest} candidates, deeper than the {depth} of the table: each pointwise "
        f"reranker scores the top {deepest} once more for it (lower the sweep's depths in the sidebar to skip that)."
    )


def _request_cancel() -> None:
    st.session_state[CANCEL] = True


def _start() -> None:
    st.session_state[CANCEL] = False


# -- answers: a budget that stops the run before it spends more --------------------------------------------
with st.expander("Budget (optional)", icon=":material/savings:"):
    g1, g2 = st.columns(2)
    budget_dollars = g1.number_input(
        "Dollars",
        min_value=0.0,
        value=None,
        step=0.5,
        key=keys.BENCH_BUDGET_DOLLARS,
        help="Stop before the priced methods (prices in [prices.<method>] of rerank.toml) spend more.",
    )
    budget_seconds = g2.number_input(
        "Seconds of query time",
        min_value=0.0,
        value=None,
        step=10.0,
        key=keys.BENCH_BUDGET_SECONDS,
        help="Stop before the methods' measured query time, summed, passes this.",
    )
    priced = ", ".join(sorted(settings.prices)) or "none"
    st.caption(f"Priced methods: {render.md_escape(priced)}. Empty = no limit.")
budget = (
    Budget(dollars=budget_dollars, seconds=budget_seconds)
    if budget_dollars is not None or budget_seconds is not None
    else None
)
# -----------------------------------------------------------------------------------------------------------

b1, b2, _ = st.columns([2, 1, 3])
may_run = actor.can(Permission.BENCHMARK)  # a benchmark takes the server's cores for minutes: admins only
run_clicked = may_run and b1.button(
    "Run benchmark", type="primary", icon=":material/play_arrow:", key=keys.BENCH_RUN, on_click=_start
)
if not may_run:
    b1.caption(f"Running a benchmark needs the admin role (you are {actor.role.value}).")
may_run and b2.button(
    "Cancel",
    icon=":material/stop:",
    key=keys.BENCH_CANCEL_BUTTON,
    on_click=_request_cancel,
    disabled=not run_clicked,
)

if not run_clicked and st.session_state.pop(CANCEL, False):
    st.warning("The benchmark was cancelled; nothing was kept from that run.", icon=":material/stop_circle:")

# -- run ---------------------------------------------------------------------------------------------------
if run_clicked:
    bar = st.progress(0.0, text="Starting…")

    def _progress(done: int, total: int, message: str = "") -> None:
        if st.session_state.get(CANCEL):
            raise Cancelled("cancelled from the page")
        if total:
            bar.progress(min(done / total, 1.0), text=message[:160] or "Working…")
        elif message:
            bar.progress(0.0, text=message[:160])

    try:
        try:
            runtime.first_stage(first_stage, corpus, settings, _progress)
        except Cancelled:
            raise
        except Exception as exc:  # noqa: BLE001 - without a first stage there is nothing to compare
            message, hint = resources.describe_error(exc)
            raise RerankError(
                f"the {first_stage} first stage cannot be built: {message}", hint=hint
            ) from None
        bench = access.run_benchmark(  # refuses an actor who may not run benchmarks
            actor,
            dataset,
            first_stage,
            depth,
            methods,
            max_queries=max_queries,
            sweep_depths=sweep_depths,
            settings=settings,
            progress=_progress,
            runtime=runtime,
            concurrency=concurrency,
            budget=budget,
            tags=query_tags,
        )
    except Cancelled:
        bar.empty()
        st.session_state.pop(CANCEL, None)
        st.warning(
            "The benchmark was cancelled; nothing was kept from that run.", icon=":material/stop_circle:"
        )
    except BudgetExceeded as exc:
        bar.empty()
        st.error(f"The benchmark stopped: {render.md_escape(exc.message)}", icon=":material/savings:")
        if exc.hint:
            st.caption(f"Fix: {render.md_escape(exc.hint)}")
    except RerankError as exc:
        bar.empty()
        st.error(f"The benchmark cannot run: {render.md_escape(exc.message)}", icon=":material/error:")
        if exc.hint:
            st.caption(f"Fix: {render.md_escape(exc.hint)}")
    else:
        bar.empty()
        st.session_state[RESULT] = {
            "bench": bench,
            "signature": signature,
            "source": source,
            "judgements": judgements_label,
            "json": bench.to_json(),  # once: it reruns bootstraps; the downloads and reports use it
        }
        st.session_state.pop(CANCEL, None)
        st.rerun()  # redraw with the Cancel button off and the results below

# -- results -------------------------------------------------------------------------------------------------
kept = st.session_state.get(RESULT)
if kept is None:
    st.info("Choose the settings and press **Run benchmark**.", icon=":material/play_arrow:")
    st.stop()
bench = kept["bench"]
st.divider()
st.caption(render.md_escape(view.describe_settings(bench, kept["source"])))
if kept["signature"] != signature:
    st.info(
        "The settings above changed since this run: press **Run benchmark** to update.",
        icon=":material/sync:",
    )

missing = view.unavailable_rows(bench)
if missing:
    st.warning(
        f"{len(missing)} method(s) could not run here; the others ran on the same candidates.",
        icon=":material/block:",
    )
    st.dataframe(missing, hide_index=True, key=keys.BENCH_UNAVAILABLE)
for name, error in view.partial_failures(bench):
    st.caption(f"**{render.md_escape(name)}**: {render.md_escape(error)}")

# the verdict
st.subheader("Does reranking pay here?", divider="gray")
verdict = bench.verdict
if verdict is None:
    st.error(render.md_escape(bench.verdict_note or "The first stage did not run."))
else:
    box = {
        "reranker-pays": st.success,
        "fix-retrieval-first": st.warning,
        "already-good": st.info,
        "inconclusive": st.info,
    }[verdict.kind]
    box(render.md_escape(verdict.text), icon=":material/gavel:")
    for column, (label, value) in zip(st.columns(6), view.verdict_facts(bench), strict=True):
        column.metric(label, value)
    for line in view.verdict_lines(bench):
        st.markdown(f"- {render.md_escape(line)}")
    if bench.verdict_note:
        st.caption(render.md_escape(bench.verdict_note))
    ideal = verdict.recall_at_3_of_ideal
    st.caption(
        render.md_escape(analysis.verdict_rules(KEY_MEASURE))
        + f" First stage here: Recall@50 {verdict.recall_at_50:.2f}, Recall@3 {verdict.recall_at_3:.2f}"
        + (f" ({ideal:.0%} of the attainable)." if ideal is not None else ".")
    )

# the table
st.subheader("Quality and latency per method", divider="gray")
rows = view.table_rows(bench)
number = st.column_config.NumberColumn
config = {m: number(format="%.3f") for m in bench.measures}
config.update(
    {
        f"Δ {KEY_MEASURE} vs first stage": number(format="%+.3f", help="mean per-query difference"),
        "p-value": number(
            format="%.3f", help="paired randomisation test against the first stage (two-sided)"
        ),
        "p50 ms": number(format="%.1f"),
        "p95 ms": number(format="%.1f"),
        "p99 ms": number(format="%.1f"),
        "pipeline p95 ms": number(format="%.1f", help="first stage + reranking, per query"),
        "model load s": number(
            format="%.2f", help="once per process: model load or index build, apart from queries"
        ),
        **{
            f"Coverage@{k}": number(format="percent", help=f"share of the top {k} that is judged (any grade)")
            for k in view.COVERAGE_CUTOFFS
        },
        "$ / 1,000 queries": number(
            format="$%.4f", help="from [prices.<method>] and the measured usage or time"
        ),
        "fell back": number(help="queries that kept the first-stage order after an error (marked †)"),
    }
)
st.dataframe(rows, hide_index=True, column_config=config, key=keys.BENCH_TABLE)
st.caption(
    "Means over queries with 95% percentile-bootstrap intervals (1,000 resamples). A reranker's p50/p95/p99 is "
    "its own scoring time for the candidates (warm-up query excluded); a first stage's is its search time. "
    f"Judgements: {render.md_escape(kept.get('judgements') or 'as chosen above')}."
)
for note in view.table_notes(bench):
    st.caption(render.md_escape(note))
low_coverage = view.coverage_warning(bench)
if low_coverage:
    st.warning(render.md_escape(low_coverage), icon=":material/rule:")

left, right = st.columns(2, gap="medium")
with left:
    st.markdown(f"**{KEY_MEASURE} against latency and cost**")
    st.plotly_chart(view.scatter_figure(bench), config={"displayModeBar": False}, key=keys.BENCH_SCATTER)
with right:
    st.markdown(f"**Depth sweep: {KEY_MEASURE} against candidates reranked**")
    if bench.sweeps:
        st.plotly_chart(view.sweep_figure(bench), config={"displayModeBar": False}, key=keys.BENCH_SWEEP_PLOT)
        for name, knee in bench.knees.items():
            st.caption(
                f"**{render.md_escape(name)}**: knee at {knee} candidates (deeper lists gain less than "
                f"{KNEE_TOLERANCE} {KEY_MEASURE})."
            )
    else:
        st.caption("No pointwise reranker ran, so there is no depth sweep.")
    for name, note in bench.sweep_notes.items():
        st.caption(f"{render.md_escape(name)}: {render.md_escape(note)}")
    if bench.sweep_extra_pass:
        st.caption(f"The rerankers scored the top {bench.sweep_depths[-1]} once more for the sweep.")

st.subheader("Adaptive policy: rerank only when the first stage is unsure", divider="gray")
if bench.policies:
    st.plotly_chart(view.policy_figure(bench), config={"displayModeBar": False}, key=keys.BENCH_POLICY)
    st.caption(
        "A query is reranked when its first-stage margin (top-1 minus top-2 score, over top-1) is below a "
        "threshold. Left end: never rerank (the first stage alone); right end: always rerank. A curve that "
        "rises steeply first means most of the gain comes from a few unsure queries."
    )
else:
    st.caption("No reranker ran, so there is no policy to plot.")

# -- answers: per-query wins and losses, per tag, score distributions ----------------------------------------
report_json = kept.get("json") or bench.to_json()
results = per_query_results(bench.report)
st.subheader("Per query: where each reranker won or lost, and why", divider="gray")
if not results:
    st.caption("No reranker ran against the first stage, so there is nothing to list per query.")
else:
    pick = st.selectbox("Reranker", list(results), key=keys.BENCH_PQ_METHOD)
    result = results[pick]
    att = result.attribution
    w1, w2, w3, w4, w5, w6 = st.columns(6)
    w1.metric("wins", result.wins)
    w2.metric("losses", result.losses)
    w3.metric("ties", result.ties)
    w4.metric("relevant in top 10", att["found"])
    w5.metric("ranked below 10 (reranker)", att["reranker"])
    w6.metric("not retrieved (first stage)", att["retrieval"])
    st.plotly_chart(
        view.per_query_figure(result, bench.report.query_texts),
        config={"displayModeBar": False},
        key=keys.BENCH_PQ_PLOT,
    )
    base = view.compare_base(getattr(st.context, "url", None))
    st.dataframe(
        view.per_query_rows(result, bench, base=base, corpus_id=corpus_id),
        hide_index=True,
        key=keys.BENCH_PQ_TABLE,
        column_config={
            "first stage": number(format="%.3f", help=f"{KEY_MEASURE} of the first stage"),
            "reranker": number(format="%.3f", help=f"{KEY_MEASURE} of {pick}"),
            "Δ": number(format="%+.3f"),
            "open": st.column_config.LinkColumn(
                "open on Compare", display_text="open on Compare", help="this query, first stage and reranker"
            ),
        },
    )
    st.caption(
        f"Sorted by difference, largest win first. Every judged relevant document missing from the top 10 is "
        f"put down to the first stage (not among its top {bench.report.depth}: a reranker never saw it) or to "
        "the reranker (handed to it, ranked below 10); with those found, they add up to the query's relevant "
        "documents."
    )
    tags_rows = view.tag_rows(tag_tables(results))
    if tags_rows:
        st.markdown("**By query tag**")
        st.dataframe(
            tags_rows,
            hide_index=True,
            key=keys.BENCH_TAG_TABLE,
            column_config={"mean Δ": number(format="%+.3f")},
        )
    else:
        st.caption(
            "No query carries a tag: set tags on the Labels page, or give the queries file a tags field."
        )

hists = score_histograms(bench.report)
if hists:
    st.subheader("Score distributions", divider="gray")
    st.caption(
        "Every score each method gave, on its own scale (queries that fell back are left out: their scores "
        "are the first stage's). A threshold means something only against its method's own distribution."
    )
    hist_cols = st.columns(min(3, len(hists)))
    palette = view.colours(bench)
    for i, (name, hist) in enumerate(hists.items()):
        with hist_cols[i % len(hist_cols)]:
            st.markdown(f"**{render.md_escape(name)}** · {render.md_escape(hist.scale)}")
            st.plotly_chart(
                view.histogram_figure(hist, palette.get(name, render.PALETTE[0])),
                config={"displayModeBar": False},
                key=f"{keys.BENCH_HIST}_{i}",
            )
# -----------------------------------------------------------------------------------------------------------

st.subheader("Downloads", divider="gray")
reports.benchmark_buttons(report_json)
d1, d2, _ = st.columns([1, 1, 2])
d1.download_button(
    "JSON report",
    json.dumps(report_json, indent=2, allow_nan=False),
    file_name="benchmark-report.json",
    mime="application/json",
    icon=":material/download:",
    key=keys.BENCH_DOWNLOAD_JSON,
    on_click="ignore",
)
try:
    runs = view.run_files_zip(bench)
except RerankError as exc:
    d2.error(f"Run files: {render.md_escape(exc.message)}")
else:
    d2.download_button(
        "TREC run files (.zip)",
        runs,
        file_name="benchmark-runs.zip",
        mime="application/zip",
        icon=":material/download:",
        key=keys.BENCH_DOWNLOAD_RUNS,
        on_click="ignore",
    )
st.caption(
    "The JSON report is the evaluate command's report plus the intervals, paired tests, sweep, verdict and "
    "policy; `python -m rerank_core evaluate` with the same settings gives the same metrics."
)
