"""The "does reranking pay" analytics: intervals, paired tests, depth sweeps, knee, verdict, policy."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rerank_core import analysis
from rerank_core.analysis import (
    ALREADY_GOOD_RECALL_AT_3,
    FIX_RETRIEVAL_RECALL_AT_50,
    LiftEstimate,
    adaptive_policy,
    bootstrap_ci,
    depth_sweep,
    effective_depths,
    find_knee,
    ideal_recall_at_k,
    normalised_margin,
    paired_test,
    policy_thresholds,
    recall_of_ideal,
    sweep_from_scores,
    verdict,
    verdict_rules,
)
from rerank_core.metrics import evaluate, ndcg_at_k, recall_at_k

# --------------------------------------------------------------------------------------------------
# bootstrap


def test_bootstrap_interval_contains_the_mean_and_shrinks_with_more_queries():
    rng = np.random.default_rng(1)
    small = rng.uniform(0, 1, 20)
    large = rng.uniform(0, 1, 2000)
    m_s, lo_s, hi_s = bootstrap_ci(small)
    m_l, lo_l, hi_l = bootstrap_ci(large)
    assert m_s == pytest.approx(small.mean()) and lo_s < m_s < hi_s
    assert lo_l < m_l < hi_l
    # the width of a mean's interval scales like 1/sqrt(n): 10x narrower for 100x the queries
    assert (hi_l - lo_l) < 0.2 * (hi_s - lo_s)
    assert (hi_s - lo_s) == pytest.approx(2 * 1.96 * small.std() / math.sqrt(20), rel=0.25)


def test_bootstrap_is_deterministic_and_alpha_controls_the_width():
    values = {f"q{i}": v for i, v in enumerate(np.linspace(0, 1, 30) ** 2)}
    assert bootstrap_ci(values, seed=3) == bootstrap_ci(values, seed=3)
    _, lo95, hi95 = bootstrap_ci(values, alpha=0.05)
    _, lo50, hi50 = bootstrap_ci(values, alpha=0.5)
    assert hi50 - lo50 < hi95 - lo95


def test_bootstrap_edge_cases():
    assert bootstrap_ci([0.4]) == (0.4, 0.4, 0.4)
    assert bootstrap_ci([0.7] * 10) == pytest.approx((0.7, 0.7, 0.7))
    with pytest.raises(ValueError):
        bootstrap_ci([])
    with pytest.raises(ValueError):
        bootstrap_ci([0.1, float("nan")])


# --------------------------------------------------------------------------------------------------
# paired test


def test_identical_methods_give_p_one():
    a = {f"q{i}": v for i, v in enumerate(np.random.default_rng(0).uniform(0, 1, 50))}
    res = paired_test(a, dict(a))
    assert res.p_value == 1.0 and res.diff_mean == 0.0 and res.n == 50
    assert "randomisation" in res.test_name


def test_a_clear_shift_is_significant_and_its_sign_is_kept():
    rng = np.random.default_rng(2)
    a = {f"q{i}": float(v) for i, v in enumerate(rng.uniform(0.2, 0.6, 40))}
    b = {q: v + 0.1 + float(rng.normal(0, 0.02)) for q, v in a.items()}
    res = paired_test(a, b)
    assert res.diff_mean == pytest.approx(0.1, abs=0.01)
    assert res.p_value < 0.001 and res.significant()
    assert paired_test(b, a).diff_mean == pytest.approx(-res.diff_mean)


def test_exact_randomisation_p_value_matches_the_formula():
    # five queries all improved: of the 2**5 sign assignments, only "all +" and "all -" reach the
    # observed |mean difference|, so the exact two-sided p-value is 2/32
    a = {f"q{i}": 0.0 for i in range(5)}
    b = {f"q{i}": 0.1 * (i + 1) for i in range(5)}
    assert paired_test(a, b).p_value == pytest.approx(2 / 32)


def test_noise_without_a_shift_is_not_significant_and_only_shared_queries_count():
    a = {f"q{i}": 0.5 for i in range(20)}
    b = {f"q{i}": 0.5 + (0.1 if i % 2 else -0.1) for i in range(20)}
    b["only-in-b"] = 1.0
    res = paired_test(a, b)
    assert res.n == 20 and res.diff_mean == pytest.approx(0.0, abs=1e-12) and res.p_value > 0.5
    with pytest.raises(ValueError, match="share no query"):
        paired_test({"x": 1.0}, {"y": 1.0})


# --------------------------------------------------------------------------------------------------
# depth sweep


def _synthetic(n_queries: int = 12, n_docs: int = 60, seed: int = 0):
    """First-stage lists that put relevant documents deep, and a pointwise scorer that likes them."""
    rng = np.random.default_rng(seed)
    rankings, qrels, true_scores = {}, {}, {}
    for q in range(n_queries):
        qid = f"q{q}"
        docs = [f"{qid}-d{i}" for i in range(n_docs)]
        rankings[qid] = docs
        rel_positions = rng.choice(np.arange(5, n_docs), size=4, replace=False)
        qrels[qid] = {docs[int(p)]: int(rng.integers(1, 4)) for p in rel_positions}
        qrels[qid][docs[0]] = 0  # a judged non-relevant document on top
        true_scores[qid] = {d: float(qrels[qid].get(d, 0)) + float(rng.normal(0, 0.3)) for d in docs}
    return rankings, qrels, true_scores


def test_sweep_from_one_deep_scoring_equals_reranking_every_depth_for_pointwise_methods():
    rankings, qrels, scores = _synthetic()
    calls: list[int] = []

    def rerank(qid, docs):
        calls.append(len(docs))
        return [scores[qid][d] for d in docs]

    once = depth_sweep(rerank, rankings, qrels, pointwise=True)
    assert calls == [60] * 12  # the deepest list (capped at 60 documents) once per query
    calls.clear()
    every = depth_sweep(rerank, rankings, qrels, pointwise=False)
    assert sorted(calls) == sorted([10, 25, 50, 60] * 12)
    assert [p.depth for p in once] == [10, 25, 50, 60]
    assert [p.value for p in once] == pytest.approx([p.value for p in every])
    # deeper candidate lists let the scorer find the deeply placed relevant documents
    assert once[-1].value > once[0].value
    assert all(p.n_queries == 12 for p in once)


def test_sweep_values_are_ndcg_of_the_reordered_prefix():
    rankings = {"q": ["a", "b", "c", "d"]}
    qrels = {"q": {"c": 2, "d": 1}, "unjudged-in-run": {}}
    scores = {"q": {"a": 0.1, "b": 0.5, "c": 0.9, "d": 0.7}}
    points = sweep_from_scores(rankings, scores, qrels, depths=[2, 3, 4, 10], k=10)
    assert [p.depth for p in points] == [2, 3, 4]
    # depth 2: [b, a] has no relevant document; depth 3: [c, b, a]; depth 4: [c, d, b, a] (ideal)
    idcg = 2 + 1 / math.log2(3)
    assert points[0].value == 0.0
    assert points[1].value == pytest.approx(2 / idcg)
    assert points[2].value == pytest.approx(1.0)
    assert points[1].value == pytest.approx(ndcg_at_k(["c", "b", "a"], qrels["q"], 10))


def test_ties_keep_the_first_stage_order_and_listwise_is_refused():
    rankings = {"q": ["a", "b", "c"]}
    qrels = {"q": {"a": 1}}
    flat = {"q": {"a": 1.0, "b": 1.0, "c": 1.0}}
    assert sweep_from_scores(rankings, flat, qrels, depths=[3])[0].value == 1.0
    with pytest.raises(ValueError, match="listwise"):
        sweep_from_scores(rankings, flat, qrels, pointwise=False)
    with pytest.raises(ValueError, match="no reranker score"):
        sweep_from_scores(rankings, {"q": {"a": 1.0}}, qrels, depths=[3])


def test_depths_are_capped_at_the_corpus_size():
    assert effective_depths([10, 25, 50, 100, 200], 30) == [10, 25, 30]
    assert effective_depths([200, 10], 5) == [5]
    rankings, qrels, scores = _synthetic(n_queries=2, n_docs=60)
    assert [p.depth for p in sweep_from_scores(rankings, scores, qrels, corpus_size=40)] == [10, 25, 40]
    with pytest.raises(ValueError):
        effective_depths([0, 10], 30)


# --------------------------------------------------------------------------------------------------
# knee


def test_knee_of_a_saturating_curve():
    depths = [10, 25, 50, 100, 200]
    values = [0.5 - 0.3 * math.exp(-d / 20) for d in depths]
    # gains beyond 50: 0.0246 (not below 0.005), beyond 100: 0.0020 -> the knee is 100
    assert find_knee(depths, values) == 100
    assert find_knee(depths, values, tolerance=0.03) == 50
    assert find_knee(list(reversed(depths)), list(reversed(values))) == 100  # order does not matter


def test_knee_edge_cases():
    assert find_knee([10, 25, 50], [0.4, 0.4, 0.4]) == 10  # flat: the shallowest
    assert find_knee([10, 25, 50], [0.1, 0.2, 0.3]) == 50  # still climbing: the deepest
    assert find_knee([10, 25, 50, 100], [0.40, 0.38, 0.45, 0.452]) == 50  # a dip does not stop early
    with pytest.raises(ValueError):
        find_knee([], [])


# --------------------------------------------------------------------------------------------------
# verdict


def _est(method: str, lift: float, lo: float, hi: float, ms: float) -> LiftEstimate:
    return LiftEstimate(method, lift, lo, hi, p_value=0.01, n=40, queries_needed=None, added_p95_ms=ms)


def test_verdict_low_recall_means_fix_retrieval_first():
    v = verdict(0.45, 0.2, {"cross-encoder": _est("cross-encoder", 0.03, 0.01, 0.05, 120.0)})
    assert v.kind == "fix-retrieval-first"
    assert "45%" in v.text and "cross-encoder" in v.text and "+0.030" in v.text and "120 ms" in v.text


def test_verdict_high_top3_recall_means_already_good():
    lifts = {
        "flashrank": _est("flashrank", 0.004, -0.01, 0.018, 8.0),
        "cross-encoder": _est("cross-encoder", 0.006, -0.01, 0.02, 150.0),
    }
    v = verdict(0.95, 0.85, lifts)
    assert v.kind == "already-good"
    assert v.best_method == "cross-encoder" and not v.worth_it
    assert "85%" in v.text


def test_verdict_reranker_pays_names_the_best_method_lift_and_latency():
    lifts = {
        "cross-encoder": _est("cross-encoder", 0.084, 0.04, 0.13, 118.0),
        "flashrank": _est("flashrank", 0.08, 0.03, 0.12, 12.0),
        "llm": _est("llm", -0.2, -0.3, -0.1, 9000.0),
    }
    v = verdict(0.8, 0.4, lifts, baseline=0.37)
    assert v.kind == "reranker-pays" and v.worth_it
    assert (v.best_method, v.lift, v.added_p95_ms) == ("cross-encoder", 0.084, 118.0)
    assert "by +0.084" in v.text and "0.370 -> 0.454" in v.text and "118 ms" in v.text
    # without a clear lift there is no "reranker pays" (the old rule said so on headroom alone)
    weak = verdict(0.8, 0.4, {"llm": _est("llm", 0.002, -0.02, 0.024, 2600.0)})
    assert weak.kind == "inconclusive" and not weak.worth_it


def test_verdict_thresholds_and_inputs():
    assert verdict(FIX_RETRIEVAL_RECALL_AT_50, 0.1, {}).kind == "inconclusive"
    assert verdict(FIX_RETRIEVAL_RECALL_AT_50 - 1e-9, 0.1, {}).kind == "fix-retrieval-first"
    assert verdict(0.9, ALREADY_GOOD_RECALL_AT_3, {}).kind == "already-good"
    empty = verdict(0.9, 0.5, {})
    assert empty.best_method is None and "no reranker was measured" in empty.text
    paying = {"ce": _est("ce", 0.05, 0.01, 0.09, 100.0)}
    kinds = {verdict(r50, r3, {}).kind for r50, r3 in [(0.1, 0.0), (0.7, 0.3), (1.0, 0.9)]}
    assert kinds | {verdict(0.7, 0.3, paying).kind} == set(analysis.VERDICT_KINDS)
    with pytest.raises(ValueError):
        verdict(1.5, 0.2, {})
    with pytest.raises(ValueError):
        verdict(0.9, 0.2, {}, recall3_of_ideal=1.2)


def _run(*ranked: str) -> dict[str, float]:
    """A run entry whose order is ``ranked`` (first = highest score)."""
    return {d: float(len(ranked) - i) for i, d in enumerate(ranked)}


def test_recall_of_ideal_is_recall_at_3_over_the_best_attainable():
    seven = {f"r{i}": 1 for i in range(7)} | {"n1": 0, "n2": 0}
    qrels = {
        "perfect-top3-of-7": seven,
        "two-of-7": seven,
        "one-relevant-at-2": {"a": 2, "b": 0},
        "three-relevant-all-in": {"a": 1, "b": 3, "c": 2},
        "none-relevant": {"x": 0},
        "not-retrieved": {"a": 1},
    }
    run = {
        "perfect-top3-of-7": _run("r0", "r1", "r2", "r3", "n1"),
        "two-of-7": _run("r0", "n1", "r5", "r6"),
        "one-relevant-at-2": _run("b", "a"),
        "three-relevant-all-in": _run("c", "a", "b"),
        "none-relevant": _run("x"),
    }
    got = recall_of_ideal(run, qrels, 3)
    assert got == pytest.approx(
        {
            "perfect-top3-of-7": 3 / 3,  # raw Recall@3 is only 3/7 here
            "two-of-7": 2 / 3,
            "one-relevant-at-2": 1 / 1,
            "three-relevant-all-in": 3 / 3,
            "not-retrieved": 0.0,
        }
    )  # "none-relevant" has nothing to attain and is left out
    # it is exactly Recall@3 / ideal Recall@3 for every query it covers
    r3 = evaluate(run, qrels, ["R@3"])["R@3"]
    for q, value in got.items():
        assert value == pytest.approx(r3[q] / ideal_recall_at_k(qrels[q], 3))
    assert ideal_recall_at_k(seven, 3) == pytest.approx(3 / 7)
    assert ideal_recall_at_k({"a": 1, "b": 1}, 3) == 1.0 and ideal_recall_at_k({"x": 0}, 3) == 0.0
    # with at most k relevant per query it is plain Recall@k
    ranking = ["b", "a", "c"]
    assert recall_of_ideal({"q": _run(*ranking)}, {"q": {"a": 1, "c": 1}}, 2)["q"] == pytest.approx(
        recall_at_k(ranking, {"a": 1, "c": 1}, 2)
    )
    with pytest.raises(ValueError):
        recall_of_ideal(run, qrels, 0)


def test_a_perfect_top3_with_many_relevant_documents_is_already_good():
    # Cranfield-like: 7 relevant per query, the top 3 all relevant on every query -> raw Recall@3 = 3/7
    qrels = {f"q{i}": {f"d{j}": 1 for j in range(7)} for i in range(4)}
    run = {q: _run(*[f"d{j}" for j in range(7)]) for q in qrels}
    r3 = float(np.mean(list(evaluate(run, qrels, ["R@3"])["R@3"].values())))
    assert r3 == pytest.approx(3 / 7) and r3 < ALREADY_GOOD_RECALL_AT_3  # the raw figure can never pass
    of_ideal = float(np.mean(list(recall_of_ideal(run, qrels).values())))
    v = verdict(
        1.0,
        r3,
        {"late-interaction": _est("late-interaction", 0.0, -0.01, 0.01, 40.0)},
        recall3_of_ideal=of_ideal,
    )
    assert v.kind == "already-good"
    assert v.recall_at_3 == pytest.approx(3 / 7) and v.recall_at_3_of_ideal == pytest.approx(1.0)
    assert "100% of the relevant documents it could hold" in v.text and "Recall@3 0.43" in v.text
    assert "min(3, R) / R" in v.text and "80%" in v.text  # the rule and its bar are stated
    # the same raw Recall@3 with a mediocre top 3 (one hit of three possible) leaves room for a reranker,
    # but with none measured nothing says one pays
    weak = verdict(1.0, r3, {}, recall3_of_ideal=1 / 3)
    assert weak.kind == "inconclusive" and "33% of the relevant documents it could hold" in weak.text
    # without the normalised figure the raw one stands in (equal when no query has > 3 relevant)
    assert verdict(1.0, r3, {}).kind == "inconclusive"


def test_the_verdict_text_states_its_rule_and_bars():
    low = verdict(0.45, 0.2, {}).text
    assert "60%" in low and "Recall@50 0.45" in low
    room = verdict(0.8, 0.2, {}, recall3_of_ideal=0.5).text
    assert "below the 80%" in room and "50% of the relevant" in room
    rules = verdict_rules()
    for bar in ("60%", "80%", "min(3, R) / R", str(analysis.MIN_USEFUL_LIFT)):
        assert bar in rules


# --------------------------------------------------------------------------------------------------
# adaptive policy


def test_normalised_margin():
    assert normalised_margin([10.0, 8.0, 1.0]) == pytest.approx(0.2)
    assert normalised_margin([8.0, 10.0]) == pytest.approx(0.2)  # order of the input does not matter
    assert normalised_margin([5.0]) == 0.0 and normalised_margin([]) == 0.0
    assert normalised_margin([0.0, 0.0]) == 0.0
    assert normalised_margin([0.9, -0.1]) == pytest.approx(1.0 / 0.9)


def _policy_inputs():
    scores = {"sure": [10.0, 2.0], "unsure": [10.0, 9.5], "mid": [10.0, 7.0]}  # margins 0.8, 0.05, 0.3
    base = {"sure": 0.9, "unsure": 0.2, "mid": 0.5}
    reranked = {"sure": 0.8, "unsure": 0.7, "mid": 0.6}
    fs_ms = {"sure": 5.0, "unsure": 5.0, "mid": 5.0}
    return scores, base, reranked, fs_ms


def test_policy_endpoints_are_the_first_stage_and_always_reranking():
    scores, base, reranked, fs_ms = _policy_inputs()
    never, always = adaptive_policy(scores, base, reranked, fs_ms, 100.0, [0.0, math.inf])
    assert never.share_reranked == 0.0
    assert never.mean_metric == pytest.approx(np.mean(list(base.values())))
    assert never.mean_latency_ms == pytest.approx(5.0)
    assert always.share_reranked == 1.0
    assert always.mean_metric == pytest.approx(np.mean(list(reranked.values())))
    assert always.mean_latency_ms == pytest.approx(105.0) and always.p95_latency_ms == pytest.approx(105.0)


def test_policy_reranks_only_unsure_queries():
    scores, base, reranked, fs_ms = _policy_inputs()
    (p,) = adaptive_policy(
        scores, base, reranked, fs_ms, {"sure": 100.0, "unsure": 200.0, "mid": 50.0}, [0.1]
    )
    assert p.share_reranked == pytest.approx(1 / 3)
    assert p.mean_metric == pytest.approx((0.9 + 0.7 + 0.5) / 3)  # only "unsure" reranked, and it gains
    assert p.mean_latency_ms == pytest.approx(5.0 + 200.0 / 3)
    # here the best policy beats both always and never reranking
    points = adaptive_policy(scores, base, reranked, fs_ms, 100.0, [0.0, 0.1, 0.5, math.inf])
    best = max(points, key=lambda x: x.mean_metric)
    assert best.threshold == 0.5 and best.share_reranked == pytest.approx(2 / 3)


def test_policy_thresholds_cover_never_to_always_and_inputs_are_checked():
    scores, base, reranked, fs_ms = _policy_inputs()
    ts = policy_thresholds(scores, n=4)
    assert ts[0] == 0.0 and ts[-1] == math.inf and ts == sorted(ts)
    shares = [p.share_reranked for p in adaptive_policy(scores, base, reranked, fs_ms, 100.0, ts)]
    assert shares == sorted(shares) and shares[0] == 0.0 and shares[-1] == 1.0
    assert set(shares) == {0.0, 1 / 3, 2 / 3, 1.0}  # every query's margin is a step
    with pytest.raises(ValueError, match="reranked_metric"):
        adaptive_policy(scores, base, {"sure": 1.0}, fs_ms, 1.0, [0.5])
    with pytest.raises(ValueError, match="first-stage scores"):
        adaptive_policy({}, base, reranked, fs_ms, 1.0, [0.5])
