"""Compare page: one query, the first stage's order and each reranker's order side by side.

The corpus, the query, the first stage, the depths and the methods (with their models) are bound to the
URL, so a link reproduces the view in any browser and after a restart. The work is the core's one path
(:meth:`rerank_core.pipeline.Runtime.compare`): candidates retrieved once, then each method on the same
candidates; results are memoised per (corpus, query, first stage, depth, method), so changing the number
shown or adding a method never reruns the others.

Every shown document can be graded (0-3 or skip) in whichever column shows it: the judgement store keeps
one grade per (corpus, query, document, judge), every column shows it as a badge, and the live metrics
(a table above the columns and a chip in each column's header) follow as you label. A typed query that
matches one of the corpus's queries takes that query's id, so imported judgements count too. Every fresh
run is recorded in the store's shadow log; a memoised result shown again is not.

Your own stack (``ui.own_stack``, ``ui.engines``): a run file uploaded here becomes a first stage named in
the link (``run:<content hash>``) and offers its queries in the picker; a search engine set up here (its
settings, "Test connection" with one hit) is offered as a first stage for the session; fusions of the first
stage and the chosen methods (or fitted ones, ``fusion:NAME``) are columns like any method.
"""

from __future__ import annotations

import time

import streamlit as st
from streamlit.errors import StreamlitAPIException

from rerank_core.access import GuardedStore, Permission
from rerank_core.compare import Comparison
from rerank_core.progress import ProgressFn
from rerank_core.retrieval.base import NoCandidatesForQuery
from rerank_core.serving import admission
from rerank_core.types import Candidate, MethodSpec, RerankResult
from ui import engines, identity, judging_view, keys, labelling, methods, own_stack, page, render, resources
from ui import report_view as reports
from ui.corpus_state import example_queries

LLM_OFFLINE_TIP = (
    "**Offline?** Enter `smollm2` as the LLM model (Models, top right) to grade passages with the local "
    "SmolLM2-135M: it shows the LLM path end to end, but it is slow on a CPU and a weak reranker."
)
PRECISION_HELP = (
    "fp32: the model as trained. bf16: torch bfloat16 (fast only on CPUs with AMX). onnx / onnx-int8: ONNX "
    "Runtime, int8 weights for speed (exported and quantised once, then cached). openvino / openvino-int8: "
    "OpenVINO, int8 weights and activations calibrated once on the sample corpus (the fastest int8 path on "
    "CPUs with VNNI; the first load quantises the model, about 20 s for a MiniLM). auto: the fastest choice that is safe on this CPU. "
    "Agreement with fp32 is measured by scripts/benchmark.py --precision."
)
DEFAULT_DEPTH = 50
DEFAULT_SHOW = 10

RUN_STARTED = time.perf_counter()  # the server's own time to results is shown under the chart

render.inject_css()
st.title("Compare rerankers")

settings = page.settings_or_stop()
stored = page.corpus_or_stop(settings)
corpus = stored.corpus
corpus_id = stored.id
runtime = resources.runtime()

# -- labels: who grades (the sidebar says) and the judgement store; the page works without a store ----------
actor = identity.current(settings)
judge = actor.judge
can_grade = actor.can(Permission.GRADE)
with st.sidebar:
    if can_grade:
        st.caption(
            f"Grades: {labelling.LEGEND}. Stored once per query and document, whichever column you grade "
            f"it in, under corpus id {labelling.code(corpus_id)}."
        )
    st.page_link("views/labels.py", label="All labels and the shadow log", icon=":material/fact_check:")
label_store: GuardedStore | None
store_problem: tuple[str, str | None] | None = None
try:
    label_store = GuardedStore(resources.label_store(settings), actor)
except Exception as exc:  # noqa: BLE001 - comparing still works without labels
    label_store = None
    store_problem = resources.describe_error(exc)

st.caption(page.corpus_caption(stored))

