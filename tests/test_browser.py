"""The real app in a real browser: ``streamlit run app.py`` driven by Debian's chromium via Playwright.

Opens the app on the sample corpus, types a query and presses Enter, waits for the columns and the
latency chart, uploads a small corpus on the Corpus page and queries it, checks that a ``<script>``
passage shows as text and runs nothing, and saves screenshots to ``test-artifacts/``. It prints the
time from Enter to every offline method rendered (warm models, 50 candidates).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# every offline-capable method except the LLM; the ones without local weights fail fast and say why
OFFLINE_METHODS = ["late-interaction", "cross-encoder", "flashrank", "colbert"]

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_healthy(url: str, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url + "/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise TimeoutError("streamlit did not become healthy")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    if not CHROMIUM.exists():
        pytest.skip(
            "Debian chromium is not installed at /usr/bin/chromium (CI installs it: apt-get install chromium)"
        )
    pytest.importorskip(
        "playwright.sync_api", reason="playwright is not installed (pip install -r requirements.txt)"
    )
    port = _free_port()
    data_dir = tmp_path_factory.mktemp("rerank-data")
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "RERANK_DATA_DIR": str(data_dir),
    }
    log = (tmp_path_factory.mktemp("logs") / "streamlit.log").open("w")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            str(ROOT / "app.py"),
            "--server.port",
            str(port),
            "--server.address",
            "127.0.0.1",
            "--server.headless",
            "true",
            "--browser.gatherUsageStats",
            "false",
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, proc)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.fixture(scope="module")
def browser_page(server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1600, "height": 2400})
        page.set_default_timeout(180_000)
        yield page
        browser.close()


def _wait_for_results(page, query: str, timeout_ms: int = 180_000) -> None:
    """Every method has rendered for ``query``: the closing summary names the query."""
    page.get_by_test_id("stCaptionContainer").filter(has_text=f"Results for “{query}”").first.wait_for(
        timeout=timeout_ms
    )
    page.locator(".js-plotly-plot").first.wait_for(timeout=timeout_ms)


def _wait_idle(page, timeout_ms: int = 180_000) -> None:
    """The script run has finished and no element is left over from the previous run."""
    page.wait_for_function(
        """() => document.querySelectorAll('[data-stale="true"]').length === 0
             && !document.querySelector('[data-testid^="stStatusWidgetRunning"]')""",
        timeout=timeout_ms,
    )


def _submit_query(page, query: str) -> float:
    box = page.get_by_label("Query")
    box.fill(query)
    t0 = time.perf_counter()
    box.press("Enter")
    _wait_for_results(page, query)
    return time.perf_counter() - t0


def test_app_in_a_real_browser(server, browser_page):
    page = browser_page
    ARTIFACTS.mkdir(exist_ok=True)
    from rerank_core.sample import example_queries

    queries = list(example_queries())
    methods = "&".join(f"methods={m}" for m in OFFLINE_METHODS)
    page.goto(f"{server}/?{methods}")
    # the app opens on the sample corpus and runs the first example query (cold: models load here)
    _wait_for_results(page, queries[0], timeout_ms=300_000)
    _wait_idle(page)
    page.screenshot(path=str(ARTIFACTS / "01-compare-sample-first-query.png"))

    # warm models: Enter -> every offline method rendered, 50 candidates
    timings = []
    for q in queries[1:4]:
        timings.append(_submit_query(page, q))
    print(
        f"\nEnter -> all offline methods rendered ({', '.join(OFFLINE_METHODS)}; warm, 50 candidates): "
        + ", ".join(f"{t:.2f} s" for t in timings)
    )
    assert "q=" in page.url  # the query lives in the URL
    columns = page.locator(".rp-colhead")
    assert columns.count() == 1 + len(OFFLINE_METHODS)
    assert page.locator(".rp-row").count() >= 10
    assert page.get_by_test_id("stAlertContentError").count() == 3  # the methods without local weights
    _wait_idle(page)
    page.screenshot(path=str(ARTIFACTS / "02-compare-warm-query.png"))

    # a link reproduces the view
    link = page.url
    page.goto(link)
    _wait_for_results(page, queries[3])

    # upload a small corpus, including a passage that tries to run a script
    docs = [
        {"_id": "wing-1", "title": "Swept wings", "text": "Swept wings delay the drag rise near Mach one."},
        {"_id": "wing-2", "title": "Flaps", "text": "Flaps raise the lift coefficient at low speed."},
        {
            "_id": "evil",
            "title": "<script>window.__pwned = 1</script>Evil",
            "text": 'Lift and drag notes <script>window.__pwned = 2</script><img src=x onerror="window.__pwned=3">',
        },
    ]
    upload = ARTIFACTS / "upload-corpus.jsonl"
    upload.write_text("\n".join(json.dumps(d) for d in docs), encoding="utf-8")
    page.get_by_role("link", name="Corpus").first.click()
    page.locator("input[type=file]").set_input_files(str(upload))
    page.get_by_role("button", name="Load files").click()
    page.get_by_text("Loaded 3 documents from 1 file").wait_for()
    page.wait_for_timeout(500)
    _wait_idle(page)
    assert page.get_by_text("upload-corpus.jsonl").count() >= 1
    page.screenshot(path=str(ARTIFACTS / "03-corpus-uploaded.png"))

    # a file that cannot be read: the page says which and why, and the corpus in use stays
    bad = ARTIFACTS / "prices-cp1252.csv"
    bad.write_bytes("id,text\n1,Caf\u00e9 cr\u00e8me\n".encode("cp1252"))
    page.locator("input[type=file]").set_input_files(str(bad))
    page.get_by_role("button", name="Load files").click()
    page.get_by_text("Nothing was loaded").wait_for()
    _wait_idle(page)
    assert page.get_by_text("is not valid UTF-8", exact=False).count() >= 1
    assert page.get_by_text("upload-corpus.jsonl").count() >= 1
    page.screenshot(path=str(ARTIFACTS / "04-corpus-bad-upload.png"))

    page.get_by_role("link", name="Compare").first.click()
    took = _submit_query(page, "lift and drag")
    print(f"Enter -> rendered on the uploaded corpus (first query builds its index): {took:.2f} s")
    assert page.locator('.rp-row[data-doc="evil"]').count() >= 1
    assert page.get_by_text("<script>window.__pwned = 2</script>", exact=False).count() >= 1 or (
        "window.__pwned = 2" in page.locator('.rp-row[data-doc="evil"]').first.inner_text()
    )
    assert page.evaluate("typeof window.__pwned") == "undefined"
    _wait_idle(page)
    page.screenshot(path=str(ARTIFACTS / "05-compare-uploaded-corpus.png"))
