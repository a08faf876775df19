"""One contract, run against every reranker backend.

Each case builds a real backend (tiny random-weight models in each library's real layout, or the
packaged MiniLM) through the registry. To add a backend, append a :class:`Case` to ``CASES``: a
factory gets pytest's ``request`` (so it can use fixtures such as a loopback server) and returns the
reranker.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from rerank_core.config import Settings
from rerank_core.errors import ModelNotFound
from rerank_core.registry import create_reranker, reranker_class
from rerank_core.rerankers.base import Reranker
from rerank_core.types import Candidate, MethodSpec, ScoreScale

pytest_plugins = ["tiny_models"]

from loopback_servers import (  # noqa: E402
    CHAT_PATH,
    RERANK_PATH,
    LoopbackServer,
    Reply,
    chat,
    cohere_rerank_body,
    jina_rerank_body,
    split_prompt,
    tei_rerank_body,
    vllm_score_body,
    voyage_rerank_body,
)

TEXTS = [
    ("Lift on wings", "lift is a force that acts on the wings of an aircraft in flight"),
    ("", "drag on a cylinder in supersonic flow"),
    ("", "the boundary layer on a flat plate becomes turbulent at high reynolds number"),
    ("Shock waves", "a shock wave forms ahead of a blunt body at hypersonic speed"),
    ("", "drag on a cylinder in supersonic flow"),  # the same text as d1: must not collide
    ("", "heat transfer to the skin of a cone"),
    ("", "coffee and bread for breakfast"),
]
QUERY = "what is the lift force on a wing"


def candidates(texts=TEXTS) -> list[Candidate]:
    return [
        Candidate(doc_id=f"d{i}", title=title, text=text, first_stage_rank=i + 1, first_stage_score=10.0 - i)
        for i, (title, text) in enumerate(texts)
    ]


def settings_for(request) -> Settings:
    return Settings(data_dir=request.getfixturevalue("tmp_path") / "rerank-data")


@dataclass(frozen=True)
class Case:
    """A reranker under contract. ``load_measured``: the backend loads something (weights, a client)."""

    id: str
    make: Callable[[pytest.FixtureRequest], Reranker]
    load_measured: bool = True


def _cross_encoder(request, **options) -> Reranker:
    path = request.getfixturevalue("tiny_cross_encoder_dir")
    return create_reranker(MethodSpec("cross-encoder", str(path)), settings_for(request), **options)


def _colbert(request, **options) -> Reranker:
    path = request.getfixturevalue("tiny_colbert_dir")
    return create_reranker(MethodSpec("colbert", str(path)), settings_for(request), **options)


def _flashrank(request, **options) -> Reranker:
    cache_dir, name = request.getfixturevalue("tiny_flashrank_cache")
    return create_reranker(
        MethodSpec("flashrank", name), settings_for(request), cache_dir=str(cache_dir), **options
    )


def _late_interaction(request) -> Reranker:
    try:
        reranker_class("late-interaction")
    except ImportError:
        pytest.skip("rerank_core.rerankers.late_interaction is not written yet")
    return create_reranker("late-interaction", settings_for(request))


def _bi_encoder(request, **options) -> Reranker:
    from tiny_bi_encoder import tiny_bi_encoder_once

    path = tiny_bi_encoder_once(request.getfixturevalue("tmp_path_factory"))
    return create_reranker(MethodSpec("bi-encoder", str(path)), settings_for(request), **options)


def _late_interaction_tiny(request, **options) -> Reranker:
    from tiny_bi_encoder import tiny_bi_encoder_once

    path = tiny_bi_encoder_once(request.getfixturevalue("tmp_path_factory"))
    return create_reranker(MethodSpec("late-interaction", str(path)), settings_for(request), **options)


def _tiny_cross_encoder(fixture: str, **options) -> Callable[[pytest.FixtureRequest], Reranker]:
    def make(request) -> Reranker:
        path = request.getfixturevalue(fixture)
        return create_reranker(MethodSpec("cross-encoder", str(path)), settings_for(request), **options)

    return make


def _flashrank_int8(request) -> Reranker:
    cache_dir, name = request.getfixturevalue("tiny_flashrank_int8_cache")
    return create_reranker(MethodSpec("flashrank", name), settings_for(request), cache_dir=str(cache_dir))


def _overlap(query: str, text: str) -> int:
    """The loopback servers' relevance rule: how many query words the passage contains."""
    words = set(text.lower().split())
    return sum(1 for w in set(query.lower().split()) if w in words)


