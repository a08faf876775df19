"""Rerank servers (tei, jina, vllm-score, voyage) against loopback servers speaking each wire format.

Each server scores a passage by a rule the test knows (its length), answers in a scrambled order,
and records what it received, so a test can check that exactly the candidates' passages went out
and that every score came back to its own candidate. Errors, timeouts, 429 with Retry-After, 5xx
then success, malformed and partial answers, a closed port and batch splitting are all exercised;
no key ever appears in a message, a note, a label, a result or the log.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from loopback_servers import (
    Recorded,
    Reply,
    dead_url,
    jina_rerank_body,
    loopback,
    tei_rerank_body,
    vllm_score_body,
    voyage_rerank_body,
)

from rerank_core.config import Settings
from rerank_core.errors import ConfigError
from rerank_core.registry import create_reranker, method_info
from rerank_core.rerankers.server import RerankServer
from rerank_core.types import Candidate, ScoreScale

__all__ = ["loopback"]  # the fixture

KEY = "key-test-DO-NOT-LEAK-5f4e3d2c1b0a"


@dataclass(frozen=True)
class Wire:
    """How one server format carries the query and passages, and how it answers."""

    method: str
    path: str
    key_env: str
    query_of: Callable[[dict], str]
    texts_of: Callable[[dict], list[str]]
    answer: Callable[[list[tuple[int, float]]], Any]


WIRES = {
    "tei": Wire("tei", "/rerank", "TEI_API_KEY", lambda b: b["query"], lambda b: b["texts"], tei_rerank_body),
    "jina": Wire(
        "jina", "/v1/rerank", "JINA_API_KEY", lambda b: b["query"], lambda b: b["documents"], jina_rerank_body
    ),
    "vllm-score": Wire(
        "vllm-score", "/score", "VLLM_API_KEY", lambda b: b["text_1"], lambda b: b["text_2"], vllm_score_body
    ),
    "voyage": Wire(
        "voyage",
        "/v1/rerank",
        "VOYAGE_API_KEY",
        lambda b: b["query"],
        lambda b: b["documents"],
        voyage_rerank_body,
    ),
}
ALL = sorted(WIRES)


def cands(*texts: str, titles: tuple[str, ...] = ()) -> list[Candidate]:
    return [
        Candidate(
            doc_id=f"d{i}",
            text=t,
            title=titles[i] if i < len(titles) else "",
            first_stage_rank=i + 1,
            first_stage_score=10.0 - i,
        )
        for i, t in enumerate(texts)
    ]


def make(server_url: str, wire: Wire, key: str | None = KEY, **options: Any) -> RerankServer:
    opts = {"base_url": server_url, "backoff_base_s": 0.01, "max_retries": 2, "timeout_s": 2.0, **options}
    settings = Settings(secrets={wire.key_env: key} if key else {}, methods={wire.method: opts})
    reranker = create_reranker(wire.method, settings)
    assert isinstance(reranker, RerankServer)
    return reranker


def length_scorer(wire: Wire) -> Callable[[Recorded], Reply]:
    """Scores each passage by its length / 100 and answers in a scrambled order."""

    def respond(rec: Recorded) -> Reply:
        texts = wire.texts_of(rec.body)
        scored = [(i, len(t) / 100) for i, t in enumerate(texts)]
        return Reply(body=wire.answer(scored[1::2] + scored[0::2]), headers={"x-compute-tokens": "42"})

    return respond


def no_key_anywhere(result: Any, caplog: pytest.LogCaptureFixture) -> None:
    assert KEY not in repr(result)
    assert KEY not in str(result.error or "")
    assert all(KEY not in n for n in result.notes)
    assert KEY not in caplog.text


# -- the wire formats ------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ALL)
def test_server_receives_exactly_the_passages_and_scores_land_on_their_candidates(name, loopback, caplog):
    caplog.set_level(logging.DEBUG)
    wire = WIRES[name]
    loopback.responders[wire.path] = length_scorer(wire)
    texts = ["x" * n for n in (5, 40, 12, 33, 7, 21)]
    candidates = cands(*texts, titles=("Title A",))
    reranker = make(loopback.url, wire)
    res = reranker.rerank("what is lift", candidates)

    assert res.ok and not res.fallback, res.error
    (call,) = loopback.calls(wire.path)
    assert call.method == "POST"
    assert wire.query_of(call.body) == "what is lift"
    assert wire.texts_of(call.body) == [c.full_text for c in candidates]  # title + text, in order
    assert call.headers["authorization"] == f"Bearer {KEY}"
    expected = {c.doc_id: len(c.full_text) / 100 for c in candidates}
    assert {it.doc_id: it.score for it in res.items} == pytest.approx(expected)
    assert res.ids == sorted(expected, key=lambda d: -expected[d])
    assert not any(it.flagged for it in res.items)
    assert res.scale is reranker.scale and res.scale == method_info(name).scale
    assert res.usage and sum(res.usage.values()) > 0
    assert any("usage reported by the service" in n for n in res.notes)
    no_key_anywhere(res, caplog)


def test_tei_body_scale_and_compute_tokens(loopback):
    wire = WIRES["tei"]
    loopback.responders[wire.path] = length_scorer(wire)
    probability = make(loopback.url, wire)
    assert probability.scale is ScoreScale.PROBABILITY and probability.model is None
    res = probability.rerank("q", cands("aa", "bbbb"))
    body = loopback.calls(wire.path)[0].body
    assert body == {"query": "q", "texts": ["aa", "bbbb"], "raw_scores": False, "truncate": True}
    assert res.usage == {"tokens": 42.0}

    logits = create_reranker(
        "tei:BAAI/bge-reranker-base",
        Settings(
            methods={"tei": {"base_url": loopback.url, "raw_scores": True, "truncation_direction": "Left"}}
        ),
    )
    res = logits.rerank("q", cands("aa"))
    assert res.ok and res.scale is ScoreScale.LOGIT and res.method == "tei:BAAI/bge-reranker-base"
    body = loopback.calls(wire.path)[-1].body
    assert body["raw_scores"] is True and body["truncation_direction"] == "Left"
    assert "authorization" not in loopback.calls(wire.path)[-1].headers  # keyless self-hosted server
    assert "BAAI/bge-reranker-base" in logits.label and "logit" in logits.label


def test_jina_voyage_and_vllm_bodies(loopback):
    for name in ("jina", "voyage", "vllm-score"):
        loopback.responders[WIRES[name].path] = length_scorer(WIRES[name])
    loopback.responders["/v1/score"] = length_scorer(WIRES["vllm-score"])
    make(loopback.url, WIRES["jina"], model="jina-reranker-m0").rerank("q", cands("a", "b", "c"))
    assert loopback.calls("/v1/rerank")[-1].body == {
        "model": "jina-reranker-m0",
        "query": "q",
        "documents": ["a", "b", "c"],
        "top_n": 3,
    }
    make(loopback.url, WIRES["voyage"], truncation=False).rerank("q", cands("a"))
    assert loopback.calls("/v1/rerank")[-1].body == {
        "model": "rerank-2.5",
        "query": "q",
        "documents": ["a"],
        "truncation": False,
    }
    vllm = make(f"{loopback.url}/v1", WIRES["vllm-score"], model="BAAI/bge-reranker-v2-m3", scale="cosine")
    res = vllm.rerank("q", cands("a", "bb"))
    assert res.ok and res.scale is ScoreScale.COSINE
    (call,) = loopback.calls("/v1/score")  # base_url ending in /v1: /v1/score
    assert call.body == {"text_1": "q", "text_2": ["a", "bb"], "model": "BAAI/bge-reranker-v2-m3"}
    extra = make(loopback.url, WIRES["vllm-score"], extra_body={"truncate_prompt_tokens": 256})
    extra.rerank("q", cands("a"))
    assert loopback.calls("/score")[-1].body["truncate_prompt_tokens"] == 256


# -- batches -----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ALL)
def test_long_lists_are_split_into_batches_and_merged_by_index(name, loopback):
    wire = WIRES[name]
    loopback.responders[wire.path] = length_scorer(wire)
    texts = ["y" * n for n in (3, 14, 15, 92, 65, 35, 89, 79)]
    res = make(loopback.url, wire, batch_size=3).rerank("q", cands(*texts))
    calls = loopback.calls(wire.path)
    assert [wire.texts_of(c.body) for c in calls] == [texts[0:3], texts[3:6], texts[6:8]]
    assert {it.doc_id: it.score for it in res.items} == pytest.approx(
        {f"d{i}": len(t) / 100 for i, t in enumerate(texts)}
    )
    assert res.ids[:3] == ["d3", "d6", "d7"] and not any(it.flagged for it in res.items)
    assert any("8 candidates sent in 3 batches of up to 3" in n for n in res.notes)
    one_call = make(loopback.url, wire, batch_size=3).rerank("q", cands(*texts[:2]))
    assert one_call.usage and sum(res.usage.values()) > sum(one_call.usage.values())  # summed over batches


def test_partial_answer_in_one_batch_flags_only_its_candidates(loopback):
    wire = WIRES["jina"]
    loopback.queue(
        wire.path,
        Reply(body=jina_rerank_body([(0, 0.9), (1, 0.8)])),
        # second batch: index 1 missing, index 0 twice, index 5 out of its batch
        Reply(body=jina_rerank_body([(0, 0.7), (0, 0.1), (5, 0.99)])),
    )
    res = make(loopback.url, wire, batch_size=2).rerank("q", cands("a", "b", "c", "d"))
    assert res.ok and res.ids == ["d0", "d1", "d2", "d3"]
    assert [it.flagged for it in res.items] == [False, False, False, True]
    notes = " ".join(res.notes)
    assert "1 of 4 documents had no score in the answer (d3)" in notes
    assert "1 duplicate" in notes and "1 result(s) with an invalid index" in notes


# -- partial and malformed answers -----------------------------------------------------------------
@pytest.mark.parametrize("name", ALL)
def test_missing_duplicate_and_out_of_range_indexes(name, loopback):
    wire = WIRES[name]
    loopback.queue(wire.path, Reply(body=wire.answer([(3, 0.9), (3, 0.1), (7, 0.99), (0, 0.4), (-1, 0.8)])))
    res = make(loopback.url, wire).rerank("q", cands("a", "b", "c", "d"))
    assert res.ok and res.ids == ["d3", "d0", "d1", "d2"]
    assert {it.doc_id: it.flagged for it in res.items} == {"d3": False, "d0": False, "d1": True, "d2": True}
    assert res.items[0].score == 0.9
    notes = " ".join(res.notes)
    assert "2 of 4 documents had no score in the answer (d1, d2)" in notes
    assert "1 duplicate" in notes and "2 result(s) with an invalid index" in notes


@pytest.mark.parametrize("name", ALL)
def test_no_usable_result_or_wrong_shape_falls_back(name, loopback):
    wire = WIRES[name]
    loopback.queue(wire.path, Reply(body=wire.answer([(9, 0.5)])))
    res = make(loopback.url, wire).rerank("q", cands("a", "b"))
    assert res.fallback and res.error.kind == "failed" and "no usable result" in res.error.message
    assert res.ids == ["d0", "d1"] and all(it.flagged for it in res.items)

    loopback.queue(wire.path, Reply(body={"unexpected": True} if name == "tei" else []))
    res = make(loopback.url, wire).rerank("q", cands("a", "b"))
    assert res.fallback and res.error.kind == "failed" and f"[methods.{name}]" in res.error.hint


@pytest.mark.parametrize("name", ALL)
def test_a_body_that_is_not_json_falls_back_with_a_hint(name, loopback):
    wire = WIRES[name]
    loopback.queue(wire.path, Reply(body="<html>login</html>", headers={"Content-Type": "text/html"}))
    res = make(loopback.url, wire).rerank("q", cands("a"))
    assert res.fallback and "not JSON" in res.error.message and "'<html>login</html>'" in res.error.message
    assert f"[methods.{name}] base_url" in res.error.hint and len(loopback.calls()) == 1


# -- retries, errors, timeouts ---------------------------------------------------------------------
@pytest.mark.parametrize("name", ALL)
def test_429_with_retry_after_then_success(name, loopback):
    wire = WIRES[name]
    loopback.queue(
        wire.path,
        Reply(status=429, body={"detail": "slow down"}, headers={"Retry-After": "0.3"}),
        Reply(body=wire.answer([(1, 0.7), (0, 0.3)])),
    )
    t0 = time.perf_counter()
    res = make(loopback.url, wire).rerank("q", cands("a", "b"))
    assert res.ok and res.ids == ["d1", "d0"] and time.perf_counter() - t0 >= 0.3
    assert len(loopback.calls()) == 2 and any("1 retry (429), waited 0.3 s" in n for n in res.notes)


def test_5xx_then_success_and_5xx_exhausted(loopback, caplog):
    wire = WIRES["tei"]
    loopback.queue(
        wire.path, Reply(status=503, body={"error": "loading"}), Reply(body=wire.answer([(0, 0.2)]))
    )
    res = make(loopback.url, wire).rerank("q", cands("a"))
    assert res.ok and any("1 retry (503)" in n for n in res.notes)

    loopback.queue(
        wire.path,
        Reply(status=502, body="bad gateway"),
        Reply(status=500, body={"error": f"model crashed, key {KEY}", "error_type": "Backend"}),
        Reply(status=500, body={"error": f"model crashed, key {KEY}", "error_type": "Backend"}),
    )
    res = make(loopback.url, wire).rerank("q", cands("a", "b"))
    assert res.fallback and res.error.kind == "hosted-call-failed"
    assert "HTTP 500 after 3 attempts" in res.error.message and "model crashed" in res.error.message
    assert loopback.url + "/rerank" in res.error.message  # the URL it called, named
    assert res.ids == ["d0", "d1"] and all(it.flagged for it in res.items)
    no_key_anywhere(res, caplog)


def test_client_errors_are_not_retried_and_name_the_setting(loopback):
    loopback.queue("/v1/rerank", Reply(status=404, body={"detail": "Not Found"}))
    res = make(loopback.url, WIRES["jina"]).rerank("q", cands("a"))
    assert res.fallback and "HTTP 404" in res.error.message and len(loopback.calls()) == 1
    assert "[methods.jina] base_url" in res.error.hint and "endpoint" in res.error.hint

    loopback.queue(
        "/rerank", Reply(status=413, body={"error": "batch size 50 > maximum allowed batch size 32"})
    )
    res = make(loopback.url, WIRES["tei"]).rerank("q", cands("a"))
    assert "maximum allowed batch size 32" in res.error.message
    assert "[methods.tei] batch_size" in res.error.hint

    loopback.queue("/v1/rerank", Reply(status=401, body={"detail": f"invalid key {KEY}"}))
    res = make(loopback.url, WIRES["voyage"]).rerank("q", cands("a"))
    assert res.fallback and "refused the credentials (HTTP 401)" in res.error.message
    assert "VOYAGE_API_KEY" in res.error.hint and KEY not in str(res)


def test_timeout_falls_back_within_a_bounded_time(loopback):
    wire = WIRES["vllm-score"]
    loopback.queue(wire.path, *[Reply(body=wire.answer([(0, 1.0)]), delay_s=5) for _ in range(2)])
    t0 = time.perf_counter()
    res = make(loopback.url, wire, timeout_s=0.3, max_retries=1).rerank("q", cands("a"))
    assert res.fallback and res.error.kind == "timeout" and time.perf_counter() - t0 < 2.5
    assert "within 0.3 s after 2 attempts" in res.error.message
    assert "[methods.vllm-score] timeout_s" in res.error.hint and len(loopback.calls()) == 2


@pytest.mark.parametrize("name", ALL)
def test_a_dead_server_falls_back_flagged(name, caplog):
    caplog.set_level(logging.DEBUG)
    url = dead_url()
    res = make(f"http://u:pw-DO-NOT-LEAK@{url[7:]}", WIRES[name], max_retries=1).rerank("q", cands("a", "b"))
    assert res.fallback and res.error.kind == "hosted-call-failed"
    assert "could not connect" in res.error.message and "after 2 attempts" in res.error.message
    assert f"[methods.{name}] base_url" in res.error.hint
    assert res.ids == ["d0", "d1"] and all(it.flagged for it in res.items)
    assert "pw-DO-NOT-LEAK" not in repr(res) and "pw-DO-NOT-LEAK" not in caplog.text
    assert "fell back to the first-stage order" in res.notes
    no_key_anywhere(res, caplog)


# -- configuration ---------------------------------------------------------------------------------
def test_base_url_with_a_doubled_segment_is_caught_with_the_fix():
    res = make("http://tei.local:7997/v1", WIRES["jina"]).rerank("q", cands("a"))
    assert res.error.kind == "config" and "already ends with '/v1'" in res.error.message
    assert '[methods.jina] base_url = "http://tei.local:7997"' in res.error.hint
    full = make("http://h:8080/rerank", WIRES["tei"]).rerank("q", cands("a"))
    assert '[methods.tei] base_url = "http://h:8080"' in full.error.hint
    not_http = make("localhost:8080", WIRES["tei"]).rerank("q", cands("a"))
    assert (
        "[methods.tei] base_url" in not_http.error.message and "not an http(s) URL" in not_http.error.message
    )
    missing = create_reranker("tei", Settings()).rerank("q", cands("a"))
    assert missing.error.kind == "config" and "[methods.tei] base_url is not set" in missing.error.message


def test_hosted_services_need_their_key_self_hosted_servers_do_not(loopback):
    for name, env in (("jina", "JINA_API_KEY"), ("voyage", "VOYAGE_API_KEY")):
        res = create_reranker(name, Settings()).rerank("q", cands("a"))
        assert res.error.kind == "missing-api-key" and not res.fallback and env in res.error.hint
        assert (
            method_info(name).secrets == (env,) and method_info(name).hosted and not method_info(name).offline
        )
    loopback.queue("/v1/rerank", Reply(body=jina_rerank_body([(0, 0.5)])))
    res = make(loopback.url, WIRES["jina"], key=None).rerank("q", cands("a"))
    assert res.ok and "authorization" not in loopback.calls()[0].headers


def test_unknown_and_bad_options_name_the_section():
    with pytest.raises(ConfigError, match=r"\[methods.tei\]: unknown option\(s\) base_ur") as info:
        create_reranker("tei", Settings(methods={"tei": {"base_ur": "http://x"}}))
    assert "base_url" in info.value.hint
    with pytest.raises(ConfigError, match=r"\[methods.jina\] batch_size = -1"):
        create_reranker("jina", Settings(methods={"jina": {"batch_size": -1}}))
    with pytest.raises(ConfigError, match=r"\[methods.vllm-score\] scale = 'stars'"):
        create_reranker("vllm-score", Settings(methods={"vllm-score": {"scale": "stars"}}))


def test_a_backend_sees_only_its_own_key_and_labels_hide_credentials():
    settings = Settings(
        secrets={"TEI_API_KEY": KEY, "VOYAGE_API_KEY": "voyage-other-key-123456"},
        methods={"tei": {"base_url": "https://user:pw-DO-NOT-LEAK@tei.internal:8443"}},
    )
    tei = create_reranker("tei", settings)
    assert tei.settings.secrets == {"TEI_API_KEY": KEY}
    assert (
        tei.label.startswith("Text Embeddings Inference server") and "https://tei.internal:8443" in tei.label
    )
    assert "pw-DO-NOT-LEAK" not in tei.label and KEY not in repr(tei.settings)


# -- through evaluate, on Cranfield ------------------------------------------------------------------
def _evaluate_tei(cranfield_dir, tmp_path, base_url: str, name: str) -> tuple[dict, object]:
    import json

    from rerank_core.cli import main as cli_main

    config = tmp_path / f"{name}.toml"
    config.write_text(
        f'data_dir = "{tmp_path / "data"}"\n\n[methods.tei]\nbase_url = "{base_url}"\n'
        "max_retries = 1\nbackoff_base_s = 0.01\ntimeout_s = 5\n",
        encoding="utf-8",
    )
    out = tmp_path / f"{name}.json"
    run_dir = tmp_path / f"runs-{name}"
    code = cli_main(
        [
            "evaluate",
            "--dataset",
            str(cranfield_dir),
            "--first-stage",
            "bm25",
            "--depth",
            "10",
            "--methods",
            "bm25,tei",
            "--max-queries",
            "4",
            "--output",
            str(out),
            "--run-dir",
            str(run_dir),
            "--config",
            str(config),
            "--no-progress",
        ]  # fmt: skip
    )
    assert code == 0
    return json.loads(out.read_text()), run_dir


def tei_rule(query: str, text: str) -> float:
    """The loopback TEI model: shared words plus a length term (distinct, reproducible scores)."""
    return len(set(query.lower().split()) & set(text.lower().split())) + len(text) / 1e5


def test_evaluate_sends_exactly_the_candidates_and_the_run_holds_the_servers_scores(
    cranfield_dir, tmp_path, loopback
):
    from rerank_core.corpus import load_beir
    from rerank_core.trec import read_run

    def respond(rec: Recorded) -> Reply:
        scored = [(i, tei_rule(rec.body["query"], t)) for i, t in enumerate(rec.body["texts"])]
        return Reply(body=tei_rerank_body(sorted(scored, key=lambda p: -p[1])))

    loopback.responders["/rerank"] = respond
    report, run_dir = _evaluate_tei(cranfield_dir, tmp_path, loopback.url, "live")
    assert report["methods"]["tei"]["available"] and report["methods"]["tei"]["error"] is None
    assert "fallback_queries" not in report["methods"]["tei"]

    dataset = load_beir(cranfield_dir)
    bm25_run, tei_run = read_run(run_dir / "bm25.run"), read_run(run_dir / "tei.run")
    assert len(tei_run) == 4
    by_query = {c.body["query"]: c.body["texts"] for c in loopback.calls("/rerank")}
    assert len(loopback.calls("/rerank")) == 5  # one warm-up, then one per evaluated query
    for qid, scores in tei_run.items():
        query = dataset.queries[qid]
        first_stage = sorted(bm25_run[qid], key=lambda d: (-bm25_run[qid][d], d))
        sent = by_query[query]
        assert sent == [
            dataset.corpus.get(d).full_text for d in first_stage
        ]  # exactly the candidates, in order
        assert scores == {d: tei_rule(query, dataset.corpus.get(d).full_text) for d in first_stage}


def test_evaluate_against_a_dead_server_keeps_the_first_stage_order_flagged(cranfield_dir, tmp_path):
    report, run_dir = _evaluate_tei(cranfield_dir, tmp_path, dead_url(), "dead")
    tei = report["methods"]["tei"]
    assert not tei["available"] and tei["fallback_queries"] == 4
    assert "could not connect" in tei["error"] and "[methods.tei] base_url" in tei["error"]
    assert report["methods"]["bm25"]["available"] and not (run_dir / "tei.run").exists()
