"""Load test: N concurrent real browser sessions against one ``streamlit run app.py`` server.

    python scripts/load_test.py                   # 8 sessions, 3 queries each, after a single-session run
    python scripts/load_test.py --sessions 4 --queries 2 --json load.json

What it does:

1. Stores two corpora in a fresh data directory: the built-in sample, and Cranfield (``--second``, a BEIR
   folder; by default ``../shared/data/cranfield`` when it is there, else the sample cut into
   sentence-packed chunks, a corpus of its own with other document ids).
2. Starts ``streamlit run app.py`` on a free port (or uses ``--url``) configured as a hosted demo of the
   two corpora (``[demo]``, anonymous visitors may grade; with it torch uses one thread per call, see
   ``[limits] torch_threads``), or as a laptop runs it with ``--laptop``. It warms up: one session per
   corpus runs one query, so model loads and index builds are done before anything is timed (their time
   is printed apart).
3. Runs the same flow alone (one session) and then with ``--sessions`` sessions at once, each in its own
   browser context (its own Streamlit session): half on each corpus, each with its own judge name and
   its own queries (none shared between sessions or phases, so nothing comes from the result memo).
   Per query a session types the query, presses Enter and waits until every column has rendered; every
   ``--grade-every``-th query it grades the top document and waits for the badge.
4. Prints p50/p95 of the time to results per query, in the browser (Enter to the last column drawn) and
   on the server (the page's own "served in" figure: the script run's start to the last column), for
   the single session and the concurrent ones, each method's own query time (its column's chip), and the
   machine's load average before and after.
5. Checks, after every query, that the session sees only its own corpus (URL, corpus caption, every
   shown document id is one of its corpus's), its own query (query box, results caption) and its own
   judgements (grade badges and the labels caption); at the end, that the judgement store holds exactly
   the grades each session gave, under its judge, corpus and query. Exit status 1 on any leak.

Eight chromium pages on a 2-core machine measure chromium as much as the app: the server-side figure
is the one that says what the app does under load. Run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote_plus

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

sys.path.insert(0, str(ROOT / "tests"))  # the test suite's streamlit server and chromium settings
from test_browser import CHROMIUM, CHROMIUM_ARGS, Server  # noqa: E402

DEFAULT_METHODS = ("bi-encoder", "late-interaction")
DEFAULT_SECOND = ROOT.parent / "shared" / "data" / "cranfield"
SERVED = re.compile(r"served in ([0-9.]+) s")
CHIP_MS = re.compile(r"query ([0-9,.]+) ms")
IMPORT = "import"  # the judge of a dataset's own judgements, which every session of that corpus sees


# -- data ---------------------------------------------------------------------------------------------


@dataclass
class CorpusPlan:
    corpus_id: str
    name: str
    doc_ids: frozenset[str]
    queries: list[str]  # texts no session shares


def prepare_data(data_dir: Path, second: Path | None) -> list[CorpusPlan]:
    """Store the two corpora in ``data_dir`` (as the app would) and list the queries sessions may use."""
    from rerank_core.readers import read_beir
    from rerank_core.workspace import Chunking, Workspace

    ws = Workspace(data_dir)
    sample = ws.sample()
    from rerank_core.sample import example_queries

    examples = set(example_queries())  # shown as pills on the page: left out, so a text seen is a leak
    plans = [
        CorpusPlan(
            sample.id,
            sample.name,
            frozenset(d.id for d in sample.corpus),
            [t for t in sample.queries.values() if t not in examples],
        )
    ]
    if second is not None and (second / "corpus.jsonl").exists():
        other = ws.add_dataset(read_beir(second).dataset)
        shown = set(list(other.queries.values())[:6])
        queries = [t for t in other.queries.values() if t not in shown]
    else:
        other = ws.rechunk(sample.id, Chunking(mode="sentences", size=40, overlap=0))
        queries = list(reversed(plans[0].queries))
    plans.append(CorpusPlan(other.id, other.name, frozenset(d.id for d in other.corpus), queries))
    return plans


# -- the server -----------------------------------------------------------------------------------------


# -- one session ----------------------------------------------------------------------------------------


@dataclass
class Sample:
    session: int
    corpus: str
    query: str
    browser_s: float
    server_s: float
    method_ms: dict[str, float]


@dataclass
class SessionLog:
    index: int
    judge: str
    plan: CorpusPlan
    queries: list[str]
    samples: list[Sample] = field(default_factory=list)
    graded: dict[str, set[str]] = field(default_factory=dict)  # query text -> doc ids graded
    shared: dict[str, set[str]] = field(default_factory=dict)  # query text -> the dataset's judged docs
    grade_s: list[float] = field(default_factory=list)
    leaks: list[str] = field(default_factory=list)


IDLE = """() => document.querySelectorAll('[data-stale="true"]').length === 0
             && !document.querySelector('[data-testid^="stStatusWidgetRunning"]')"""


async def _wait_results(page, query: str, timeout_ms: float) -> None:
    await (
        page.get_by_test_id("stCaptionContainer")
        .filter(has_text=f"Results for “{query}”")
        .first.wait_for(timeout=timeout_ms)
    )
    await page.wait_for_function(IDLE, timeout=timeout_ms)


async def _check(page, log: SessionLog, query: str, methods: int) -> tuple[float, dict[str, float]]:
    """The server's figure and method chips for this query, after checking nothing of another session shows."""
    plan = log.plan
    where = f"session {log.index} ({log.judge}), query {query!r}"
    if f"corpus={plan.corpus_id}" not in page.url:
        log.leaks.append(f"{where}: the URL names another corpus: {page.url}")
    caption = await page.get_by_test_id("stCaptionContainer").filter(has_text="Corpus ").first.inner_text()
    if plan.corpus_id not in caption:
        log.leaks.append(f"{where}: the corpus caption is {caption!r}")
    if (value := await page.get_by_label("Query").input_value()) != query:
        log.leaks.append(f"{where}: the query box holds {value!r}")
    results = await page.get_by_test_id("stCaptionContainer").filter(has_text="Results for").all_inner_texts()
    if len(results) != 1 or f"“{query}”" not in results[0]:
        log.leaks.append(f"{where}: results captions {results!r}")
    shown = [await r.get_attribute("data-doc") for r in await page.locator(".rp-row").all()]
    foreign = sorted({d for d in shown if d not in plan.doc_ids})
    if foreign:
        log.leaks.append(f"{where}: documents of another corpus shown: {foreign[:5]}")
    heads = await page.locator(".rp-colhead").all()
    if len(heads) != 1 + methods:
        log.leaks.append(f"{where}: {len(heads)} columns, expected {1 + methods}")
    badges = set()
    for row in await page.locator(".rp-row").all():
        if await row.locator(".rp-grade").count():
            badges.add(await row.get_attribute("data-doc"))
    mine = log.graded.get(query, set())
    dataset = log.shared.get(query, set())  # the dataset's own judgements (judge "import") are everyone's
    if not mine <= badges or badges - mine - dataset:
        log.leaks.append(
            f"{where}: grade badges on {sorted(badges)}; this session graded {sorted(mine)}, the dataset "
            f"judges {sorted(dataset)}"
        )
    labels = " ".join(
        await page.get_by_test_id("stCaptionContainer")
        .filter(has_text="judgement(s) of this query")
        .all_inner_texts()
    )
    judges = re.search(r"by (.*?)\. Unjudged", labels)
    # "by load-3, import · people only (7 judgements)": the judges are named before the " · "
    said = judges.group(1) if judges else "nobody yet"
    named = said.split(" · ")[0]
    if named != "nobody yet" and set(named.split(", ")) - {log.judge, IMPORT}:
        log.leaks.append(f"{where}: the live metrics rest on judgements by {said!r}")
    judge_caption = " ".join(
        await page.get_by_test_id("stCaptionContainer").filter(has_text="query id").all_inner_texts()
    )
    if f"Judge {log.judge} " not in judge_caption:
        log.leaks.append(f"{where}: the labels caption says {judge_caption!r}")
    served = SERVED.search(results[0]) if results else None
    chips: dict[str, float] = {}
    for head in heads:
        name = await head.locator(".rp-name").inner_text()
        found = CHIP_MS.search(await head.inner_text())
        if found:
            chips[name] = float(found.group(1).replace(",", ""))
    return (float(served.group(1)) if served else float("nan")), chips


