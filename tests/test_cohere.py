"""The Cohere reranker against a loopback Cohere v2 /rerank server (no network)."""

from __future__ import annotations

import time
from pathlib import Path

from loopback_servers import (
    RERANK_PATH,
    LoopbackServer,
    Recorded,
    Reply,
    cohere_rerank_body,
    loopback,
)

from rerank_core.config import Settings
from rerank_core.registry import create_reranker
from rerank_core.rerankers.cohere import CohereReranker
from rerank_core.types import Candidate, ScoreScale

__all__ = ["loopback"]  # the fixture

KEY = "co-test-DO-NOT-LEAK-9876543210fedcba"


def cands(*texts: str) -> list[Candidate]:
    return [
        Candidate(doc_id=f"d{i}", text=t, first_stage_rank=i + 1, first_stage_score=10.0 - i)
        for i, t in enumerate(texts)
    ]


def make(
    server: LoopbackServer, tmp_path: Path, model: str | None = None, key: str | None = KEY, **kw
) -> CohereReranker:
    settings = Settings(
        cohere_base_url=server.url,
        secrets={"COHERE_API_KEY": key},
        request_timeout_s=kw.pop("timeout", 2.0),
        max_retries=kw.pop("max_retries", 2),
        data_dir=tmp_path,
    )
    kw.setdefault("backoff_base_s", 0.01)
    r = create_reranker(f"cohere:{model}" if model else "cohere", settings, **kw)
    assert isinstance(r, CohereReranker)
    return r


def test_results_are_mapped_back_by_index(loopback, tmp_path):
    # the server answers best first: index 2, then 0, then 3, then 1
    loopback.queue_rerank(
        Reply(body=cohere_rerank_body([(2, 0.91), (0, 0.55), (3, 0.20), (1, 0.01)], search_units=1))
    )
    r = make(loopback, tmp_path, max_tokens_per_doc=256)
    res = r.rerank("wing lift", cands("a", "b", "c", "d"))
    assert res.ok and res.ids == ["d2", "d0", "d3", "d1"]
    assert [it.score for it in res.items] == [0.91, 0.55, 0.20, 0.01]
    assert res.scale is ScoreScale.API_RELEVANCE and res.method == "cohere:rerank-v3.5"
    assert "billed search units: 1" in res.notes and not any(it.flagged for it in res.items)
    (call,) = loopback.calls(RERANK_PATH)
    assert call.body["model"] == "rerank-v3.5" and call.body["query"] == "wing lift"
    assert call.body["documents"] == ["a", "b", "c", "d"] and call.body["top_n"] == 4
    assert call.body["max_tokens_per_doc"] == 256
    assert call.headers["authorization"] == f"Bearer {KEY}"


def shuffled_scorer(rec: Recorded) -> Reply:
    """Scores each document by its length and answers in a scrambled order (not sorted, not by index)."""
    docs = rec.body["documents"]
    scored = [(i, len(d) / 100) for i, d in enumerate(docs)]
    scrambled = scored[1::2] + scored[0::2]
    return Reply(body=cohere_rerank_body(scrambled, search_units=None))


def test_shuffled_results_still_land_on_the_right_documents(loopback, tmp_path):
    loopback.responders[RERANK_PATH] = shuffled_scorer
    texts = ["x" * n for n in (5, 40, 12, 33, 7, 21)]
    res = make(loopback, tmp_path, model="rerank-v4.0").rerank("q", cands(*texts))
    assert res.ids == ["d1", "d3", "d5", "d2", "d4", "d0"]
    assert {it.doc_id: it.score for it in res.items} == {f"d{i}": len(t) / 100 for i, t in enumerate(texts)}
    assert not any("billed" in n for n in res.notes) and res.method == "cohere:rerank-v4.0"