# -- the query --------------------------------------------------------------------------------------------
examples = example_queries(stored, settings=settings)
if keys.Q not in st.session_state and not st.query_params.get(keys.Q) and examples:
    # a first comparison without typing anything, in the link too (set before the query box binds the
    # parameter: a bound parameter cannot be set directly)
    st.session_state[keys.Q] = examples[0]
    try:
        st.query_params[keys.Q] = examples[0]
    except StreamlitAPIException:  # bound by an earlier run of this page: the box keeps the link
        pass


def _use_example() -> None:
    picked = st.session_state.get(keys.CMP_EXAMPLE)
    if picked:
        st.session_state[keys.Q] = picked
    st.session_state[keys.CMP_EXAMPLE] = None


# -- own stack: a run-file first stage offers its own queries in the picker --------------------------------
chosen_first = st.session_state.get(keys.FIRST_STAGE) or st.query_params.get(keys.FIRST_STAGE) or "bm25"
run_listed = (
    own_stack.run_queries(runtime, chosen_first, corpus, settings)
    if MethodSpec.parse(chosen_first).name == "run"
    else None
)
pickable = dict(stored.queries)
if run_listed is not None:
    pickable = {
        q: stored.queries.get(q) or text for q, text in run_listed.items() if stored.queries.get(q) or text
    }
# -------------------------------------------------------------------------------------------------------------


def _use_pick() -> None:
    picked = st.session_state.get(keys.CMP_PICK_QUERY)
    if picked in pickable:
        st.session_state[keys.Q] = pickable[picked]
    st.session_state[keys.CMP_PICK_QUERY] = None


q1, q2 = st.columns([3, 2], vertical_alignment="bottom")
with q1:
    query = st.text_input(
        "Query",
        key=keys.Q,
        bind="query-params",
        placeholder="Type a question and press Enter",
        icon=":material/search:",
    )
with q2:
    if pickable:
        judged_first = sorted(pickable, key=lambda q: not stored.qrels.get(q))
        st.selectbox(
            f"Or pick one of the corpus's {len(pickable):,} queries"
            if run_listed is None
            else f"Or pick one of the run file's {len(pickable):,} queries",
            judged_first,
            index=None,
            format_func=lambda q: f"{q} · {render.snippet(pickable[q], 90)}",
            key=keys.CMP_PICK_QUERY,
            on_change=_use_pick,
            placeholder="Search the corpus's queries…",
            help="Judged queries first. A typed query whose text matches one of these uses its id, so its "
            "judgements count in the live metrics.",
        )
if examples:
    st.pills(
        "Example queries",
        examples,
        key=keys.CMP_EXAMPLE,
        on_change=_use_example,
        label_visibility="collapsed",
    )

# -- settings ----------------------------------------------------------------------------------------------
c1, c2, c3 = st.columns([2, 1, 2], vertical_alignment="bottom")
with c1:
    offered = [
        m
        for m in own_stack.offered_first_stages(
            methods.first_stages(settings), settings, corpus_id, chosen_first
        )
        if settings.demo.offers(m, first_stage=True)
    ]
    # options are shown as they appear in the URL (a bound widget writes the shown text there)
    first_stage = (
        st.segmented_control(
            "First stage",
            offered,
            default="bm25",
            key=keys.FIRST_STAGE,
            bind="query-params",
            required=True,
            help=" · ".join(f"{name}: {methods.description(name)}" for name in offered),
        )
        or "bm25"
    )
with c2:
    depth = int(
        st.number_input(
            "Candidates to rerank",
            min_value=5,
            max_value=500,
            value=DEFAULT_DEPTH,
            step=5,
            key=keys.DEPTH,
            bind="query-params",
            help="The first stage's top N. Every method reranks the same N candidates.",
        )
    )
with c3:
    show = int(
        st.slider(
            "Shown per column",
            min_value=1,
            max_value=50,
            value=DEFAULT_SHOW,
            key=keys.SHOW,
            bind="query-params",
            help="Changing this only redraws: no model runs again.",
        )
    )
