"""The Chroma first stage against a real ``chroma run`` server (started here, on loopback), and a
loopback server for 429, 5xx, timeouts and a dead address. The collections are written with the
``chromadb`` client, the canonical writer, so what the first stage reads is Chroma's own format."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from loopback_servers import LoopbackServer, Reply, dead_url

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
KEY = "chroma-token-DO-NOT-LEAK-2718"


@pytest.fixture(scope="module")
def chroma_server(tmp_path_factory):
    """A real Chroma server (the ``chroma`` command of the chromadb package) on a free loopback port."""
    import httpx

    exe = Path(sys.executable).parent / "chroma"
    assert exe.exists(), "the chroma command is missing: pip install -r requirements.txt"
    port = int(dead_url().rsplit(":", 1)[1])
    data = tmp_path_factory.mktemp("chroma")
    env = {**os.environ, "ANONYMIZED_TELEMETRY": "False"}
    proc = subprocess.Popen(
        [str(exe), "run", "--path", str(data), "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/api/v2/heartbeat", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, "chroma run did not start"
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> str:
    from tiny_bi_encoder import tiny_bi_encoder_once

    return str(tiny_bi_encoder_once(tmp_path_factory))


@pytest.fixture(scope="module")
def doc_vectors(tiny_model) -> np.ndarray:
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(tiny_model, device="cpu")
    return np.asarray(model.encode([d.full_text for d in DOCS], normalize_embeddings=True), dtype=np.float32)


def fill(url: str, name: str, vectors: np.ndarray, space: str) -> None:
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    host, port = url[7:].split(":")
    client = chromadb.HttpClient(
        host=host, port=int(port), settings=ChromaSettings(anonymized_telemetry=False)
    )
    collection = client.create_collection(name, metadata={"hnsw:space": space}, embedding_function=None)
    collection.add(
        ids=[f"c-{d.id}" for d in DOCS],
        embeddings=vectors.tolist(),
        documents=[d.text for d in DOCS],
        metadatas=[{"doc_id": d.id, "title": d.title} for d in DOCS],
    )


@pytest.fixture(scope="module")
def collections(chroma_server, doc_vectors) -> str:
    fill(chroma_server, "docs", doc_vectors, "cosine")
    fill(chroma_server, "docs_l2", doc_vectors * 2.0, "l2")
    return chroma_server


def make(url: str, model: str, **options):
    opts = {"url": url, "collection": "docs", "model": model, "id_field": "doc_id", "title_field": "title",
            "max_retries": 2, "backoff_base_s": 0.01, **options}  # fmt: skip
    settings = Settings(methods={"chroma": opts}, secrets={"CHROMA_API_KEY": KEY})
    return create_retriever("chroma", settings).build(CORPUS)


def query_vector(model: str, query: str) -> np.ndarray:
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(model, device="cpu").encode([query], normalize_embeddings=True)[0]


def test_metadata():
    info = method_info("chroma")
    assert info.is_first_stage and info.hosted and not info.offline and not info.needs_index
    assert info.secrets == ("CHROMA_API_KEY",)


def test_real_chroma_cosine_and_l2_match_numpy(collections, tiny_model, doc_vectors):
    r = make(collections, tiny_model)
    for query in QUERIES:
        cands, _ = r.candidates(query, 4)
        exact = doc_vectors @ query_vector(tiny_model, query)
        order = np.argsort(-exact, kind="stable")[:4]
        assert [c.doc_id for c in cands] == [DOCS[i].id for i in order]
        assert [c.first_stage_score for c in cands] == pytest.approx(exact[order].tolist(), abs=1e-4)
        assert all(c.full_text == CORPUS.get(c.doc_id).full_text for c in cands)  # document + title metadata
    assert r.scale is ScoreScale.COSINE and "collection docs" in r.label

    l2 = make(collections, tiny_model, collection="docs_l2")
    q = query_vector(tiny_model, "shock wave")
    squared = ((doc_vectors * 2.0 - q) ** 2).sum(axis=1)
    order = np.argsort(squared, kind="stable")[:3]
    hits = l2.hits("shock wave", 3)
    assert [h.doc_id for h in hits] == [DOCS[i].id for i in order]
    assert [h.score for h in hits] == pytest.approx((-squared[order]).tolist(), abs=1e-3)
    assert l2.scale is ScoreScale.FIRST_STAGE
    top = int(np.argmax(doc_vectors @ query_vector(tiny_model, "people")))
    assert make(collections, tiny_model).test_connection("people").doc_id == DOCS[top].id


def test_real_chroma_settings_errors(collections, tiny_model):
    with pytest.raises(EngineSettingError) as info:
        make(collections, tiny_model, collection="nope").hits("lift", 2)
    assert info.value.setting == "[methods.chroma] collection" and "docs, docs_l2" in info.value.hint
    with pytest.raises(EngineSettingError) as info:
        make(collections, "sentence-transformers/all-MiniLM-L6-v2").hits("lift", 2)
    assert info.value.setting == "[methods.chroma] model" and "32-dimensional" in info.value.message
    with pytest.raises(EngineSettingError) as info:
        make(collections, tiny_model, title_field="heading").hits("lift", 2)
    assert (
        info.value.setting == "[methods.chroma] title_field"
        and "has no field 'heading'" in info.value.message
    )
    fields = info.value.message.split("its fields: ", 1)[1].rstrip(").")
    assert sorted(fields.split(", ")) == ["doc_id", "document", "title"]  # (Chroma keeps no key order)
    with pytest.raises(ConfigError) as info:
        make(f"{collections}/api/v2", tiny_model).hits("lift", 2)
    assert f'[methods.chroma] url = "{collections}"' in info.value.hint
    with pytest.raises(ConfigError, match="token_header"):
        make(collections, tiny_model, token_header="x-api-key")


def test_errors_retries_timeouts_and_the_token(tiny_model, caplog):
    caplog.set_level(logging.DEBUG)
    with LoopbackServer() as server:
        coll = "/api/v2/tenants/default_tenant/databases/default_database/collections/docs"
        info = {
            "id": "5f1c",
            "name": "docs",
            "configuration_json": {"hnsw": {"space": "cosine"}},
            "dimension": 32,
        }
        answer = {
            "ids": [["c1"]],
            "distances": [[0.25]],
            "documents": [["lift"]],
            "metadatas": [[{"doc_id": "a1", "title": "T"}]],
        }
        query_path = "/api/v2/tenants/default_tenant/databases/default_database/collections/5f1c/query"
        server.queue(
            coll,
            Reply(
                status=429,
                body={"error": "RateLimitError", "message": "slow"},
                headers={"Retry-After": "0.3"},
            ),
            Reply(body=info),
        )
        server.queue(query_path, Reply(status=502, body="bad gateway"), Reply(body=answer))
        t0 = time.perf_counter()
        hits = make(server.url, tiny_model).hits("lift", 1)
        assert time.perf_counter() - t0 >= 0.3
        assert hits[0].doc_id == "a1" and hits[0].score == pytest.approx(0.75) and hits[0].title == "T"
        assert server.calls(coll)[0].headers["x-chroma-token"] == KEY
        assert server.calls(query_path)[-1].body["n_results"] == 1
        assert server.calls(query_path)[-1].body["include"] == ["distances", "documents", "metadatas"]

        server.queue(coll, Reply(body=info))
        server.queue(query_path, *[Reply(body=answer, delay_s=5)] * 2)
        t0 = time.perf_counter()
        with pytest.raises(HostedTimeout) as err:
            make(server.url, tiny_model, timeout_s=0.3, max_retries=1).hits("lift", 1)
        assert time.perf_counter() - t0 < 3 and "[methods.chroma] timeout_s" in err.value.hint

        server.queue(coll, Reply(body=info))
        server.queue(
            query_path, Reply(status=401, body={"error": "AuthError", "message": f"bad token {KEY}"})
        )
        with pytest.raises(HostedCallError) as err:
            make(server.url, tiny_model, token_header="authorization").hits("lift", 1)
        assert "refused the credentials" in err.value.message and "CHROMA_API_KEY" in err.value.hint
        assert server.calls(query_path)[-1].headers["authorization"] == f"Bearer {KEY}"
    with pytest.raises(HostedCallError) as err:
        make(dead_url(), tiny_model, max_retries=1).hits("lift", 1)
    assert "could not connect to Chroma" in err.value.message and "[methods.chroma] url" in err.value.hint
    assert KEY not in caplog.text and KEY not in str(err.value)
