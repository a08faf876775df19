"""Models shared by every session of a server: concurrent calls give the answers one call alone gives.

Eight threads rerank at once with the same reranker objects (the runtime gives every session the same
ones): the cross-encoder, late interaction and the bi-encoder, each on tiny random-weight models in their
libraries' real layouts. Hugging Face fast tokenizers refuse concurrent use ("Already borrowed"), so a
model without its lock fails here; with it every thread gets the scores of a call made alone.
"""

from __future__ import annotations

import threading

import pytest

from rerank_core.config import Settings
from rerank_core.registry import create_reranker
from rerank_core.types import Candidate
from tests.tiny_bi_encoder import tiny_bi_encoder_once
from tests.tiny_models import make_passages

pytest_plugins = ["tiny_models"]

THREADS = 8
ROUNDS = 6


@pytest.fixture(scope="module")
def tiny_encoder(tmp_path_factory):
    return tiny_bi_encoder_once(tmp_path_factory)


def _candidates(n: int, seed: int) -> list[Candidate]:
    return [
        Candidate(doc_id=f"d{i}", text=t, first_stage_rank=i + 1, first_stage_score=float(n - i))
        for i, t in enumerate(make_passages(n, 40 + 7 * (seed % 3), seed=seed))
    ]


def _hammer(reranker, jobs) -> list:
    """Every job run once alone, then all of them at once from THREADS threads, ROUNDS times each."""
    alone = [reranker.rerank(q, c) for q, c in jobs]
    assert all(r.ok for r in alone), [r.error for r in alone]
    failures: list = []
    barrier = threading.Barrier(THREADS)

    def worker(k: int) -> None:
        barrier.wait()
        for r in range(ROUNDS):
            q, c = jobs[(k + r) % len(jobs)]
            got = reranker.rerank(q, c)
            want = alone[(k + r) % len(jobs)]
            if (
                not got.ok
                or got.ids != want.ids
                or [i.score for i in got.items] != pytest.approx([i.score for i in want.items], abs=1e-5)
            ):
                failures.append((k, r, got.error))

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return failures


def _jobs() -> list:
    return [(f"query {i} about wings and lift", _candidates(12 + i, seed=i)) for i in range(4)]


@pytest.mark.parametrize("method", ["late-interaction", "bi-encoder"])
def test_sentence_transformer_rerankers_under_concurrent_calls(method, tiny_encoder, tmp_path):
    reranker = create_reranker(f"{method}:{tiny_encoder}", Settings(data_dir=tmp_path))
    assert _hammer(reranker, _jobs()) == []


def test_the_cross_encoder_under_concurrent_calls(tiny_cross_encoder_dir, tmp_path):
    reranker = create_reranker(f"cross-encoder:{tiny_cross_encoder_dir}", Settings(data_dir=tmp_path))
    assert _hammer(reranker, _jobs()) == []


def test_flashrank_under_concurrent_calls(tiny_flashrank_cache, tmp_path):
    cache_dir, name = tiny_flashrank_cache
    reranker = create_reranker(f"flashrank:{name}", Settings(data_dir=tmp_path), cache_dir=str(cache_dir))
    assert _hammer(reranker, _jobs()) == []


@pytest.mark.slow
def test_colbert_under_concurrent_calls(tiny_colbert_dir, tmp_path):
    reranker = create_reranker(f"colbert:{tiny_colbert_dir}", Settings(data_dir=tmp_path))
    assert _hammer(reranker, _jobs()) == []