async def run_session(
    browser, url: str, log: SessionLog, methods: list[str], grade_every: int, timeout_ms: float
):
    context = await browser.new_context(viewport={"width": 1500, "height": 2200})
    page = await context.new_page()
    page.set_default_timeout(timeout_ms)
    try:
        view = "&".join(f"methods={quote_plus(m)}" for m in methods)
        first = log.queries[0]
        # open on this session's corpus with a query no one else runs, then set the judge name
        await page.goto(f"{url}/?corpus={log.plan.corpus_id}&{view}&k=10&q={quote_plus(first)}")
        await _wait_results(page, first, timeout_ms)
        await page.get_by_test_id("stExpandSidebarButton").click()
        judge_box = page.get_by_label("Judge", exact=True)
        await judge_box.fill(log.judge)
        await judge_box.press("Enter")
        await (
            page.get_by_test_id("stCaptionContainer").filter(has_text=f"Judge {log.judge} ").first.wait_for()
        )
        await page.wait_for_function(IDLE, timeout=timeout_ms)
        for n, query in enumerate(log.queries[1:], start=1):
            box = page.get_by_label("Query")
            await box.fill(query)
            t0 = time.perf_counter()
            await box.press("Enter")
            await _wait_results(page, query, timeout_ms)
            took = time.perf_counter() - t0
            served, chips = await _check(page, log, query, len(methods))
            log.samples.append(Sample(log.index, log.plan.name, query, took, served, chips))
            if grade_every and n % grade_every == 0:
                card = page.locator(".st-key-rpcard-c0-1")
                doc = await card.locator(".rp-row").get_attribute("data-doc")
                t1 = time.perf_counter()
                await card.get_by_role("radio", name="2", exact=True).click()
                await card.locator(".rp-grade").wait_for()
                await page.wait_for_function(IDLE, timeout=timeout_ms)
                log.grade_s.append(time.perf_counter() - t1)
                log.graded.setdefault(query, set()).add(doc)
                await _check(page, log, query, len(methods))
    finally:
        await context.close()


