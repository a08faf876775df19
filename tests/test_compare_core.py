"""Agreement measures (against hand formulas and scipy) and the comparison runner's plumbing."""

from __future__ import annotations

import math
import random

import pytest
from scipy.stats import kendalltau

from rerank_core.compare import (
    agreement_table,
    dropouts,
    kendall_tau,
    overlap_at_k,
    rbo,
    run_comparison,
    shown_rows,
)
from rerank_core.errors import BackendUnavailable
from rerank_core.rerankers.base import Reranker
from rerank_core.retrieval.base import Retriever
from rerank_core.types import Corpus, Document, RankedItem, ScoreScale

# -- overlap@k -------------------------------------------------------------------------------------------


def test_overlap_at_k_hand_values():
    a = ["a", "b", "c", "d", "e"]
    b = ["c", "a", "x", "y", "b"]
    assert overlap_at_k(a, b, 1) == 0 / 1
    assert overlap_at_k(a, b, 2) == 1 / 2  # {a}
    assert overlap_at_k(a, b, 3) == 2 / 3  # {a, c}
    assert overlap_at_k(a, b, 5) == 3 / 5  # {a, b, c}


def test_overlap_at_k_short_lists_and_errors():
    assert overlap_at_k(["a", "b"], ["b", "a"], 10) == 1.0  # 2 places shown, both shared
    assert overlap_at_k(["a", "b"], [], 10) == 0.0
    assert overlap_at_k([], [], 5) == 1.0
    with pytest.raises(ValueError):
        overlap_at_k(["a"], ["a"], 0)
    with pytest.raises(ValueError):
        overlap_at_k(["a", "a"], ["a"], 2)


# -- Kendall tau ---------------------------------------------------------------------------------------


def test_kendall_tau_hand_values():
    assert kendall_tau(list("abcd"), list("abcd")) == 1.0
    assert kendall_tau(list("abcd"), list("dcba")) == -1.0
    # one swapped adjacent pair out of 6 pairs: (5 - 1) / 6
    assert kendall_tau(list("abcd"), list("bacd")) == pytest.approx(4 / 6)


@pytest.mark.parametrize("seed", range(8))
def test_kendall_tau_matches_scipy_on_permutations(seed):
    rng = random.Random(seed)
    docs = [f"d{i}" for i in range(rng.randint(2, 40))]
    other = docs[:]
    rng.shuffle(other)
    pos = {d: i for i, d in enumerate(other)}
    expected = kendalltau(list(range(len(docs))), [pos[d] for d in docs]).statistic
    assert kendall_tau(docs, other) == pytest.approx(expected)


def test_kendall_tau_partial_overlap_uses_shared_documents():
    a = ["a", "b", "x", "c", "d"]
    b = ["d", "y", "b", "a", "c"]
    shared = ["a", "b", "c", "d"]
    expected = kendalltau([a.index(d) for d in shared], [b.index(d) for d in shared]).statistic
    assert kendall_tau(a, b) == pytest.approx(expected)
    assert math.isnan(kendall_tau(["a"], ["a"]))
    assert math.isnan(kendall_tau(["a", "b"], ["c", "d"]))


# -- RBO -----------------------------------------------------------------------------------------------


def test_rbo_identical_disjoint_and_symmetric():
    a = [f"d{i}" for i in range(10)]
    assert rbo(a, a) == pytest.approx(1.0)
    assert rbo(a, [f"x{i}" for i in range(10)]) == 0.0
    b = a[::-1]
    assert rbo(a, b) == pytest.approx(rbo(b, a))
    assert rbo([], []) == 1.0 and rbo([], ["a"]) == 0.0
    with pytest.raises(ValueError):
        rbo(a, b, p=1.0)


def test_rbo_equal_length_hand_formula():
    # X_1 = 1, X_2 = 1, X_3 = 3 -> A_d = X_d / d = 1, 1/2, 1
    p = 0.9
    expected = (1 - p) / p * (1 * p + 0.5 * p**2 + 1 * p**3) + 1 * p**3
    assert rbo(["a", "b", "c"], ["a", "c", "b"], p) == pytest.approx(expected)


def test_rbo_uneven_length_hand_formula():
    # S = [a, b] (s=2), L = [b, c, a] (l=3): X_1 = 0, X_2 = 1, X_3 = |{a,b} ∩ {b,c,a}| = 2
    p = 0.8
    s, length = 2, 3
    x = {1: 0, 2: 1, 3: 2}
    first = sum(x[d] / d * p**d for d in range(1, length + 1))
    second = sum(x[s] * (d - s) / (s * d) * p**d for d in range(s + 1, length + 1))
    expected = (1 - p) / p * (first + second) + ((x[3] - x[2]) / length + x[2] / s) * p**length
    assert rbo(["a", "b"], ["b", "c", "a"], p) == pytest.approx(expected)
    assert rbo(["b", "c", "a"], ["a", "b"], p) == pytest.approx(expected)


def test_rbo_is_top_weighted():
    base = list("abcdefghij")
    swap_top = list("bacdefghij")
    swap_bottom = list("abcdefghji")
    assert rbo(base, swap_bottom) > rbo(base, swap_top)


