"""OpenSearch and Elasticsearch first stages against a loopback engine speaking ``_search``.

The loopback engine (tests/engine_servers.py) scores by word overlap and kNN cosine; the tests
check what the clients send (the DSL, the vector of the real query embedder, credentials), how
hits become candidates, and that every failure is a typed error naming the setting to fix.
"""

from __future__ import annotations

import logging
import time

import numpy as np
import pytest
from engine_servers import SearchEngine, es_error, words
from loopback_servers import LoopbackServer, Reply, dead_url

from rerank_core.config import Settings
from rerank_core.errors import ConfigError, EngineSettingError, HostedCallError, HostedTimeout
from rerank_core.registry import create_retriever, method_info
from rerank_core.retrieval.base import MissingHitText
from rerank_core.types import Corpus, Document, ScoreScale

DOCS = {
    "a1": {"title": "Lift on wings", "text": "lift is a force on the wings of an aircraft", "year": 1950},
    "a2": {"title": "Drag", "text": "drag on a cylinder in supersonic flow", "year": 1951},
    "a3": {
        "title": "Boundary layers",
        "text": "the boundary layer on a wing becomes turbulent",
        "year": 1952,
    },
    "a4": {"title": "Shock waves", "text": "a shock wave forms ahead of a blunt body", "year": 1953},
    "a5": {"title": "Heat", "text": "heat transfer to the skin of a cone in flight", "year": 1954},
}
CORPUS = Corpus([Document(id=k, title=v["title"], text=v["text"]) for k, v in DOCS.items()], name="aero")
PASSWORD = "pw-DO-NOT-LEAK-8675309"
ENGINES = ["opensearch", "elasticsearch"]
SECRET = {"opensearch": "RERANK_OPENSEARCH_PASSWORD", "elasticsearch": "RERANK_ELASTICSEARCH_PASSWORD"}


@pytest.fixture
def engine_server(request):
    """(server, engine) per engine name: a loopback _search server holding DOCS."""
    servers = []

    def start(name: str, **kw) -> tuple[LoopbackServer, SearchEngine]:
        engine = SearchEngine(docs=DOCS, **kw)
        server = engine.mount(LoopbackServer(), elasticsearch=name == "elasticsearch").start()
        servers.append(server)
        return server, engine

    yield start
    for server in servers:
        server.stop()


def make(name: str, url: str, **options):
    opts = {
        "url": url,
        "index": "docs",
        "max_retries": 2,
        "backoff_base_s": 0.01,
        "timeout_s": 2.0,
        **options,
    }
    settings = Settings(methods={name: opts}, secrets={SECRET[name]: PASSWORD})
    return create_retriever(name, settings).build(CORPUS)


@pytest.mark.parametrize("name", ENGINES)
def test_metadata(name):
    info = method_info(name)
    assert info.is_first_stage and info.hosted and not info.offline and not info.needs_index
    assert SECRET[name] in info.secrets and info.title and info.description


@pytest.mark.parametrize("name", ENGINES)
def test_bm25_default_query_sends_multi_match_and_reads_source(name, engine_server):
    server, _ = engine_server(name)
    r = make(name, server.url, title_field="title")
    assert r.scale is ScoreScale.BM25 and "index docs (BM25 multi_match)" in r.label
    cands, result = r.candidates("lift on the wing", 3)
    (call,) = server.calls("/docs/_search")
    assert call.body == {
        "query": {"multi_match": {"query": "lift on the wing", "fields": ["title", "text"]}},
        "size": 3,
        "_source": ["title", "text"],
    }
    q = words("lift on the wing")
    expected = sorted(DOCS, key=lambda d: (-len(q & words(DOCS[d]["title"] + " " + DOCS[d]["text"])), d))[:3]
    assert [c.doc_id for c in cands] == expected
    assert all(c.text == DOCS[c.doc_id]["text"] and c.title == DOCS[c.doc_id]["title"] for c in cands)
    assert [c.first_stage_rank for c in cands] == [1, 2, 3] and result.ids == expected
    assert cands[0].first_stage_score == len(
        q & words(DOCS[expected[0]]["title"] + " " + DOCS[expected[0]]["text"])
    )


@pytest.mark.parametrize("name", ENGINES)
def test_query_template_with_placeholders_and_id_field(name, engine_server):
    server, _ = engine_server(name)
    template = (
        '{"query": {"match": {"text": {"query": "{{query}}"}}}, "size": {{k}}, "_source": ["text", "year"]}'
    )
    r = make(name, server.url, query=template, id_field="year", text_field="text")
    hits = r.hits("drag cylinder", 2)
    body = server.calls("/docs/_search")[0].body
    assert body == {
        "query": {"match": {"text": {"query": "drag cylinder"}}},
        "size": 2,
        "_source": ["text", "year"],
    }
    assert hits[0].doc_id == "1951" and hits[0].text == DOCS["a2"]["text"] and hits[0].title is None
    table = make(name, server.url, query={"query": {"match": {"title": "{{query}}"}}})
    assert table.hits("shock", 5)[0].doc_id == "a4"
    assert server.calls("/docs/_search")[-1].body["query"] == {"match": {"title": "shock"}}


