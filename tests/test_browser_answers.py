"""Fallback honesty in a real browser: ``streamlit run app.py`` with a ``cohere`` method pointed at a port
nothing listens on (``RERANK_COHERE_BASE_URL``, ``RERANK_MAX_RETRIES=0``), driven by Debian's chromium.

The column says in its title that it fell back, shows BM25's scores under BM25's scale, is absent from the
agreement table (which compares BM25 with the bi-encoder only and names what it left out), and the shadow
log stores the run as a fallback (read from the server's judgement store, and shown on the Labels page).
The Compare page's report button gives a self-contained HTML file that says the same.
"""

from __future__ import annotations

import socket
import time

import pytest

from tests.test_browser import (
    ARTIFACTS,
    CHROMIUM,
    CHROMIUM_ARGS,
    Server,
    _new_page,
    _wait_for_results,
    _wait_idle,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _dead_port() -> int:
    with socket.socket() as sock:  # bound and closed again: nothing listens there
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def fallback_server(tmp_path, monkeypatch, shared_cache_dir):
    if not CHROMIUM.exists():
        pytest.skip(
            "Debian chromium is not installed at /usr/bin/chromium (CI installs it: apt-get install chromium)"
        )
    pytest.importorskip("playwright.sync_api")
    for name in ("COHERE_API_KEY", "OPENAI_API_KEY", "OPENAI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("RERANK_COHERE_BASE_URL", f"http://127.0.0.1:{_dead_port()}")
    monkeypatch.setenv("RERANK_MAX_RETRIES", "0")
    (tmp_path / "logs").mkdir()
    srv = Server(tmp_path / "data", tmp_path / "logs", shared_cache_dir)
    try:
        srv.start()  # the environment above is the server's
        yield srv
    finally:
        srv.stop()


def _grid_text(page, header: str) -> str:
    """The text of the data grid that has a column ``header`` (Streamlit draws grids on a canvas and keeps
    an accessible table of the cells in the page)."""
    grid = page.get_by_test_id("stDataFrame").filter(has_text=header).first
    grid.wait_for()
    return grid.locator("table").first.inner_text()


def test_a_cohere_method_at_a_closed_port_is_an_honest_fallback_in_a_real_browser(fallback_server, tmp_path):
    from playwright.sync_api import sync_playwright

    from rerank_core.judgements import JudgementStore
    from rerank_core.sample import example_queries

    ARTIFACTS.mkdir(exist_ok=True)
    query = list(example_queries())[1]
    url = f"{fallback_server.url}/?methods=cohere&methods=bi-encoder&k=5&q={query.replace(' ', '+').replace('?', '%3F')}"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            page = _new_page(browser)
            t0 = time.perf_counter()
            page.goto(url)
            _wait_for_results(page, query, timeout_ms=300_000)
            _wait_idle(page)
            took = time.perf_counter() - t0

            # the column: titled as a fallback, BM25's order, scores and scale
            heads = {h.locator(".rp-name").inner_text(): h for h in page.locator(".rp-colhead").all()}
            title = "Cohere Rerank (fell back to the first stage)"
            assert set(heads) == {"BM25 · first stage", title, "Bi-encoder"}, list(heads)
            chips = heads[title].locator(".rp-chip").all_inner_texts()
            assert "BM25 score" in chips and "first-stage order and scores" in chips, chips
            assert not any("API relevance" in c for c in chips)
            assert page.get_by_text("Fell back to the first-stage order", exact=False).count() >= 1

            def column_rows(name: str) -> list[tuple[str, str]]:
                column = heads[name].locator("xpath=ancestor::*[@data-testid='stColumn'][1]")
                rows = column.locator(".rp-row").all()
                return [(r.get_attribute("data-doc"), r.locator(".rp-score").inner_text()) for r in rows]

            first, cohere = column_rows("BM25 · first stage"), column_rows(title)
            assert len(first) == 5 and cohere == first  # the same documents with the same BM25 scores
            fallback_column = heads[title].locator("xpath=ancestor::*[@data-testid='stColumn'][1]")
            assert fallback_column.get_by_text("kept first-stage place").count() == 5

            # the agreement table: BM25 against the bi-encoder only, and it says what it left out
            agreement = _grid_text(page, "Order A")
            assert "Bi-encoder" in agreement and "BM25" in agreement and "Cohere" not in agreement, agreement
            assert page.get_by_text("Left out: Cohere Rerank", exact=False).count() == 1
            page.screenshot(path=str(ARTIFACTS / "10-compare-cohere-fallback.png"), full_page=True)

            # the report of this comparison says the same, offline
            with page.expect_download() as download:
                page.get_by_role("button", name="Report (HTML)").click()
            saved = tmp_path / "comparison.html"
            download.value.save_as(saved)
            html = saved.read_text(encoding="utf-8")
            assert "Fell back to the first-stage order" in html and "Left out: Cohere Rerank" in html

            # the shadow log stores the run as a fallback, and the Labels page shows it so
            with JudgementStore(f"sqlite:///{fallback_server.data_dir / 'judgements.sqlite'}") as store:
                log = {e["method"]: e for e in store.shadow_log()}
            cohere_entry = next(e for m, e in log.items() if m.startswith("cohere"))
            assert cohere_entry["fallback"] is True and cohere_entry["available"] is False
            assert cohere_entry["extra"]["scale"] == "BM25 score" and "127.0.0.1" in cohere_entry["error"]
            assert next(e for m, e in log.items() if m.startswith("bi-encoder"))["fallback"] is False
            page.goto(f"{fallback_server.url}/labels")
            page.get_by_role("tab", name="Shadow log").click()
            shadow = _grid_text(page, "fell back")
            assert "cohere" in shadow and "true" in shadow.lower(), shadow
            page.screenshot(path=str(ARTIFACTS / "11-labels-shadow-log-fallback.png"), full_page=True)
            print(f"\ncohere at a closed port + bi-encoder, first load (MiniLM load included): {took:.1f} s")
        finally:
            browser.close()
