"""Zero-shot late interaction (MaxSim over bi-encoder token embeddings).

The MaxSim rule is checked by hand on given token matrices; the store, truncation and the
contract run against a tiny random bi-encoder; the real packaged MiniLM is checked on a
Cranfield subset (marked slow).
"""

from __future__ import annotations

import json
import threading
import time

import numpy as np
import pytest

from rerank_core.errors import ConfigError
from rerank_core.models import MINILM_ID
from rerank_core.registry import create_reranker
from rerank_core.rerankers.late_interaction import LateInteractionReranker, maxsim_scores, text_hash
from rerank_core.types import Candidate, Corpus, Document, ScoreScale
from tests.tiny_bi_encoder import TINY_MAX_LENGTH, tiny_bi_encoder_once

DOCS = [
    Document("d1", "the cat sat on the mat", title="cats"),
    Document("d2", "stock market prices fell today"),
    Document("d3", "heat transfer in a laminar boundary layer"),
    Document("d4", "the river flows to the sea"),
    Document("d5", "a long document " + "word " * 200),  # far past the tiny model's 64 tokens
]


@pytest.fixture(scope="session")
def tiny_bi_encoder_dir(tmp_path_factory):
    return tiny_bi_encoder_once(tmp_path_factory)


def as_candidates(docs, order=None):
    order = order or range(len(docs))
    return [
        Candidate(
            doc_id=docs[i].id,
            text=docs[i].text,
            title=docs[i].title,
            first_stage_rank=r,
            first_stage_score=1.0 / r,
        )
        for r, i in enumerate(order, start=1)
    ]


class EncodeCounter:
    """Wraps the model's ``encode`` and records the texts of every call."""

    def __init__(self, reranker: LateInteractionReranker, monkeypatch):
        reranker.load()
        self.calls: list[list[str]] = []
        model = reranker._encoder
        original = model.encode

        def counting(texts, *args, **kwargs):
            self.calls.append(list(texts))
            return original(texts, *args, **kwargs)

        monkeypatch.setattr(model, "encode", counting)

    @property
    def texts(self) -> int:
        return sum(len(c) for c in self.calls)


# -- MaxSim by hand -------------------------------------------------------------------------------
def test_maxsim_equals_hand_computation():
    q = np.array([[1.0, 0.0], [0.0, 1.0]])
    d1 = np.array([[1.0, 0.0], [0.6, 0.8]])  # q1 best 1.0 (token 1), q2 best 0.8 (token 2)
    d2 = np.array([[0.0, 1.0]])  # q1 best 0.0, q2 best 1.0
    d3 = np.array([[-0.6, 0.8], [-1.0, 0.0], [0.8, -0.6]])  # q1 best 0.8, q2 best 0.8
    empty = np.zeros((0, 2))
    scores = maxsim_scores(q, [d1, d2, empty, d3])
    np.testing.assert_allclose(scores, [1.8, 1.0, 0.0, 1.6], rtol=1e-6)
    # one query token: the best single document token; negative maxima count as they are
    np.testing.assert_allclose(maxsim_scores(np.array([[0.0, -1.0]]), [d1, d3]), [0.0, 0.6], atol=1e-7)
    assert maxsim_scores(np.zeros((0, 2)), [d1]).tolist() == [0.0]
    assert maxsim_scores(q, []).shape == (0,)


def test_maxsim_matches_a_loop_on_random_matrices():
    rng = np.random.default_rng(0)
    q = rng.normal(size=(5, 8)).astype(np.float32)
    docs = [rng.normal(size=(n, 8)).astype(np.float16) for n in (1, 7, 3, 12)]
    expected = [sum(max(float(qi @ dj.astype(np.float32)) for dj in d) for qi in q) for d in docs]
    np.testing.assert_allclose(maxsim_scores(q, docs), expected, rtol=1e-5, atol=1e-5)


def test_store_key_is_the_candidate_text_hash():
    for doc in DOCS:
        cand = as_candidates([doc])[0]
        assert text_hash(doc.full_text) == cand.text_hash