@pytest.mark.parametrize("name", ENGINES)
def test_knn_sends_the_query_embedding_and_matches_exact_cosine(name, engine_server, tmp_path_factory):
    from sentence_transformers import SentenceTransformer
    from tiny_bi_encoder import tiny_bi_encoder_once

    model_dir = tiny_bi_encoder_once(tmp_path_factory)
    model = SentenceTransformer(str(model_dir), device="cpu")
    texts = [f"{v['title']}\n{v['text']}" for v in DOCS.values()]
    doc_vecs = model.encode(texts, normalize_embeddings=True)
    server, _ = engine_server(name, vectors={d: v.tolist() for d, v in zip(DOCS, doc_vecs, strict=True)})
    r = make(name, server.url, knn_field="embedding", model=str(model_dir), title_field="title")
    hits = r.hits("lift on the wing", 3)

    query_vec = model.encode(["lift on the wing"], normalize_embeddings=True)[0]
    exact = doc_vecs @ query_vec
    expected = [list(DOCS)[i] for i in np.argsort(-exact, kind="stable")[:3]]
    assert [h.doc_id for h in hits] == expected
    assert [h.score for h in hits] == pytest.approx(sorted(exact, reverse=True)[:3], abs=1e-5)
    body = server.calls("/docs/_search")[0].body
    sent = (
        body["knn"]["query_vector"]
        if name == "elasticsearch"
        else body["query"]["knn"]["embedding"]["vector"]
    )
    assert sent == pytest.approx(query_vec.tolist(), abs=1e-6)
    if name == "elasticsearch":
        assert (
            body["knn"]["k"] == 3
            and body["knn"]["num_candidates"] == 100
            and body["knn"]["field"] == "embedding"
        )
    else:
        assert body["query"]["knn"]["embedding"]["k"] == 3
    assert r.scale is ScoreScale.FIRST_STAGE

    wrong_field = make(name, server.url, knn_field="vec", model=str(model_dir))
    with pytest.raises(EngineSettingError) as info:
        wrong_field.hits("lift", 3)
    assert info.value.setting == f"[methods.{name}] knn_field" and "'vec'" in info.value.message
    assert "vector fields: embedding" in info.value.message
    engine_server_small, _ = engine_server(name, vectors={d: [1.0, 0.0] for d in DOCS})
    with pytest.raises(EngineSettingError) as info:
        make(name, engine_server_small.url, knn_field="embedding", model=str(model_dir)).hits("lift", 3)
    assert info.value.setting == f"[methods.{name}] model" and "dimension" in info.value.message


@pytest.mark.parametrize("name", ENGINES)
def test_missing_index_and_wrong_fields_name_the_setting(name, engine_server):
    server, _ = engine_server(name)
    with pytest.raises(EngineSettingError) as info:
        make(name, server.url, index="nope").hits("lift", 3)
    assert info.value.setting == f"[methods.{name}] index" and "no index 'nope'" in info.value.message
    assert len(server.calls()) == 1  # not retried

    with pytest.raises(EngineSettingError) as info:
        make(name, server.url, text_field="body").hits("lift", 3)
    assert info.value.setting == f"[methods.{name}] text_field"
    assert "has no field 'body'" in info.value.message and "text" in info.value.message
    with pytest.raises(EngineSettingError) as info:
        make(name, server.url, id_field="doc_id").hits("lift", 3)
    assert info.value.setting == f"[methods.{name}] id_field" and "no field 'doc_id'" in info.value.message
    with pytest.raises(EngineSettingError) as info:
        make(name, server.url, fields=["title^2", "abstract"]).hits("lift", 3)
    assert info.value.setting == f"[methods.{name}] fields" and "title.keyword" in info.value.message
    assert not server.calls("/docs/_search")  # settings checked before any search
    with pytest.raises(EngineSettingError) as info:
        make(name, server.url, query={"query": {"fuzzy_thing": {"text": "{{query}}"}}}).hits("lift", 3)
    assert (
        info.value.setting == f"[methods.{name}] query"
        and "unknown query [fuzzy_thing]" in info.value.message
    )
    with pytest.raises(ConfigError, match=r"\[methods.\w+\] index is not set"):
        create_retriever(name, Settings(methods={name: {"url": server.url}})).build(CORPUS).hits("lift", 3)
    with pytest.raises(ConfigError, match=r"unknown option\(s\) indx"):
        create_retriever(name, Settings(methods={name: {"indx": "docs"}}))
    with pytest.raises(ConfigError, match=r"\[methods.\w+\] url = 'localhost:9200' is not an http"):
        make(name, "localhost:9200").hits("lift", 3)
    with pytest.raises(ConfigError, match="not valid JSON"):
        make(name, server.url, query='{"query": {"match": ').hits("lift", 3)
    with pytest.raises(ConfigError, match=r"\{\{vectr\}\}"):
        make(name, server.url, query={"query": {"match": {"text": "{{vectr}}"}}}).hits("lift", 3)


