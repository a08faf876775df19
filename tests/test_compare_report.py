"""The Compare page's report: one comparison as JSON, self-contained HTML (drawn offline in a real
browser) and Markdown. Orders are built by hand (plumbing only); the figures are checked by formula."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest

from rerank_core import cli
from rerank_core.compare import Comparison
from rerank_core.compare_report import comparison_report, render_comparison_html, render_comparison_markdown
from rerank_core.report import load_report, render
from rerank_core.types import Candidate, MethodError, RankedItem, RerankResult, ScoreScale

CHROMIUM = Path("/usr/bin/chromium")
EVIL = '<script>alert("x")</script>Evil'


def _items(ids, scores, fs_rank, flagged=False):
    return tuple(
        RankedItem(doc_id=d, rank=i, score=s, first_stage_rank=fs_rank[d], flagged=flagged)
        for i, (d, s) in enumerate(zip(ids, scores, strict=True), start=1)
    )


@pytest.fixture
def comparison() -> Comparison:
    ids = ["a", "b", "c", "d", "e"]
    fs_rank = {d: i for i, d in enumerate(ids, start=1)}
    cands = tuple(
        Candidate(d, f"text of {d}", fs_rank[d], 10.0 - fs_rank[d], title=EVIL if d == "c" else f"T{d}")
        for d in ids
    )
    first = RerankResult("bm25", ScoreScale.BM25, _items(ids, [9, 8, 7, 6, 5], fs_rank), latency_ms=1.5)
    ce_order = ["c", "a", "e", "b", "d"]
    ce = RerankResult(
        "cross-encoder", ScoreScale.LOGIT, _items(ce_order, [3.0, 2.0, 1.0, 0.5, -1.0], fs_rank), latency_ms=40.0,
        model_load_s=2.0,
    )  # fmt: skip
    cohere = RerankResult(
        "cohere:rerank-v3.5", ScoreScale.BM25, _items(ids, [9, 8, 7, 6, 5], fs_rank, flagged=True),
        error=MethodError("hosted-call-failed", "could not connect to 127.0.0.1:9"), fallback=True,
    )  # fmt: skip
    return Comparison("lift <b>drag</b>", 5, cands, first, (ce, cohere), corpus_fingerprint="abc")


def test_the_comparison_as_json_by_formula(comparison):
    grades = {"a": 3, "c": 1, "e": None}  # e skipped
    data = comparison_report(
        comparison,
        k=3,
        titles={
            "bm25": "BM25 · first stage",
            "cross-encoder": "Cross-encoder",
            "cohere:rerank-v3.5": "Cohere",
        },
        grades=grades,
        llm={"b": ("llm:judge", 2, "mentions drag")},
        judgements="people only (2 judgements)",
        corpus="tiny",
        first_stage="bm25",
        query_id="q1",
    )
    json.dumps(data, allow_nan=False)  # JSON-ready
    fs, ce, cohere = data["columns"]
    assert [c["title"] for c in data["columns"]] == ["BM25 · first stage", "Cross-encoder", "Cohere"]
    idcg = 3 / math.log2(2) + 1 / math.log2(3)
    assert fs["metrics"]["nDCG@3"] == pytest.approx((3 / math.log2(2) + 1 / math.log2(4)) / idcg)
    assert ce["metrics"]["nDCG@3"] == pytest.approx((1 / math.log2(2) + 3 / math.log2(3)) / idcg)
    assert fs["metrics"]["Coverage@3"] == pytest.approx(2 / 3) and ce["metrics"][
        "Coverage@3"
    ] == pytest.approx(2 / 3)
    assert [r["doc_id"] for r in ce["rows"]] == ["c", "a", "e"]
    assert [r["movement"] for r in ce["rows"]] == [2, -1, 2] and ce["rows"][2]["new"]
    assert ce["rows"][2]["skipped"] and ce["rows"][0]["grade"] == 1
    assert fs["rows"][1]["llm_grade"] == 2 and fs["rows"][1]["grade"] is None
    assert ce["latency_ms"] == 40.0 and ce["model_load_s"] == 2.0
    # the fallback: marked, no latency of its own, the first stage's scale, left out of the agreement
    assert cohere["fallback"] and cohere["latency_ms"] is None and cohere["scale"] == "BM25 score"
    assert data["agreement_left_out"] == ["Cohere"]
    assert [(a["a"], a["b"]) for a in data["agreement"]] == [("BM25 · first stage", "Cross-encoder")]
    assert data["coverage_warning"] is None
    low = comparison_report(comparison, k=3, grades={"a": 3})
    assert "Low judged coverage" in low["coverage_warning"]


def test_html_is_self_contained_escaped_and_renders_through_the_report_command(comparison, tmp_path, capsys):
    data = comparison_report(comparison, k=3, grades={"a": 3}, llm={"c": ("llm:judge", 1, "<i>why</i>")})
    html = render_comparison_html(data)
    assert html.startswith("<!doctype html>") and html.count("window.PlotlyConfig") == 1
    assert not re.search(r"<script[^>]+src=|<link\b|@import|url\(\s*['\"]?https?:|<img\b", html)
    assert EVIL not in html and "&lt;script&gt;alert" in html
    assert "lift &lt;b&gt;drag&lt;/b&gt;" in html and "<i>why</i>" not in html
    assert "Fell back to the first-stage order" in html and "Left out: cohere:rerank-v3.5" in html
    assert "Low judged coverage" in html and "LLM grades and their reasons" in html
    md = render_comparison_markdown(data)
    assert md.startswith("# Rerank Playground comparison") and "<script" not in md and "| Coverage@3 |" in md
    # a saved comparison renders with the report command like an evaluation report
    src = tmp_path / "comparison.json"
    src.write_text(json.dumps(data), encoding="utf-8")
    assert load_report(src)["kind"] == "comparison"
    assert render(data, "md") == md
    assert cli.main(["report", "--input", str(src), "--output", str(tmp_path / "c.html")]) == 0
    assert "Rerank Playground comparison" in (tmp_path / "c.html").read_text(encoding="utf-8")


@pytest.mark.browser
def test_the_comparison_report_draws_with_the_network_blocked(comparison, tmp_path):
    if not CHROMIUM.exists():
        pytest.skip("Debian chromium is not installed at /usr/bin/chromium (apt-get install chromium)")
    pytest.importorskip("playwright.sync_api")
    from playwright.sync_api import sync_playwright

    from tests.test_browser import CHROMIUM_ARGS
    from tests.test_report import _check_offline

    path = tmp_path / "comparison.html"
    path.write_text(
        render_comparison_html(comparison_report(comparison, k=5, grades={"a": 2})), encoding="utf-8"
    )
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            _check_offline(browser, path, min_figures=1)
        finally:
            browser.close()
