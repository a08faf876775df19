"""One contract, run against every engine first stage (chroma runs the same checks against a real
``chroma run`` server in tests/test_engine_chroma.py).

Each case builds the engine through the registry against a loopback server, qdrant-client's local
mode or the real PostgreSQL, over the same small corpus. The contract: metadata of an index-free
hosted first stage; ``build`` contacts nothing; hits best first, at most k, unique, of the corpus;
nothing asked for k = 0 or an empty query; candidates ranked 1..n carrying the document's text;
the same answer twice; ``test_connection`` gives the first hit; a saved and reloaded engine gives
the same hits; no secret in the label.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest
from engine_servers import SearchEngine, words
from loopback_servers import LoopbackServer, Recorded, Reply

from rerank_core.config import Settings
from rerank_core.registry import create_retriever, method_info
from rerank_core.retrieval.engine import EngineRetriever
from rerank_core.types import Corpus, Document

DOCS = [
    Document(id="a1", title="Lift on wings", text="lift is a force on the wings of an aircraft"),
    Document(id="a2", title="Drag", text="drag on a cylinder in supersonic flow"),
    Document(id="a3", title="Boundary layers", text="the boundary layer on a wing becomes turbulent"),
    Document(id="a4", title="Shock waves", text="a shock wave forms ahead of a blunt body"),
    Document(id="a5", title="Heat", text="heat transfer to the skin of a cone in flight"),
    Document(id="a6", title="Wing flutter", text="flutter of a wing in flight at high speed"),
]
CORPUS = Corpus(DOCS, name="aero")
QUERY = "lift on the wing in flight"
SECRET = "contract-secret-DO-NOT-LEAK-4242"


@dataclass(frozen=True)
class Case:
    name: str
    make: Callable[[pytest.FixtureRequest], tuple[EngineRetriever, Callable[[], int]]]
    """returns the engine and a function counting the calls its service received (-1: not countable)"""


def _loopback(request) -> LoopbackServer:
    server = LoopbackServer().start()
    request.addfinalizer(server.stop)
    return server


def _dsl(name: str):
    def make(request):
        server = _loopback(request)
        docs = {d.id: {"title": d.title, "text": d.text} for d in DOCS}
        SearchEngine(docs=docs).mount(server, elasticsearch=name == "elasticsearch")
        options = {"url": server.url, "index": "docs", "title_field": "title", "max_retries": 0}
        secret = {
            "opensearch": "RERANK_OPENSEARCH_PASSWORD",
            "elasticsearch": "RERANK_ELASTICSEARCH_PASSWORD",
        }[name]
        settings = Settings(methods={name: {**options, "username": "reader"}}, secrets={secret: SECRET})
        return create_retriever(name, settings), lambda: len(server.calls())

    return make


def _http(request):
    server = _loopback(request)

    def respond(rec: Recorded) -> Reply:
        q = words(rec.body["q"])
        scored = sorted(
            ((len(q & words(d.full_text)), d) for d in DOCS if q & words(d.full_text)),
            key=lambda p: (-p[0], p[1].id),
        )[: rec.body["k"]]
        return Reply(body={"hits": [{"id": d.id, "score": s, "text": d.text} for s, d in scored]})

    server.responders["/search"] = respond
    options = {"url": f"{server.url}/search", "body": {"q": "{{query}}", "k": "{{k}}"}, "hits_path": "hits"}
    settings = Settings(
        methods={"http": {**options, "max_retries": 0}}, secrets={"RERANK_HTTP_API_KEY": SECRET}
    )
    return create_retriever("http", settings), lambda: len(server.calls())


def _tiny(request) -> str:
    from tiny_bi_encoder import tiny_bi_encoder_once

    return str(tiny_bi_encoder_once(request.getfixturevalue("tmp_path_factory")))


def _qdrant(request):
    from qdrant_client import QdrantClient, models
    from sentence_transformers import SentenceTransformer

    model = _tiny(request)
    vectors = SentenceTransformer(model, device="cpu").encode(
        [d.full_text for d in DOCS], normalize_embeddings=True
    )
    path = str(request.getfixturevalue("tmp_path") / "qdrant")
    client = QdrantClient(path=path)
    client.create_collection(
        "docs", vectors_config=models.VectorParams(size=32, distance=models.Distance.COSINE)
    )
    client.upsert(
        "docs",
        points=[
            models.PointStruct(
                id=i, vector=v.tolist(), payload={"doc_id": d.id, "title": d.title, "text": d.text}
            )
            for i, (d, v) in enumerate(zip(DOCS, vectors, strict=True))
        ],
    )
    client.close()
    options = {
        "path": path,
        "collection": "docs",
        "model": model,
        "id_field": "doc_id",
        "title_field": "title",
    }
    retriever = create_retriever(
        "qdrant", Settings(methods={"qdrant": options}, secrets={"QDRANT_API_KEY": SECRET})
    )
    request.addfinalizer(retriever.close)
    return retriever, lambda: -1


def _pgvector(request):
    from rerank_core.retrieval.pgvector import load_table

    model = _tiny(request)
    url = request.getfixturevalue("postgres_url")
    load_table(CORPUS, url, "docs", model=model)
    options = {"table": "docs", "title_column": "title", "model": model}
    settings = Settings(methods={"pgvector": options}, secrets={"RERANK_PGVECTOR_URL": url})
    retriever = create_retriever("pgvector", settings)
    request.addfinalizer(retriever.close)
    return retriever, lambda: -1


CASES = [
    pytest.param(Case("opensearch", _dsl("opensearch")), id="opensearch"),
    pytest.param(Case("elasticsearch", _dsl("elasticsearch")), id="elasticsearch"),
    pytest.param(Case("http", _http), id="http"),
    pytest.param(Case("qdrant", _qdrant), id="qdrant-local"),
    pytest.param(Case("pgvector", _pgvector), id="pgvector-postgres"),
]


@pytest.mark.parametrize("case", CASES)
def test_engine_contract(case: Case, request, tmp_path):
    info = method_info(case.name)
    assert info.is_first_stage and info.hosted and not info.offline and not info.needs_index
    assert info.title and info.description and info.secrets

    cls = type(create_retriever(case.name, Settings(methods={case.name: {"url": "http://h:1"}})))
    assert cls.required_options() and set(cls.required_options()) <= set(cls.option_defaults())
    assert {"timeout_s", "max_retries", "reconnect_after_s"} <= set(cls.option_defaults())

    retriever, calls = case.make(request)
    assert retriever.settings.secrets.keys() <= set(info.secrets)
    retriever.build(CORPUS)
    assert calls() in (0, -1)  # building contacts nothing

    hits = retriever.hits(QUERY, 4)
    assert 0 < len(hits) <= 4
    assert len({h.doc_id for h in hits}) == len(hits) and all(h.doc_id in CORPUS for h in hits)
    scores = [h.score for h in hits]
    assert scores == sorted(scores, reverse=True)

    before = calls()
    assert retriever.hits(QUERY, 0) == [] and retriever.hits("   ", 5) == []
    assert calls() == before  # nothing asked

    cands, result = retriever.candidates(QUERY, 4)
    assert [c.doc_id for c in cands] == [h.doc_id for h in hits]  # the same answer twice
    assert [c.first_stage_rank for c in cands] == list(range(1, len(cands) + 1))
    assert all(c.text == CORPUS.get(c.doc_id).text for c in cands)
    assert result.ids == [c.doc_id for c in cands] and result.latency_ms > 0

    first = retriever.test_connection(QUERY)
    assert first is not None and first.doc_id == hits[0].doc_id

    retriever.save(tmp_path / "saved")
    retriever.close()  # (qdrant's local mode allows one client per folder)
    again = type(retriever).load(tmp_path / "saved", CORPUS, retriever.settings)
    assert [h.doc_id for h in again.hits(QUERY, 4)] == [h.doc_id for h in hits]
    assert SECRET not in retriever.label and SECRET not in (tmp_path / "saved" / "meta.json").read_text()
    again.close()