# -- with the tiny random bi-encoder (plumbing, fast) ----------------------------------------------
@pytest.fixture
def tiny(tiny_bi_encoder_dir):
    return create_reranker(f"late-interaction:{tiny_bi_encoder_dir}")


def test_contract_basics(tiny):
    cands = as_candidates(DOCS, order=[2, 0, 4, 1, 3])
    first = tiny.rerank("cat on a mat", cands)
    assert first.ok, first.error
    assert first.scale is ScoreScale.MAXSIM
    assert sorted(first.ids) == sorted(c.doc_id for c in cands)
    assert [it.rank for it in first.items] == [1, 2, 3, 4, 5]
    assert [it.score for it in first.items] == sorted((it.score for it in first.items), reverse=True)
    again = tiny.rerank("cat on a mat", cands)
    assert again.ids == first.ids and [i.score for i in again.items] == [i.score for i in first.items]
    assert len(tiny.rerank("cat on a mat", cands, top_k=2).items) == 2
    assert tiny.rerank("cat on a mat", []).items == ()
    raw = tiny.score("cat on a mat", cands)
    assert len(raw.values) == len(cands) and len(raw.truncated) == len(cands)
    # each score is a sum of cosines: at most one per query token
    n_query_tokens = tiny.encode_tokens(["cat on a mat"], document=False)[0].vectors.shape[0]
    assert n_query_tokens == 6  # cat on a m ##a ##t: "mat" is not in the tiny vocabulary
    assert all(-n_query_tokens - 1e-3 <= v <= n_query_tokens + 1e-3 for v in raw.values)
    assert "not a trained ColBERT" in tiny.label and "tiny-bi-encoder" in tiny.label


def test_special_tokens_and_padding_are_dropped(tiny):
    short, longer = tiny.encode_tokens(["cat", "the cat is on the road"])
    assert short.vectors.shape[0] == 1  # [CLS] cat [SEP] -> cat
    assert longer.vectors.shape[0] == 6
    assert short.vectors.dtype == np.float16
    np.testing.assert_allclose(np.linalg.norm(longer.vectors.astype(np.float32), axis=1), 1.0, atol=2e-3)


def test_empty_texts_score_zero_with_a_note(tiny):
    empty = Candidate(doc_id="empty", text="   ", first_stage_rank=2, first_stage_score=0.5)
    res = tiny.rerank("the river", [as_candidates(DOCS)[3], empty])
    assert res.ok and {it.doc_id: it.score for it in res.items}["empty"] == 0.0
    assert any("no text tokens" in n for n in res.notes)
    assert all(it.score == 0.0 for it in tiny.rerank("   ", as_candidates(DOCS)).items)


def test_query_only_encoding_after_prepare(tiny, monkeypatch):
    corpus = Corpus(DOCS, name="li")
    seen = []
    tiny.prepare(corpus, progress=lambda done, total, msg: seen.append((done, total)))
    assert tiny.store_size == len(DOCS) and seen[-1] == (len(DOCS), len(DOCS))
    assert tiny.store_bytes > 0
    counter = EncodeCounter(tiny, monkeypatch)
    tiny.prepare(corpus)  # already prepared: nothing encoded
    assert counter.calls == []
    result = tiny.rerank("heat transfer", as_candidates(DOCS))
    assert result.ok and counter.calls == [["heat transfer"]]  # the query only
    assert result.notes == ()
    # a candidate the store has not seen is encoded once, then kept
    new = Candidate(
        doc_id="new", text="a brand new passage about the sea", first_stage_rank=6, first_stage_score=0.1
    )
    tiny.rerank("sea", [*as_candidates(DOCS), new])
    assert counter.calls[-1] == [new.full_text] and tiny.store_size == len(DOCS) + 1
    tiny.rerank("sea", [*as_candidates(DOCS), new])
    assert counter.calls[-1] == ["sea"]