show = min(show, depth)

m1, m2, m3 = st.columns([6, 1, 1], vertical_alignment="bottom")
with m1:
    chosen = st.multiselect(
        "Methods",
        methods.rerankers(settings),
        default=[m for m in methods.DEFAULT_METHODS if m in methods.rerankers(settings)],
        key=keys.METHODS,
        bind="query-params",
        placeholder="Choose rerankers to compare",
    )
with m2:
    with st.popover("Models", icon=":material/tune:", width="stretch"):
        # a hosted demo runs the models it was configured with, at their configured precision: a visitor's
        # model id or precision (typed, or in a link) would make the shared server download or convert models
        locked = settings.demo.enabled
        st.caption(
            "This demo runs the configured models at their configured precision; run the playground yourself "
            "to try others."
            if locked
            else "A hub id, a folder under RERANK_MODELS_DIR, or a local path. Empty = the default. The "
            "precision is the numeric path a local model runs (each column shows the one it ran)."
        )
        models: dict[str, str] = {}
        overrides: dict[str, dict[str, object]] = {}  # this session's options per method (precision, ...)
        may_run_code = actor.can(Permission.REMOTE_CODE) and not locked
        linked: dict[str, str] = (
            {} if locked else {"bind": "query-params"}
        )  # a demo never reads them from a link
        for name in chosen:
            default = methods.default_model(name, settings)
            typed = st.text_input(
                f"{methods.title(name)} model",
                value=default,
                key=keys.model_key(name),
                placeholder="automatic" if not default else default,
                help=methods.description(name),
                disabled=locked,
                **linked,
            )
            models[name] = default if locked else typed
            overrides[name] = {}
            choices, configured = methods.precision_choices(name, settings)
            if choices:
                picked = st.selectbox(
                    f"{methods.title(name)} precision",
                    choices,
                    index=choices.index(configured),
                    key=keys.precision_key(name),
                    help=PRECISION_HELP,
                    disabled=locked,
                    **linked,
                )
                if picked and picked != configured and not locked:
                    overrides[name]["precision"] = picked
            if methods.takes_instruction(name, models[name] or default, settings):
                instruction = st.text_input(
                    f"{methods.title(name)} instruction",
                    key=keys.instruction_key(name),
                    placeholder="the model's default instruction",
                    help="This model reads an instruction in its prompt: say what makes a passage relevant "
                    "for your task (e.g. 'Given a question about aerodynamics, retrieve passages that answer "
                    "it'). Empty = the model's default.",
                    disabled=locked,
                    **linked,
                )
                if instruction.strip() and not locked:
                    overrides[name]["instruction"] = instruction.strip()
            if may_run_code and methods.takes_remote_code(name):
                if st.checkbox(
                    f"Let the {methods.title(name).lower()} model run its own code",
                    key=keys.remote_code_key(name),
                    help="trust_remote_code: needed by models that ship their own Python code (e.g. "
                    "jinaai/jina-reranker-v2-base-multilingual). Never kept in the link.",
                ):
                    st.warning(
                        "This runs Python code from the model's repository on this server, with its rights. "
                        "Turn it on only for a model whose code you have read or trust.",
                        icon=":material/warning:",
                    )
                    overrides[name]["trust_remote_code"] = True
        settings = settings.with_method_options(overrides)
with m3:
    secrets = sorted({s for name in chosen if (i := methods.info(name)) is not None for s in i.secrets})
    if not identity.typed_keys_allowed(settings, actor):  # a demo's keys, or a non-admin's: the server's only
        secrets = []
    with st.popover("API keys", icon=":material/key:", width="stretch", disabled=not secrets):
        st.caption(
            "For the hosted methods chosen. Kept in this browser session only: never in the URL, the logs or "
            "any file. The same names in the environment or in Streamlit secrets work too."
        )
        for name in secrets:
            st.text_input(name, type="password", key=keys.secret_key(name), persist_state="session")

