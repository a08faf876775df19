"""The pgvector first stage and its loader against a real PostgreSQL 18 with pgvector (no mocks).

Small tables are embedded with the tiny random-weight bi-encoder (its rankings mean nothing; the
tests compare the database's answer with an exact numpy search over the same vectors). The slow
test puts Cranfield into a table with the real packaged MiniLM and runs ``evaluate``.
"""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

import numpy as np
import pytest

from rerank_core.cli import main as cli_main
from rerank_core.config import Settings
from rerank_core.errors import ConfigError, EngineSettingError, HostedCallError
from rerank_core.registry import create_retriever, method_info
from rerank_core.retrieval.pgvector import PgvectorRetriever, libpq_url, load_table
from rerank_core.types import Corpus, Document, ScoreScale
from tests.tiny_models import WORDS


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> str:
    from tiny_bi_encoder import tiny_bi_encoder_once

    return str(tiny_bi_encoder_once(tmp_path_factory))


def synthetic_corpus(n: int, seed: int = 7) -> Corpus:
    rng = random.Random(seed)
    words = list(WORDS)
    docs = [
        Document(
            id=f"doc-{i:03d}",
            title=" ".join(rng.sample(words, 2)) if i % 3 else "",
            text=" ".join(rng.sample(words, rng.randint(5, 14))),
        )
        for i in range(n)
    ]
    return Corpus(docs, name=f"synthetic-{n}")


QUERIES = ["time and people", "the number of groups", "new world work", "small case"]


def encode(model_dir: str, texts: list[str], normalize: bool) -> np.ndarray:
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(model_dir, device="cpu")
    return np.asarray(model.encode(texts, normalize_embeddings=normalize), dtype=np.float32)


def make(url: str, **options) -> PgvectorRetriever:
    opts = {"url": url, "table": "docs", "title_column": "title", "max_retries": 0, **options}
    r = create_retriever("pgvector", Settings(methods={"pgvector": opts}))
    assert isinstance(r, PgvectorRetriever)
    return r


def test_metadata():
    info = method_info("pgvector")
    assert info.is_first_stage and info.hosted and not info.offline and not info.needs_index
    assert info.secrets == ("RERANK_PGVECTOR_URL",) and info.default_model.endswith("all-MiniLM-L6-v2")


def test_loaded_table_equals_an_exact_cosine_search_and_the_dense_first_stage(postgres_url, tiny_model):
    corpus = synthetic_corpus(30)
    summary = load_table(corpus, postgres_url, "docs", model=tiny_model)
    assert summary["documents"] == 30 and summary["dimension"] == 32 and summary["index"] == "none"

    r = make(postgres_url, model=tiny_model).build(corpus)
    dense = create_retriever("dense", Settings(), model=tiny_model).build(corpus)
    doc_vecs = encode(tiny_model, [d.full_text for d in corpus], normalize=True)
    assert r.scale is ScoreScale.COSINE
    for query in QUERIES:
        cands, _ = r.candidates(query, 8)
        q = encode(tiny_model, [query], normalize=True)[0]
        exact = doc_vecs @ q
        order = np.argsort(-exact, kind="stable")[:8]
        assert [c.doc_id for c in cands] == [corpus[i].id for i in order]
        assert [c.first_stage_score for c in cands] == pytest.approx(exact[order].tolist(), abs=1e-5)
        assert [c.doc_id for c in cands] == [d for d, _ in dense.search(query, 8)]
        assert all(
            c.full_text == corpus.get(c.doc_id).full_text for c in cands
        )  # title and text from the table


