"""What the evaluate report answers (fallbacks marked, coverage, cost, per-query analysis, score
distributions) and the report to share: HTML and Markdown, the ``report`` command, and the HTML in
a real browser with every network request blocked.

The rerankers here are a tiny random-weight BERT cross-encoder loaded by the real loader and the
real Cohere backend against a loopback Cohere v2 server that fails on some queries (so those fall
back to the first-stage order): the plumbing is real, the numbers mean nothing.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
from loopback_servers import RERANK_PATH, LoopbackServer, Recorded, Reply, cohere_rerank_body, error_body

from rerank_core import cli
from rerank_core.benchmark import run_benchmark, summarise
from rerank_core.config import Settings
from rerank_core.coverage import coverage_at_k
from rerank_core.errors import CorpusFormatError
from rerank_core.evaluation import run_evaluation
from rerank_core.metrics import rank_documents
from rerank_core.report import load_report, render_html, render_markdown
from rerank_core.sample import sample_dataset

pytest_plugins = ["tiny_models"]

N_QUERIES = 12
DEPTH = 15
PRICES = {
    "bm25": {"per_cpu_hour": 0.05},
    "cross-encoder": {"per_gpu_hour": 1.2},
    "cohere": {"per_search_unit": 0.002},
}
TAGS = {
    "q01": ["science"],
    "q02": ["science", "short"],
    "q05": ["science"],
    "q09": ["money"],
    "q11": ["money"],
}
CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"


def _fails(query: str) -> bool:
    return len(query) % 4 == 0  # three of the first twelve sample queries


def _cohere_like(rec: Recorded) -> Reply:
    """Overlap scores, or a 500 for some queries (the backend then keeps the first-stage order)."""
    query, docs = rec.body["query"], rec.body["documents"]
    if _fails(query):
        return Reply(status=500, body=error_body("loopback says no"))
    words = set(query.lower().split())
    scores = [len(words & set(d.lower().split())) / (1 + len(words)) for d in docs]
    order = sorted(range(len(docs)), key=lambda i: -scores[i])
    return Reply(body=cohere_rerank_body([(i, scores[i]) for i in order]))


@pytest.fixture(scope="module")
def evaluated(tiny_cross_encoder_dir, tmp_path_factory):
    sample = sample_dataset()
    ce = f"cross-encoder:{tiny_cross_encoder_dir}"
    with LoopbackServer() as server:
        server.responders[RERANK_PATH] = _cohere_like
        settings = Settings(
            data_dir=tmp_path_factory.mktemp("data"),
            cohere_base_url=server.url,
            secrets={"COHERE_API_KEY": "co-test-0123456789abcdef"},
            max_retries=0,
            request_timeout_s=5.0,
            prices=PRICES,
        )
        rep = run_evaluation(
            sample, "bm25", DEPTH, ["bm25", ce, "cohere"], max_queries=N_QUERIES, settings=settings, tags=TAGS
        )
        bench = run_benchmark(
            sample, "bm25", DEPTH, [ce], max_queries=N_QUERIES, sweep_depths=(5, 10, 15), settings=settings
        )
    return sample, ce, rep, bench


# -- the report JSON -------------------------------------------------------------------------------


def test_a_method_with_fallbacks_is_marked_everywhere(evaluated):
    sample, _, rep, _ = evaluated
    data = json.loads(rep.dumps())
    failed = sorted(q for q in rep.query_ids if _fails(sample.queries[q]))
    assert 0 < len(failed) < N_QUERIES
    cohere = data["methods"]["cohere"]
    assert cohere["available"] is True and cohere["fallback_queries"] == len(failed)
    assert cohere["fallback_query_ids"] == failed
    assert cohere["metrics_note"].startswith(f"{len(failed)} of {N_QUERIES} queries fell back")
    assert cohere["scale"] == "API relevance (0-1)"
    # the score distribution holds only the service's own 0-1 scores, never BM25 scores
    dist = cohere["score_distribution"]
    assert dist["excluded_fallback_queries"] == len(failed) and dist["queries"] == N_QUERIES - len(failed)
    # (tied scores are nudged apart at float32 precision in the run: 0 becomes -3e-45)
    assert -1e-6 <= dist["edges"][0] and dist["edges"][-1] <= 1.0 + 1e-6
    assert data["verdict_detail"]["methods"]["cohere"]["fallback_queries"] == len(failed)
    # a fallback query is the first stage's order: a tie on the per-query list
    rows = {r["query"]: r for r in data["per_query_analysis"]["methods"]["cohere"]["rows"]}
    assert all(rows[q]["outcome"] == "tie" for q in failed)
    # the Benchmark page's summaries carry the same mark
    summary = summarise(rep)["cohere"]
    assert summary.marked and summary.fallback_queries == len(failed)
    assert summary.to_json()["metrics_note"] == cohere["metrics_note"]
    assert not summarise(rep)["bm25"].marked


def test_coverage_cost_and_per_query_analysis_by_formula(evaluated):
    _, ce, rep, _ = evaluated
    data = json.loads(rep.dumps())
    bm25 = rep.methods["bm25"]
    for name in ("bm25", ce, "cohere"):
        assert set(data["methods"][name]["coverage"]) == {"@5", "@10", "@50"}
        assert data["methods"][name]["per_query"]["nDCG@10"] == rep.methods[name].per_query["nDCG@10"]
    per_query = [coverage_at_k(rank_documents(bm25.run[q]), rep.qrels[q], 10) for q in rep.query_ids]
    assert data["methods"]["bm25"]["coverage"]["@10"] == pytest.approx(sum(per_query) / len(per_query))

    cost = data["methods"]["bm25"]["cost"]
    mean_s = sum(bm25.latencies_ms.values()) / len(bm25.latencies_ms) / 1000
    assert cost["per_1000_queries"] == pytest.approx(1000 * mean_s / 3600 * 0.05)
    assert (
        data["methods"][ce]["cost"]["per_1000_queries"] > 0
        and "GPU-hour" in data["methods"][ce]["cost"]["basis"]
    )
    # Cohere reports one billed search unit per call: $0.002 a query, over the queries it ran (not the
    # fallbacks, which billed nothing)
    cohere_cost = data["methods"]["cohere"]["cost"]
    assert cohere_cost["per_1000_queries"] == pytest.approx(1000 * 0.002)
    assert cohere_cost["queries"] == len(rep.methods["cohere"].latencies_ms) < N_QUERIES

    analysis = data["per_query_analysis"]
    assert set(analysis["methods"]) == {ce, "cohere"}  # rerankers against the first stage
    for result in analysis["methods"].values():
        assert result["wins"] + result["losses"] + result["ties"] == result["queries"] == N_QUERIES
        diffs = [r["diff"] for r in result["rows"]]
        assert diffs == sorted(diffs, reverse=True)
        for r in result["rows"]:
            judged = rep.qrels[r["query"]]
            assert (
                r["found"] + r["retrieval"] + r["reranker"]
                == r["relevant"]
                == sum(g > 0 for g in judged.values())
            )
        assert result["attribution"]["found"] == sum(r["found"] for r in result["rows"])
    assert set(analysis["by_tag"]) == {"money", "science", "short"}
    assert analysis["by_tag"]["science"]["cohere"]["queries"] == 3
    assert data["query_tags"] == {q: t for q, t in TAGS.items()}
    assert data["settings"]["prices"] == PRICES and "COHERE_API_KEY" not in json.dumps(data)
    assert data["versions"]["python"] and data["versions"]["torch"]


def test_without_a_first_stage_there_is_no_verdict_and_the_report_says_why(tmp_path):
    from rerank_core.errors import BackendUnavailable
    from rerank_core.registry import RETRIEVERS
    from rerank_core.retrieval.bm25 import BM25Retriever

    class BrokenIndex(BM25Retriever):
        """An index that cannot be built (plumbing only)."""

        def _build(self, corpus, progress):
            raise BackendUnavailable("the index cannot be built", hint="do something else")

    RETRIEVERS["broken-index"] = BrokenIndex
    try:
        rep = run_evaluation(sample_dataset(), "broken-index", 5, ["broken-index"], max_queries=2)
    finally:
        RETRIEVERS.pop("broken-index")
    data = json.loads(rep.dumps())
    assert data["verdict"] is None and "did not run" in data["verdict_detail"]["note"]
    html = render_html(data)
    assert "did not run" in html
    assert "did not run" in render_markdown(data)


# -- rendering -------------------------------------------------------------------------------------


def test_html_is_self_contained_and_escapes_what_it_shows(evaluated, tmp_path):
    _, ce, rep, _ = evaluated
    data = json.loads(rep.dumps())
    data["query_texts"]["q01"] = 'wing <script>alert("x")</script> lift'
    html = render_html(data)
    assert html.count("<script") >= 2  # plotly's library inline once, then one script per figure
    assert not re.search(r"<script[^>]+src=|<link\b|@import|url\(\s*['\"]?https?:|<img\b", html)
    assert '<script>alert("x")</script>' not in html and "&lt;script&gt;alert" in html
    assert html.count("window.PlotlyConfig") == 1  # the library is embedded once
    v = data["verdict"]
    assert v["call"] in html.replace("&quot;", '"') or "Inconclusive" in html or "pays" in html
    assert "cohere †" in html and "fell back to the first-stage order" in html
    assert "Score distributions" in html and "API relevance (0-1)" in html
    assert "By query tag" in html and "money" in html
    assert "Versions" in html and "sentence-transformers" in html


def test_markdown_for_a_pull_request(evaluated):
    _, ce, rep, bench = evaluated
    md = render_markdown(json.loads(rep.dumps()))
    assert md.startswith("# Rerank Playground report: sample")
    assert "## Verdict" in md and "| 95% interval |" in md and "queries needed" in md
    assert "| cohere † |" in md and "## Per-query wins and losses" in md and "Largest" in md
    assert "## Score distributions" in md and "<script" not in md
    bench_md = render_markdown(json.loads(bench.dumps()))
    assert "## Depth sweep" in bench_md and "| @5 | @10 | @15 | knee |" in bench_md


def test_the_report_command(evaluated, tmp_path, capsys):
    _, _, rep, _ = evaluated
    src = tmp_path / "report.json"
    src.write_text(rep.dumps(), encoding="utf-8")
    assert cli.main(["report", "--input", str(src), "--output", str(tmp_path / "out" / "report.html")]) == 0
    assert (tmp_path / "out" / "report.html").read_text(encoding="utf-8").startswith("<!doctype html>")
    assert cli.main(["report", "--input", str(src), "--output", str(tmp_path / "report.md")]) == 0
    assert (tmp_path / "report.md").read_text(encoding="utf-8").startswith("# ")
    assert (
        cli.main(["report", "--input", str(src), "--output", str(tmp_path / "x.txt"), "--format", "md"]) == 0
    )
    assert (tmp_path / "x.txt").read_text(encoding="utf-8").startswith("# ")
    capsys.readouterr()
    bad = tmp_path / "bad.json"
    bad.write_text('{"not": "a report"}', encoding="utf-8")
    assert cli.main(["report", "--input", str(bad), "--output", str(tmp_path / "r.html")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "methods" in err and len(err.strip().splitlines()) == 1
    assert (
        cli.main(["report", "--input", str(tmp_path / "missing.json"), "--output", str(tmp_path / "r.html")])
        == 2
    )
    with pytest.raises(CorpusFormatError, match="not JSON"):
        (tmp_path / "broken.json").write_text("{", encoding="utf-8")
        load_report(tmp_path / "broken.json")


# -- in a real browser, offline -----------------------------------------------------------------


@pytest.mark.browser
def test_the_html_report_draws_every_plot_with_the_network_blocked(evaluated, tmp_path):
    if not CHROMIUM.exists():
        pytest.skip("Debian chromium is not installed at /usr/bin/chromium (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    from tests.test_browser import CHROMIUM_ARGS

    _, _, rep, bench = evaluated
    files = []
    for name, data in (("evaluate", json.loads(rep.dumps())), ("benchmark", json.loads(bench.dumps()))):
        path = tmp_path / f"{name}.html"
        path.write_text(render_html(data), encoding="utf-8")
        files.append(path)

    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            for path in files:
                _check_offline(browser, path, min_figures=7 if path.stem == "evaluate" else 5)
        finally:
            browser.close()


def _check_offline(browser, path: Path, min_figures: int) -> None:
    """Open ``path`` with every request but the file itself aborted; every figure must draw."""
    url = path.as_uri()
    attempted: list[str] = []
    errors: list[str] = []

    def block(route):
        attempted.append(route.request.url)
        if route.request.url == url:
            route.continue_()
        else:
            route.abort()

    page = browser.new_page(viewport={"width": 1300, "height": 1000})
    page.route("**/*", block)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(url)
    figures = page.locator("figure.plot")
    n = figures.count()
    page.wait_for_function(
        "n => Array.from(document.querySelectorAll('figure.plot'))"
        ".filter(f => f.querySelector('.js-plotly-plot .main-svg')).length === n",
        arg=n,
        timeout=30_000,
    )
    drawn = [figures.nth(i).locator(".js-plotly-plot .main-svg").count() for i in range(n)]
    # evaluate: quality, attribution, 2 per-query bars, 3 histograms; benchmark: the sweep too
    assert n >= min_figures and all(c >= 1 for c in drawn), drawn
    assert page.locator("figure.plot .js-plotly-plot .bars path").count() > 0  # data drawn, not only axes
    assert attempted == [url], attempted  # nothing but the file itself was requested
    assert errors == []
    if path.stem == "benchmark":
        assert page.get_by_text("Depth sweep").count() >= 1
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"report-{path.stem}-offline.png"), full_page=True)
    page.close()


def test_intervals_in_the_report_match_the_benchmark(evaluated):
    """The benchmark JSON's own intervals are used; an evaluate JSON gets the same bootstrap."""
    _, ce, _, bench = evaluated
    data = json.loads(bench.dumps())
    md = render_markdown(data)
    iv = data["analysis"]["methods"][ce]["intervals_95"]["nDCG@10"]
    assert f"[{iv['low']:.3f}, {iv['high']:.3f}]" in md
    assert not math.isnan(iv["low"])


def test_the_pages_get_the_same_figures_as_objects(evaluated):
    from rerank_core.answers import (
        coverages,
        method_costs,
        per_query_results,
        report_verdict,
        score_histograms,
    )

    _, ce, rep, bench = evaluated
    data = json.loads(rep.dumps())
    assert coverages(rep) == {n: data["methods"][n]["coverage"]["@10"] for n in ("bm25", ce, "cohere")}
    assert {n: c.per_1000_queries for n, c in method_costs(rep).items()} == {
        n: data["methods"][n]["cost"]["per_1000_queries"] for n in ("bm25", ce, "cohere")
    }
    hists = score_histograms(rep)
    assert hists["cohere"].to_json() == data["methods"]["cohere"]["score_distribution"]
    assert hists["bm25"].scale == "BM25 score"
    assert per_query_results(rep)[ce].to_json() == data["per_query_analysis"]["methods"][ce]
    assert report_verdict(rep).to_json() == data["verdict"]
    # the Benchmark page's verdict is the same rule on the same numbers
    assert bench.verdict is not None and bench.to_json()["verdict"] == bench.verdict.to_json()
    assert bench.to_json()["analysis"]["verdict"]["call"] == bench.verdict.kind