@pytest.mark.parametrize("name", ENGINES)
def test_text_from_the_corpus_by_id(name, engine_server):
    server, _ = engine_server(name)
    r = make(name, server.url, text_field="", fields=["text"])
    cands, _ = r.candidates("drag cylinder", 2)
    assert cands[0].doc_id == "a2" and cands[0].text == DOCS["a2"]["text"] and cands[0].title == "Drag"
    assert "_source" not in server.calls("/docs/_search")[0].body
    unbound = create_retriever(
        name,
        Settings(methods={name: {"url": server.url, "index": "docs", "text_field": "", "fields": ["text"]}}),
    )
    unbound.build(Corpus([Document(id="other", text="x")]))
    with pytest.raises(MissingHitText):
        unbound.candidates("drag", 1)


@pytest.mark.parametrize("name", ENGINES)
def test_retries_429_and_5xx_then_success(name, engine_server):
    server, _ = engine_server(name)
    server.queue(
        "/docs/_search",
        Reply(status=429, body={"error": "too many requests"}, headers={"Retry-After": "0.3"}),
        Reply(status=503, body={"error": {"type": "unavailable", "reason": "node restarting"}}),
    )
    r = make(name, server.url)
    t0 = time.perf_counter()
    hits = r.hits("lift", 2)
    assert hits and len(server.calls("/docs/_search")) == 3
    if name == "elasticsearch":  # its client exposes the answer's headers: Retry-After is honoured
        assert time.perf_counter() - t0 >= 0.3
    server.queue(
        "/docs/_search", *[Reply(status=500, body={"error": {"type": "boom", "reason": "disk"}})] * 3
    )
    with pytest.raises(HostedCallError) as info:
        make(name, server.url).hits("lift", 2)
    assert info.value.status == 500 and "after 3 attempts" in info.value.message


@pytest.mark.parametrize("name", ENGINES)
def test_timeout_and_dead_server(name, engine_server, caplog):
    caplog.set_level(logging.DEBUG)
    server, _ = engine_server(name)
    server.queue("/docs/_search", *[Reply(body={}, delay_s=5)] * 2)
    t0 = time.perf_counter()
    with pytest.raises(HostedTimeout) as info:
        make(name, server.url, timeout_s=0.3, max_retries=1).hits("lift", 2)
    assert time.perf_counter() - t0 < 3 and f"[methods.{name}] timeout_s" in info.value.hint
    url = dead_url()
    with pytest.raises(HostedCallError) as info:
        make(name, f"http://reader:{PASSWORD}@{url[7:]}", max_retries=1).hits("lift", 2)
    assert "could not connect" in info.value.message and f"[methods.{name}] url" in info.value.hint
    assert PASSWORD not in str(info.value) and PASSWORD not in caplog.text


@pytest.mark.parametrize("name", ENGINES)
def test_credentials_go_in_a_header_never_in_a_message(name, engine_server, caplog):
    caplog.set_level(logging.DEBUG)
    server, _ = engine_server(name)
    server.queue(
        "/docs/_search", Reply(status=401, body={"error": {"type": "security_exception", "reason": "bad"}})
    )
    r = make(name, server.url, username="reader")
    with pytest.raises(HostedCallError) as info:
        r.hits("lift", 2)
    import base64

    sent = server.calls("/docs/_search")[0].headers["authorization"]
    assert base64.b64decode(sent.split()[1]).decode() == f"reader:{PASSWORD}"
    assert "refused the credentials (HTTP 401)" in info.value.message and SECRET[name] in info.value.hint
    assert PASSWORD not in str(info.value) and PASSWORD not in caplog.text


def test_elasticsearch_api_key_and_a_server_that_is_not_elasticsearch(engine_server):
    server, _ = engine_server("elasticsearch")
    settings = Settings(
        methods={"elasticsearch": {"url": server.url, "index": "docs"}},
        secrets={"RERANK_ELASTICSEARCH_API_KEY": "ZXMtYXBpLWtleS1ETy1OT1QtTEVBSw=="},
    )
    assert create_retriever("elasticsearch", settings).build(CORPUS).hits("lift", 1)
    assert (
        server.calls("/docs/_search")[0].headers["authorization"] == "ApiKey ZXMtYXBpLWtleS1ETy1OT1QtTEVBSw=="
    )
    plain, _ = engine_server("opensearch")  # no X-Elastic-Product header
    with pytest.raises(EngineSettingError) as info:
        make("elasticsearch", plain.url).hits("lift", 1)
    assert "is not Elasticsearch" in info.value.message and "opensearch" in info.value.hint


@pytest.mark.parametrize("name", ENGINES)
def test_test_connection_returns_one_hit(name, engine_server):
    server, _ = engine_server(name)
    r = make(name, server.url, title_field="title")
    hit = r.test_connection("shock wave")
    assert hit.doc_id == "a4" and hit.title == "Shock waves" and hit.text == DOCS["a4"]["text"]
    assert server.calls("/docs/_search")[0].body["size"] == 1
    assert r.test_connection("zebra") is None
    server.queue("/docs/_search", es_error(404, "index_not_found_exception", "no such index [docs]"))
    with pytest.raises(EngineSettingError):
        make(name, server.url).test_connection()