def _loopback(request) -> LoopbackServer:
    server = LoopbackServer().start()
    request.addfinalizer(server.stop)
    return server


def _llm(request) -> Reranker:
    """The OpenAI-compatible LLM reranker against a loopback server that grades by word overlap."""
    server = _loopback(request)

    def grader(rec) -> Reply:
        query, passages, _ = split_prompt(rec.message("user"))
        (text,) = passages.values()
        return chat(f'{{"grade": {min(10, _overlap(query, text))}}}')

    server.responders[CHAT_PATH] = grader
    settings = Settings(
        data_dir=request.getfixturevalue("tmp_path") / "rerank-data",
        openai_base_url=server.openai_base_url,
        secrets={"OPENAI_API_KEY": "sk-contract"},
        max_retries=0,
        request_timeout_s=10,
    )
    return create_reranker("llm:loopback-model", settings)


def _cohere(request) -> Reranker:
    """The Cohere v2 reranker against a loopback server that scores by word overlap."""
    server = _loopback(request)

    def scorer(rec) -> Reply:
        docs = rec.body["documents"]
        scored = [(i, _overlap(rec.body["query"], d) / 10) for i, d in enumerate(docs)]
        scored.sort(key=lambda pair: -pair[1])
        return Reply(body=cohere_rerank_body(scored))

    server.responders[RERANK_PATH] = scorer
    settings = Settings(
        data_dir=request.getfixturevalue("tmp_path") / "rerank-data",
        cohere_base_url=server.url,
        secrets={"COHERE_API_KEY": "co-contract"},
        max_retries=0,
        request_timeout_s=10,
    )
    return create_reranker("cohere", settings)


# name -> (path, query field, passages field, answer builder) of each rerank server's wire format
SERVERS = {
    "tei": ("/rerank", "query", "texts", tei_rerank_body),
    "jina": ("/v1/rerank", "query", "documents", jina_rerank_body),
    "vllm-score": ("/score", "text_1", "text_2", vllm_score_body),
    "voyage": ("/v1/rerank", "query", "documents", voyage_rerank_body),
}


def _server(name: str) -> Callable[[pytest.FixtureRequest], Reranker]:
    """A rerank server backend against a loopback server of its format that scores by word overlap."""

    def make(request) -> Reranker:
        path, query_field, texts_field, answer = SERVERS[name]
        server = _loopback(request)

        def scorer(rec) -> Reply:
            texts = rec.body[texts_field]
            scored = [(i, _overlap(rec.body[query_field], t) / 10) for i, t in enumerate(texts)]
            scored.sort(key=lambda pair: -pair[1])
            return Reply(body=answer(scored))

        server.responders[path] = scorer
        settings = Settings(
            data_dir=request.getfixturevalue("tmp_path") / "rerank-data",
            methods={name: {"base_url": server.url, "max_retries": 0, "timeout_s": 10}},
        )
        return create_reranker(name, settings)

    return make