def test_each_distance_equals_numpy_over_the_same_vectors(postgres_url, tiny_model):
    """Document vectors of different lengths, so the three distances order the table differently."""
    import psycopg
    from pgvector.psycopg import register_vector

    corpus = synthetic_corpus(40, seed=11)
    lengths = np.random.default_rng(5).uniform(0.3, 3.0, size=(len(corpus), 1)).astype(np.float32)
    doc_vecs = encode(tiny_model, [d.full_text for d in corpus], normalize=False) * lengths
    with psycopg.connect(libpq_url(postgres_url), autocommit=True) as conn:
        register_vector(conn)
        conn.execute("CREATE TABLE docs (id text PRIMARY KEY, title text, text text, embedding vector(32))")
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO docs VALUES (%s, %s, %s, %s)",
                [(d.id, d.title, d.text, v) for d, v in zip(corpus, doc_vecs, strict=True)],
            )
    orders: dict[str, list[list[str]]] = {}
    for distance in ("cosine", "l2", "inner_product"):
        r = make(postgres_url, model=tiny_model, distance=distance, normalize=False).build(corpus)
        assert r.scale is (ScoreScale.COSINE if distance == "cosine" else ScoreScale.FIRST_STAGE)
        orders[distance] = []
        for query in QUERIES:
            q = encode(tiny_model, [query], normalize=False)[0]
            if distance == "cosine":
                score = doc_vecs @ q / (np.linalg.norm(doc_vecs, axis=1) * np.linalg.norm(q))
            elif distance == "l2":
                score = -np.linalg.norm(doc_vecs - q, axis=1)
            else:
                score = doc_vecs @ q
            order = np.argsort(-score, kind="stable")[:10]
            hits = r.hits(query, 10)
            assert [h.doc_id for h in hits] == [corpus[i].id for i in order], (distance, query)
            assert [h.score for h in hits] == pytest.approx(score[order].tolist(), rel=1e-4, abs=1e-4)
            orders[distance].append([h.doc_id for h in hits])
    # the three really differ here, so each comparison above could have failed
    assert orders["cosine"] != orders["l2"] and orders["l2"] != orders["inner_product"]


def test_hnsw_index_still_returns_k_beyond_the_default_ef_search(postgres_url, tiny_model):
    corpus = synthetic_corpus(90, seed=3)
    load_table(corpus, postgres_url, "docs", model=tiny_model, index="hnsw")
    r = make(postgres_url, model=tiny_model).build(corpus)
    hits = r.hits("time and people", 60)  # pgvector's default hnsw.ef_search is 40
    assert len(hits) == 60 and len({h.doc_id for h in hits}) == 60
    scores = [h.score for h in hits]
    assert scores == sorted(scores, reverse=True)


