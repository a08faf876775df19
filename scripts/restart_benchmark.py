"""How long the first Compare query takes after a server restart, with the corpus's work done before.

    python scripts/restart_benchmark.py [--dataset ../shared/data/cranfield] [--json FILE] [--cold]

1. Stores the dataset in a fresh workspace (as an upload does) and builds what the Corpus page's
   *Build* builds by default: the bm25 index, the dense index, the bi-encoder's embeddings (shared with
   dense) and the late-interaction token store. The build is timed.
2. Starts ``streamlit run app.py`` on that data directory (a new process: nothing in memory), opens a
   link to the first query in Debian's chromium (Playwright) and times from navigation to every column
   rendered, for two views: BM25 first stage with the bi-encoder and late interaction, then (after
   another restart) the hybrid first stage (BM25 + dense) with the same two rerankers.
3. With ``--cold``, also times the same first query on a data directory where nothing was built (what
   a restart cost before the workspace kept indexes and encodings).

Prints a table and, with ``--json``, writes the figures. Needs /usr/bin/chromium and playwright.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # the test suite's streamlit server helper
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

METHODS = ["bi-encoder", "late-interaction"]
BUILD = ["bm25", "dense", "bi-encoder", "late-interaction"]


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def prepare(dataset_dir: Path, data_dir: Path, build: bool) -> tuple[str, str, float | None]:
    """Store the dataset; build its indexes and encodings when asked. Returns (corpus id, query 1, build s)."""
    from rerank_core.config import Settings
    from rerank_core.pipeline import Runtime
    from rerank_core.readers import read_beir
    from rerank_core.workspace import Workspace

    read = read_beir(dataset_dir)
    stored = Workspace(data_dir).add_dataset(
        read.dataset, origin="upload", split=read.split, splits=read.splits
    )
    query = read.dataset.queries[read.dataset.judged_query_ids[0]]
    took = None
    if build:
        settings = Settings(data_dir=data_dir)
        t0 = time.perf_counter()
        outcome = Runtime().build(BUILD, stored.corpus, settings)
        took = time.perf_counter() - t0
        failed = {k: v for k, v in outcome.items() if isinstance(v, BaseException)}
        if failed:
            raise SystemExit(f"build failed: {failed}")
        log(f"built {', '.join(BUILD)} for {len(stored.corpus):,} documents in {took:.1f} s")
    return stored.id, query, took


def first_query(server_url: str, corpus_id: str, query: str, first_stage: str, browser) -> float:
    """Seconds from opening the link to every column rendered."""
    params = [("corpus", corpus_id), ("q", query), ("first_stage", first_stage), ("depth", "50")]
    params += [("methods", m) for m in METHODS]
    page = browser.new_page(viewport={"width": 1600, "height": 2400})
    page.set_default_timeout(1_800_000)
    t0 = time.perf_counter()
    page.goto(f"{server_url}/?{urlencode(params)}")
    page.get_by_test_id("stCaptionContainer").filter(has_text=f"Results for “{query}”").first.wait_for()
    page.locator(".js-plotly-plot").first.wait_for()
    took = time.perf_counter() - t0
    heads = page.locator(".rp-colhead").count()
    errors = page.get_by_test_id("stAlertContentError").count()
    page.close()
    if heads != 1 + len(METHODS) or errors:
        raise SystemExit(f"the page did not render every column ({heads} columns, {errors} errors)")
    return took


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", type=Path, default=ROOT.parent / "shared" / "data" / "cranfield")
    parser.add_argument("--json", type=Path, help="write the figures here")
    parser.add_argument("--cold", action="store_true", help="also time a first query with nothing built")
    args = parser.parse_args()

    from playwright.sync_api import sync_playwright
    from test_browser import CHROMIUM, CHROMIUM_ARGS, Server

    if not CHROMIUM.exists():
        raise SystemExit(f"{CHROMIUM} is missing: apt-get install chromium")
    out: dict = {"dataset": str(args.dataset), "methods": METHODS, "load_average_start": os.getloadavg()}
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        data_dir = Path(tmp) / "data"
        corpus_id, query, build_s = prepare(args.dataset, data_dir, build=True)
        out.update(corpus_id=corpus_id, query=query, build_s=build_s)
        server = Server(data_dir, Path(tmp))
        try:
            for first_stage in ("bm25", "hybrid"):
                server.restart()
                took = first_query(server.url, corpus_id, query, first_stage, browser)
                out[f"after_restart_{first_stage}_s"] = took
                log(f"after a restart, {first_stage} + {' + '.join(METHODS)}: {took:.1f} s")
        finally:
            server.stop()
        if args.cold:
            cold_dir = Path(tmp) / "cold"
            cold_id, _, _ = prepare(args.dataset, cold_dir, build=False)
            cold = Server(cold_dir, Path(tmp))
            try:
                cold.start()
                took = first_query(cold.url, cold_id, query, "bm25", browser)
                out["nothing_built_bm25_s"] = took
                log(f"with nothing built, bm25 + {' + '.join(METHODS)}: {took:.1f} s")
            finally:
                cold.stop()
        browser.close()
    out["load_average_end"] = os.getloadavg()
    print(f"{'first Compare query on ' + args.dataset.name:50} seconds")
    print(f"{'build (bm25, dense, bi-encoder, late-interaction)':50} {out['build_s']:.1f}")
    for key, label in (
        ("after_restart_bm25_s", "after a restart: bm25 + bi-encoder + late-interaction"),
        ("after_restart_hybrid_s", "after a restart: hybrid + bi-encoder + late-interaction"),
        ("nothing_built_bm25_s", "nothing built: bm25 + bi-encoder + late-interaction"),
    ):
        if key in out:
            print(f"{label:50} {out[key]:.1f}")
    print(
        f"load average at start / end: {out['load_average_start'][0]:.1f} / {out['load_average_end'][0]:.1f}"
    )
    if args.json:
        args.json.write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