CASES: list = [
    *[
        pytest.param(Case(name, _server(name), load_measured=False), id=f"{name}-loopback")
        for name in SERVERS
    ],
    pytest.param(Case("bi-encoder", _bi_encoder), id="bi-encoder"),
    pytest.param(Case("llm", _llm, load_measured=False), id="llm-openai-loopback"),
    pytest.param(Case("cohere", _cohere, load_measured=False), id="cohere-loopback"),
    pytest.param(Case("cross-encoder", _cross_encoder), id="cross-encoder"),
    pytest.param(Case("colbert", _colbert), id="colbert"),
    pytest.param(Case("flashrank", _flashrank), id="flashrank"),
    pytest.param(Case("late-interaction", _late_interaction), id="late-interaction", marks=pytest.mark.slow),
    # each precision where it applies (tiny models; the precision the result reports is checked too)
    pytest.param(
        Case("cross-encoder", lambda r: _cross_encoder(r, precision="bf16")), id="cross-encoder-bf16"
    ),
    pytest.param(
        Case("cross-encoder", lambda r: _cross_encoder(r, precision="onnx")), id="cross-encoder-onnx"
    ),
    pytest.param(
        Case("cross-encoder", lambda r: _cross_encoder(r, precision="onnx-int8")),
        id="cross-encoder-onnx-int8",
    ),
    pytest.param(
        Case("cross-encoder", _tiny_cross_encoder("tiny_qwen3_reranker_dir")), id="cross-encoder-qwen3"
    ),
    pytest.param(
        Case("cross-encoder", _tiny_cross_encoder("tiny_qwen3_reranker_dir", precision="bf16")),
        id="cross-encoder-qwen3-bf16",
    ),
    pytest.param(
        Case("cross-encoder", _tiny_cross_encoder("tiny_modernbert_dir")), id="cross-encoder-modernbert"
    ),
    pytest.param(
        Case("cross-encoder", _tiny_cross_encoder("tiny_xlmr_dir", precision="onnx-int8")),
        id="cross-encoder-xlmr-onnx-int8",
    ),
    pytest.param(Case("bi-encoder", lambda r: _bi_encoder(r, precision="bf16")), id="bi-encoder-bf16"),
    pytest.param(
        Case("bi-encoder", lambda r: _bi_encoder(r, precision="onnx-int8")), id="bi-encoder-onnx-int8"
    ),
    pytest.param(
        Case("late-interaction", lambda r: _late_interaction_tiny(r, precision="onnx-int8")),
        id="late-interaction-tiny-onnx-int8",
    ),
    pytest.param(Case("colbert", lambda r: _colbert(r, precision="bf16")), id="colbert-bf16"),
    pytest.param(Case("flashrank", _flashrank_int8), id="flashrank-int8"),
]

# the precision each backend reports when none is asked for ("" = not a local model)
_DEFAULT_PRECISION = {"flashrank": "onnx", "llm": "", "cohere": ""}


@pytest.mark.parametrize("case", CASES)
def test_reranker_contract(case: Case, request):
    reranker = case.make(request)
    cands = candidates()
    ids = [c.doc_id for c in cands]

    t0 = time.perf_counter()
    first = reranker.rerank(QUERY, cands)
    wall = time.perf_counter() - t0
    assert first.ok, first.error
    assert first.available and not first.fallback
    assert isinstance(first.scale, ScoreScale) and first.scale == reranker.scale
    assert first.method == reranker.method_name
    # the precision it ran at: the one asked for, else the default; never a precision that did not run
    asked = reranker.options.get("precision")
    from rerank_core.registry import method_info

    local_default = "" if method_info(case.id).hosted and case.id != "llm" else "fp32"
    expected = asked if asked not in (None, "auto") else _DEFAULT_PRECISION.get(case.id, local_default)
    if case.id == "flashrank" and reranker.model_dir is not None:
        from rerank_core.precision import is_int8_graph

        expected = "onnx-int8" if is_int8_graph(next(reranker.model_dir.glob("*.onnx"))) else "onnx"
    assert first.precision == expected == reranker.precision

    # one score per candidate, ids preserved: a permutation of the input ids
    assert len(first.items) == len(cands)
    assert sorted(first.ids) == sorted(ids)
    assert [it.rank for it in first.items] == list(range(1, len(cands) + 1))
    by_id = {c.doc_id: c for c in cands}
    assert all(it.first_stage_rank == by_id[it.doc_id].first_stage_rank for it in first.items)
    scores = [it.score for it in first.items]
    assert all(math.isfinite(s) for s in scores)
    assert not any(it.flagged for it in first.items)

    # sorted by score, best first
    assert scores == sorted(scores, reverse=True)

    # the same texts score the same: the duplicate pair gets one value
    score_of = {it.doc_id: it.score for it in first.items}
    assert score_of["d1"] == pytest.approx(score_of["d4"], rel=1e-4, abs=1e-5)

    # timing: load measured once and apart from the query
    assert first.latency_ms > 0
    if case.load_measured:
        assert first.model_load_s > 0
    assert first.latency_ms / 1e3 + first.model_load_s <= wall + 1e-3

    # deterministic, and the load is not paid again
    second = reranker.rerank(QUERY, cands)
    assert second.ids == first.ids
    assert [it.score for it in second.items] == pytest.approx(scores, rel=1e-6, abs=1e-6)
    assert second.model_load_s == first.model_load_s
    assert second.latency_ms > 0

    # a score belongs to its candidate, whatever the input order
    shuffled = reranker.rerank(QUERY, list(reversed(cands)))
    assert {it.doc_id: it.score for it in shuffled.items} == pytest.approx(score_of, rel=1e-4, abs=1e-5)

    # top-k respected: the head of the full order
    top = reranker.rerank(QUERY, cands, top_k=3)
    assert top.ids == first.ids[:3]
    assert [it.score for it in top.items] == pytest.approx(scores[:3], rel=1e-6, abs=1e-6)
    assert reranker.rerank(QUERY, cands, top_k=len(cands) + 5).ids == first.ids
    assert reranker.rerank(QUERY, cands, top_k=0).items == ()

    # empty input, empty output
    empty = reranker.rerank(QUERY, [])
    assert empty.ok and empty.items == ()