specs = [methods.spec_for(name, models.get(name)) for name in chosen]

# -- own stack: run files, engines, fusions ---------------------------------------------------------------------
if st.toggle(
    "Your own first stage: a run file or a search engine",
    key=keys.CMP_OWN_STACK,
    help="Upload a run file (TREC or JSONL) or set up the search engine that serves this corpus; it then is a "
    "first stage above, like bm25.",
):
    with st.container(border=True):
        run_tab, engine_tab = st.tabs(["Run file", "Search engine"])
        with run_tab:
            own_stack.render_run_files(settings, corpus_id, stored.queries)
        with engine_tab:
            engines.render_engine_setup(settings, corpus, page="cmp", query=query or "")
fusion_current = [str(f) for f in st.session_state.get(keys.FUSIONS) or []]
fused = st.multiselect(
    "Fusions",
    own_stack.fusion_options(first_stage, specs, settings, fusion_current),
    key=keys.FUSIONS,
    bind="query-params",
    accept_new_options=True,
    placeholder="Fuse orders: the first stage with a method, or type fusion:A+B",
    help="Reciprocal rank fusion (k from [methods.fusion], 60 by default) of the methods' orders of the same "
    "candidates; fusion:NAME is a fusion fitted with `python -m rerank_core fusion fit`.",
)
specs += [f if str(f).startswith("fusion:") else f"fusion:{f}" for f in fused]
# -------------------------------------------------------------------------------------------------------------

if not query or not query.strip():
    st.info("Type a query above, or pick one of the corpus's queries.", icon=":material/search:")
    st.stop()
query = query.strip()
if not specs:
    st.info("Choose at least one method to compare against the first stage.", icon=":material/checklist:")

fs_title = methods.first_stage_title(first_stage) + " · first stage"
unit = stored.info.unit


def _bar_progress(bar) -> ProgressFn:
    def update(done: int, total: int, message: str) -> None:
        bar.progress(min(done / total, 1.0) if total else 0.0, text=message[:120])

    return update


# -- the first stage and its candidates (once; memoised in the runtime) -------------------------------------
# the query's id in the corpus's dataset (a run file lists candidates by it; labels are stored under it)
query_id = own_stack.resolve_query_id(label_store, corpus_id, query, stored.queries)
try:
    if runtime.first_stage_ready(first_stage, corpus, settings) is None:
        with st.status(
            f"Preparing the {methods.first_stage_title(first_stage)} first stage over {len(corpus):,} {unit}…"
        ) as box:
            bar = st.progress(0.0)
            retriever = runtime.first_stage(first_stage, corpus, settings, _bar_progress(bar))
            how = "loaded from disk" if getattr(retriever, "loaded_from", None) else "built"
            box.update(
                label=f"{methods.first_stage_title(first_stage)} index {how} in {retriever.build_s:.1f} s",
                state="complete",
            )
    base = runtime.compare(
        query,
        corpus,
        first_stage,
        [],
        depth,
        settings,
        corpus_id=corpus_id,
        shadow=label_store,
        query_id=query_id,
    )
except NoCandidatesForQuery as exc:  # a run file that does not list this query
    st.warning(render.md_escape(exc.message), icon=":material/search_off:")
    if exc.hint:
        st.caption(f"Fix: {render.md_escape(exc.hint)}")
    st.stop()
except Exception as exc:  # noqa: BLE001 - shown on the page, never a traceback
    message, hint = resources.describe_error(exc)
    st.error(f"The {first_stage} first stage cannot run: {render.md_escape(message)}")
    if hint:
        st.caption(f"Fix: {render.md_escape(hint)}")
    st.stop()
retriever = runtime.first_stage(first_stage, corpus, settings)
if getattr(retriever, "save_problem", None):
    st.warning(render.md_escape(retriever.save_problem), icon=":material/save:")  # type: ignore[attr-defined]
