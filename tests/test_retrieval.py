"""First stages: BM25 (bm25s), dense (sentence-transformers), hybrid (RRF), save and load.

Plumbing runs against a tiny random bi-encoder; what the dense retriever finds is checked with the
real packaged all-MiniLM-L6-v2 (marked slow), on a tiny corpus and on a Cranfield subset.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

from rerank_core.config import Settings
from rerank_core.errors import ConfigError, CorpusFormatError, ModelNotFound
from rerank_core.models import MINILM_ID
from rerank_core.registry import create_retriever
from rerank_core.retrieval.bm25 import BM25Retriever, top_k_positions
from rerank_core.retrieval.dense import DenseRetriever
from rerank_core.retrieval.hybrid import HybridRetriever, rrf_fuse
from rerank_core.retrieval.persist import IndexMismatch
from rerank_core.types import Corpus, Document, ScoreScale
from tests.tiny_bi_encoder import tiny_bi_encoder_once

DOCS = [
    Document("cat", "The cat sat on the mat and purred.", title="Feline friends"),
    Document("run", "Running shoes for marathon runners who train every day."),
    Document("py", "A guide to Python programming and debugging."),
    Document("stock", "Stock markets fell sharply on Monday as investors sold shares."),
    Document("fox", "The quick brown fox jumps over the lazy dog."),
    Document("password", "How to reset a forgotten password for your email account."),
    Document("cake", "A recipe for a rich chocolate cake with butter icing."),
]


@pytest.fixture(scope="session")
def tiny_bi_encoder_dir(tmp_path_factory):
    return tiny_bi_encoder_once(tmp_path_factory)


@pytest.fixture(scope="module")
def corpus() -> Corpus:
    return Corpus(DOCS, name="tiny")


@pytest.fixture(scope="module")
def other_corpus() -> Corpus:
    return Corpus([*DOCS[:-1], Document("cake", "A recipe for a lemon cake.")], name="tiny-edited")


def ids(hits):
    return [d for d, _ in hits]


# -- BM25 -----------------------------------------------------------------------------------------
def test_bm25_ranks_the_exact_term_document_first(corpus):
    r = BM25Retriever().build(corpus)
    hits = r.search("python debugging", 5)
    assert ids(hits) == ["py"]  # only documents containing a query term are returned
    assert hits[0][1] > 0
    assert r.scale is ScoreScale.BM25
    more = r.search("the stock of shoes", 10)
    assert set(ids(more)) == {"stock", "run"}
    assert [s for _, s in more] == sorted((s for _, s in more), reverse=True)


def test_bm25_indexes_the_title(corpus):
    r = BM25Retriever().build(corpus)
    assert ids(r.search("feline", 3)) == ["cat"]  # "feline" appears only in the title


def test_bm25_stemming_option_changes_matching(corpus):
    stemmed = BM25Retriever(stemmer="english").build(corpus)
    plain = BM25Retriever(stemmer=None).build(corpus)
    assert ids(stemmed.search("run", 5)) == ["run"]  # "running" stems to "run"
    assert plain.search("run", 5) == []  # no exact "run" token in the corpus
    assert ids(plain.search("running", 5)) == ["run"]
    assert "english stemming" in stemmed.label and "no stemming" in plain.label


def test_bm25_stopwords_option(corpus):
    with_stop = BM25Retriever(stopwords="en").build(corpus)
    without = BM25Retriever(stopwords=None).build(corpus)
    custom = BM25Retriever(stopwords=["cat", "mat"]).build(corpus)
    assert with_stop.search("the", 10) == []  # a query of stopwords has no known token: no hits, no error
    assert set(ids(without.search("the", 10))) == {"cat", "fox"}
    assert custom.search("cat mat", 10) == []
    assert ids(custom.search("the cat purred", 10))[0] == "cat"


def test_bm25_unknown_words_and_large_k(corpus):
    r = BM25Retriever(stopwords=None).build(corpus)
    assert r.search("zzzz qqqq", 10) == []
    assert r.search("", 10) == [] and r.search("cat", 0) == []
    hits = r.search("the a for", 1000)  # k larger than the corpus
    assert 0 < len(hits) <= len(corpus)
    assert len({d for d, _ in hits}) == len(hits)


def test_bm25_candidates_carry_the_document(corpus):
    r = create_retriever("bm25").build(corpus)
    cands, result = r.candidates("feline cat", 3)
    assert cands[0].doc_id == "cat" and cands[0].title == "Feline friends" and "purred" in cands[0].text
    assert [c.first_stage_rank for c in cands] == list(range(1, len(cands) + 1))
    assert result.scale is ScoreScale.BM25 and result.ids == [c.doc_id for c in cands]


def test_bm25_rejects_bad_options_and_empty_corpus():
    with pytest.raises(ConfigError, match="stemmer"):
        BM25Retriever(stemmer="klingon")
    with pytest.raises(ConfigError, match="stopword"):
        BM25Retriever(stopwords="xx")
    with pytest.raises(ConfigError, match="method"):
        BM25Retriever(method="bm99")
    with pytest.raises(ConfigError, match="unknown bm25 option"):
        BM25Retriever(k3=1.0)
    with pytest.raises(CorpusFormatError, match="no documents"):
        BM25Retriever().build(Corpus([], name="empty"))


@pytest.mark.parametrize("method", ["lucene", "robertson", "atire", "bm25l", "bm25+"])
def test_bm25_variants_rank_the_matching_document_first(corpus, method):
    r = BM25Retriever(method=method).build(corpus)
    assert ids(r.search("chocolate cake recipe", 3))[0] == "cake"


def test_top_k_positions_breaks_ties_by_position():
    values = np.array([1.0, 3.0, 3.0, 2.0, 3.0])
    assert top_k_positions(np.arange(5), values, 2).tolist() == [1, 2]
    assert top_k_positions(np.arange(5), values, 10).tolist() == [1, 2, 4, 3, 0]


def test_bm25_save_load_round_trip_and_mismatch(corpus, other_corpus, tmp_path):
    r = BM25Retriever(stemmer="english", stopwords=["the"], k1=1.2, b=0.6, method="bm25+").build(corpus)
    r.save(tmp_path / "bm25")
    meta = json.loads((tmp_path / "bm25" / "meta.json").read_text())
    assert meta["corpus_fingerprint"] == corpus.fingerprint and meta["retriever"] == "bm25"
    assert meta["options"]["k1"] == 1.2 and meta["options"]["method"] == "bm25+"
    loaded = BM25Retriever.load(tmp_path / "bm25", corpus)
    assert loaded.options == r.options
    for q in ["the cat", "running shoes", "stock markets fell", "nothing here zzz"]:
        assert loaded.search(q, 5) == r.search(q, 5)
    with pytest.raises(IndexMismatch) as err:
        BM25Retriever.load(tmp_path / "bm25", other_corpus)
    assert corpus.fingerprint in str(err.value) and other_corpus.fingerprint in str(err.value)
    assert err.value.hint and "rebuild" in err.value.hint
    with pytest.raises(IndexMismatch, match="'bm25' index, not a 'dense'"):
        DenseRetriever.load(tmp_path / "bm25", corpus)
    with pytest.raises(ConfigError, match="meta.json is missing"):
        BM25Retriever.load(tmp_path / "nowhere", corpus)


# -- dense ----------------------------------------------------------------------------------------
def test_unavailable_dense_model_fails_fast_and_names_it(corpus):
    t0 = time.perf_counter()
    with pytest.raises(ModelNotFound) as err:
        DenseRetriever(model="no-such-org/no-such-model").build(corpus)
    assert time.perf_counter() - t0 < 5
    assert "no-such-org/no-such-model" in str(err.value) and err.value.hint


def test_dense_with_a_local_model_path(corpus, tiny_bi_encoder_dir, tmp_path, other_corpus):
    seen = []
    r = DenseRetriever(model=str(tiny_bi_encoder_dir), batch_size=2)
    r.build(corpus, progress=lambda done, total, msg: seen.append((done, total)))
    assert seen[0] == (0, len(corpus)) and seen[-1] == (len(corpus), len(corpus))
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)
    emb = r.embeddings
    assert emb is not None and emb.dtype == np.float32 and emb.shape == (len(corpus), 32)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    hits = r.search("cat on a mat", 100)
    assert len(hits) == len(corpus)  # k larger than the corpus
    scores = [s for _, s in hits]
    assert scores == sorted(scores, reverse=True) and all(-1.0001 <= s <= 1.0001 for s in scores)
    # the score is the cosine of the query and document embeddings
    q = r.encode(["cat on a mat"])[0]
    for doc_id, score in hits:
        assert score == pytest.approx(float(emb[corpus.index_of(doc_id)] @ q), abs=1e-5)
    assert "tiny-bi-encoder" in r.label and r.scale is ScoreScale.COSINE

    r.save(tmp_path / "dense")
    assert (tmp_path / "dense" / "embeddings.npy").exists()
    loaded = DenseRetriever.load(tmp_path / "dense", corpus)
    assert loaded.model_name == str(tiny_bi_encoder_dir)
    assert loaded.search("stock market", 4) == r.search("stock market", 4)
    with pytest.raises(IndexMismatch, match="rebuild|built for"):
        DenseRetriever.load(tmp_path / "dense", other_corpus)


def test_dense_unnormalised_is_not_called_cosine(corpus, tiny_bi_encoder_dir):
    r = DenseRetriever(model=str(tiny_bi_encoder_dir), normalize=False).build(corpus)
    assert r.scale is ScoreScale.FIRST_STAGE and "dot product" in r.label


# -- hybrid ---------------------------------------------------------------------------------------
def test_rrf_matches_hand_computed_fusion():
    fused = rrf_fuse([["a", "b", "c"], ["c", "a", "d"]], rrf_k=60)
    expected = {
        "a": 1 / 61 + 1 / 62,
        "b": 1 / 62,
        "c": 1 / 63 + 1 / 61,
        "d": 1 / 63,
    }
    assert [d for d, _ in fused] == ["a", "c", "b", "d"]
    for doc_id, score in fused:
        assert score == pytest.approx(expected[doc_id], rel=1e-12)
    # equal fused scores: the better single-list rank wins, then first appearance
    assert [d for d, _ in rrf_fuse([["x", "y"], ["y", "x"]], rrf_k=0)] == ["x", "y"]
    assert [d for d, _ in rrf_fuse([["p"], ["q"], []], rrf_k=10)] == ["p", "q"]


def _expected_fusion(bm25, dense, query, depth, rrf_k):
    expected: dict[str, float] = {}
    for side in (bm25.search(query, depth), dense.search(query, depth)):
        for rank, (doc_id, _) in enumerate(side, start=1):
            expected[doc_id] = expected.get(doc_id, 0.0) + 1.0 / (rrf_k + rank)
    return expected


def test_hybrid_fuses_its_two_sides(corpus, tiny_bi_encoder_dir, tmp_path, other_corpus):
    h = HybridRetriever(dense_model=str(tiny_bi_encoder_dir), bm25_stopwords=None, rrf_k=10, depth=4)
    h.build(corpus)
    assert h.bm25.options["stopwords"] is None and h.dense.model_name == str(tiny_bi_encoder_dir)
    assert h.scale is ScoreScale.RRF and "RRF" in h.label and "BM25" in h.label
    query = "the cat and the stock market"
    hits = h.search(query, 3)
    expected = _expected_fusion(h.bm25, h.dense, query, 4, 10)
    assert len(hits) == 3
    for doc_id, score in hits:
        assert score == pytest.approx(expected[doc_id], rel=1e-9)
    assert [s for _, s in hits] == pytest.approx(sorted(expected.values(), reverse=True)[:3])
    # a query with no BM25 term still gets the dense side's documents
    only_dense = h.search("zzzz", 5)
    assert ids(only_dense) == ids(h.dense.search("zzzz", 5))
    assert [s for _, s in only_dense] == pytest.approx([1 / (10 + r) for r in range(1, 6)])

    h.save(tmp_path / "hybrid")
    loaded = HybridRetriever.load(tmp_path / "hybrid", corpus)
    assert loaded.options == h.options and loaded.search(query, 5) == h.search(query, 5)
    with pytest.raises(IndexMismatch):
        HybridRetriever.load(tmp_path / "hybrid", other_corpus)


def test_hybrid_from_parts_does_not_rebuild(corpus, other_corpus, tiny_bi_encoder_dir):
    bm25 = BM25Retriever().build(corpus)
    dense = DenseRetriever(model=str(tiny_bi_encoder_dir)).build(corpus)
    h = HybridRetriever.from_parts(bm25, dense)
    assert h.bm25 is bm25 and h.dense is dense and h.corpus is corpus
    assert h.depth_for(10) == 100 and h.depth_for(500) == 500
    assert ids(h.search("python debugging", 2))[0] == "py"
    with pytest.raises(IndexMismatch):
        HybridRetriever.from_parts(BM25Retriever().build(other_corpus), dense)
    with pytest.raises(ConfigError, match="built retrievers"):
        HybridRetriever.from_parts(BM25Retriever(), dense)
    with pytest.raises(ConfigError, match="unknown hybrid option"):
        HybridRetriever(weights=[1, 2])


# -- the real MiniLM ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def minilm_dense(corpus):
    return DenseRetriever().build(corpus)


@pytest.mark.slow
def test_dense_minilm_ranks_a_paraphrase_above_unrelated_documents(minilm_dense):
    assert minilm_dense.model_name == MINILM_ID and "all-MiniLM-L6-v2" in minilm_dense.label
    hits = minilm_dense.search("I cannot remember the login credentials for my mailbox", 7)
    assert hits[0][0] == "password"
    scores = dict(hits)
    assert scores["password"] > scores["cake"] + 0.2
    assert ids(minilm_dense.search("baking a dessert", 1)) == ["cake"]


def _cranfield_subset(cranfield_dir: Path, n: int = 150) -> tuple[Corpus, dict[str, str]]:
    docs = []
    with open(cranfield_dir / "corpus.jsonl", encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            docs.append(Document(row["_id"], row["text"], title=row.get("title", "")))
            if len(docs) == n:
                break
    return Corpus(docs, name=f"cranfield-{n}"), {d.id: d.title for d in docs}


@pytest.mark.slow
def test_minilm_dense_and_hybrid_on_a_cranfield_subset(cranfield_dir):
    sub, titles = _cranfield_subset(cranfield_dir)
    bm25 = BM25Retriever().build(sub)
    dense = DenseRetriever(settings=Settings()).build(sub)
    hybrid = HybridRetriever.from_parts(bm25, dense)
    picked = ["12", "51", "100", "140"]
    for doc_id in picked:  # a document's own title finds it
        assert ids(dense.search(titles[doc_id], 3))[0] == doc_id
        assert ids(hybrid.search(titles[doc_id], 3))[0] == doc_id
    query = "heat transfer in laminar boundary layers at high speed"
    expected = _expected_fusion(bm25, dense, query, 100, 60)
    for doc_id, score in hybrid.search(query, 10):
        assert score == pytest.approx(expected[doc_id], rel=1e-9)