# -- the real default models, offline -------------------------------------------------------------
DEFAULTS = {
    "cross-encoder": "cross-encoder/ms-marco-MiniLM-L-6-v2",
    "colbert": "colbert-ir/colbertv2.0",
    "flashrank": "ms-marco-TinyBERT-L-2-v2",
}


@pytest.mark.parametrize("name", sorted(DEFAULTS))
def test_default_model_reports_unavailable_at_once_offline(name, tmp_path, monkeypatch):
    import requests

    def no_network(*args, **kwargs):  # FlashRank downloads with requests.get
        raise AssertionError("tried to download while offline")

    monkeypatch.setattr(requests, "get", no_network)
    settings = Settings(data_dir=tmp_path / "data", models_dir=tmp_path / "models")
    reranker = create_reranker(name, settings)
    assert reranker.model == DEFAULTS[name]

    t0 = time.perf_counter()
    with pytest.raises(ModelNotFound) as info:
        reranker.load()
    assert time.perf_counter() - t0 < 10
    err = info.value
    assert DEFAULTS[name] in err.message
    assert "looked in" in err.message and str(tmp_path / "models") in err.message
    assert err.hint

    result = reranker.rerank(QUERY, candidates())  # reported, not raised
    assert not result.available and not result.ok
    assert result.error.kind == "model-not-found" and DEFAULTS[name] in result.error.message
    assert result.items == ()
    if name == "flashrank":
        assert not (tmp_path / "data" / "flashrank" / DEFAULTS[name]).exists()


# -- truncation ---------------------------------------------------------------------------------------
LOCAL = {"cross-encoder": _cross_encoder, "colbert": _colbert, "flashrank": _flashrank}


@pytest.mark.parametrize("name", sorted(LOCAL))
def test_truncation_flags_with_a_tiny_max_length(name, request):
    long_text = "the boundary layer on the wing becomes turbulent " * 6  # about 50 tokens
    cands = [
        Candidate(doc_id="long", text=long_text, first_stage_rank=1, first_stage_score=1.0),
        Candidate(doc_id="short", text="lift", first_stage_rank=2, first_stage_score=0.5),
    ]
    result = LOCAL[name](request, max_length=16).rerank("lift", cands)
    assert result.ok, result.error
    assert result.truncated_ids == ["long"]
    assert any("cut at 16 tokens" in note for note in result.notes)

    untouched = LOCAL[name](request).rerank("lift", cands)
    assert untouched.truncated_ids == []
