"""The bi-encoder rescoring method: embeddings kept per text, real MiniLM behaviour."""

from __future__ import annotations

import numpy as np
import pytest
from tiny_bi_encoder import tiny_bi_encoder_once

from rerank_core.config import Settings
from rerank_core.registry import create_reranker
from rerank_core.types import Candidate, Corpus, Document, MethodSpec, ScoreScale


def cands(*texts):
    return [
        Candidate(doc_id=f"d{i}", text=t, first_stage_rank=i + 1, first_stage_score=0.0)
        for i, t in enumerate(texts)
    ]


def test_prepared_documents_are_not_encoded_again(tmp_path_factory, tmp_path):
    path = tiny_bi_encoder_once(tmp_path_factory)
    reranker = create_reranker(MethodSpec("bi-encoder", str(path)), Settings(data_dir=tmp_path))
    texts = ["lift on a wing", "drag on a cylinder", "heat transfer to a cone"]
    reranker.prepare(Corpus([Document(id=f"d{i}", text=t) for i, t in enumerate(texts)]))
    encoded: list[int] = []
    original = reranker.encoder.encode
    reranker.encoder.encode = lambda batch: (encoded.append(len(batch)), original(batch))[1]
    result = reranker.rerank("wing lift", cands(*texts))
    assert result.ok and encoded == [1]  # only the query
    assert result.scale == ScoreScale.COSINE
    # cosine of unit vectors
    assert all(-1.0 - 1e-5 <= it.score <= 1.0 + 1e-5 for it in result.items)


def test_unprepared_candidates_are_embedded_once_and_noted(tmp_path_factory, tmp_path):
    path = tiny_bi_encoder_once(tmp_path_factory)
    reranker = create_reranker(MethodSpec("bi-encoder", str(path)), Settings(data_dir=tmp_path))
    first = reranker.rerank("q", cands("a b", "c d"))
    assert any("embedded at query time" in n for n in first.notes)
    second = reranker.rerank("q", cands("a b", "c d"))
    assert second.notes == () and second.ids == first.ids


def test_dense_and_bi_encoder_share_one_cache_that_survives_a_restart(tmp_path_factory, tmp_path):
    """What the dense index embedded, the bi-encoder does not embed again, in this process or the next."""
    from rerank_core.artifacts import forget_stores
    from rerank_core.encoders import clear_shared_models
    from rerank_core.retrieval.dense import DenseRetriever

    path = tiny_bi_encoder_once(tmp_path_factory)
    settings = Settings(data_dir=tmp_path)
    texts = ["lift on a wing", "drag on a cylinder", "heat transfer to a cone", "shock waves in nozzles"]
    corpus = Corpus([Document(id=f"d{i}", text=t) for i, t in enumerate(texts)])
    dense = DenseRetriever(settings=settings, model=str(path)).build(corpus)
    assert dense.embedded_now == len(texts)
    reranker = create_reranker(MethodSpec("bi-encoder", str(path)), settings)
    assert reranker.prepared(corpus)  # nothing left to embed
    result = reranker.rerank("wing lift", cands(*texts))
    assert result.notes == ()
    np.testing.assert_allclose(
        [it.score for it in sorted(result.items, key=lambda it: it.doc_id)],
        dense.embeddings @ dense.encode(["wing lift"])[0],
        atol=1e-5,
    )
    # a new process: the cache is read from disk, nothing is embedded
    forget_stores()
    clear_shared_models()
    again = DenseRetriever(settings=settings, model=str(path)).build(corpus)
    assert again.embedded_now == 0
    np.testing.assert_array_equal(again.embeddings, dense.embeddings)


def test_unknown_option_is_a_clear_error():
    from rerank_core.errors import ConfigError

    with pytest.raises(ConfigError, match="batch_size"):
        create_reranker("bi-encoder", Settings(), window=3)


@pytest.mark.slow
def test_real_minilm_prefers_the_paraphrase(minilm_path, tmp_path):
    reranker = create_reranker("bi-encoder", Settings(data_dir=tmp_path))
    result = reranker.rerank(
        "how do I keep my savings growing",
        cands("a recipe for sourdough bread", "compound interest makes money grow over time"),
    )
    assert result.ids[0] == "d1"
    direct = reranker.encoder.model.encode(
        ["how do I keep my savings growing", "compound interest makes money grow over time"],
        normalize_embeddings=True,
    )
    assert result.items[0].score == pytest.approx(float(np.dot(direct[0], direct[1])), abs=1e-5)
