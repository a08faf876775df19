"""Loopback HTTP servers speaking the wire formats of the hosted backends.

A :class:`LoopbackServer` listens on 127.0.0.1 (a free port) and answers any path and method
(``POST /v1/chat/completions``, ``POST /v2/rerank``, ``POST /rerank``, ``GET /docs/_search`` ...)
from a scriptable per-path queue of :class:`Reply` (status, headers, body, delay), and, when the
queue is empty, from a per-path responder function. Every request is recorded (method, path,
headers, JSON body) so tests can count calls and inspect what was sent. ``default_headers`` go
with every answer (Elasticsearch's ``X-Elastic-Product``).

Body builders make each format's answer: OpenAI chat completions, Cohere v2, TEI, Jina (also
Infinity and vLLM), vLLM score and Voyage rerank. :func:`dead_url` is an address where nothing
listens.

Use the fixtures ``loopback`` (one server, both routes) or build one with ``with LoopbackServer() as s``.
Delays wait on an event that teardown sets, so a slow reply never outlives its test.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

CHAT_PATH = "/v1/chat/completions"
RERANK_PATH = "/v2/rerank"


@dataclass
class Reply:
    status: int = 200
    body: Any = None  # dict/list -> JSON, str -> sent as is
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: Any
    raw: bytes
    query: str = ""

    @property
    def messages(self) -> list[dict[str, str]]:
        return list((self.body or {}).get("messages", []))

    def message(self, role: str) -> str:
        return "\n".join(m.get("content", "") for m in self.messages if m.get("role") == role)


Responder = Callable[[Recorded], Reply]


# -- wire-format helpers -----------------------------------------------------------------------
def chat_completion(content: str | None, model: str = "loopback-model") -> dict[str, Any]:
    """An OpenAI chat-completions response body with one choice."""
    return {
        "id": "chatcmpl-loopback",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }


def chat(content: str | None, **kw: Any) -> Reply:
    return Reply(body=chat_completion(content), **kw)


def cohere_rerank_body(results: list[tuple[int, float]], search_units: int | None = 1) -> dict[str, Any]:
    """A Cohere v2 rerank response body: ``results`` as (index, relevance_score)."""
    body: dict[str, Any] = {
        "id": "rerank-loopback",
        "results": [{"index": i, "relevance_score": s} for i, s in results],
    }
    if search_units is not None:
        body["meta"] = {"api_version": {"version": "2"}, "billed_units": {"search_units": search_units}}
    return body


def tei_rerank_body(results: list[tuple[int, float]]) -> list[dict[str, Any]]:
    """TEI's ``/rerank`` answer: a bare list of ``{"index", "score"}``."""
    return [{"index": i, "score": s} for i, s in results]


def jina_rerank_body(
    results: list[tuple[int, float]], model: str = "loopback-reranker", total_tokens: int | None = 10
) -> dict[str, Any]:
    """Jina's ``/v1/rerank`` answer (Infinity and vLLM answer the same shape)."""
    body: dict[str, Any] = {
        "model": model,
        "results": [{"index": i, "relevance_score": s} for i, s in results],
    }
    if total_tokens is not None:
        body["usage"] = {"total_tokens": total_tokens}
    return body


def vllm_score_body(results: list[tuple[int, float]], model: str = "loopback-reranker") -> dict[str, Any]:
    """vLLM's ``/score`` answer."""
    return {
        "id": "score-loopback",
        "object": "list",
        "created": int(time.time()),
        "model": model,
        "data": [{"index": i, "object": "score", "score": s} for i, s in results],
        "usage": {
            "prompt_tokens": 7 * len(results),
            "total_tokens": 7 * len(results),
            "completion_tokens": 0,
        },
    }


def voyage_rerank_body(
    results: list[tuple[int, float]], model: str = "rerank-2.5", total_tokens: int = 12
) -> dict[str, Any]:
    """Voyage AI's ``/v1/rerank`` answer."""
    return {
        "object": "list",
        "data": [{"index": i, "relevance_score": s} for i, s in results],
        "model": model,
        "usage": {"total_tokens": total_tokens},
    }


