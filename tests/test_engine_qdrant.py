"""The Qdrant first stage: qdrant-client's local mode (the same client calls as a server), and a
loopback REST server (answers made by a local in-memory Qdrant, so the wire format is Qdrant's own)
for errors, 429, timeouts and a dead server."""

from __future__ import annotations

import logging
import re
import time
import warnings

import numpy as np
import pytest
from loopback_servers import LoopbackServer, Recorded, Reply, dead_url

from rerank_core.config import Settings
from rerank_core.errors import ConfigError, EngineSettingError, HostedCallError, HostedTimeout
from rerank_core.registry import create_retriever, method_info
from rerank_core.types import Corpus, Document, ScoreScale

DOCS = [
    Document(id="a1", title="Lift on wings", text="lift is a force on the wings of an aircraft"),
    Document(id="a2", title="Drag", text="drag on a cylinder in supersonic flow"),
    Document(id="a3", title="Boundary layers", text="the boundary layer on a wing becomes turbulent"),
    Document(id="a4", title="Shock waves", text="a shock wave forms ahead of a blunt body"),
    Document(id="a5", title="Heat", text="heat transfer to the skin of a cone in flight"),
    Document(id="a6", title="", text="time and people of the world"),
]
CORPUS = Corpus(DOCS, name="aero")
QUERIES = ["lift on the wing", "shock wave", "people"]
KEY = "qdrant-key-DO-NOT-LEAK-31415"


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> str:
    from tiny_bi_encoder import tiny_bi_encoder_once

    return str(tiny_bi_encoder_once(tmp_path_factory))


@pytest.fixture(scope="module")
def doc_vectors(tiny_model) -> np.ndarray:
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(tiny_model, device="cpu")
    return np.asarray(model.encode([d.full_text for d in DOCS], normalize_embeddings=True), dtype=np.float32)


def fill(client, doc_vectors, *, named: bool = True, distance: str = "Cosine") -> None:
    from qdrant_client import models

    params = models.VectorParams(size=doc_vectors.shape[1], distance=models.Distance(distance))
    client.create_collection("docs", vectors_config={"dense": params} if named else params)
    client.upsert(
        "docs",
        points=[
            models.PointStruct(
                id=i,
                vector={"dense": v.tolist()} if named else v.tolist(),
                payload={"doc_id": d.id, "title": d.title, "text": d.text},
            )
            for i, (d, v) in enumerate(zip(DOCS, doc_vectors, strict=True))
        ],
    )


@pytest.fixture
def local_path(tmp_path, doc_vectors) -> str:
    """A Qdrant collection on disk (local mode), closed so the retriever can open it."""
    from qdrant_client import QdrantClient

    path = str(tmp_path / "qdrant")
    client = QdrantClient(path=path)
    fill(client, doc_vectors)
    client.close()
    return path


def make(tiny_model: str, **options):
    opts = {
        "collection": "docs",
        "model": tiny_model,
        "id_field": "doc_id",
        "title_field": "title",
        **options,
    }
    opts.setdefault("max_retries", 2)
    opts.setdefault("backoff_base_s", 0.01)
    return create_retriever(
        "qdrant", Settings(methods={"qdrant": opts}, secrets={"QDRANT_API_KEY": KEY})
    ).build(CORPUS)


def expected_top(
    tiny_model: str, doc_vectors: np.ndarray, query: str, k: int
) -> tuple[list[str], list[float]]:
    from sentence_transformers import SentenceTransformer

    q = SentenceTransformer(tiny_model, device="cpu").encode([query], normalize_embeddings=True)[0]
    scores = doc_vectors @ q
    order = np.argsort(-scores, kind="stable")[:k]
    return [DOCS[i].id for i in order], scores[order].tolist()


def test_metadata():
    info = method_info("qdrant")
    assert info.is_first_stage and info.hosted and not info.offline and not info.needs_index
    assert info.secrets == ("QDRANT_API_KEY",)


def test_local_mode_matches_exact_cosine_and_reads_the_payload(local_path, tiny_model, doc_vectors):
    r = make(tiny_model, path=local_path, exact=True)
    for query in QUERIES:
        cands, _ = r.candidates(query, 4)
        ids, scores = expected_top(tiny_model, doc_vectors, query, 4)
        assert [c.doc_id for c in cands] == ids
        assert [c.first_stage_score for c in cands] == pytest.approx(scores, abs=1e-5)
        assert all(c.full_text == CORPUS.get(c.doc_id).full_text for c in cands)
    assert r.scale is ScoreScale.COSINE and "collection docs" in r.label
    assert (
        r.test_connection("shock wave").doc_id == expected_top(tiny_model, doc_vectors, "shock wave", 1)[0][0]
    )
    r.close()


def test_local_mode_settings_errors(local_path, tiny_model, tmp_path, doc_vectors):
    cases = [
        ({"collection": "nope"}, "collection", "no collection 'nope'"),
        ({"vector_name": "sparse"}, "vector_name", "its vectors: dense"),
        ({"text_field": "body"}, "text_field", "has no field 'body'"),
        ({"id_field": "docid"}, "id_field", "no id field 'docid'"),
    ]
    for options, setting, message in cases:
        r = make(tiny_model, path=local_path, **options)
        with pytest.raises(EngineSettingError) as info:
            r.hits("lift", 3)
        assert info.value.setting == f"[methods.qdrant] {setting}" and message in info.value.message, options
        r.close()
    with pytest.raises(EngineSettingError) as info:
        make(tiny_model, path=local_path, model="sentence-transformers/all-MiniLM-L6-v2").hits("lift", 3)
    assert info.value.setting == "[methods.qdrant] model" and "32-dimensional" in info.value.message

    from qdrant_client import QdrantClient

    unnamed = str(tmp_path / "unnamed")
    client = QdrantClient(path=unnamed)
    fill(client, doc_vectors, named=False, distance="Dot")
    client.close()
    r = make(tiny_model, path=unnamed)
    assert (
        r.hits("lift on the wing", 2)[0].doc_id
        == expected_top(tiny_model, doc_vectors, "lift on the wing", 1)[0][0]
    )
    assert r.scale is ScoreScale.FIRST_STAGE
    r.close()
    with pytest.raises(EngineSettingError, match="one unnamed vector"):
        make(tiny_model, path=unnamed, vector_name="dense").hits("lift", 2)