def test_settings_errors_name_the_setting(postgres_url, postgres_server, tiny_model):
    import psycopg

    corpus = synthetic_corpus(12)
    load_table(corpus, postgres_url, "docs", model=tiny_model)
    with pytest.raises(EngineSettingError) as info:
        make(postgres_url, table="nope", model=tiny_model).hits("time", 3)
    assert info.value.setting == "[methods.pgvector] table" and "public.docs" in info.value.message
    with pytest.raises(EngineSettingError) as info:
        make(postgres_url, text_column="body", model=tiny_model).hits("time", 3)
    assert (
        info.value.setting == "[methods.pgvector] text_column"
        and "embedding vector(32)" in info.value.message
    )
    with pytest.raises(EngineSettingError) as info:
        make(postgres_url, embedding_column="text", model=tiny_model).hits("time", 3)
    assert (
        info.value.setting == "[methods.pgvector] embedding_column"
        and "not a pgvector vector" in info.value.message
    )
    with pytest.raises(EngineSettingError) as info:
        make(postgres_url).hits("time", 3)  # the default MiniLM: 384 dimensions against 32
    assert info.value.setting == "[methods.pgvector] model" and "32-dimensional" in info.value.message

    with psycopg.connect(libpq_url(postgres_url), autocommit=True) as conn:  # a 32-d table of another model
        conn.execute("""COMMENT ON TABLE docs IS 'rerank-playground {"model": "org/other-32d"}'""")
    with pytest.raises(EngineSettingError) as info:
        make(postgres_url, model=tiny_model).hits("time", 3)
    assert "filled with embeddings of 'org/other-32d'" in info.value.message
    assert 'model = "org/other-32d"' in info.value.hint

    with pytest.raises(ConfigError, match="distance = 'dot'"):
        make(postgres_url, distance="dot")
    with pytest.raises(ConfigError, match=r"url is not set and RERANK_PGVECTOR_URL is empty"):
        create_retriever("pgvector", Settings(methods={"pgvector": {"table": "docs"}})).hits("time", 3)
    with pytest.raises(ConfigError, match=r"\[methods.pgvector\] table is not set"):
        create_retriever("pgvector", Settings(methods={"pgvector": {"url": postgres_url}})).hits("time", 3)

    with pytest.raises(EngineSettingError, match="is not a PostgreSQL URL"):
        make("mysql://x", model=tiny_model).hits("time", 3)
    missing_db = postgres_url.rsplit("/", 1)[0] + "/no_such_db?" + postgres_url.split("?", 1)[1]
    with pytest.raises(EngineSettingError) as info:
        make(missing_db, model=tiny_model).hits("time", 3)
    assert info.value.setting == "[methods.pgvector] url" and "no_such_db" in info.value.message

    with psycopg.connect(postgres_server, autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS plain_db")
        conn.execute("CREATE DATABASE plain_db")
    plain = postgres_url.rsplit("/", 1)[0] + "/plain_db?" + postgres_url.split("?", 1)[1]
    with pytest.raises(EngineSettingError) as info:
        make(plain, model=tiny_model).hits("time", 3)
    assert "no vector type" in info.value.message and "CREATE EXTENSION vector" in info.value.hint


def test_a_dead_server_and_the_password_never_shown(tiny_model, caplog):
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    secret_url = f"postgresql://reader:pw-DO-NOT-LEAK@127.0.0.1:{port}/db"
    settings = Settings(
        methods={
            "pgvector": {"table": "docs", "max_retries": 1, "backoff_base_s": 0.01, "model": tiny_model}
        },
        secrets={"RERANK_PGVECTOR_URL": secret_url},
    )
    r = create_retriever("pgvector", settings)
    with pytest.raises(HostedCallError) as info:
        r.hits("time", 3)
    assert "could not connect" in info.value.message and "after 2 attempts" in info.value.message
    assert "RERANK_PGVECTOR_URL" in info.value.hint
    assert "pw-DO-NOT-LEAK" not in str(info.value) and "pw-DO-NOT-LEAK" not in r.label
    assert "pw-DO-NOT-LEAK" not in caplog.text and f"127.0.0.1:{port}" in r.label
    t0 = time.perf_counter()
    with pytest.raises(HostedCallError, match="Not tried again"):
        r.hits("time", 3)  # the next query does not spend its retries on a dead server again
    assert time.perf_counter() - t0 < 0.5
    with pytest.raises(HostedCallError, match="could not connect"):
        r.test_connection()  # the button always tries


def test_sql_template(postgres_url, tiny_model):
    corpus = synthetic_corpus(20)
    load_table(corpus, postgres_url, "docs", model=tiny_model)
    sql = (
        "SELECT id, text, 1 - (embedding <=> %(query_embedding)s) AS score FROM docs "
        "ORDER BY embedding <=> %(query_embedding)s LIMIT %(k)s"
    )
    custom = make(postgres_url, model=tiny_model, sql=sql).build(corpus)
    plain = make(postgres_url, model=tiny_model).build(corpus)
    got = custom.candidates("time and people", 5)[0]
    want = plain.candidates("time and people", 5)[0]
    assert [c.doc_id for c in got] == [c.doc_id for c in want]
    assert [c.first_stage_score for c in got] == pytest.approx([c.first_stage_score for c in want], abs=1e-6)
    assert got[0].title == corpus.get(got[0].doc_id).title  # no title column: from the corpus by id
    with pytest.raises(EngineSettingError, match="must return id and score"):
        make(postgres_url, model=tiny_model, sql="SELECT id FROM docs LIMIT %(k)s").hits("x", 3)
    with pytest.raises(EngineSettingError) as info:
        make(postgres_url, model=tiny_model, sql="SELEC id FROM docs").hits("x", 3)
    assert info.value.setting == "[methods.pgvector] sql" and "syntax error" in info.value.message


def test_test_connection_and_text_from_the_corpus(postgres_url, tiny_model):
    corpus = synthetic_corpus(10)
    load_table(corpus, postgres_url, "docs", model=tiny_model)
    hit = make(postgres_url, model=tiny_model).build(corpus).test_connection("time")
    assert (
        hit is not None
        and hit.text == corpus.get(hit.doc_id).text
        and hit.title == corpus.get(hit.doc_id).title
    )
    by_id = make(postgres_url, model=tiny_model, text_column="", title_column="").build(corpus)
    cands, _ = by_id.candidates("time", 3)
    assert all(c.text == corpus.get(c.doc_id).text for c in cands)


def _beir_folder(path: Path, corpus: Corpus) -> Path:
    path.mkdir(parents=True)
    with open(path / "corpus.jsonl", "w", encoding="utf-8") as f:
        for d in corpus:
            f.write(json.dumps({"_id": d.id, "title": d.title, "text": d.text}) + "\n")
    (path / "queries.jsonl").write_text(json.dumps({"_id": "q1", "text": "time"}) + "\n", encoding="utf-8")
    return path


def test_the_load_command(postgres_url, tiny_model, tmp_path, capsys):
    corpus = synthetic_corpus(15)
    folder = _beir_folder(tmp_path / "beir", corpus)
    args = ["pgvector", "load", "--dataset", str(folder), "--url", postgres_url, "--table", "docs",
            "--model", tiny_model, "--no-progress"]  # fmt: skip
    assert cli_main(args) == 0
    err = capsys.readouterr().err
    assert "15 documents in table docs (32-d vectors" in err and "[methods.pgvector]" in err
    assert cli_main(args) == 2
    assert "table 'docs' already exists" in capsys.readouterr().err
    assert cli_main([*args, "--replace", "--index", "hnsw"]) == 0
    hits = make(postgres_url, model=tiny_model).build(corpus).hits("time", 5)
    assert len(hits) == 5


# -- Cranfield with the real MiniLM ------------------------------------------------------------------
@pytest.mark.slow
def test_cranfield_in_pgvector_matches_dense(postgres_url, cranfield_dir, minilm_path, tmp_path, capsys):
    """``evaluate --first-stage pgvector`` gives nDCG@10 within 0.005 of ``--first-stage dense``, and
    ``--methods bm25,pgvector`` evaluates both as retrievers."""
    load = ["pgvector", "load", "--dataset", str(cranfield_dir), "--url", postgres_url, "--table", "cranfield",
            "--no-progress"]  # fmt: skip
    assert cli_main(load) == 0, capsys.readouterr().err
    config = tmp_path / "rerank.toml"
    config.write_text(
        f'data_dir = "{tmp_path / "data"}"\n\n[methods.pgvector]\nurl = "{postgres_url}"\ntable = "cranfield"\n'
        'id_column = "id"\ntitle_column = "title"\ntext_column = "text"\nembedding_column = "embedding"\n'
        'model = "sentence-transformers/all-MiniLM-L6-v2"\ndistance = "cosine"\n',
        encoding="utf-8",
    )

    def evaluate(first_stage: str, methods: str, name: str) -> dict:
        out = tmp_path / f"{name}.json"
        code = cli_main(
            [
                "evaluate",
                "--dataset",
                str(cranfield_dir),
                "--first-stage",
                first_stage,
                "--depth",
                "100",
                "--methods",
                methods,
                "--output",
                str(out),
                "--run-dir",
                str(tmp_path / f"runs-{name}"),
                "--config",
                str(config),
                "--no-progress",
            ]  # fmt: skip
        )
        assert code == 0, capsys.readouterr().err
        return json.loads(out.read_text())

    pg = evaluate("pgvector", "pgvector", "pg")
    dense = evaluate("dense", "dense", "dense")
    both = evaluate("bm25", "bm25,pgvector", "both")
    pg_ndcg = pg["methods"]["pgvector"]["metrics"]["nDCG@10"]
    dense_ndcg = dense["methods"]["dense"]["metrics"]["nDCG@10"]
    print(f"Cranfield nDCG@10: pgvector {pg_ndcg:.4f}, dense {dense_ndcg:.4f}")
    assert pg["queries"] == dense["queries"] == 225
    assert abs(pg_ndcg - dense_ndcg) <= 0.005
    assert (
        both["methods"]["pgvector"]["kind"] == "first-stage"
        and both["methods"]["bm25"]["kind"] == "first-stage"
    )
    assert both["methods"]["pgvector"]["metrics"]["nDCG@10"] == pytest.approx(pg_ndcg, abs=1e-12)
    assert both["methods"]["bm25"]["available"] and both["methods"]["pgvector"]["available"]
