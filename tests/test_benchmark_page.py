"""The benchmark (core and page) on the built-in sample corpus's own qrels.

The reranker is a tiny random-weight BERT cross-encoder loaded by the real CrossEncoder loader (its
quality means nothing, its plumbing is real); the slow test adds the dense first stage with the
packaged all-MiniLM-L6-v2. Every figure the page shows is checked against ``run_evaluation`` called
directly with the same settings, the code behind ``python -m rerank_core evaluate``.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest
from streamlit.testing.v1 import app_test as app_test_module

from rerank_core.benchmark import KEY_MEASURE, run_benchmark
from rerank_core.config import Settings, load_settings
from rerank_core.evaluation import run_evaluation
from rerank_core.progress import Cancelled
from rerank_core.sample import sample_dataset
from ui import keys
from ui.benchmark_view import parse_depths

pytest_plugins = ["tiny_models"]

ROOT = Path(__file__).resolve().parents[1]
PAGE = str(ROOT / "views" / "benchmark.py")
MEASURES = ("nDCG@10", "R@10", "R@50", "RR", "P@5")
N_QUERIES = 4


@pytest.fixture(scope="module")
def sample():
    return sample_dataset()


@pytest.fixture
def ce_spec(tiny_cross_encoder_dir) -> str:
    return f"cross-encoder:{tiny_cross_encoder_dir}"


def _same_metrics(a: dict, b: dict) -> None:
    assert set(a) == set(b)
    for measure in MEASURES:
        assert a[measure] == pytest.approx(b[measure], abs=1e-12), measure


# -- the core ---------------------------------------------------------------------------------------------


def test_benchmark_equals_run_evaluation_and_adds_the_analysis(sample, ce_spec, tmp_path):
    settings = Settings(data_dir=tmp_path / "data")
    bench = run_benchmark(
        sample,
        "bm25",
        15,
        [ce_spec, "cohere"],
        max_queries=N_QUERIES,
        sweep_depths=(5, 10, 15),
        settings=settings,
    )
    direct = run_evaluation(sample, "bm25", 15, ["bm25", ce_spec], max_queries=N_QUERIES, settings=settings)
    assert list(bench.report.methods) == ["bm25", ce_spec, "cohere"]
    # an unavailable method is reported with its reason; the others go on
    cohere = bench.summaries["cohere"]
    assert not cohere.available and "COHERE_API_KEY" in (cohere.error or "")
    assert bench.sweep_notes["cohere"] == "did not run" and "cohere" not in bench.policies
    assert bench.report.query_ids == direct.query_ids and len(direct.query_ids) == N_QUERIES
    for name, m in direct.methods.items():
        assert bench.report.methods[name].available and m.available
        _same_metrics(bench.report.methods[name].metrics, m.metrics)
        assert bench.report.methods[name].run == m.run

    fs, ce = bench.summaries["bm25"], bench.summaries[ce_spec]
    for s in (fs, ce):
        for measure in MEASURES:
            iv = s.intervals[measure]
            assert iv.low <= iv.mean <= iv.high
            assert iv.mean == pytest.approx(bench.report.methods[s.name].metrics[measure])
    assert fs.paired is None and ce.paired is not None
    assert ce.paired.diff_mean == pytest.approx(
        ce.intervals[KEY_MEASURE].mean - fs.intervals[KEY_MEASURE].mean
    )
    assert 0.0 < ce.paired.p_value <= 1.0

    # the sweep within the evaluated depth is derived from the same scores: its last point is the table's
    points = bench.sweeps[ce_spec]
    assert [p.depth for p in points] == [5, 10, 15] and not bench.sweep_extra_pass
    assert points[-1].value == pytest.approx(ce.intervals[KEY_MEASURE].mean)
    assert bench.knees[ce_spec] in (5, 10, 15)

    v = bench.verdict
    assert v is not None and v.best_method == ce_spec
    assert v.lift == pytest.approx(ce.paired.diff_mean)
    assert v.added_p95_ms == pytest.approx(ce.latency["p95"])
    assert v.recall_at_50 == pytest.approx(fs.intervals["R@50"].mean)

    policy = bench.policies[ce_spec]
    never, always = policy[0], policy[-1]
    assert never.share_reranked == 0.0 and never.mean_metric == pytest.approx(fs.intervals[KEY_MEASURE].mean)
    assert always.share_reranked == 1.0 and always.mean_metric == pytest.approx(
        ce.intervals[KEY_MEASURE].mean
    )

    report = json.loads(bench.dumps())
    assert report["methods"][ce_spec]["metrics"] == direct.to_json()["methods"][ce_spec]["metrics"]
    assert report["methods"]["cohere"]["available"] is False
    assert report["analysis"]["verdict"]["kind"] == v.kind


def test_a_sweep_deeper_than_the_table_scores_the_deeper_list_once_more(sample, ce_spec, tmp_path):
    settings = Settings(data_dir=tmp_path / "data")
    bench = run_benchmark(
        sample, "bm25", 5, [ce_spec], max_queries=2, sweep_depths=(5, 15), settings=settings
    )
    assert bench.sweep_extra_pass
    assert [p.depth for p in bench.sweeps[ce_spec]] == bench.sweep_depths == [5, 15]
    # reranking only the top 5 of the deeper scoring gives exactly the table's run at depth 5
    assert bench.sweeps[ce_spec][0].value == pytest.approx(
        bench.summaries[ce_spec].intervals[KEY_MEASURE].mean
    )


def test_a_progress_callback_can_cancel(sample, ce_spec, tmp_path):
    calls = []

    def progress(done: int, total: int, message: str) -> None:
        calls.append(message)
        if len(calls) > 3:
            raise Cancelled("stop")

    with pytest.raises(Cancelled):
        run_benchmark(
            sample, "bm25", 10, [ce_spec], settings=Settings(data_dir=tmp_path / "d"), progress=progress
        )


def test_sweep_depths_are_parsed_with_a_reason_for_bad_input():
    assert parse_depths("200, 10,25 ,10") == [10, 25, 200]
    with pytest.raises(ValueError, match="'ten' is not a whole number"):
        parse_depths("ten, 20")
    with pytest.raises(ValueError, match="positive"):
        parse_depths("0")


# -- the page ---------------------------------------------------------------------------------------------


@pytest.fixture
def downloads(monkeypatch):
    files: dict[str, bytes] = {}
    base = app_test_module.MemoryMediaFileStorage

    class Recording(base):  # type: ignore[misc, valid-type]
        def load_and_get_id(self, path_or_data, mimetype, kind, filename=None):
            data = path_or_data.encode() if isinstance(path_or_data, str) else path_or_data
            if filename:
                files[filename] = bytes(data)
            return super().load_and_get_id(path_or_data, mimetype, kind, filename)

    monkeypatch.setattr(app_test_module, "MemoryMediaFileStorage", Recording)
    return files


def _run_page(methods: list[str], models: dict[str, str], depth: int, sweep: str, timeout: float) -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=timeout).run()
    assert not at.exception
    at.multiselect(key=keys.BENCH_METHODS).set_value(methods).run()
    for name, model in models.items():
        at.text_input(key=keys.BENCH_MODEL_PREFIX + name).set_value(model)
    at.number_input(key=keys.BENCH_DEPTH).set_value(depth)
    at.number_input(key=keys.BENCH_MAX_QUERIES).set_value(N_QUERIES)
    at.text_input(key=keys.BENCH_SWEEP).set_value(sweep)
    at.run()
    assert not at.exception
    at.button(key=keys.BENCH_RUN).click().run()
    assert not at.exception
    return at


def _table(at: AppTest):
    return next(df.value for df in at.dataframe if "p-value" in df.value.columns).set_index("method")


def test_the_page_runs_on_the_sample_qrels_and_matches_evaluate(
    sample, ce_spec, tiny_cross_encoder_dir, downloads
):
    at = _run_page(
        ["cross-encoder", "cohere"],
        {"cross-encoder": str(tiny_cross_encoder_dir)},
        15,
        "5, 10, 15",
        timeout=120,
    )
    assert at.radio(key=keys.BENCH_SOURCE).value.startswith("Dataset qrels: ")

    # the direct evaluation with the page's settings
    direct = run_evaluation(
        sample, "bm25", 15, ["bm25", ce_spec], max_queries=N_QUERIES, settings=load_settings()
    )
    table = _table(at)
    assert list(table.index) == ["bm25", ce_spec]
    for name in ("bm25", ce_spec):
        for measure in MEASURES:
            assert table.loc[name, measure] == pytest.approx(direct.methods[name].metrics[measure], abs=1e-12)
        low, high = (float(x) for x in table.loc[name, f"{KEY_MEASURE} 95% CI"].strip("[]").split(","))
        assert low <= table.loc[name, KEY_MEASURE] + 5e-4 and table.loc[name, KEY_MEASURE] <= high + 5e-4
    assert table.loc[ce_spec, f"Δ {KEY_MEASURE} vs first stage"] == pytest.approx(
        direct.methods[ce_spec].metrics[KEY_MEASURE] - direct.methods["bm25"].metrics[KEY_MEASURE]
    )
    unavailable = next(df.value for df in at.dataframe if "why it did not run" in df.value.columns)
    (cohere,) = unavailable["method"].tolist()
    assert cohere.startswith("cohere") and "API key" in unavailable.iloc[0, 1]

    # the verdict, the scatter, the sweep with its knee, the policy plot
    verdict = [a.value for a in (*at.success, *at.info, *at.warning) if "first stage" in a.value]
    assert any("reranker" in text for text in verdict)
    charts = {c.proto.id.rsplit("-", 1)[-1]: json.loads(c.proto.spec) for c in at.get("plotly_chart")}
    scatter, sweep, policy = (
        charts[k] for k in (keys.BENCH_SCATTER, keys.BENCH_SWEEP_PLOT, keys.BENCH_POLICY)
    )
    assert {t["name"] for t in scatter["data"]} == {"bm25", ce_spec.replace("/", "/")}
    sweep_lines = [t for t in sweep["data"] if t.get("mode") == "lines+markers"]
    assert sweep_lines[0]["x"] == [5, 10, 15]
    assert any(t.get("marker", {}).get("symbol") == "star" for t in sweep["data"])  # the knee
    assert len(policy["data"]) == 1 and policy["data"][0]["y"][-1] == pytest.approx(
        direct.methods[ce_spec].metrics[KEY_MEASURE]
    )

    # the verdict's numbers are the report's; the bullets use the same interval as the headline
    report = json.loads(downloads["benchmark-report.json"])
    facts = {m.label: m.value for m in at.metric}
    v = report["verdict"]
    assert facts["call"] == v["call"] and facts["method"] == v["method"]
    assert facts["95% interval"].startswith(f"{v['ci'][0]:+.3f}")
    bullets = [m.value.replace("\\", "") for m in at.markdown if m.value.startswith("- ")]
    assert any("95% interval" in b and f"{v['ci'][0]:+.3f}" in b for b in bullets)
    assert not any("significant at 5%" in b for b in bullets)
    # coverage next to the metrics, checked against the report
    for name in ("bm25", ce_spec):
        assert table.loc[name, "Coverage@10"] == pytest.approx(report["methods"][name]["coverage"]["@10"])
    # per-query wins and losses, sorted by difference, each with a link that opens it on Compare
    pq = next(df.value for df in at.dataframe if "open" in df.value.columns)
    rows = report["per_query_analysis"]["methods"][ce_spec]["rows"]
    assert pq["query"].tolist() == [r["query"] for r in rows] and len(rows) == N_QUERIES
    assert pq["Δ"].tolist() == sorted(pq["Δ"].tolist(), reverse=True)
    assert (
        pq["in top 10"] + pq["ranked below 10 (reranker)"] + pq["not retrieved (first stage)"]
    ).tolist() == (pq["relevant"].tolist())
    link = pq["open"].iloc[0]
    assert link.startswith("/?corpus=") and "first_stage=bm25" in link and "methods=cross-encoder" in link
    assert "model_cross-encoder=" in link and "depth=15" in link
    wins = {m.label: m.value for m in at.metric}
    assert int(wins["wins"]) + int(wins["losses"]) + int(wins["ties"]) == N_QUERIES
    # score distributions with the scale named; report buttons
    hist_axes = [
        c["layout"]["xaxis"]["title"]["text"] for k, c in charts.items() if k.startswith(keys.BENCH_HIST)
    ]
    assert any("logit" in t for t in hist_axes) and any("BM25 score" in t for t in hist_axes)
    labels = [b.label for b in at.get("download_button")]
    assert "Report (HTML)" in labels and "Report (Markdown)" in labels
    for name in ("bm25", ce_spec):
        assert report["methods"][name]["metrics"] == pytest.approx(direct.methods[name].metrics)
    assert report["methods"][cohere]["available"] is False
    with zipfile.ZipFile(io.BytesIO(downloads["benchmark-runs.zip"])) as zf:
        assert sorted(zf.namelist()) == sorted(
            f"{n}.run" for n in ("bm25", ce_spec.replace(":", "__").replace("/", "--"))
        )

    # the results stay: a widget change redraws without running anything
    at.number_input(key=keys.BENCH_DEPTH).set_value(30).run()
    assert not at.exception
    assert _table(at).loc[ce_spec, KEY_MEASURE] == table.loc[ce_spec, KEY_MEASURE]
    assert any("changed since this run" in i.value for i in at.info)


def test_the_page_benchmarks_labelled_queries(sample):
    from rerank_core.judgements import IMPORT_JUDGE, JudgementStore
    from rerank_core.workspace import Workspace

    at = AppTest.from_file(PAGE, default_timeout=60).run()  # the sample's own judgements are imported once
    assert not at.exception
    corpus_id = Workspace(load_settings().data_dir).sample().id
    qrels = sample.qrels["q01"]
    with JudgementStore(load_settings().resolved_db_url) as store:
        n = len(store.qrels(corpus_id))
        assert at.radio(key=keys.BENCH_SOURCE).options[1] == f"Labelled queries ({n})"
        assert n == len(sample.qrels)
        assert store.undo(corpus_id, judge=IMPORT_JUDGE) is not None  # taken back: never imported again
        store.add_query(corpus_id, sample.queries["q01"], query_id="mine-1")
        store.import_qrels(corpus_id, {"mine-1": qrels}, judge="me")
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    assert not at.exception
    source = at.radio(key=keys.BENCH_SOURCE)
    assert source.options[1] == "Labelled queries (1)"
    source.set_value("Labelled queries (1)")
    at.multiselect(key=keys.BENCH_METHODS).set_value([]).run()
    at.button(key=keys.BENCH_RUN).click().run()
    assert not at.exception
    table = _table(at)
    direct = run_evaluation(sample, "bm25", 50, ["bm25"], settings=load_settings())
    # the labelled copy of q01 scores exactly what q01 scores with the dataset's own qrels
    assert table.loc["bm25", KEY_MEASURE] == pytest.approx(
        direct.methods["bm25"].per_query[KEY_MEASURE]["q01"]
    )
    assert any("1 queries (Labelled queries (1)" in c.value.replace("\\", "") for c in at.caption)


@pytest.mark.slow
def test_the_page_runs_dense_with_the_packaged_minilm(sample, minilm_path):
    at = _run_page(["dense"], {}, 20, "10, 20", timeout=300)
    direct = run_evaluation(
        sample, "bm25", 20, ["bm25", "dense"], max_queries=N_QUERIES, settings=load_settings()
    )
    table = _table(at)
    assert list(table.index) == ["bm25", "dense"]
    for measure in MEASURES:
        assert table.loc["dense", measure] == pytest.approx(
            direct.methods["dense"].metrics[measure], abs=1e-9
        )
    assert any("No pointwise reranker ran" in c.value for c in at.caption)


def test_the_page_marks_fallbacks_prices_methods_and_a_budget_stops_the_run(monkeypatch, tmp_path):
    """Cohere against a loopback server that fails on some queries: its row is marked † with the count,
    its cost per 1,000 queries comes from the billed search units and a second plot panel shows it; a
    dollar budget smaller than the run stops it with the budget's message and keeps nothing."""
    from loopback_servers import RERANK_PATH, LoopbackServer, Recorded, Reply, cohere_rerank_body, error_body

    def cohere_like(rec: Recorded) -> Reply:
        query, docs = rec.body["query"], rec.body["documents"]
        if len(query) % 4 == 0:
            return Reply(status=500, body=error_body("loopback says no"))
        words = set(query.lower().split())
        scores = [len(words & set(d.lower().split())) / (1 + len(words)) for d in docs]
        return Reply(body=cohere_rerank_body(sorted(enumerate(scores), key=lambda t: -t[1])))

    config = tmp_path / "rerank.toml"
    config.write_text("[prices.cohere]\nper_search_unit = 0.002\n", encoding="utf-8")
    monkeypatch.setenv("RERANK_CONFIG", str(config))
    monkeypatch.setenv("RERANK_MAX_RETRIES", "0")
    with LoopbackServer() as server:
        server.responders[RERANK_PATH] = cohere_like
        monkeypatch.setenv("RERANK_COHERE_BASE_URL", server.url)
        at = _run_page(["cohere"], {}, 15, "5, 15", timeout=120)
        direct = run_evaluation(
            sample_dataset(), "bm25", 15, ["bm25", "cohere"], max_queries=N_QUERIES, settings=load_settings()
        )
        failed = len(direct.methods["cohere"].fallback_queries)
        assert 0 < failed < N_QUERIES
        table = _table(at)
        row = next(name for name in table.index if name.startswith("cohere"))  # the page names its model
        assert row.endswith(" †") and table.loc[row, "fell back"] == failed
        assert table.loc[row, "$ / 1,000 queries"] == pytest.approx(2.0)  # one search unit per query
        notes = [c.value.replace("\\", "") for c in at.caption]
        assert any(f"† {row[:-2]}: {failed} of {N_QUERIES} queries fell back" in n for n in notes), notes
        charts = {c.proto.id.rsplit("-", 1)[-1]: json.loads(c.proto.spec) for c in at.get("plotly_chart")}
        scatter = charts[keys.BENCH_SCATTER]
        assert any(t.get("xaxis") == "x2" and t["x"] == [pytest.approx(2.0)] for t in scatter["data"])
        assert any(
            "(with fallbacks)" in str(t.get("text")) or "†" in str(t.get("text")) for t in scatter["data"]
        )

        # a budget of one cent: the run stops before it spends more, and says so
        at.number_input(key=keys.BENCH_BUDGET_DOLLARS).set_value(0.005)
        at.button(key=keys.BENCH_RUN).click().run()
        assert not at.exception
        stopped = [e.value for e in at.error if "stopped" in e.value]
        assert stopped and "$0.005 budget" in stopped[0].replace("\\", "")