log_problems = list(base.problems)
candidates: tuple[Candidate, ...] = base.comparison.candidates
first_result: RerankResult = base.comparison.first_stage

if not candidates:
    st.warning(
        f"The {methods.first_stage_title(first_stage)} first stage found no candidates for this query "
        "(no query word occurs in the corpus). Try other words or the dense first stage.",
        icon=":material/search_off:",
    )
    st.stop()

# -- the query's identity and its judgements (read once per run; a click writes before the run starts) -----
ref: labelling.QueryRef | None = None
my_grades: dict[str, int | None] = {}
if label_store is not None:
    try:
        qid = label_store.resolve_query_id(corpus_id, query, stored.queries)
        ref = labelling.QueryRef(corpus_id, qid, query)
        my_grades = label_store.grades(corpus_id, qid, judge=judge)
    except Exception as exc:  # noqa: BLE001 - comparing still works without labels
        store_problem = resources.describe_error(exc)
        label_store = None

# -- layout: notices, the highlight picker, then one column per order --------------------------------------
progress_area = st.container()
notices = st.container()
summary = st.container()
labels_area = st.container()
picker = st.container()
highlight = st.session_state.get(keys.CMP_HIGHLIGHT)
with picker:
    pick_col, mode_col = st.columns([4, 1], vertical_alignment="bottom")
# -- answers: whose judgements the live metrics rest on (people only, or an LLM judge filling the gaps) -------
with labels_area:
    st.markdown("##### Labels · live metrics")
    basis = judging_view.Basis(fill=False, llm_judge=None)
    judged = judging_view.QueryJudgements(people={}, grades={}, label="")
    if label_store is not None and ref is not None:
        try:
            basis = judging_view.basis_control(label_store, corpus_id, keys.CMP_BASIS, keys.CMP_LLM_JUDGE)
            judged = judging_view.query_judgements(label_store, corpus_id, ref.query_id, basis)
        except Exception as exc:  # noqa: BLE001 - comparing still works without labels
            store_problem = resources.describe_error(exc)
            label_store = None
grades = judged.people  # the badges: people's grades only (an LLM's show as their own badges)
metric_grades = judged.grades  # what the live metrics rest on (judged.label says which)
judges = judged.judges
# -----------------------------------------------------------------------------------------------------------

with mode_col:
    grading = can_grade and st.toggle(  # a viewer gets no grade buttons at all
        "Grade buttons",
        value=True,
        key=keys.CMP_GRADE_MODE,
        disabled=label_store is None,
        help="0-3 or skip under every row. Off: the grades stay visible as badges.",
    )
grading = grading and label_store is not None and ref is not None


def _grade_control(column: str):
    """The grading widget drawer of one column (None when grading is off)."""
    if not grading or label_store is None or ref is None:
        return None
    store, query_ref = label_store, ref

    def control(doc_id: str) -> None:
        labelling.render_grade_controls(store, query_ref, doc_id, column, judge=judge, grades=my_grades)

    return control


def _live(result: RerankResult) -> tuple[str, str, bool]:
    return labelling.live_chip(metric_grades, result, show) if label_store is not None else ("", "", False)


def _coverage(result: RerankResult) -> tuple[str, str, bool]:
    """The Coverage@k chip of a column: the share of its shown top k with a grade."""
    if label_store is None or not result.items:
        return "", "", False
    (row,) = labelling.live_metrics_rows(metric_grades, {result.method: result}, show)
    return labelling.coverage_chip(row, show)


colours = {spec: render.PALETTE[i % len(render.PALETTE)] for i, spec in enumerate(specs)}
results: dict[str, RerankResult | None] = {
    spec: runtime.memoised(query, corpus, first_stage, depth, spec, settings, query_id=query_id)
    for spec in specs
}
weights = [3] + [2 if render.is_unavailable(results[s]) else 3 for s in specs]

