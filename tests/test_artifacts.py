"""The vector stores on disk: written once, shared by processes, damaged shards skipped, size bounded."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from rerank_core.artifacts import (
    EmbeddingCache,
    TokenMatrix,
    TokenStore,
    embedding_cache,
    encoder_identity,
    forget_stores,
    text_key,
    token_store,
)
from rerank_core.types import Candidate


def test_text_key_is_the_candidate_text_hash():
    cand = Candidate(doc_id="d", text="body", title="Title", first_stage_rank=1, first_stage_score=0.0)
    assert text_key(cand.full_text) == cand.text_hash


def test_identity_changes_with_what_changes_the_vectors():
    base = encoder_identity("/models/all-MiniLM-L6-v2", "fp32", normalize=True)
    assert base.startswith("all-MiniLM-L6-v2-fp32-")
    assert encoder_identity("/models/all-MiniLM-L6-v2", "bf16", normalize=True) != base
    assert encoder_identity("/models/all-MiniLM-L6-v2", "fp32", normalize=False) != base
    assert encoder_identity("/other/all-MiniLM-L6-v2", "fp32", normalize=True) != base


def test_embedding_cache_round_trip_and_a_new_process(tmp_path):
    cache = embedding_cache(tmp_path, "enc")
    vectors = np.arange(12, dtype=np.float32).reshape(3, 4)
    cache.put(["a", "b", "c"], vectors, [False, True, False])
    assert cache.missing(["a", "x", "c", "x"]) == ["x"] and len(cache) == 3
    got, flags = cache.get(["c", "a"])
    np.testing.assert_array_equal(got, vectors[[2, 0]])
    assert flags == [False, False]
    forget_stores()  # another process on the same data directory
    reopened = embedding_cache(tmp_path, "enc")
    assert reopened is not cache and len(reopened) == 3
    np.testing.assert_array_equal(reopened.get(["b"])[0], vectors[[1]])
    assert reopened.get(["b"])[1] == [True]
    with pytest.raises(KeyError):
        reopened.get(["nope"])


def test_a_damaged_shard_is_set_aside_and_its_texts_are_missing_again(tmp_path):
    cache = EmbeddingCache(tmp_path / "store")
    cache.put(["a"], np.ones((1, 4), dtype=np.float32), [False])
    cache.put(["b"], np.ones((1, 4), dtype=np.float32), [False])
    shard = sorted((tmp_path / "store").glob("*.vectors.npy"))[0]
    shard.write_bytes(b"garbage")
    fresh = EmbeddingCache(tmp_path / "store")
    assert fresh.missing(["a", "b"]) == ["a"]
    assert list((tmp_path / "store").glob("*.bad"))  # kept aside for a look, never read again


def test_an_incomplete_shard_is_ignored(tmp_path):
    cache = EmbeddingCache(tmp_path / "store")
    cache.put(["a"], np.ones((1, 4), dtype=np.float32), [False])
    for keys_file in (tmp_path / "store").glob("*.keys.npy"):
        keys_file.unlink()  # as if the writer died before renaming its keys into place
    assert EmbeddingCache(tmp_path / "store").missing(["a"]) == ["a"]


def test_two_builders_encode_once(tmp_path):
    """Two sessions (threads here; processes use the same file lock) building the same texts."""
    encoded: list[str] = []
    texts = [f"t{i}" for i in range(20)]

    def build(store: EmbeddingCache) -> None:
        with store.building():
            todo = store.missing(texts)
            encoded.extend(todo)
            store.put(todo, np.ones((len(todo), 2), dtype=np.float32), [False] * len(todo))

    stores = [EmbeddingCache(tmp_path / "store") for _ in range(4)]  # separate objects, one folder
    threads = [threading.Thread(target=build, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(encoded) == sorted(texts)


def test_an_unwritable_store_works_in_memory_and_says_so(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    cache = EmbeddingCache(blocker / "store")
    cache.put(["a"], np.full((1, 3), 2.0, dtype=np.float32), [True])
    np.testing.assert_array_equal(cache.get(["a"])[0], [[2.0, 2.0, 2.0]])
    assert cache.problem and "kept in memory" in cache.problem and "RERANK_DATA_DIR" in cache.problem
    tokens = TokenStore(blocker / "tokens")
    tokens.put(["a"], [TokenMatrix(np.ones((2, 3), dtype=np.float32), False)])
    assert tokens.get("a").vectors.shape == (2, 3)


def _matrix(n_tokens: int, dim: int = 8, seed: int = 0) -> TokenMatrix:
    rng = np.random.default_rng(seed)
    return TokenMatrix(rng.standard_normal((n_tokens, dim)).astype(np.float32), n_tokens > 5)


def test_token_store_round_trip_float16_and_empty_texts(tmp_path):
    store = token_store(tmp_path, "tok")
    matrices = [_matrix(3, seed=1), _matrix(0), _matrix(7, seed=2)]
    store.put(["a", "empty", "c"], matrices)
    forget_stores()
    reopened = token_store(tmp_path, "tok")
    for key, m in zip(["a", "empty", "c"], matrices, strict=True):
        got = reopened.get(key)
        assert got.vectors.dtype == np.float16 and got.truncated == m.truncated
        np.testing.assert_allclose(got.vectors.astype(np.float32), m.vectors, atol=1e-2)
    assert reopened.get("empty").vectors.shape == (0, 8)


def test_token_store_stays_within_its_bound(tmp_path):
    probe = TokenStore(tmp_path / "probe")
    probe.put(["p"], [_matrix(10)])
    one = probe.nbytes  # one shard of one 10-token text, on disk
    store = TokenStore(tmp_path / "tok", max_bytes=3 * one)
    for i in range(6):
        store.put([f"t{i}"], [_matrix(10, seed=i)])
    assert store.nbytes <= 3 * one
    assert store.missing([f"t{i}" for i in range(6)]) == ["t0", "t1", "t2"]  # the oldest went first
    assert TokenStore(tmp_path / "tok", max_bytes=3 * one).missing(["t5"]) == []


def test_many_small_writes_are_compacted(tmp_path, monkeypatch):
    import rerank_core.artifacts as artifacts

    monkeypatch.setattr(artifacts, "MAX_SHARDS", 4)
    store = TokenStore(tmp_path / "tok")
    for i in range(9):
        store.put([f"t{i}"], [_matrix(2, seed=i)])
    assert len(list((tmp_path / "tok").glob("*.keys.npy"))) <= 4
    fresh = TokenStore(tmp_path / "tok")
    assert fresh.missing([f"t{i}" for i in range(9)]) == []
    np.testing.assert_allclose(
        fresh.get("t3").vectors.astype(np.float32), _matrix(2, seed=3).vectors, atol=1e-2
    )


def test_clear_empties_disk_and_memory(tmp_path):
    store = TokenStore(tmp_path / "tok")
    store.put(["a"], [_matrix(2)])
    store.clear()
    assert len(store) == 0 and TokenStore(tmp_path / "tok").missing(["a"]) == ["a"]
