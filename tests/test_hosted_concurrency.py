"""Concurrency for hosted methods (``evaluate --concurrency N``) and per-endpoint rate limits.

A loopback TEI server that takes a fixed time per call stands in for a hosted reranker. Checked: the
same queries give the same metrics and runs at any concurrency; up to N calls are in flight at once and
never more; each query's latency is its own call's (never below the server's time, waits for a rate
limit's turn excluded); usage the server reports is kept per query; a rate limit spaces every call to
an endpoint, whichever thread makes it. Wall-time ratios are measured by
``scripts/concurrency_benchmark.py``, not asserted here.
"""

from __future__ import annotations

import threading
import time

import pytest
from loopback_servers import LoopbackServer, Recorded, Reply, tei_rerank_body

from rerank_core.config import Settings
from rerank_core.errors import ConfigError, InvalidMethod
from rerank_core.evaluation import run_evaluation
from rerank_core.http import RateLimiter, rate_limiter, rate_wait_meter
from rerank_core.registry import create_reranker
from rerank_core.types import Candidate, Corpus, Dataset, Document

DELAY_S = 0.2


def _dataset() -> Dataset:
    words = "wing lift drag flow shock heat boundary layer mach plate cone pressure".split()
    docs = [
        Document(
            f"d{i:02d}", " ".join(words[(i * 7 + j * 3) % 12] for j in range(2 + i % 5)) + " x" * (i % 4)
        )
        for i in range(40)
    ]
    queries = {f"q{j}": f"{words[j % 12]} {words[(j * 5 + 1) % 12]}" for j in range(8)}
    qrels = {f"q{j}": {f"d{(j * 3 + t) % 40:02d}": t % 4 for t in range(8)} for j in range(8)}
    return Dataset(name="toy", corpus=Corpus(docs, name="toy"), queries=queries, qrels=qrels)


class TimedTEI:
    """A TEI ``/rerank`` responder: word-overlap scores after ``delay_s``; records arrival times."""

    def __init__(self, delay_s: float) -> None:
        self.delay_s = delay_s
        self.arrivals: list[float] = []
        self.lock = threading.Lock()

    def __call__(self, rec: Recorded) -> Reply:
        with self.lock:
            self.arrivals.append(time.monotonic())
        query = set(rec.body["query"].split())
        scores = [(i, float(len(query & set(t.split())))) for i, t in enumerate(rec.body["texts"])]
        return Reply(body=tei_rerank_body(scores), headers={"x-compute-tokens": "42"}, delay_s=self.delay_s)

    def max_in_flight(self) -> int:
        """The most calls that arrived within one call's time of each other (all of them in flight)."""
        times = sorted(self.arrivals)
        return max((sum(1 for t in times if s <= t < s + self.delay_s * 0.9) for s in times), default=0)


@pytest.fixture
def tei():
    responder = TimedTEI(DELAY_S)
    with LoopbackServer() as server:
        server.responders["/rerank"] = responder
        yield server, responder


def test_concurrent_queries_give_the_same_figures_with_each_query_timed_on_its_own(tei, tmp_path):
    server, responder = tei
    dataset = _dataset()
    settings = Settings(data_dir=tmp_path, methods={"tei": {"base_url": server.url, "batch_size": 0}})
    one = run_evaluation(dataset, "bm25", 10, ["bm25", "tei"], settings=settings, concurrency=1)
    serial_in_flight = responder.max_in_flight()
    responder.arrivals.clear()
    four = run_evaluation(dataset, "bm25", 10, ["bm25", "tei"], settings=settings, concurrency=4)
    a, b = one.methods["tei"], four.methods["tei"]
    assert a.available and b.available and not b.failed_queries and not b.fallback_queries
    assert b.metrics == a.metrics and b.run == a.run
    assert serial_in_flight == 1 and 2 <= responder.max_in_flight() <= 4
    assert len(responder.arrivals) == len(dataset.queries) + 1  # the warm-up runs alone, first
    # each query's latency is its own call's: never less than the server's time for it
    assert all(ms >= DELAY_S * 1e3 for ms in b.latencies_ms.values())
    assert b.usage == {q: {"tokens": 42.0} for q in four.query_ids}
    data = four.to_json()["methods"]
    assert data["tei"]["concurrency"] == 4 and "concurrency" not in data["bm25"]
    assert "concurrency" not in one.to_json()["methods"]["tei"]
    with pytest.raises(InvalidMethod, match="concurrency"):
        run_evaluation(dataset, "bm25", 10, ["tei"], settings=settings, concurrency=0)