# a narrow screen (a phone) shows one order at a time, picked here; on a wide one the picker is hidden
order_options = ["first", *specs]
if st.session_state.get(keys.CMP_ORDER) not in order_options:
    st.session_state[keys.CMP_ORDER] = specs[0] if specs else "first"
with st.container(key=render.NARROW_PICKER):
    st.segmented_control(
        "Order shown",
        order_options,
        format_func=lambda o: fs_title if o == "first" else methods.title(o),
        key=keys.CMP_ORDER,
        required=True,
        help="A narrow screen shows one order at a time; a wider one shows every order side by side.",
    )
render.narrow_layout(order_options.index(st.session_state[keys.CMP_ORDER]), len(order_options))
columns = st.columns(weights, gap="small")


def _comparison(shown: list[RerankResult]) -> Comparison:
    return Comparison(
        query=query,
        depth=depth,
        candidates=candidates,
        first_stage=first_result,
        results=tuple(shown),
        corpus_fingerprint=corpus.fingerprint,
    )


with columns[0], st.container(key=render.column_key(0)):
    live = _live(first_result)
    cov = _coverage(first_result)
    render.draw_column(
        render.ColumnSpec(
            name=fs_title,
            label=first_result.label,
            scale=str(first_result.scale),
            colour=render.FIRST_STAGE_COLOUR,
            latency_ms=first_result.latency_ms,
            load_s=retriever.build_s,
            baseline=True,
            live=live[0],
            live_title=live[1],
            live_muted=live[2],
            coverage=cov[0],
            coverage_title=cov[1],
            coverage_low=cov[2],
            precision=first_result.precision or str(getattr(retriever, "precision", "") or ""),
        ),
        first_result,
        _comparison([]),
        show,
        highlight,
        grades=grades,
        control=_grade_control("first"),
        key="c0",
        llm=judged.llm,
    )

slots = {
    spec: col.container(key=render.column_key(i)).empty()
    for i, (spec, col) in enumerate(zip(specs, columns[1:], strict=True), start=1)
}


def _draw(spec: str, res: RerankResult | None) -> None:
    name = MethodSpec.parse(spec).name
    with slots[spec].container():
        render.method_column(
            title=methods.title(spec if name == "fusion" else name),
            spec=spec,
            result=res,
            comparison=_comparison([res] if res is not None else []),
            k=show,
            highlight=highlight,
            colour=colours[spec],
            blurb=methods.description(name),
            tip=LLM_OFFLINE_TIP if name == "llm" else "",
            grades=grades,
            control=_grade_control(spec) if res is not None else None,
            live=_live(res) if res is not None and res.items else ("", "", False),
            key=f"c{specs.index(spec) + 1}",
            coverage=_coverage(res) if res is not None else ("", "", False),
            llm=judged.llm,
        )


for spec in specs:
    _draw(spec, results[spec])

# a run stopped with the Stop button stays stopped for this query until asked to run again
missing = [spec for spec in specs if results[spec] is None]
run_signature = (corpus_id, query, first_stage, depth)
stopped = st.session_state.get(keys.CMP_STOPPED)
if stopped is not None and stopped[0] != run_signature:
    st.session_state.pop(keys.CMP_STOPPED, None)
    stopped = None
held = [spec for spec in missing if stopped is not None and spec in stopped[1]]
missing = [spec for spec in missing if spec not in held]
if held:
    with progress_area:
        st.info(
            f"Stopped: {', '.join(methods.title(s) for s in held)} did not run for this query.",
            icon=":material/stop_circle:",
        )
        st.button(
            "Run them",
            key=keys.CMP_RUN_AGAIN,
            icon=":material/play_arrow:",
            on_click=lambda: st.session_state.pop(keys.CMP_STOPPED, None),
        )
    for spec in held:
        _draw(spec, render.stopped_result(spec))


def _stop(signature: tuple, specs: tuple[str, ...]) -> None:
    st.session_state[keys.CMP_STOPPED] = (signature, specs)