def test_missing_duplicate_and_out_of_range_indexes(loopback, tmp_path):
    body = cohere_rerank_body([(3, 0.9), (3, 0.1), (7, 0.99), (0, 0.4), (-1, 0.8)])
    loopback.queue_rerank(Reply(body=body))
    res = make(loopback, tmp_path).rerank("q", cands("a", "b", "c", "d"))
    assert res.ok and res.ids == ["d3", "d0", "d1", "d2"]
    assert {it.doc_id: it.flagged for it in res.items} == {"d3": False, "d0": False, "d1": True, "d2": True}
    assert res.items[0].score == 0.9  # the first of the duplicates is kept
    assert res.items[2].score < res.items[1].score
    notes = " ".join(res.notes)
    assert "2 of 4 documents had no score in the answer (d1, d2)" in notes
    assert "1 duplicate" in notes and "2 result(s) with an invalid index" in notes


def test_no_usable_result_falls_back(loopback, tmp_path):
    loopback.queue_rerank(Reply(body=cohere_rerank_body([(9, 0.5)])))
    res = make(loopback, tmp_path).rerank("q", cands("a", "b"))
    assert res.fallback and res.error.kind == "failed" and "no usable result" in res.error.message
    assert res.ids == ["d0", "d1"] and all(it.flagged for it in res.items)


def test_429_then_success_is_retried(loopback, tmp_path):
    loopback.queue_rerank(
        Reply(status=429, body={"message": "too many requests"}, headers={"Retry-After": "0.2"}),
        Reply(body=cohere_rerank_body([(1, 0.7), (0, 0.3)])),
    )
    t0 = time.perf_counter()
    res = make(loopback, tmp_path).rerank("q", cands("a", "b"))
    assert res.ok and res.ids == ["d1", "d0"] and time.perf_counter() - t0 >= 0.2
    assert len(loopback.calls()) == 2 and any("1 retry (429)" in n for n in res.notes)


def test_5xx_exhausts_retries_and_falls_back(loopback, tmp_path):
    loopback.queue_rerank(
        Reply(status=503, body={"message": "unavailable"}),
        Reply(status=502, body={"message": "bad gateway"}),
        Reply(status=500, body={"message": f"internal error for {KEY}"}),
    )
    res = make(loopback, tmp_path, max_retries=2).rerank("q", cands("a", "b"))
    assert res.fallback and res.error.kind == "hosted-call-failed"
    assert "HTTP 500 after 3 attempts" in res.error.message and res.error.hint
    assert KEY not in str(res) and len(loopback.calls()) == 3


def test_timeout_falls_back_within_a_bounded_time(loopback, tmp_path):
    loopback.queue_rerank(*[Reply(body=cohere_rerank_body([(0, 1.0)]), delay_s=5) for _ in range(2)])
    t0 = time.perf_counter()
    res = make(loopback, tmp_path, timeout=0.3, max_retries=1).rerank("q", cands("a"))
    assert res.fallback and res.error.kind == "timeout" and "RERANK_REQUEST_TIMEOUT" in res.error.hint
    assert len(loopback.calls()) == 2 and time.perf_counter() - t0 < 2.5


def test_400_is_not_retried(loopback, tmp_path):
    loopback.queue_rerank(Reply(status=400, body={"message": "invalid model"}))
    res = make(loopback, tmp_path, model="nope").rerank("q", cands("a"))
    assert res.fallback and "HTTP 400" in res.error.message and "invalid model" in res.error.message
    assert len(loopback.calls()) == 1


def test_missing_key_and_keyless_local_server(loopback, tmp_path):
    res = create_reranker("cohere", Settings(data_dir=tmp_path)).rerank("q", cands("a"))
    assert res.error.kind == "missing-api-key" and not res.fallback
    assert "COHERE_API_KEY" in res.error.hint and "cohere_base_url" in res.error.hint
    loopback.queue_rerank(Reply(body=cohere_rerank_body([(0, 0.5)])))
    keyless = make(loopback, tmp_path, key=None).rerank("q", cands("a"))
    assert keyless.ok and KEY not in loopback.calls()[0].headers.get("authorization", "")


def test_label_hides_url_credentials(tmp_path):
    r = create_reranker(
        "cohere",
        Settings(cohere_base_url="https://u:pw@tei.local:8080/?k=1", secrets={"COHERE_API_KEY": KEY}),
    )
    assert r.label == "Cohere Rerank v2 · rerank-v3.5 via https://tei.local:8080"
    assert KEY not in repr(r.settings) and "pw" not in r.label