def test_store_off_reencodes_and_gives_the_same_scores(tiny_bi_encoder_dir, tiny, monkeypatch):
    off = LateInteractionReranker(model=str(tiny_bi_encoder_dir), cache_documents=False)
    off.prepare(Corpus(DOCS, name="li"))
    assert off.store_size == 0
    counter = EncodeCounter(off, monkeypatch)
    cands = as_candidates(DOCS)
    res_off = off.rerank("the river", cands)
    off.rerank("the river", cands)
    assert counter.texts == 2 * (1 + len(DOCS)) and off.store_size == 0
    assert any("store off" in n for n in res_off.notes)
    tiny.prepare(Corpus(DOCS, name="li"))
    res_on = tiny.rerank("the river", cands)
    on_scores = {it.doc_id: it.score for it in res_on.items}
    for it in res_off.items:
        assert it.score == pytest.approx(on_scores[it.doc_id], abs=1e-4)


def test_truncation_is_reported_for_a_long_document(tiny):
    res = tiny.rerank("word", as_candidates(DOCS))
    flags = {it.doc_id: it.truncated for it in res.items}
    assert flags == {"d1": False, "d2": False, "d3": False, "d4": False, "d5": True}
    assert res.truncated_ids == ["d5"]
    long_tokens = tiny.encode_tokens([DOCS[4].full_text])[0].vectors.shape[0]
    assert long_tokens == TINY_MAX_LENGTH - 2  # cut at max length, then [CLS] and [SEP] dropped


def test_store_is_safe_under_concurrent_queries(tiny):
    cands = as_candidates(DOCS)
    expected = tiny.rerank("cat", cands).ids
    tiny.clear_store()
    results, errors = [], []

    def work():
        try:
            results.append(tiny.rerank("cat", cands).ids)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and results == [expected] * 4 and tiny.store_size == len(DOCS)


def test_unavailable_model_and_bad_options():
    t0 = time.perf_counter()
    res = LateInteractionReranker(model="no-such-org/no-such-model").rerank("q", as_candidates(DOCS))
    assert time.perf_counter() - t0 < 5
    assert res.error is not None and res.error.kind == "model-not-found" and not res.available
    assert "no-such-org/no-such-model" in res.error.message
    with pytest.raises(ConfigError, match="unknown late-interaction option"):
        LateInteractionReranker(max_tokens=3)
    with pytest.raises(ConfigError, match="batch_size"):
        LateInteractionReranker(batch_size=0)


# -- the real packaged MiniLM ---------------------------------------------------------------------
@pytest.mark.slow
def test_minilm_maxsim_on_a_cranfield_subset(cranfield_dir, monkeypatch):
    docs = []
    with open(cranfield_dir / "corpus.jsonl", encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            docs.append(Document(row["_id"], row["text"], title=row.get("title", "")))
            if len(docs) == 80:
                break
    corpus = Corpus(docs, name="cranfield-80")
    reranker = create_reranker("late-interaction")
    assert reranker.model == MINILM_ID
    assert reranker.label == "zero-shot MaxSim over all-MiniLM-L6-v2 token embeddings — not a trained ColBERT"
    reranker.prepare(corpus)
    assert reranker.store_size == len({d.full_text for d in docs})
    counter = EncodeCounter(reranker, monkeypatch)
    cands = as_candidates(docs[:50])
    for doc in (docs[3], docs[17], docs[42]):
        result = reranker.rerank(doc.title, cands)
        assert result.ok and result.ids[0] == doc.id  # a document's own title finds it
        assert counter.calls[-1] == [doc.title]
    assert counter.texts == 3  # three queries, no document re-encoded
    # MiniLM's limit is 256 word pieces: a document longer than that is flagged
    long_doc = Candidate(
        doc_id="long", text=" ".join(d.text for d in docs[:5]), first_stage_rank=51, first_stage_score=0.0
    )
    res = reranker.rerank("boundary layer", [*cands, long_doc])
    assert "long" in res.truncated_ids
    tokenizer = reranker._encoder.tokenizer
    for c in [*cands, long_doc]:
        n_tokens = len(tokenizer(c.full_text, verbose=False)["input_ids"])
        assert (c.doc_id in res.truncated_ids) == (n_tokens > 256)