# -- phases ---------------------------------------------------------------------------------------------


def pct(values: list[float], q: float) -> float:
    """The q-th percentile (nearest rank on the sorted values, linear between ranks)."""
    if not values:
        return float("nan")
    xs = sorted(values)
    pos = (len(xs) - 1) * q
    lo, hi = int(pos), min(int(pos) + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


async def run_phase(
    url: str, logs: list[SessionLog], methods: list[str], grade_every: int, timeout_ms: float
):
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            t0 = time.perf_counter()
            await asyncio.gather(
                *(run_session(browser, url, log, methods, grade_every, timeout_ms) for log in logs)
            )
            return time.perf_counter() - t0
        finally:
            await browser.close()


def summarise(logs: list[SessionLog]) -> dict:
    samples = [s for log in logs for s in log.samples]
    rows = [
        {
            "session": s.session,
            "corpus": s.corpus,
            "browser_s": s.browser_s,
            "server_s": s.server_s,
            **s.method_ms,
        }
        for s in samples
    ]
    browser = [s.browser_s for s in samples]
    server = [s.server_s for s in samples]
    per_method: dict[str, list[float]] = {}
    for s in samples:
        for name, ms in s.method_ms.items():
            per_method.setdefault(name, []).append(ms)
    return {
        "sessions": len(logs),
        "queries": len(samples),
        "browser_p50_s": pct(browser, 0.5),
        "browser_p95_s": pct(browser, 0.95),
        "server_p50_s": pct(server, 0.5),
        "server_p95_s": pct(server, 0.95),
        "grade_p50_s": pct([g for log in logs for g in log.grade_s], 0.5),
        "method_ms_p50": {k: pct(v, 0.5) for k, v in per_method.items()},
        "method_ms_p95": {k: pct(v, 0.95) for k, v in per_method.items()},
        "leaks": [leak for log in logs for leak in log.leaks],
        "samples": rows,
    }


def _store(data_dir: Path):
    from rerank_core.config import load_settings
    from rerank_core.judgements import JudgementStore

    return JudgementStore(load_settings(env={**os.environ, "RERANK_DATA_DIR": str(data_dir)}).resolved_db_url)


def dataset_judgements(data_dir: Path, plans: list[CorpusPlan]) -> dict[str, dict[str, set[str]]]:
    """Per corpus and query text, the documents the dataset's imported judgements grade (seen by all)."""
    out: dict[str, dict[str, set[str]]] = {}
    with _store(data_dir) as store:
        for plan in plans:
            texts = store.queries(plan.corpus_id)
            per: dict[str, set[str]] = {}
            for j in store.judgements(plan.corpus_id, judge=IMPORT):
                per.setdefault(texts.get(j.query_id, ""), set()).add(j.doc_id)
            out[plan.corpus_id] = per
    return out


def check_store(data_dir: Path, logs: list[SessionLog]) -> list[str]:
    """Every stored judgement is one a session gave, under its judge, corpus and query, and none is missing."""
    expected = set()
    with _store(data_dir) as store:
        for log in logs:
            queries = store.queries(log.plan.corpus_id)
            ids = {text: qid for qid, text in queries.items()}
            for query, docs in log.graded.items():
                for doc in docs:
                    expected.add((log.plan.corpus_id, ids.get(query, "?"), doc, log.judge))
        stored = set()
        for plan in {log.plan.corpus_id for log in logs}:
            for j in store.judgements(plan):
                if j.judge != IMPORT:
                    stored.add((plan, j.query_id, j.doc_id, j.judge))
    problems = [f"stored but given by no session: {row}" for row in sorted(stored - expected)]
    problems += [f"given but not stored as given: {row}" for row in sorted(expected - stored)]
    return problems


def load_average() -> str:
    try:
        one, five, fifteen = os.getloadavg()
    except OSError:
        return "n/a"
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sessions", type=int, default=8, help="concurrent browser sessions (default 8)")
    ap.add_argument("--queries", type=int, default=3, help="timed queries per session (default 3)")
    ap.add_argument("--methods", default=",".join(DEFAULT_METHODS), help="rerankers, comma-separated")
    ap.add_argument(
        "--grade-every", type=int, default=2, help="grade the top document every n-th query (0: never)"
    )
    ap.add_argument("--second", type=Path, default=DEFAULT_SECOND, help="a BEIR folder for the second corpus")
    ap.add_argument(
        "--data-dir",
        type=Path,
        help="a data directory to fill or reuse: its indexes and encodings make the warm-up short; a label store "
        "left in it is moved aside first (default: a new temporary directory)",
    )
    ap.add_argument(
        "--url", help="test a running server instead (it must use --data-dir as its data directory)"
    )
    ap.add_argument(
        "--laptop",
        action="store_true",
        help="run the server as a laptop user does (no demo mode: torch takes every core per call)",
    )
    ap.add_argument(
        "--torch-threads", type=int, default=0, help="[limits] torch_threads of the server (0: automatic)"
    )
    ap.add_argument("--timeout", type=float, default=600, help="seconds to wait for one query's results")
    ap.add_argument("--json", type=Path, help="also write the figures as JSON here")
    args = ap.parse_args(argv)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    timeout_ms = args.timeout * 1000

    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="rerank-load-"))
    old_store = data_dir / "judgements.sqlite"
    if old_store.exists():  # the checks need a store with this run's judgements only
        old_store.rename(data_dir / f"judgements.sqlite.{int(time.time())}.bak")
    plans = prepare_data(data_dir, args.second)
    per_corpus = (args.sessions + 1) // 2
    needed = 2 + (args.queries + 1) * (per_corpus + 1)  # warm-up, the single session, the concurrent ones
    for plan in plans:
        if len(plan.queries) < needed:
            raise SystemExit(f"{plan.name} has too few queries for {args.sessions} sessions; lower --queries")
    pools = {p.corpus_id: list(p.queries) for p in plans}

    def take(plan: CorpusPlan, n: int) -> list[str]:
        out, pools[plan.corpus_id] = pools[plan.corpus_id][:n], pools[plan.corpus_id][n:]
        return out

    from rerank_core.serving import torch_threads_for

    server = None
    mode = "laptop" if args.laptop else "hosted demo"
    threads = torch_threads_for(args.torch_threads, not args.laptop)
    if args.url:
        url = args.url.rstrip("/")
        mode = "a running server"
    else:
        config = data_dir / "load-test.toml"
        corpora = ", ".join(f'"{p.corpus_id}"' for p in plans)
        demo = f'[demo]\nenabled = true\ncorpora = [{corpora}]\nanonymous_role = "labeller"\n'
        config.write_text(
            ("" if args.laptop else demo) + f"[limits]\ntorch_threads = {args.torch_threads}\n",
            encoding="utf-8",
        )
        server = Server(data_dir, data_dir, env={"RERANK_CONFIG": str(config)})  # log: streamlit-1.log
        server.start()
        url = server.url
    report: dict = {
        "machine": {"cpus": os.cpu_count(), "load_before": load_average()},
        "methods": methods,
        "mode": mode,
        "torch_threads": threads,
    }
    try:
        print(
            f"server {url} ({mode}, torch threads {threads}) · data {data_dir} · methods {', '.join(methods)} · "
            f"load {load_average()}"
        )
        # warm-up: one session per corpus (model loads, index builds, document encodings)
        warm = [SessionLog(i, f"warm-{i}", plan, take(plan, 2)) for i, plan in enumerate(plans)]
        took = asyncio.run(run_phase(url, warm, methods, 0, timeout_ms))
        report["warm_up_s"] = took
        print(f"warm-up (model loads, indexes, document encodings; not counted): {took:.1f} s")

        shared = dataset_judgements(data_dir, plans)
        single = [SessionLog(0, "load-single", plans[0], take(plans[0], args.queries + 1))]
        single.append(SessionLog(1, "load-single-2", plans[1], take(plans[1], args.queries + 1)))
        # the single-session figure: one session at a time, on each corpus
        for log in single:
            log.shared = shared[log.plan.corpus_id]
            asyncio.run(run_phase(url, [log], methods, args.grade_every, timeout_ms))
        report["single"] = summarise(single)

        many = [
            SessionLog(i, f"load-{i}", plans[i % 2], take(plans[i % 2], args.queries + 1))
            for i in range(args.sessions)
        ]
        for log in single + many:
            log.shared = shared[log.plan.corpus_id]
        took = asyncio.run(run_phase(url, many, methods, args.grade_every, timeout_ms))
        report["concurrent"] = summarise(many)
        report["concurrent"]["wall_s"] = took
        store_problems = check_store(data_dir, single + many)
    finally:
        if server is not None:
            server.stop()
    report["machine"]["load_after"] = load_average()
    report["store_problems"] = store_problems
    leaks = report["single"]["leaks"] + report["concurrent"]["leaks"] + store_problems

    one, many_ = report["single"], report["concurrent"]
    print()
    print(f"time to results per query (s)      {'1 session':>12} {f'{args.sessions} sessions':>12}")
    for label, key in (
        ("browser p50 (Enter to drawn)", "browser_p50_s"),
        ("browser p95", "browser_p95_s"),
        ("server p50 (run start to drawn)", "server_p50_s"),
        ("server p95", "server_p95_s"),
        ("grade click to badge p50", "grade_p50_s"),
    ):
        print(f"{label:<34} {one[key]:>12.2f} {many_[key]:>12.2f}")
    for name in many_["method_ms_p50"]:
        a = one["method_ms_p50"].get(name, float("nan"))
        print(f"{name + ' query ms p50':<34} {a:>12.0f} {many_['method_ms_p50'][name]:>12.0f}")
        a = one["method_ms_p95"].get(name, float("nan"))
        print(f"{name + ' query ms p95':<34} {a:>12.0f} {many_['method_ms_p95'][name]:>12.0f}")
    print(
        f"queries timed: {one['queries']} alone, {many_['queries']} concurrent ({many_['wall_s']:.1f} s wall)"
    )
    print(
        f"machine: {os.cpu_count()} CPUs, load average {report['machine']['load_before']} before, "
        f"{report['machine']['load_after']} after"
    )
    print(f"cross-session leaks: {len(leaks)}")
    for leak in leaks:
        print("  LEAK", leak)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, default=str), encoding="utf-8")
    return 1 if leaks else 0


if __name__ == "__main__":
    sys.exit(main())