def test_agreement_table_pairs():
    orders = {"bm25": list("abcde"), "m1": list("bacde"), "m2": list("edcba")}
    rows = agreement_table(orders, k=3)
    assert [(r.a, r.b) for r in rows] == [("bm25", "m1"), ("bm25", "m2"), ("m1", "m2")]
    first = rows[0]
    assert first.overlap == 1.0 and first.tau_n == 5
    assert first.kendall_tau == pytest.approx(kendall_tau(list("abcde"), list("bacde")))
    assert first.rbo == pytest.approx(rbo(list("abc"), list("bac")))
    assert rows[1].kendall_tau == pytest.approx(-1.0)


# -- movement ------------------------------------------------------------------------------------------


def _items(order, first_stage_ranks):
    return [
        RankedItem(doc_id=d, rank=i, score=10.0 - i, first_stage_rank=first_stage_ranks[d])
        for i, d in enumerate(order, start=1)
    ]


def test_shown_rows_movement_new_and_dropouts():
    fs_rank = {"a": 1, "b": 2, "c": 3, "d": 4, "e": 5}
    items = _items(["d", "a", "c", "b", "e"], fs_rank)
    rows = shown_rows(items, k=3)
    assert [r.doc_id for r in rows] == ["d", "a", "c"]
    assert [r.movement for r in rows] == [3, -1, 0]
    assert [r.is_new(3) for r in rows] == [True, False, False]
    assert dropouts(["a", "b", "c", "d", "e"], ["d", "a", "c", "b", "e"], 3) == ["b"]


# -- the runner (plumbing, with deterministic fakes) ---------------------------------------------------


class WordOverlapRetriever(Retriever):
    """Counts shared words: a fake first stage for plumbing tests only."""

    name = "fake-overlap"

    def _build(self, corpus, progress):
        self._docs = {d.id: set(d.full_text.lower().split()) for d in corpus}

    def _search(self, query, k):
        words = set(query.lower().split())
        scored = sorted(((len(words & w), i) for i, w in self._docs.items()), key=lambda t: (-t[0], t[1]))
        return [(i, float(s)) for s, i in scored[:k]]

    def save(self, directory):  # pragma: no cover - not used
        raise NotImplementedError

    @classmethod
    def load(cls, directory, corpus, settings=None):  # pragma: no cover - not used
        raise NotImplementedError


class RecordingReranker(Reranker):
    """Scores by text length and records what it was given: plumbing only."""

    name = "fake-length"
    scale = ScoreScale.LOGIT

    def __init__(self, log, **kw):
        super().__init__(**kw)
        self.log = log

    def score(self, query, candidates):
        self.log.append((self.method_name, tuple(candidates)))
        return [float(len(c.text)) for c in candidates]


class MissingReranker(RecordingReranker):
    name = "fake-missing"

    def _load(self):
        raise BackendUnavailable("weights not here", hint="set RERANK_MODELS_DIR")


def _corpus():
    docs = [Document(id=f"d{i}", text=("word " * i) + "shared") for i in range(1, 8)]
    return Corpus(docs, name="toy")


def test_run_comparison_gives_every_method_the_same_candidates_in_turn():
    log: list = []
    retriever = WordOverlapRetriever().build(_corpus())
    rerankers = [
        RecordingReranker(log, model="one"),
        MissingReranker(log),
        RecordingReranker(log, model="two"),
    ]
    steps: list[str] = []
    seen: list[str] = []
    comp = run_comparison(
        "shared word",
        retriever,
        rerankers,
        depth=5,
        progress=lambda done, total, msg: steps.append(f"{done}/{total} {msg}"),
        on_result=lambda r: seen.append(r.method),
    )
    assert len(comp.candidates) == 5 and comp.first_stage.ids == [c.doc_id for c in comp.candidates]
    # the working methods were called in order, on identical candidate tuples
    assert [name for name, _ in log] == ["fake-length:one", "fake-length:two"]
    assert log[0][1] == log[1][1] == comp.candidates
    # each orders all 5 candidates (the page slices), the unavailable one reports why
    ok1, missing, ok2 = comp.results
    assert len(ok1.items) == 5 and ok1.ids == ok2.ids
    assert missing.error is not None and missing.error.kind == "unavailable" and not missing.items
    assert seen == ["fake-length:one", "fake-missing", "fake-length:two"]
    assert steps[0].startswith("0/4 First stage") and steps[-1] == "4/4 done"
    assert "loading the model first" in steps[1]
    assert comp.corpus_fingerprint == retriever.corpus.fingerprint
    # failed methods are left out of the agreement orders
    assert list(comp.orders()) == ["fake-overlap", "fake-length:one", "fake-length:two"]
    assert len(comp.agreement(k=3)) == 3


def test_run_comparison_rejects_empty_query_and_bad_depth():
    retriever = WordOverlapRetriever().build(_corpus())
    with pytest.raises(ValueError):
        run_comparison("  ", retriever, [], depth=5)
    with pytest.raises(ValueError):
        run_comparison("q", retriever, [], depth=0)
