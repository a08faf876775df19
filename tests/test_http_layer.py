"""The shared HTTP layer: redaction, base-URL checks, batches, Retry-After, the JSON client."""

from __future__ import annotations

import email.utils
import logging
import time

import pytest
from loopback_servers import Reply, dead_url, loopback

from rerank_core.errors import ConfigError, HostedCallError, HostedTimeout
from rerank_core.http import (
    Breaker,
    CallStats,
    JsonClient,
    TransportFailure,
    batches,
    call_with_retries,
    endpoint_url,
    redact,
    retry_after_s,
    safe_url,
)

__all__ = ["loopback"]  # the fixture

KEY = "abc-DO-NOT-LEAK-0123456789"


def test_redact_keys_url_passwords_and_authorization_values():
    assert redact(f"refused {KEY}", [KEY]) == "refused ***"
    assert redact("postgresql://rerank:s3cret-pw@db:5432/x") == "postgresql://rerank:***@db:5432/x"
    assert redact("GET https://h/search?api_key=zzz&q=wing") == "GET https://h/search?api_key=***&q=wing"
    assert redact("{'Authorization': 'Basic dXNlcjpwYXNzd29yZA=='}") == "{'Authorization': '***'}"
    assert redact('"authorization": "ApiKey Zm9vOmJhcg=="') == '"authorization": "***"'
    assert redact("x-api-key: some-long-value") == "x-api-key: ***"
    assert redact("Authorization: Bearer abcdef123") == "Authorization: ***"
    assert redact("max_tokens=5 and password=hunter22") == "max_tokens=5 and password=***"


def test_safe_url_and_endpoint_url_checks():
    assert safe_url("https://u:pw@h.example:8443/v1/?k=1#x") == "https://h.example:8443/v1"
    assert (
        endpoint_url("http://h:8080/", "/rerank", setting="[methods.tei] base_url") == "http://h:8080/rerank"
    )
    assert endpoint_url("http://h:8000/v1", "/score", setting="s") == "http://h:8000/v1/score"
    assert endpoint_url("http://h/proxy", "/v1/rerank", setting="s") == "http://h/proxy/v1/rerank"
    with pytest.raises(ConfigError) as info:
        endpoint_url("http://u:pw@h:7997/v1", "/v1/rerank", setting="[methods.jina] base_url")
    assert "already ends with '/v1'" in info.value.message and "pw" not in str(info.value)
    assert info.value.hint.startswith('set [methods.jina] base_url = "http://h:7997"')
    with pytest.raises(ConfigError, match="ends with '/v1/rerank'"):
        endpoint_url("http://h:7997/v1/rerank", "/v1/rerank", setting="s")
    with pytest.raises(ConfigError, match="not an http"):
        endpoint_url("h:7997", "/rerank", setting="s")
    with pytest.raises(ConfigError, match="is not set"):
        endpoint_url(None, "/rerank", setting="s")
    with pytest.raises(ConfigError, match="query string"):
        endpoint_url("http://h/?api_key=1", "/rerank", setting="s")


def test_batches():
    assert batches(0, 3) == []
    assert batches(5, None) == [(0, 5)] and batches(5, 0) == [(0, 5)] and batches(5, 9) == [(0, 5)]
    assert batches(7, 3) == [(0, 3), (3, 6), (6, 7)]


def test_retry_after_http_date_in_the_future():
    later = email.utils.formatdate(time.time() + 3, usegmt=True)
    assert 1.5 <= retry_after_s({"Retry-After": later}) <= 3.5
    assert retry_after_s({"retry-after-ms": "250"}) == 0.25


def test_transport_failures_from_any_client_are_classified():
    waits: list[float] = []
    stats = CallStats()
    failures = iter(
        [
            TransportFailure(connection=True),
            TransportFailure(status=503, headers={"Retry-After": "0.5"}),
            TransportFailure(timed_out=True),
        ]
    )

    def flaky():
        failure = next(failures, None)
        if failure is not None:
            raise failure
        return "ok"

    assert call_with_retries(flaky, max_retries=3, timeout_s=1, sleep=waits.append, stats=stats) == "ok"
    assert stats.statuses == ["connection error", 503, "timeout"] and waits[1] == 0.5
    with pytest.raises(HostedCallError) as info:
        call_with_retries(
            lambda: (_ for _ in ()).throw(
                TransportFailure(status=404, body={"error": {"reason": "no index"}})
            ),
            max_retries=3,
            timeout_s=1,
            what="the engine",
            hints={404: "set [methods.x] index"},
        )
    assert (
        info.value.status == 404
        and "no index" in info.value.message
        and info.value.hint == "set [methods.x] index"
    )


