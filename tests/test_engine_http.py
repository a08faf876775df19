"""The generic ``http`` first stage against loopback JSON search endpoints."""

from __future__ import annotations

import logging
import time
from urllib.parse import parse_qs

import pytest
from loopback_servers import Recorded, Reply, dead_url, loopback

from rerank_core.config import Settings
from rerank_core.errors import ConfigError, EngineSettingError, HostedCallError, HostedTimeout
from rerank_core.registry import create_retriever, method_info
from rerank_core.types import Corpus, Document

__all__ = ["loopback"]  # the fixture

KEY = "search-key-DO-NOT-LEAK-1618"
CORPUS = Corpus(
    [
        Document(id="d1", title="Lift", text="lift on wings"),
        Document(id="d2", title="Drag", text="drag on a cylinder"),
        Document(id="d3", title="Heat", text="heat transfer to a cone"),
    ],
    name="tiny",
)


def make(url: str, **options):
    opts = {"url": url, "max_retries": 2, "backoff_base_s": 0.01, "timeout_s": 2.0, **options}
    return create_retriever(
        "http", Settings(methods={"http": opts}, secrets={"RERANK_HTTP_API_KEY": KEY})
    ).build(CORPUS)


def nested_answer(rec: Recorded) -> Reply:
    results = [
        {"doc": {"id": "d2"}, "relevance": 3.5, "fields": ["Drag", "drag on a cylinder"]},
        {"doc": {"id": "d1"}, "relevance": 1.25, "fields": ["Lift", "lift on wings"]},
    ]
    return Reply(body={"took": 2, "data": {"results": results}})


def test_metadata():
    info = method_info("http")
    assert info.is_first_stage and info.hosted and not info.offline and not info.needs_index
    assert info.secrets == ("RERANK_HTTP_API_KEY",)


def test_get_with_a_url_template_and_nested_paths(loopback):
    loopback.responders["/api/search"] = nested_answer
    r = make(
        f"{loopback.url}/api/search?q={{{{query}}}}&limit={{{{k}}}}",
        params={"lang": "en"},
        hits_path="data.results",
        id_path="doc.id",
        score_path="relevance",
        title_path="fields.0",
        text_path="fields.1",
    )
    cands, result = r.candidates("drag & lift?", 5)
    (call,) = loopback.calls("/api/search")
    assert call.method == "GET" and parse_qs(call.query) == {
        "q": ["drag & lift?"],
        "limit": ["5"],
        "lang": ["en"],
    }
    assert call.headers["authorization"] == f"Bearer {KEY}"
    assert [(c.doc_id, c.first_stage_score, c.title, c.text) for c in cands] == [
        ("d2", 3.5, "Drag", "drag on a cylinder"),
        ("d1", 1.25, "Lift", "lift on wings"),
    ]
    assert result.ids == ["d2", "d1"] and r.test_connection("drag").doc_id == "d2"


def test_post_body_template_scores_by_order_and_text_from_the_corpus(loopback):
    loopback.queue("/search", Reply(body=[{"id": "d3"}, {"id": "d1"}, {"id": "d2"}]))
    r = make(
        f"{loopback.url}/search",
        body='{"q": "{{query}}", "size": {{k}}, "filters": {"year": 1950}}',
        score_path="",
        text_path="",
        api_key_header="X-API-Key",
        headers={"X-Team": "search"},
    )
    cands, _ = r.candidates('say "hi"', 3)
    (call,) = loopback.calls("/search")
    assert call.method == "POST" and call.body == {"q": 'say "hi"', "size": 3, "filters": {"year": 1950}}
    assert call.headers["x-api-key"] == KEY and call.headers["x-team"] == "search"
    assert "authorization" not in call.headers
    assert [(c.doc_id, c.first_stage_score) for c in cands] == [("d3", 3.0), ("d1", 2.0), ("d2", 1.0)]
    assert cands[0].text == "heat transfer to a cone" and cands[0].title == "Heat"


def test_wrong_paths_name_the_setting(loopback):
    loopback.responders["/s"] = nested_answer
    url = f"{loopback.url}/s"
    cases = [
        ({"hits_path": "data.hits"}, "hits_path", "the answer's keys: took, data"),
        ({"hits_path": "data.results", "id_path": "id"}, "id_path", "its keys: doc, relevance, fields"),
        ({"hits_path": "data.results", "id_path": "doc.id", "score_path": "score"}, "score_path", "no number"),
        ({"hits_path": "data.results", "id_path": "doc.id", "score_path": "relevance", "text_path": "body"}, "text_path", "no field 'body'"),
    ]  # fmt: skip
    for options, setting, message in cases:
        with pytest.raises(EngineSettingError) as info:
            make(url, **options).hits("x", 2)
        assert info.value.setting == f"[methods.http] {setting}" and message in info.value.message, options
    with pytest.raises(ConfigError, match=r"\{\{qury\}\}"):
        make(f"{url}?q={{{{qury}}}}").hits("x", 2)
    with pytest.raises(ConfigError, match="not an http"):
        make("search.internal/api").hits("x", 2)
    with pytest.raises(ConfigError, match=r"\[methods.http\] url is not set"):
        create_retriever("http", Settings()).build(CORPUS).hits("x", 2)


def test_errors_retries_and_timeouts(loopback, caplog):
    caplog.set_level(logging.DEBUG)
    loopback.queue(
        "/s",
        Reply(status=429, body={"error": "slow down"}, headers={"Retry-After": "0.3"}),
        Reply(status=503, body="busy"),
        Reply(body=[{"id": "d1", "score": 1.0, "text": "t"}]),
    )
    t0 = time.perf_counter()
    assert make(f"{loopback.url}/s").hits("x", 1)[0].doc_id == "d1"
    assert time.perf_counter() - t0 >= 0.3 and len(loopback.calls("/s")) == 3
    loopback.queue("/s", Reply(status=404, body={"error": "no route"}))
    with pytest.raises(HostedCallError) as info:
        make(f"{loopback.url}/s").hits("x", 1)
    assert info.value.status == 404 and "[methods.http] url" in info.value.hint
    loopback.queue("/s", Reply(body="<html>sign in</html>", headers={"Content-Type": "text/html"}))
    with pytest.raises(HostedCallError, match="not JSON"):
        make(f"{loopback.url}/s").hits("x", 1)
    loopback.queue("/s", *[Reply(body=[], delay_s=5)] * 2)
    with pytest.raises(HostedTimeout):
        make(f"{loopback.url}/s", timeout_s=0.3, max_retries=1).hits("x", 1)
    with pytest.raises(HostedCallError) as info:
        make(f"{dead_url()}/s", max_retries=0).hits("x", 1)
    assert "could not connect to the search API" in info.value.message
    assert KEY not in caplog.text and KEY not in str(info.value)
