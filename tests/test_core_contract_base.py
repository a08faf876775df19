"""The base class's shared work, exercised with a deterministic fake backend (plumbing only)."""

from __future__ import annotations

import pytest

from rerank_core.errors import BackendUnavailable, HostedCallError
from rerank_core.rerankers.base import Reranker
from rerank_core.types import Candidate, MethodSpec, Scores, ScoreScale


class LengthReranker(Reranker):
    """Scores by text length: a fake for plumbing tests, never a feature."""

    name = "fake-length"
    scale = ScoreScale.LOGIT

    def score(self, query, candidates):
        return [float(len(c.text)) for c in candidates]


def cands(*texts):
    return [
        Candidate(doc_id=f"d{i}", text=t, first_stage_rank=i + 1, first_stage_score=1.0 / (i + 1))
        for i, t in enumerate(texts)
    ]


def test_sorted_by_score_with_stable_tie_break():
    res = LengthReranker().rerank("q", cands("aa", "a", "aaa", "aa"))
    assert res.ids == ["d2", "d0", "d3", "d1"]  # d0 and d3 tie: first-stage rank decides
    assert [it.rank for it in res.items] == [1, 2, 3, 4]
    assert res.items[0].movement == 2


def test_top_k_and_empty():
    r = LengthReranker()
    assert len(r.rerank("q", cands("a", "bb", "ccc"), top_k=2).items) == 2
    empty = r.rerank("q", [])
    assert empty.items == () and empty.ok


def test_wrong_score_count_is_a_typed_error():
    class Broken(LengthReranker):
        def score(self, query, candidates):
            return [1.0]

    res = Broken().rerank("q", cands("a", "b"))
    assert not res.ok and res.error.kind == "failed" and "1 scores for 2" in res.error.message


def test_load_failure_reported_not_raised_and_remembered():
    calls = []

    class Missing(LengthReranker):
        def _load(self):
            calls.append(1)
            raise BackendUnavailable("no weights", hint="put them somewhere")

    r = Missing()
    for _ in range(2):
        res = r.rerank("q", cands("a"))
        assert res.error.kind == "unavailable" and "Fix: put them somewhere" in str(res.error)
        assert not res.available
    assert calls == [1]


def test_hosted_failure_falls_back_to_first_stage_order():
    class Hosted(LengthReranker):
        hosted = True

        def score(self, query, candidates):
            raise HostedCallError("HTTP 503 after 3 tries", status=503)

    res = Hosted().rerank("q", cands("a", "bbb", "cc"), top_k=2)
    assert res.fallback and res.error.kind == "hosted-call-failed"
    assert res.ids == ["d0", "d1"] and all(it.flagged for it in res.items)
    # the scores shown are the first stage's, so the scale is the first stage's, never the reranker's
    assert [it.score for it in res.items] == [1.0, 0.5]
    assert res.scale == ScoreScale.FIRST_STAGE
    given = Hosted().rerank("q", cands("a", "bbb"), first_stage_scale=ScoreScale.BM25)
    assert given.fallback and given.scale == ScoreScale.BM25
    assert (
        LengthReranker().rerank("q", cands("a"), first_stage_scale=ScoreScale.BM25).scale == ScoreScale.LOGIT
    )


def test_nan_scores_sink_and_are_flagged():
    class NaN(LengthReranker):
        def score(self, query, candidates):
            return Scores(values=[float("nan"), 1.0], truncated=[False, True])

    res = NaN().rerank("q", cands("a", "b"))
    assert res.ids == ["d1", "d0"]
    assert res.items[1].flagged and res.items[0].truncated


def test_method_spec_parse():
    spec = MethodSpec.parse("cross-encoder:BAAI/bge-reranker-v2-m3")
    assert (spec.name, spec.model) == ("cross-encoder", "BAAI/bge-reranker-v2-m3")
    assert MethodSpec.parse("bm25").model is None
    with pytest.raises(TypeError):
        LengthReranker().rerank(None, [])  # type: ignore[arg-type]
