"""Metrics: hand cases written as formulas, edge cases, and agreement with ir_measures."""

from __future__ import annotations

import math
import random

import pytest

from rerank_core import metrics as M

ir_measures = pytest.importorskip("ir_measures")


def log2(x: float) -> float:
    return math.log(x, 2)


# -- hand cases -----------------------------------------------------------------------------------

GRADED = {"a": 1, "b": 0, "c": 3, "d": 2}


def test_ndcg_graded_linear_gain_ideal_from_all_judgements():
    # d (grade 2) is judged but not retrieved: it still counts in the ideal ordering
    got = M.ndcg_at_k(["a", "b", "c"], GRADED, 3)
    dcg = 1 / log2(2) + 0 / log2(3) + 3 / log2(4)
    idcg = 3 / log2(2) + 2 / log2(3) + 1 / log2(4)
    assert got == pytest.approx(dcg / idcg, abs=1e-12)
    # without a cutoff the ideal covers all three relevant documents too
    assert M.ndcg_at_k(["c", "d", "a"], GRADED) == pytest.approx(1.0)
    # cutoff 1: only the first position
    assert M.ndcg_at_k(["a", "c"], GRADED, 1) == pytest.approx(1 / 3)


def test_ndcg_binary_and_negative_grades_give_no_gain():
    qrels = {"x": 1, "y": 1, "n": -2}
    got = M.ndcg_at_k(["n", "x", "z"], qrels, 10)
    assert got == pytest.approx((1 / log2(3)) / (1 + 1 / log2(3)), abs=1e-12)
    assert M.ndcg_at_k(["n"], qrels, 10) == 0.0


def test_precision_recall_rr_ap_formulas():
    ranking = ["b", "a", "x", "c", "y"]  # relevant (grade >= 1): a, c, d
    assert M.precision_at_k(ranking, GRADED, 5) == pytest.approx(2 / 5)
    assert M.precision_at_k(ranking, GRADED, 2) == pytest.approx(1 / 2)
    assert M.recall_at_k(ranking, GRADED, 2) == pytest.approx(1 / 3)
    assert M.recall_at_k(ranking, GRADED, 10) == pytest.approx(2 / 3)
    assert M.reciprocal_rank(ranking, GRADED) == pytest.approx(1 / 2)
    assert M.reciprocal_rank(ranking, GRADED, 1) == 0.0
    assert M.average_precision(ranking, GRADED) == pytest.approx((1 / 2 + 2 / 4) / 3)
    assert M.average_precision(ranking, GRADED, 3) == pytest.approx((1 / 2) / 3)


def test_no_relevant_document_scores_zero_everywhere():
    judged = {"a": 0, "b": -1}
    for measure in ("nDCG@10", "nDCG", "R@10", "P@5", "RR", "RR@10", "AP"):
        assert M.parse_measure(measure).compute(["a", "b", "c"], judged) == 0.0


def test_empty_ranking_and_k_larger_than_list():
    assert all(M.parse_measure(m).compute([], GRADED) == 0.0 for m in M.DEFAULT_MEASURES)
    # P@k divides by k even when fewer documents were retrieved
    assert M.precision_at_k(["c", "zz"], GRADED, 10) == pytest.approx(1 / 10)
    assert M.recall_at_k(["c", "zz"], GRADED, 100) == pytest.approx(1 / 3)
    assert M.ndcg_at_k(["c", "d", "a"], GRADED, 1000) == pytest.approx(1.0)


def test_ties_broken_by_doc_id_descending():
    run = {"q": {"a": 1.0, "c": 1.0, "b": 1.0, "z": 0.5, "top": 2.0}}
    assert M.rank_documents(run["q"]) == ["top", "c", "b", "a", "z"]
    qrels = {"q": {"a": 1}}
    assert M.evaluate(run, qrels, ["RR"])["RR"]["q"] == pytest.approx(1 / 4)


def test_scores_compared_at_float32_precision_like_trec_eval():
    x = 1.2345678
    run = {"q": {"a": x + 1e-9, "b": x}}  # equal as 32-bit floats: a tie, so "b" comes first
    assert M.rank_documents(run["q"]) == ["b", "a"]
    qrels = {"q": {"a": 1}}
    assert M.evaluate(run, qrels, ["RR"])["RR"]["q"] == 0.5
    assert ir_measures_per_query("RR", qrels, run)["q"] == 0.5
    run = {"q": {"a": x + 1e-6, "b": x}}  # distinct as 32-bit floats
    assert M.rank_documents(run["q"]) == ["a", "b"]
    assert ir_measures_per_query("RR", qrels, run)["q"] == 1.0


def test_ranked_run_keeps_the_given_order():
    run = M.ranked_run({"q": ["b", "a", "c"]})
    assert M.rank_documents(run["q"]) == ["b", "a", "c"]
    with pytest.raises(ValueError, match="appears twice"):
        M.ranked_run({"q": ["a", "a"]})
    with pytest.raises(ValueError, match="appears twice"):
        M.ndcg_at_k(["a", "b", "a"], GRADED, 3)


def test_parse_measure():
    assert M.parse_measure("nDCG@10") == M.Measure("nDCG", 10)
    assert M.parse_measure("ndcg@10") == M.Measure("nDCG", 10)
    assert str(M.parse_measure(" RR@10 ")) == "RR@10"
    assert M.parse_measure("AP").cutoff is None
    for bad in ("R", "P", "MRR@10", "nDCG@0", "nDCG@x", ""):
        with pytest.raises(ValueError):
            M.parse_measure(bad)
    with pytest.raises(ValueError):
        M.precision_at_k(["a"], GRADED, 0)


