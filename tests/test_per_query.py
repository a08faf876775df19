"""Per-query wins and losses, attribution of missing relevant documents, tags, judged coverage and
score distributions."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rerank_core.coverage import (
    LOW_COVERAGE,
    coverage_at_k,
    coverage_cutoffs,
    coverage_table,
    coverage_warning,
    run_coverage,
)
from rerank_core.distributions import score_histogram
from rerank_core.errors import CorpusFormatError
from rerank_core.metrics import ndcg_at_k, ranked_run
from rerank_core.per_query import (
    TIE_TOLERANCE,
    attribute,
    parse_tags,
    per_tag,
    read_tags,
    wins_and_losses,
)

# -- attribution -----------------------------------------------------------------------------------


def test_attribution_sorts_each_relevant_document_into_one_class():
    first_stage = ["a", "b", "c", "d", "e", "f"]  # the candidates at depth 4 are a, b, c, d
    method = ["d", "b", "a", "c", "x", "y"]  # top 2: d, b
    judgements = {"a": 2, "b": 1, "d": 3, "e": 1, "z": 2, "c": 0}
    parts = attribute(method, first_stage, judgements, k=2, depth=4)
    assert parts == {"found": ("b", "d"), "retrieval": ("e", "z"), "reranker": ("a",)}
    # the judged non-relevant c is in no class; the classes add up to the relevant documents
    assert sum(len(v) for v in parts.values()) == sum(1 for g in judgements.values() if g > 0)
    # the whole first-stage list when no depth is given
    assert attribute(method, first_stage, judgements, k=2)["retrieval"] == ("z",)
    with pytest.raises(ValueError):
        attribute(method, first_stage, judgements, k=0)


def test_wins_losses_and_ties_by_formula():
    qrels = {
        "win": {"r": 1},
        "loss": {"r": 1},
        "tie": {"r": 1},
        "none-relevant": {"n": 0},
        "unjudged": {},
    }
    fs = ranked_run({"win": ["x", "r"], "loss": ["r", "x"], "tie": ["r", "x"], "none-relevant": ["n"]})
    rr = ranked_run({"win": ["r", "x"], "loss": ["x", "r"], "tie": ["r", "x"], "none-relevant": ["n"]})
    result = wins_and_losses(fs, rr, qrels, depth=2, method="m", k=10)
    assert (result.wins, result.losses, result.ties) == (1, 1, 2)
    assert [q.query_id for q in result.queries] == ["win", "none-relevant", "tie", "loss"]
    gain = 1 - 1 / math.log2(3)  # rank 1 instead of rank 2
    assert result.queries[0].diff == pytest.approx(gain) and result.queries[-1].diff == pytest.approx(-gain)
    assert result.queries[0].first_stage == pytest.approx(ndcg_at_k(["x", "r"], qrels["win"], 10))
    assert result.best[0].query_id == "win" and result.worst[0].query_id == "loss"
    assert result.mean_diff == pytest.approx(0.0)
    row = result.queries[0].to_json()
    assert row["outcome"] == "win" and row["found"] == 1 and row["relevant"] == 1


def test_a_difference_below_the_tolerance_is_a_tie():
    from rerank_core.per_query import QueryOutcome

    assert QueryOutcome("q", 0.5, 0.5 + TIE_TOLERANCE / 2).outcome == "tie"
    assert QueryOutcome("q", 0.5, 0.5 + 10 * TIE_TOLERANCE).outcome == "win"


def test_a_query_missing_from_a_run_scores_zero_and_all_its_documents_are_retrievals_fault():
    qrels = {"q": {"a": 1, "b": 2}}
    result = wins_and_losses({}, {}, qrels, depth=10)
    (q,) = result.queries
    assert (q.first_stage, q.method, q.retrieval) == (0.0, 0.0, ("a", "b"))


def test_per_tag_groups_queries_and_keeps_the_totals():
    qrels = {f"q{i}": {"r": 1} for i in range(6)}
    fs = ranked_run({q: ["x", "r"] for q in qrels})
    rr = ranked_run({q: (["r", "x"] if i % 2 else ["x", "y", "r"]) for i, q in enumerate(qrels)})
    tags = {"q0": ["long", "hard"], "q1": ["long"], "q2": ["hard"], "q3": ["short"]}
    result = wins_and_losses(fs, rr, qrels, depth=10, tags=tags)
    groups = per_tag(result)
    assert list(groups) == ["hard", "long", "short"]
    assert [q.query_id for q in groups["long"].queries] == ["q1", "q0"]
    assert (groups["long"].wins, groups["long"].losses) == (1, 1)
    assert (groups["hard"].wins, groups["hard"].losses) == (0, 2)
    # tags given apart win over the outcomes' own
    assert list(per_tag(result, {"q5": ["x"]})) == ["x"]


def test_attribution_adds_up_on_cranfield(cranfield_dir):
    """BM25 top 20 against the same candidates in reverse order (a transformation for the sums only)."""
    from rerank_core.corpus import load_beir
    from rerank_core.metrics import rank_documents
    from rerank_core.retrieval.bm25 import BM25Retriever

    dataset = load_beir(cranfield_dir)
    retriever = BM25Retriever().build(dataset.corpus)
    qrels = {q: dataset.qrels[q] for q in dataset.judged_query_ids}
    fs = {}
    for q in qrels:
        cands, _ = retriever.candidates(dataset.queries[q], 20)
        fs[q] = {c.doc_id: c.first_stage_score for c in cands}
    reversed_run = ranked_run({q: list(reversed(rank_documents(fs[q]))) for q in qrels})
    result = wins_and_losses(fs, reversed_run, qrels, depth=20)
    assert len(result.queries) == 225
    for q in result.queries:
        assert len(q.found) + len(q.retrieval) + len(q.reranker) == sum(
            1 for g in qrels[q.query_id].values() if g > 0
        )
        assert len(q.found) == sum(1 for d in reversed_run[q.query_id] if d in q.found)
    totals = result.attribution
    assert sum(totals.values()) == sum(1 for q in qrels for g in qrels[q].values() if g > 0)
    assert totals["reranker"] > 0 and totals["retrieval"] > 0


# -- tags from files ---------------------------------------------------------------------------------


def test_tags_from_tsv_csv_and_jsonl(tmp_path):
    assert parse_tags("query-id\ttags\nq1\tlong, numeric\nq2\t\nq3\tshort;hard\n") == {
        "q1": ["long", "numeric"],
        "q3": ["short", "hard"],
    }
    assert parse_tags("q1,long\n") == {"q1": ["long"]}
    jsonl = '{"_id": "q1", "text": "x", "tags": ["a", "b", "a"]}\n{"_id": "q2", "metadata": {"tags": "c"}}\n'
    assert parse_tags(jsonl) == {"q1": ["a", "b"], "q2": ["c"]}
    with pytest.raises(CorpusFormatError, match="line 2"):
        parse_tags('{"_id": "q1"}\n{"text": "no id"}\n', "queries.jsonl")
    with pytest.raises(CorpusFormatError, match="line 1"):
        parse_tags("only-one-column\n")
    path = tmp_path / "tags.tsv"
    path.write_text("q9\tx\n", encoding="utf-8")
    assert read_tags(path) == {"q9": ["x"]}
    with pytest.raises(CorpusFormatError, match="does not exist"):
        read_tags(tmp_path / "missing.tsv")


# -- coverage ----------------------------------------------------------------------------------------


def test_coverage_is_the_judged_share_of_the_top_k():
    judgements = {"a": 0, "b": 2, "z": 1}
    assert coverage_at_k(["a", "x", "b", "y"], judgements, 2) == 0.5
    assert coverage_at_k(["a", "x", "b", "y"], judgements, 4) == 0.5
    assert coverage_at_k(["a", "b"], judgements, 10) == 1.0  # over what was retrieved
    assert coverage_at_k([], judgements, 10) is None
    with pytest.raises(ValueError):
        coverage_at_k(["a"], judgements, 0)
    run = ranked_run({"q1": ["a", "x", "b", "y"], "q2": ["u", "v"]})
    qrels = {"q1": judgements, "q2": {"u": 0}, "q3": {"a": 1}, "empty": {}}
    assert run_coverage(run, qrels, 2) == {"q1": 0.5, "q2": 0.5}  # q3 retrieved nothing
    assert coverage_table(run, qrels, [2, 4]) == {"@2": 0.5, "@4": pytest.approx((0.5 + 0.5) / 2)}
    assert coverage_cutoffs(["nDCG@10", "R@50", "RR", "P@5"]) == [5, 10, 50]


def test_low_coverage_warning_names_the_methods():
    assert coverage_warning({"bm25": 0.9, "ce": LOW_COVERAGE}) is None
    text = coverage_warning({"bm25": 0.9, "ce": 0.3, "llm": None}, k=10)
    assert text is not None and "ce 30%" in text and "llm (nothing retrieved)" in text
    assert "bm25" not in text and "top 10" in text


# -- score distributions ------------------------------------------------------------------------------


def test_score_histogram_counts_every_score_and_leaves_fallbacks_out():
    run = {
        "q1": {"a": 0.1, "b": 0.5, "c": 0.9},
        "q2": {"a": 0.2, "b": -math.inf},
        "fell": {"a": 12.5, "b": 7.7},  # first-stage scores on another scale
    }
    hist = score_histogram(run, method="m", scale="probability (0-1)", exclude_queries=["fell"], bins=4)
    assert hist is not None
    assert (hist.scores, hist.queries, hist.excluded_queries, hist.non_finite) == (4, 2, 1, 1)
    assert hist.edges == pytest.approx((0.1, 0.3, 0.5, 0.7, 0.9))
    assert hist.counts == (2, 0, 1, 1) and sum(hist.counts) == hist.scores
    assert hist.quantiles["p50"] == pytest.approx(np.median([0.1, 0.5, 0.9, 0.2]))
    assert hist.to_json()["scale"] == "probability (0-1)"
    one = score_histogram({"q": {"a": 3.0}}, method="m", scale="logit")
    assert one is not None and sum(one.counts) == 1 and one.edges[0] < 3.0 < one.edges[-1]
    assert score_histogram({}, method="m", scale="logit") is None