if missing:
    with progress_area, st.status(f"Reranking {len(candidates)} candidates…", expanded=True) as box:
        st.button(
            "Stop",
            key=keys.CMP_STOP,
            icon=":material/stop:",
            on_click=_stop,
            args=(run_signature, tuple(missing)),
            help="Methods not started yet do not run; the one running now finishes first.",
        )
        bar = st.progress(0.0, text="Starting…")

        def _on_result(spec: str, res: RerankResult) -> None:
            results[spec] = res
            _draw(spec, res)

        run = runtime.compare(
            query,
            corpus,
            first_stage,
            missing,
            depth,
            settings,
            corpus_id=corpus_id,
            progress=_bar_progress(bar),
            on_result=_on_result,
            shadow=label_store,
            order=methods.execution_order,
            admit=admission(resources.limiter(settings), identity.quota_user(actor)),
            query_id=query_id,
        )
        log_problems += run.problems
        box.update(label=f"Reranked {len(candidates)} candidates", state="complete", expanded=False)

# -- once every order is in: notices, the highlight picker, latency and agreement --------------------------
ran = [spec for spec in specs if results[spec] is not None]
done = [results[spec] for spec in ran]
comparison = _comparison(done)  # type: ignore[arg-type]
display = {first_result.method: fs_title}
for spec, res in zip(ran, done, strict=True):
    display[res.method] = render.fallback_title(methods.title(spec)) if res.fallback else methods.title(spec)

st.session_state[keys.CMP_LAST] = {
    "first": (candidates, first_result),
    "methods": {spec: results[spec] for spec in specs if results[spec] is not None},
    "query_id": ref.query_id if ref is not None else None,
    "first_stage": first_stage,
    "depth": depth,
}

with notices:
    render.method_notices(comparison, display, show)

with pick_col:
    shown_ids = labelling.union_of_shown([first_result, *done], show)
    by_id = {c.doc_id: c for c in candidates}
    if highlight not in shown_ids:
        st.session_state.pop(keys.CMP_HIGHLIGHT, None)
    st.selectbox(
        "Highlight a document in every column",
        shown_ids,
        index=None,
        format_func=lambda d: render.option_label(by_id[d]),
        key=keys.CMP_HIGHLIGHT,
        placeholder="Pick one of the shown documents…",
    )

with summary:
    st.markdown("##### Latency and agreement")
    st.caption(
        f"Results for “{render.md_escape(query)}” · {len(candidates)} candidates from "
        f"{methods.first_stage_title(first_stage)} · {len(done)} method(s) · "
        f"served in {time.perf_counter() - RUN_STARTED:.2f} s"
    )
    left, right = st.columns([3, 2], gap="medium")
    with left:
        chart_names = [fs_title]
        chart_ms = [first_result.latency_ms]
        chart_load = [retriever.build_s]
        chart_colours = [render.FIRST_STAGE_COLOUR]
        not_run = []
        fell_back = []
        for spec, res in zip(ran, done, strict=True):
            if res.items and not res.fallback:
                chart_names.append(display[res.method])
                chart_ms.append(res.latency_ms)
                chart_load.append(res.model_load_s)
                chart_colours.append(colours[spec])
            elif res.fallback:
                fell_back.append(methods.title(spec))
            else:
                not_run.append(display[res.method])
        st.plotly_chart(
            render.latency_figure(chart_names, chart_ms, chart_load, chart_colours),
            config={"displayModeBar": False},
        )
        st.caption(
            f"Every method reranked the same {len(candidates)} candidates, one after another. Query time excludes "
            "the one-off model load and index build (right), which happen once per process."
            + (f" Not run: {', '.join(render.md_escape(n) for n in not_run)}." if not_run else "")
            + (
                f" Fell back to the first-stage order (no query time of their own): "
                f"{', '.join(render.md_escape(n) for n in fell_back)}."
                if fell_back
                else ""
            )
        )
    with right:
        rows = render.agreement_rows(comparison, show, display)
        if rows:
            st.dataframe(
                rows,
                hide_index=True,
                column_config={
                    f"Overlap@{show}": st.column_config.NumberColumn(
                        format="%.2f", help="share of the shown top k in both"
                    ),
                    "Kendall τ": st.column_config.NumberColumn(
                        format="%.2f",
                        help=f"rank correlation over all {len(candidates)} candidates (-1 to 1)",
                    ),
                    f"RBO@{show} (p=0.9)": st.column_config.NumberColumn(
                        format="%.2f", help="rank-biased overlap: top-weighted agreement (0 to 1)"
                    ),
                },
            )
            st.caption(
                "1.00 = the same order. Overlap and RBO look at the shown top k; Kendall τ at every candidate."
            )
        else:
            st.caption("No reranked order to compare with yet.")
        if render.agreement_note(comparison, display):
            st.caption(render.agreement_note(comparison, display))