def test_evaluate_missing_queries_and_aggregate():
    qrels = {"q1": {"a": 1}, "q2": {"b": 2}, "q3": {}}  # q3 has no judgements: not evaluated
    run = {"q1": {"a": 3.0, "x": 2.0}, "q9": {"a": 1.0}}  # q2 missing: scores 0; q9 unjudged: ignored
    per = M.evaluate(run, qrels, ["RR", "P@2"])
    assert per == {"RR": {"q1": 1.0, "q2": 0.0}, "P@2": {"q1": 0.5, "q2": 0.0}}
    assert M.aggregate(per) == {"RR": 0.5, "P@2": 0.25}
    with pytest.raises(ValueError):
        M.aggregate({"RR": {}})


def test_latency_summary_linear_interpolation():
    s = M.latency_summary([4.0, 1.0, 3.0, 2.0])
    # sorted 1,2,3,4: position p/100*(n-1), linear between neighbours
    assert s["p50"] == pytest.approx(2.5)
    assert s["p95"] == pytest.approx(3 + 0.85 * (4 - 3))
    assert s["p99"] == pytest.approx(3 + 0.97 * (4 - 3))
    assert s["mean"] == pytest.approx(2.5)
    assert M.latency_summary([7.0]) == {"p50": 7.0, "p95": 7.0, "p99": 7.0, "mean": 7.0}
    with pytest.raises(ValueError):
        M.latency_summary([])
    with pytest.raises(ValueError):
        M.latency_summary([1.0, float("nan")])


# -- agreement with ir_measures ---------------------------------------------------------------------

CHECKED = ("nDCG@10", "nDCG@3", "nDCG", "R@10", "R@50", "P@5", "P@1", "RR", "AP", "AP@10")


def random_case(seed: int, ties: bool):
    rng = random.Random(seed)
    docs = [f"d{i}" for i in range(60)]
    qrels, run = {}, {}
    for q in range(40):
        qid = f"q{q}"
        judged = rng.sample(docs, rng.randint(1, 15))
        qrels[qid] = {d: rng.choice([-1, 0, 0, 1, 1, 2, 3]) for d in judged}
        if q % 9 == 4:
            continue  # judged query missing from the run
        retrieved = rng.sample(docs, rng.randint(0, 55))
        if ties:  # exact ties, and near-ties that only 32-bit floats merge
            run[qid] = {d: round(rng.random(), 1) + rng.choice([0.0, 1e-9, 3e-10]) for d in retrieved}
        else:
            run[qid] = {d: rng.random() for d in retrieved}
    run["unjudged"] = {"d1": 1.0}
    return run, qrels


def ir_measures_per_query(measure: str, qrels, run) -> dict[str, float]:
    m = ir_measures.parse_measure(measure)
    return {r.query_id: r.value for r in ir_measures.iter_calc([m], qrels, run)}


@pytest.mark.parametrize("seed,ties", [(1, True), (2, True), (3, False)])
def test_equal_to_ir_measures_on_random_runs(seed, ties):
    run, qrels = random_case(seed, ties)
    ours = M.evaluate(run, qrels, CHECKED)
    for measure in CHECKED:
        theirs = ir_measures_per_query(measure, qrels, run)
        assert set(theirs) == set(ours[measure]), measure
        for qid, value in theirs.items():
            assert ours[measure][qid] == pytest.approx(value, abs=1e-9), (measure, qid)
        agg = ir_measures.calc_aggregate([ir_measures.parse_measure(measure)], qrels, run)
        assert M.aggregate(ours)[measure] == pytest.approx(next(iter(agg.values())), abs=1e-9)


def test_rr_at_k_matches_ir_measures_without_ties_and_trec_order_with_ties():
    run, qrels = random_case(4, ties=False)
    ours = M.evaluate(run, qrels, ["RR@10"])["RR@10"]
    theirs = ir_measures_per_query("RR@10", qrels, run)
    for qid, value in theirs.items():
        assert ours[qid] == pytest.approx(value, abs=1e-9)
    # with ties, RR@10 equals trec_eval's RR on the run cut to its first 10 in trec order
    run, qrels = random_case(5, ties=True)
    cut = {q: {d: s[d] for d in M.rank_documents(s)[:10]} for q, s in run.items()}
    ours = M.evaluate(run, qrels, ["RR@10"])["RR@10"]
    theirs = ir_measures_per_query("RR", qrels, cut)
    for qid, value in theirs.items():
        assert ours[qid] == pytest.approx(value, abs=1e-9)


def test_equal_to_ir_measures_on_cranfield_bm25(cranfield_dir, tmp_path):
    corpus_mod = pytest.importorskip("rerank_core.corpus")
    from rerank_core.registry import create_retriever
    from rerank_core.trec import read_run, write_run

    try:
        retriever = create_retriever("bm25")
    except ImportError as exc:
        pytest.skip(f"bm25 retriever not available: {exc}")
    dataset = corpus_mod.load_beir(cranfield_dir)
    retriever.build(dataset.corpus)
    run = {}
    for qid in dataset.judged_query_ids:
        run[qid] = dict(retriever.search(dataset.queries[qid], 100))
    path = write_run(tmp_path / "bm25.run", run, run_name="bm25")
    run = read_run(path)
    measures = ("nDCG@10", "R@10", "R@50", "P@5", "RR", "AP")
    ours = M.aggregate(M.evaluate(run, dataset.qrels, measures))
    theirs = ir_measures.calc_aggregate([ir_measures.parse_measure(m) for m in measures], dataset.qrels, run)
    for m in measures:
        assert ours[m] == pytest.approx(theirs[ir_measures.parse_measure(m)], abs=1e-9), m
    assert 0.2 < ours["nDCG@10"] < 0.6  # BM25 on Cranfield is in this range
