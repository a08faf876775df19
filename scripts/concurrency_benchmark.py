"""Concurrency for hosted methods: ``--concurrency 8`` against 1 on the same queries.

Starts a loopback server on 127.0.0.1 that speaks Text Embeddings Inference's ``POST /rerank`` and
takes a fixed time per call (100 ms by default; scores are word overlaps, so the answers are
deterministic), points the ``tei`` reranker at it, and runs the same evaluation (BM25 first stage, the
same judged queries) at each concurrency through :func:`rerank_core.evaluation.run_evaluation`, the
code behind ``evaluate --concurrency N``. It prints, per concurrency, the wall time of the reranking
(the first stage is built and warmed before the clock starts), the most calls the server saw in flight,
and the per-query latency p50 (each query's own call); then the wall-time ratio and whether the
metrics and runs are equal.

    python scripts/concurrency_benchmark.py                      # Cranfield if present, else the sample
    python scripts/concurrency_benchmark.py --queries 80 --delay-ms 100 --json out.json

Expect a ratio near the concurrency (at least 5x for 8 against 1 with 100 ms calls) and equal metrics.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


class SlowTEI:
    """A TEI-format rerank server taking ``delay_s`` per call; counts calls in flight."""

    def __init__(self, delay_s: float) -> None:
        self.delay_s = delay_s
        self.lock = threading.Lock()
        self.in_flight = 0
        self.max_in_flight = 0
        self.calls = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
                return

            def do_POST(self) -> None:  # noqa: N802 - stdlib name
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
                with server.lock:
                    server.calls += 1
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                try:
                    time.sleep(server.delay_s)
                    query = set(str(body.get("query", "")).lower().split())
                    texts = body.get("texts", [])
                    answer = [
                        {"index": i, "score": float(len(query & set(t.lower().split())))}
                        for i, t in enumerate(texts)
                    ]
                    payload = json.dumps(answer).encode()
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.send_header("x-compute-tokens", str(sum(len(t.split()) for t in texts)))
                    self.end_headers()
                    self.wfile.write(payload)
                finally:
                    with server.lock:
                        server.in_flight -= 1

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> SlowTEI:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _dataset(path: str | None, queries: int):
    from rerank_core.readers import read_beir
    from rerank_core.sample import sample_dataset

    folder = Path(path) if path else ROOT.parent / "shared" / "data" / "cranfield"
    if folder.exists():
        dataset = read_beir(folder).dataset
    else:
        dataset = sample_dataset()
    dataset.qrels = {q: dataset.qrels[q] for q in dataset.judged_query_ids[:queries]}
    return dataset


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--dataset", help="a BEIR folder (default: Cranfield next to the repository, else the sample)"
    )
    parser.add_argument("--queries", type=int, default=40, help="judged queries to run (default 40)")
    parser.add_argument("--depth", type=int, default=20, help="candidates per query (default 20)")
    parser.add_argument(
        "--delay-ms", type=float, default=100.0, help="the server's time per call (default 100)"
    )
    parser.add_argument(
        "--concurrency", type=int, default=8, help="the concurrency compared with 1 (default 8)"
    )
    parser.add_argument("--json", help="also write the figures as JSON here")
    args = parser.parse_args(argv)

    from rerank_core.config import Settings
    from rerank_core.evaluation import run_evaluation
    from rerank_core.pipeline import Runtime

    dataset = _dataset(args.dataset, args.queries)
    figures: dict[str, Any] = {
        "dataset": dataset.name,
        "queries": len(dataset.judged_query_ids),
        "depth": args.depth,
        "server_delay_ms": args.delay_ms,
        "runs": {},
    }
    with tempfile.TemporaryDirectory() as data_dir, SlowTEI(args.delay_ms / 1e3) as server:
        settings = Settings(
            data_dir=Path(data_dir), methods={"tei": {"base_url": server.url, "batch_size": 0}}
        )
        runtime = Runtime()
        runtime.first_stage("bm25", dataset.corpus, settings)  # built before any clock starts
        reports = {}
        for n in (1, args.concurrency):
            with server.lock:
                server.max_in_flight = 0
            t0 = time.perf_counter()
            report = run_evaluation(
                dataset, "bm25", args.depth, ["tei"], settings=settings, runtime=runtime, concurrency=n
            )
            wall = time.perf_counter() - t0
            tei = report.methods["tei"]
            if not tei.available:
                print(f"tei did not run: {tei.error}", file=sys.stderr)
                return 1
            reports[n] = report
            latency = tei.latency or {}
            figures["runs"][str(n)] = {
                "wall_s": round(wall, 3),
                "max_in_flight": server.max_in_flight,
                "latency_p50_ms": round(latency.get("p50", 0.0), 1),
                "latency_p95_ms": round(latency.get("p95", 0.0), 1),
                "nDCG@10": tei.metrics["nDCG@10"] if tei.metrics else None,
                "failed_or_fell_back": len(tei.failed_queries) + len(tei.fallback_queries),
            }
    serial, parallel = reports[1].methods["tei"], reports[args.concurrency].methods["tei"]
    one, many = figures["runs"]["1"], figures["runs"][str(args.concurrency)]
    figures["wall_time_ratio"] = round(one["wall_s"] / many["wall_s"], 2)
    figures["metrics_equal"] = serial.metrics == parallel.metrics
    figures["runs_equal"] = serial.run == parallel.run
    print(
        f"{figures['dataset']}: {figures['queries']} judged queries, BM25 top {args.depth}, tei on a loopback "
        f"server taking {args.delay_ms:g} ms per call"
    )
    for n, row in figures["runs"].items():
        print(
            f"  --concurrency {n}: wall {row['wall_s']:.2f} s, up to {row['max_in_flight']} calls in flight, "
            f"per-query latency p50 {row['latency_p50_ms']:.0f} ms / p95 {row['latency_p95_ms']:.0f} ms, "
            f"nDCG@10 {row['nDCG@10']:.4f}"
        )
    print(
        f"wall-time ratio (1 / {args.concurrency}): {figures['wall_time_ratio']:.2f}x; metrics equal: "
        f"{figures['metrics_equal']}; runs equal: {figures['runs_equal']}"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    return 0 if figures["metrics_equal"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