# -- labels of this query: live metrics per order, undo ------------------------------------------------------
with labels_area:
    if label_store is None or ref is None:
        problem = store_problem or ("the judgement store is not available", None)
        st.warning(
            f"Grading is off: the judgement store cannot be used ({render.md_escape(problem[0])}).",
            icon=":material/database_off:",
        )
        if problem[1]:
            st.caption(f"Fix: {render.md_escape(problem[1])}")
    else:
        table_col, side_col = st.columns([3, 2], gap="medium")
        with table_col:
            ordered = {fs_title: first_result}
            for res in done:
                if res.items:
                    ordered[display[res.method]] = res
            labelling.render_live_metrics(ordered, show, metric_grades, judges, basis=judged.label)
        with side_col:
            labelling.show_notice()
            matched = ref.query_id in stored.queries
            where = (
                f"query id {labelling.code(ref.query_id)}"
                + (" (one of the corpus's queries)" if matched else " (a typed query)")
                + f" · corpus id {labelling.code(corpus_id)}"
            )
            if can_grade:
                st.caption(
                    f"**Grade** any shown document with the buttons under it: {labelling.LEGEND}. One grade "
                    "per document, whichever column you click; every column shows it as a badge."
                )
                how = "your sign-in" if actor.signed_in else "change it in the sidebar, top left"
                st.caption(f"Judge **{render.md_escape(judge)}** ({how}) · {where}")
                labelling.render_undo(label_store, corpus_id, judge)
            else:
                st.caption(
                    f"Viewing as **{render.md_escape(actor.identity)}** ({actor.role.value}): the metrics rest on "
                    f"everyone's labels; grading needs the labeller role · {where}"
                )
            judging_view.render_guideline(label_store, corpus_id)
        # -- answers: an LLM grades the shown documents no person graded (stored as its own judge) ---------
        if actor.can(Permission.IMPORT):  # it writes another judge's labels, as an import does
            shown_docs = labelling.union_of_shown([first_result, *done], show)
            by_doc = {c.doc_id: c for c in candidates}
            judging_view.render_llm_grading(
                label_store,
                corpus_id,
                ref.query_id,
                query,
                [(d, by_doc[d].full_text) for d in shown_docs],
                grades,
                settings,
                model_key=keys.CMP_JUDGE_MODEL,
                go_key=keys.CMP_JUDGE_GO,
            )
        # ------------------------------------------------------------------------------------------------------
        for problem_text in log_problems:
            st.caption(render.md_escape(problem_text))

# -- answers: a report of this comparison to share (self-contained HTML, or Markdown) -------------------------
reports.comparison_buttons(
    comparison,
    k=show,
    titles=display,
    grades=metric_grades if label_store is not None else {},
    people=grades,
    llm=judged.llm,
    judgements=judged.label,
    corpus=stored.name,
    corpus_id=corpus_id,
    first_stage=first_stage,
    query_id=ref.query_id if ref is not None else None,
    first_stage_load_s=retriever.build_s,
)