class QdrantREST:
    """Answers Qdrant's REST API from a local in-memory Qdrant (so bodies are Qdrant's own models)."""

    def __init__(self, doc_vectors: np.ndarray) -> None:
        from qdrant_client import QdrantClient

        self.local = QdrantClient(":memory:")
        fill(self.local, doc_vectors)

    def __call__(self, rec: Recorded) -> Reply:
        from qdrant_client import models

        if rec.path == "/collections":
            return Reply(
                body={"result": self.local.get_collections().model_dump(mode="json"), "status": "ok"}
            )
        m = re.fullmatch(r"/collections/([^/]+)(/points/query)?", rec.path)
        if not m:
            return Reply(status=404, body={"status": {"error": f"no route {rec.path}"}, "time": 0.0})
        name = m.group(1)
        try:
            if m.group(2):
                body = rec.body
                query = body["query"]["nearest"] if isinstance(body["query"], dict) else body["query"]
                params = models.SearchParams(**body["params"]) if body.get("params") else None
                result = self.local.query_points(
                    name,
                    query=query,
                    using=body.get("using"),
                    limit=body.get("limit", 10),
                    with_payload=body.get("with_payload", False),
                    search_params=params,
                ).model_dump(mode="json")
            else:
                result = self.local.get_collection(name).model_dump(mode="json")
        except ValueError as exc:
            status = 404 if "not found" in str(exc) and "Collection" in str(exc) else 400
            text = (
                f"Not found: Collection `{name}` doesn't exist!" if status == 404 else f"Wrong input: {exc}"
            )
            return Reply(status=status, body={"status": {"error": text}, "time": 0.0})
        return Reply(body={"result": result, "status": "ok", "time": 0.001})


@pytest.fixture
def rest(doc_vectors):
    server = LoopbackServer().start()
    server.fallback = QdrantREST(doc_vectors)
    yield server
    server.stop()


def test_rest_server_same_answers_and_the_key_in_a_header(rest, tiny_model, doc_vectors, caplog):
    caplog.set_level(logging.DEBUG)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the client warns about a key over plain http
        r = make(tiny_model, url=rest.url, hnsw_ef=64)
        hits = r.hits("lift on the wing", 3)
    ids, scores = expected_top(tiny_model, doc_vectors, "lift on the wing", 3)
    assert [h.doc_id for h in hits] == ids and [h.score for h in hits] == pytest.approx(scores, abs=1e-5)
    (query_call,) = rest.calls("/collections/docs/points/query")
    assert query_call.headers["api-key"] == KEY and query_call.body["using"] == "dense"
    assert query_call.body["with_payload"] == ["doc_id", "title", "text"] and query_call.body["limit"] == 3
    assert query_call.body["params"]["hnsw_ef"] == 64
    assert KEY not in caplog.text


def test_rest_errors_retries_timeouts_and_a_dead_server(rest, tiny_model, caplog):
    caplog.set_level(logging.DEBUG)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(EngineSettingError) as info:
            make(tiny_model, url=rest.url, collection="nope").hits("lift", 3)
        assert info.value.setting == "[methods.qdrant] collection" and "doesn't exist" in info.value.message
        assert "collections: docs" in info.value.hint

        rest.queue(
            "/collections/docs/points/query",
            Reply(status=429, body={"status": {"error": "rate limited"}}, headers={"Retry-After": "1"}),
            Reply(status=503, body={"status": {"error": "busy"}}),
        )
        t0 = time.perf_counter()
        assert make(tiny_model, url=rest.url).hits("lift", 2)
        assert time.perf_counter() - t0 >= 1 and len(rest.calls("/collections/docs/points/query")) == 3

        rest.queue(
            "/collections/docs/points/query", *[Reply(status=500, body={"status": {"error": f"x {KEY}"}})] * 3
        )
        with pytest.raises(HostedCallError) as info:
            make(tiny_model, url=rest.url).hits("lift", 2)
        assert (
            info.value.status == 500
            and "after 3 attempts" in info.value.message
            and KEY not in str(info.value)
        )

        rest.queue("/collections/docs/points/query", *[Reply(body={}, delay_s=5)] * 2)
        t0 = time.perf_counter()
        with pytest.raises(HostedTimeout):
            make(tiny_model, url=rest.url, timeout_s=0.3, max_retries=1).hits("lift", 2)
        assert time.perf_counter() - t0 < 3

        with pytest.raises(ConfigError, match=r"\[methods.qdrant\] url = 'localhost:6333' is not an http"):
            make(tiny_model, url="localhost:6333").hits("lift", 2)
        with pytest.raises(HostedCallError) as info:
            make(tiny_model, url=dead_url(), max_retries=1).hits("lift", 2)
        assert "could not connect" in info.value.message and "[methods.qdrant] url" in info.value.hint
    assert KEY not in caplog.text