def dead_url() -> str:
    """``http://127.0.0.1:<port>`` where nothing listens (the port was free a moment ago)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def error_body(message: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": "loopback_error"}}


_PASSAGE = re.compile(r'<passage id="(\d+)">\n?(.*?)\n?</passage>', re.S)
_QUERY = re.compile(r"<query>(.*?)</query>", re.S)


def split_prompt(user_text: str) -> tuple[str, dict[int, str], str]:
    """(query, {id: passage text}, everything outside the passage blocks) of a delimited prompt,
    read the way a model that respects the delimiters would."""
    query_m = _QUERY.search(user_text)
    query = query_m.group(1) if query_m else ""
    passages = {int(m.group(1)): m.group(2) for m in _PASSAGE.finditer(user_text)}
    outside = _PASSAGE.sub(" ", user_text)
    return query, passages, outside


# -- the server --------------------------------------------------------------------------------
class LoopbackServer:
    """A threaded HTTP server on 127.0.0.1 with scripted replies and a request log."""

    def __init__(self, default_headers: dict[str, str] | None = None) -> None:
        self._queue: defaultdict[str, deque[Reply]] = defaultdict(deque)
        self.responders: dict[str, Responder] = {}
        self.fallback: Responder | None = None  # answers paths with no queue and no responder
        self.requests: list[Recorded] = []
        self.default_headers = dict(default_headers or {})
        self._lock = threading.Lock()
        self._stop = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
                return  # keep test output clean (and never echo headers)

            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    body = None
                path, _, query = self.path.partition("?")
                rec = Recorded(
                    self.command, path, {k.lower(): v for k, v in self.headers.items()}, body, raw, query
                )
                reply = server._next_reply(rec)
                if reply.delay_s > 0 and server._stop.wait(reply.delay_s):
                    return
                data = reply.body if isinstance(reply.body, (str, bytes)) else json.dumps(reply.body)
                payload = data.encode() if isinstance(data, str) else data
                headers = {"Content-Type": "application/json", **server.default_headers, **reply.headers}
                try:
                    self.send_response(reply.status)
                    self.send_header("Content-Length", str(len(payload)))
                    for k, v in headers.items():
                        self.send_header(k, v)
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout): nothing to do

            do_POST = do_GET = do_PUT = do_DELETE = do_HEAD = _answer  # noqa: N815 - stdlib names

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    # scripting -----------------------------------------------------------------------------------
    def queue(self, path: str, *replies: Reply) -> None:
        with self._lock:
            self._queue[path].extend(replies)

    def queue_chat(self, *replies: Reply | str) -> None:
        self.queue(CHAT_PATH, *(chat(r) if isinstance(r, str) else r for r in replies))

    def queue_rerank(self, *replies: Reply) -> None:
        self.queue(RERANK_PATH, *replies)

    def _next_reply(self, rec: Recorded) -> Reply:
        with self._lock:
            self.requests.append(rec)
            q = self._queue.get(rec.path)
            if q:  # (.get: a request to an unscripted path must not add a queue)
                return q.popleft()
            responder = self.responders.get(rec.path) or self.fallback
        if responder is not None:
            return responder(rec)
        return Reply(status=404, body=error_body(f"no scripted reply for {rec.path}"))

    # inspection ------------------------------------------------------------------------------------
    def calls(self, path: str | None = None) -> list[Recorded]:
        with self._lock:
            return [r for r in self.requests if path is None or r.path == path]

    @property
    def pending(self) -> int:
        with self._lock:
            return sum(len(q) for q in self._queue.values())

    # lifecycle -------------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def openai_base_url(self) -> str:
        return f"{self.url}/v1"

    def start(self) -> LoopbackServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> LoopbackServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@pytest.fixture
def loopback() -> Iterator[LoopbackServer]:
    """A running loopback server (every route), stopped at teardown."""
    with LoopbackServer() as server:
        yield server