def test_call_stats_sum_usage_and_notes():
    stats = CallStats()
    stats.add_usage({"total_tokens": 10, "model": "x", "flag": True})
    stats.add_usage({"total_tokens": 5})
    assert stats.usage == {"total_tokens": 15.0}
    assert stats.notes() == ("usage reported by the service: total_tokens 15",)


def test_json_client_basic_auth_from_the_url_never_logged(loopback, caplog):
    caplog.set_level(logging.DEBUG)
    loopback.queue("/search", Reply(body={"hits": []}))
    client = JsonClient(f"http://reader:pw-DO-NOT-LEAK@{loopback.url[7:]}", what="the search API")
    response = client.get("/search", params={"q": "wing"})
    assert response.data == {"hits": []} and response.status == 200
    (call,) = loopback.calls("/search")
    assert call.headers["authorization"].startswith("Basic ") and call.query == "q=wing"
    assert "pw-DO-NOT-LEAK" not in caplog.text and "pw-DO-NOT-LEAK" not in repr(client)
    client.close()


def test_json_client_errors_name_the_url(loopback):
    client = JsonClient(
        loopback.url, what="the search API", max_retries=1, backoff_base_s=0.01, timeout_s=0.3
    )
    loopback.queue(
        "/s", Reply(body="plain text"), Reply(body={"x": 1}, delay_s=3), Reply(body={"x": 1}, delay_s=3)
    )
    with pytest.raises(
        HostedCallError, match=r"the search API at http://127\.0\.0\.1:\d+/s answered HTTP 200"
    ):
        client.post("/s", {"q": 1})
    with pytest.raises(HostedTimeout, match="did not answer within 0.3 s after 2 attempts"):
        client.post("/s", {"q": 1})
    dead = JsonClient(dead_url(), what="the search API", max_retries=0)
    with pytest.raises(HostedCallError, match="could not connect to the search API at http://127.0.0.1"):
        dead.get("/")


def test_breaker_refuses_at_once_while_a_server_is_unreachable_then_tries_again():
    now = [100.0]
    breaker = Breaker(30.0, clock=lambda: now[0])
    unreachable = HostedCallError(
        "could not connect to X after 4 attempts.", hint="check url", unreachable=True
    )
    calls = []

    def dead():
        calls.append(1)
        raise unreachable

    with pytest.raises(HostedCallError):
        breaker.call(dead)
    now[0] += 10
    with pytest.raises(HostedCallError) as info:
        breaker.call(dead)
    assert len(calls) == 1 and "Not tried again: it failed 10 s ago" in info.value.message
    assert info.value.unreachable and info.value.hint == "check url"
    now[0] += 25
    assert breaker.call(lambda: "back") == "back"  # cool-down over: tried, and closed by the success
    breaker.record(HostedCallError("HTTP 500", status=500))
    assert breaker.call(lambda: "still tried") == "still tried"  # an HTTP error does not open it


def test_json_client_to_a_dead_server_spends_its_retries_once():
    waits: list[float] = []
    client = JsonClient(
        dead_url(), what="the TEI server", max_retries=2, backoff_base_s=0.01, sleep=waits.append
    )
    with pytest.raises(HostedCallError) as first:
        client.post("/rerank", {})
    assert len(waits) == 2 and first.value.unreachable
    t0 = time.perf_counter()
    with pytest.raises(HostedCallError, match="Not tried again"):
        client.post("/rerank", {})
    assert len(waits) == 2 and time.perf_counter() - t0 < 0.5
    off = JsonClient(dead_url(), what="x", max_retries=0, reconnect_after_s=0)
    for _ in range(2):
        with pytest.raises(HostedCallError, match="could not connect"):
            off.post("/rerank", {})