def test_local_methods_keep_running_one_query_at_a_time(tmp_path):
    dataset = _dataset()
    report = run_evaluation(
        dataset, "bm25", 10, ["bm25"], concurrency=8, settings=Settings(data_dir=tmp_path)
    )
    assert report.methods["bm25"].concurrency == 1


def test_a_rate_limit_spaces_every_call_to_the_endpoint(tei, tmp_path):
    server, responder = tei
    responder.delay_s = 0.0
    dataset = _dataset()
    rps = 8.0
    settings = Settings(
        data_dir=tmp_path,
        methods={"tei": {"base_url": server.url, "batch_size": 0, "requests_per_second": rps}},
    )
    report = run_evaluation(dataset, "bm25", 10, ["tei"], settings=settings, concurrency=4)
    gaps = [b - a for a, b in zip(sorted(responder.arrivals), sorted(responder.arrivals)[1:], strict=False)]
    assert len(gaps) == len(dataset.queries) and min(gaps) >= 1 / rps * 0.8
    tei_eval = report.methods["tei"]
    waited = [q for q, r in tei_eval.results.items() if any("for the rate limit" in n for n in r.notes)]
    assert waited  # with 4 at once, some queries waited for their turn, and their notes say so
    with pytest.raises(ConfigError, match=r"\[methods.tei\] requests_per_second = 0"):
        create_reranker("tei", Settings(methods={"tei": {"base_url": server.url, "requests_per_second": 0}}))
    shared = Settings(requests_per_second=3.0, methods={"tei": {"base_url": server.url}})
    assert create_reranker("tei", shared).requests_per_second == 3.0


def test_the_wait_for_a_turn_is_not_the_query_latency(tei):
    server, responder = tei
    responder.delay_s = 0.0
    settings = Settings(methods={"tei": {"base_url": server.url, "requests_per_second": 4.0}})
    reranker = create_reranker("tei", settings)
    cands = [Candidate(f"d{i}", f"text {i}", i + 1, 0.0) for i in range(3)]
    reranker.rerank("text", cands)
    t0 = time.perf_counter()
    second = reranker.rerank("text", cands)  # must wait about 0.25 s for its turn
    wall_ms = (time.perf_counter() - t0) * 1e3
    assert second.ok and wall_ms >= 200
    assert second.latency_ms < wall_ms - 150
    assert any("for the rate limit (not counted in its latency)" in n for n in second.notes)


def test_rate_limiter_spacing_and_sharing():
    now = [0.0]
    slept: list[float] = []

    def sleep(s: float) -> None:
        slept.append(s)

    limiter = RateLimiter(2.0, clock=lambda: now[0], sleep=sleep)
    assert [limiter.acquire() for _ in range(3)] == [0.0, 0.5, 1.0] and slept == [0.5, 1.0]
    now[0] = 10.0
    assert limiter.acquire() == 0.0  # idle long enough: no wait, no burst saved up
    with rate_wait_meter() as meter:
        limiter.acquire()
    assert meter.waited_s == pytest.approx(0.5)
    assert rate_limiter("http://a.example:1/x", None) is None
    first = rate_limiter("http://a.example:1/x", 5)
    assert rate_limiter("http://user:pw@a.example:1/x/", 5) is first  # one endpoint, however written
    assert rate_limiter("http://a.example:1/x", 9) is first and first.per_second == 9
    with pytest.raises(ConfigError, match="above 0"):
        RateLimiter(0)
