"""The README's screenshots of the app in dark mode and on a 390 px phone screen, taken in a real browser.

    python scripts/screenshots.py            # writes docs/dark-mode.png and docs/mobile-390.png

Starts ``streamlit run app.py`` on a fresh data directory, runs one of the sample's queries with the two
rerankers that run offline (the packaged all-MiniLM-L6-v2 as a bi-encoder and as late interaction),
grades three documents so the grade badges show, and photographs the Compare page with chromium asking
for a dark colour scheme (1400 px wide) and at 390 px wide (one order at a time, the picker above it).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from urllib.parse import quote_plus

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT))

from load_test import CHROMIUM, CHROMIUM_ARGS, IDLE, AppServer  # noqa: E402

QUERY = "What causes the seasons?"
VIEW = "methods=bi-encoder&methods=late-interaction&k=6"
HEIGHT = """() => Math.max(...[...document.querySelectorAll('[data-testid="stMain"], section, main, body')]
    .map(e => e.scrollHeight))"""


def _ready(page, timeout_ms: float = 300_000) -> None:
    page.get_by_test_id("stCaptionContainer").filter(has_text=f"Results for “{QUERY}”").first.wait_for(
        timeout=timeout_ms
    )
    page.wait_for_function(IDLE, timeout=timeout_ms)
    page.get_by_label("Query").wait_for()
    page.wait_for_timeout(1500)  # widgets and charts finish drawing


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=ROOT / "docs", help="folder for the PNG files")
    args = ap.parse_args(argv)
    from playwright.sync_api import sync_playwright

    data = Path(tempfile.mkdtemp(prefix="rerank-shots-"))
    server = AppServer(data, data / "streamlit.log", env={"COHERE_API_KEY": "", "OPENAI_API_KEY": ""})
    server.start()
    url = f"{server.url}/?{VIEW}&q={quote_plus(QUERY)}"
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
            dark = browser.new_context(viewport={"width": 1400, "height": 2300}, color_scheme="dark")
            page = dark.new_page()
            page.set_default_timeout(300_000)
            page.goto(url)
            _ready(page)
            for rank, grade in ((1, "3"), (2, "1"), (3, "0")):  # grade badges in every column
                card = page.locator(f".st-key-rpcard-c1-{rank}")
                card.get_by_role("radio", name=grade, exact=True).click()
                card.locator(".rp-grade").wait_for()
                page.wait_for_function(IDLE)
            page.wait_for_timeout(1500)
            page.screenshot(path=str(args.out / "dark-mode.png"))
            dark.close()

            phone = browser.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=1)
            page = phone.new_page()
            page.set_default_timeout(300_000)
            page.goto(url)
            _ready(page)
            page.set_viewport_size({"width": 390, "height": page.evaluate(HEIGHT)})
            page.wait_for_timeout(1500)
            page.screenshot(path=str(args.out / "mobile-390.png"))
            phone.close()
            browser.close()
    finally:
        server.stop()
    print(f"wrote {args.out / 'dark-mode.png'} and {args.out / 'mobile-390.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
