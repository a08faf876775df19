"""The verdict that respects uncertainty: the lift's paired-bootstrap interval, the queries needed,
the four calls, and the rule checked on Cranfield against an independent recomputation."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from rerank_core.analysis import (
    ALREADY_GOOD_RECALL_AT_3,
    BOOTSTRAP_BLOCK,
    FIX_RETRIEVAL_RECALL_AT_50,
    LIFT_BOOTSTRAP_RESAMPLES,
    VERDICT_KINDS,
    LiftEstimate,
    estimate_lift,
    expanded_alpha,
    paired_bootstrap_ci,
    paired_test,
    queries_needed,
    verdict,
    verdict_rules,
)


def _expanded(n: int, alpha: float = 0.05) -> float:
    """Hesterberg's expanded tail level, written out again: 2 Phi(-sqrt(n / (n - 1)) t(1 - alpha / 2, n - 1))."""
    from scipy.stats import norm, t

    return 2 * norm.cdf(-math.sqrt(n / (n - 1)) * t.ppf(1 - alpha / 2, n - 1))


def _recipe(diffs: np.ndarray, n_resamples: int, seed: int = 0, alpha: float = 0.05) -> tuple[float, float]:
    """The documented bootstrap recipe, written out again here."""
    alpha = _expanded(diffs.size, alpha)
    rng = np.random.default_rng(seed)
    means = []
    for start in range(0, n_resamples, BOOTSTRAP_BLOCK):
        block = min(BOOTSTRAP_BLOCK, n_resamples - start)
        idx = rng.integers(0, diffs.size, size=(block, diffs.size))
        means.extend(diffs[idx].mean(axis=1))
    lo, hi = np.quantile(np.array(means), [alpha / 2, 1 - alpha / 2])
    return float(lo), float(hi)


# -- the interval ------------------------------------------------------------------------------------


def test_paired_bootstrap_follows_its_documented_recipe_and_is_deterministic():
    diffs = np.random.default_rng(5).normal(0.02, 0.15, 87)
    mean, lo, hi = paired_bootstrap_ci(diffs)
    assert mean == pytest.approx(diffs.mean())
    assert (lo, hi) == pytest.approx(_recipe(diffs, LIFT_BOOTSTRAP_RESAMPLES), abs=1e-15)
    assert paired_bootstrap_ci(diffs) == (mean, lo, hi)
    assert paired_bootstrap_ci(list(diffs), n_resamples=2_500, seed=3)[1:] == pytest.approx(
        _recipe(diffs, 2_500, seed=3), abs=1e-15
    )


def test_paired_bootstrap_agrees_with_scipy_and_the_t_interval():
    from scipy import stats

    diffs = np.random.default_rng(7).normal(0.03, 0.2, 225)
    _, lo, hi = paired_bootstrap_ci(diffs, expanded=False)  # the plain percentile interval
    ref = stats.bootstrap(
        (diffs,), np.mean, n_resamples=10_000, method="percentile", rng=np.random.default_rng(1)
    ).confidence_interval
    assert lo == pytest.approx(ref.low, abs=0.004) and hi == pytest.approx(ref.high, abs=0.004)
    # the expanded one is as wide as the t interval, also on few queries (the plain one is too narrow)
    for n in (225, 12):
        sample = diffs[:n]
        _, lo, hi = paired_bootstrap_ci(sample)
        half = stats.t.ppf(0.975, n - 1) * sample.std(ddof=1) / math.sqrt(n)
        assert (hi - lo) / 2 == pytest.approx(half, rel=0.1)
        _, plo, phi = paired_bootstrap_ci(sample, expanded=False)
        assert phi - plo < hi - lo


def test_the_expanded_level_by_formula():
    assert expanded_alpha(20) == pytest.approx(_expanded(20)) == pytest.approx(0.0318, abs=1e-4)
    assert expanded_alpha(225) == pytest.approx(0.0483, abs=1e-4)
    assert expanded_alpha(1) == 0.05 and expanded_alpha(10_000) == pytest.approx(0.05, abs=1e-4)


def test_paired_bootstrap_edge_cases():
    assert paired_bootstrap_ci([0.2]) == (0.2, 0.2, 0.2)
    assert paired_bootstrap_ci([0.1, 0.1, 0.1]) == pytest.approx((0.1, 0.1, 0.1))
    for bad in ([], [0.1, math.nan]):
        with pytest.raises(ValueError):
            paired_bootstrap_ci(bad)
    with pytest.raises(ValueError):
        paired_bootstrap_ci([0.1, 0.2], alpha=1.5)


# -- queries needed ----------------------------------------------------------------------------------


def test_queries_needed_is_the_paired_power_formula():
    diffs = np.array([0.3, -0.1, 0.05, 0.2, 0.0, -0.05, 0.12])
    d, s = diffs.mean(), diffs.std(ddof=1)
    z = 1.959963984540054 + 0.8416212335729143  # z(0.975) + z(0.80)
    assert queries_needed(diffs) == math.ceil((z * s / d) ** 2)
    assert queries_needed(-diffs) == queries_needed(diffs)  # the size of a difference, either sign
    # at alpha 0.05 and 80% power: about 7.85 * (s / d)^2
    many = np.random.default_rng(0).normal(0.01, 0.1, 400)
    assert queries_needed(many) == pytest.approx(7.85 * (many.std(ddof=1) / many.mean()) ** 2, rel=0.01)
    # a stricter level or more power needs more queries
    assert queries_needed(diffs, alpha=0.01) > queries_needed(diffs)
    assert queries_needed(diffs, power=0.9) > queries_needed(diffs)


def test_queries_needed_edge_cases():
    assert queries_needed([0.1]) is None  # no spread can be measured on one query
    assert queries_needed([0.1, -0.1]) is None  # mean 0: no effect to size
    assert queries_needed([0.05, 0.05, 0.05]) == 2
    with pytest.raises(ValueError):
        queries_needed([0.1, 0.2], power=1.0)


# -- the calls ------------------------------------------------------------------------------------------


def _est(
    method: str,
    lift: float,
    lo: float,
    hi: float,
    ms: float = 100.0,
    needed: int | None = 300,
    p: float = 0.01,
):
    return LiftEstimate(method, lift, lo, hi, p_value=p, n=30, queries_needed=needed, added_p95_ms=ms)


def test_reranker_pays_needs_the_interval_above_zero():
    v = verdict(0.8, 0.3, {"cross-encoder": _est("cross-encoder", 0.05, 0.01, 0.09)}, baseline=0.4)
    assert v.kind == "reranker-pays" and v.worth_it and v.best_method == "cross-encoder"
    assert v.to_json() == {
        "call": "reranker-pays",
        "method": "cross-encoder",
        "lift": 0.05,
        "ci": [0.01, 0.09],
        "p": 0.01,
        "queries_needed": None,
    }
    assert "0.400 -> 0.450" in v.text and "+0.010 to +0.090" in v.text

    # the case: a lift whose interval includes zero is not a reranker paying
    unsure = verdict(0.8, 0.3, {"cross-encoder": _est("cross-encoder", 0.05, -0.02, 0.12, needed=212, p=0.2)})
    assert unsure.kind == "inconclusive" and not unsure.worth_it
    assert unsure.to_json()["queries_needed"] == 212 and unsure.queries_needed == 212
    assert "212 queries" in unsure.text and "182 more than the 30 here" in unsure.text
    assert "reranker pays" not in unsure.text.lower() and "includes zero" in unsure.text

    # the rule is the interval's: just above zero pays, and a test that is less sure is pointed out
    edge = verdict(0.8, 0.3, {"li": _est("li", 0.047, 0.0003, 0.092, needed=40, p=0.068)})
    assert edge.kind == "reranker-pays" and "p = 0.068" in edge.text and "less sure" in edge.text
    significant_but_wide = verdict(0.8, 0.3, {"li": _est("li", 0.047, -0.001, 0.092, needed=25, p=0.04)})
    assert significant_but_wide.kind == "inconclusive" and "includes zero" in significant_but_wide.text


def test_the_largest_lift_with_its_interval_above_zero_is_named():
    estimates = {
        "llm": _est("llm", 0.08, -0.01, 0.17, ms=3000, p=0.09),
        "cross-encoder": _est("cross-encoder", 0.04, 0.01, 0.07),
        "flashrank": _est("flashrank", 0.03, 0.005, 0.055, ms=10),
    }
    v = verdict(0.8, 0.3, estimates)
    assert v.kind == "reranker-pays" and v.best_method == "cross-encoder"
    assert "llm measured a larger lift (+0.080)" in v.text and "includes zero" in v.text
    small = verdict(0.8, 0.3, {"x": _est("x", 0.004, 0.001, 0.007)})
    assert small.kind == "reranker-pays" and not small.worth_it and "real but small" in small.text


def test_fix_retrieval_first_and_already_good_keep_their_recall_rules():
    paying = {"ce": _est("ce", 0.05, 0.01, 0.09)}
    low = verdict(FIX_RETRIEVAL_RECALL_AT_50 - 0.01, 0.2, paying)
    assert low.kind == "fix-retrieval-first" and low.best_method == "ce" and low.queries_needed is None
    assert verdict(FIX_RETRIEVAL_RECALL_AT_50, 0.2, paying).kind == "reranker-pays"
    flat = {"ce": _est("ce", 0.004, -0.01, 0.018)}
    good = verdict(0.95, 0.5, flat, recall3_of_ideal=ALREADY_GOOD_RECALL_AT_3)
    assert good.kind == "already-good" and good.queries_needed is None and "80%" in good.text
    # a clear lift beats the headroom rule: the measurement is the stronger evidence
    assert verdict(0.95, 0.5, paying, recall3_of_ideal=0.9).kind == "reranker-pays"
    assert verdict(0.95, 0.5, flat, recall3_of_ideal=0.79).kind == "inconclusive"


def test_inconclusive_without_rerankers_and_when_every_reranker_hurts():
    none = verdict(0.9, 0.3, {})
    assert none.kind == "inconclusive" and none.best_method is None and none.queries_needed is None
    assert none.to_json() == {
        "call": "inconclusive",
        "method": None,
        "lift": None,
        "ci": None,
        "p": None,
        "queries_needed": None,
    }
    assert "no reranker was measured" in none.text
    worse = verdict(0.9, 0.3, {"tiny": _est("tiny", -0.06, -0.09, -0.03)})
    assert (
        worse.kind == "inconclusive" and worse.queries_needed is None and "made nDCG@10 worse" in worse.text
    )
    assert {
        verdict(r50, 0.3, {}, recall3_of_ideal=r3).kind for r50, r3 in [(0.1, 0.1), (0.9, 0.9), (0.9, 0.1)]
    } | {"reranker-pays"} == set(VERDICT_KINDS)
    with pytest.raises(ValueError):
        verdict(1.2, 0.3, {})


def test_rules_are_stated_once_with_their_bars():
    rules = verdict_rules()
    for bar in (
        "60%",
        "80%",
        "95% interval",
        "bootstrap of the per-query differences",
        "randomisation test",
        "80% power",
    ):
        assert bar in rules


def test_estimate_lift_pairs_the_shared_queries():
    fs = {f"q{i}": 0.1 * (i % 5) for i in range(40)}
    rr = {q: v + (0.05 if i % 4 else -0.02) for i, (q, v) in enumerate(fs.items())}
    rr["extra"] = 1.0
    e = estimate_lift("m", fs, rr, added_p95_ms=12.0, fallback_queries=3)
    diffs = np.array([rr[q] - fs[q] for q in fs])
    assert e.n == 40 and e.lift == pytest.approx(diffs.mean())
    assert (e.ci_low, e.ci_high) == pytest.approx(_recipe(diffs, LIFT_BOOTSTRAP_RESAMPLES), abs=1e-15)
    assert e.p_value == paired_test(fs, {q: rr[q] for q in fs}).p_value
    assert e.queries_needed == queries_needed(diffs) and e.fallback_queries == 3
    with pytest.raises(ValueError, match="no query in common"):
        estimate_lift("m", {"a": 1.0}, {"b": 1.0})


# -- on Cranfield with the real MiniLM bi-encoder ----------------------------------------------------


@pytest.fixture(scope="module")
def cranfield_runs(cranfield_dir, minilm_path, tmp_path_factory, shared_cache_dir):
    """BM25 top 100 reranked by the packaged all-MiniLM-L6-v2 bi-encoder: all 225 queries and the first 5."""
    from rerank_core.config import Settings
    from rerank_core.corpus import load_beir
    from rerank_core.evaluation import run_evaluation
    from rerank_core.pipeline import Runtime

    data = tmp_path_factory.mktemp("data")
    settings = Settings(data_dir=data, cache_dir=shared_cache_dir)
    dataset = load_beir(cranfield_dir)
    runtime = Runtime()  # both runs share the loaded model and the corpus's embeddings
    methods = ["bm25", "bi-encoder"]  # the default model: the packaged all-MiniLM-L6-v2
    full = run_evaluation(dataset, "bm25", 100, methods, settings=settings, runtime=runtime)
    five = run_evaluation(dataset, "bm25", 100, methods, settings=settings, runtime=runtime, max_queries=5)
    return dataset, full, five


@pytest.mark.slow
def test_five_cranfield_queries_are_inconclusive_with_queries_needed(cranfield_runs):
    _, _, five = cranfield_runs
    data = json.loads(five.dumps())
    v = data["verdict"]
    assert set(v) == {"call", "method", "lift", "ci", "p", "queries_needed"}
    assert v["call"] == "inconclusive" and v["method"] == "bi-encoder"
    assert v["ci"][0] <= 0.0 <= v["ci"][1]
    assert isinstance(v["queries_needed"], int) and v["queries_needed"] > 5
    print(f"5 queries: {v}")


@pytest.mark.slow
def test_all_cranfield_queries_verdict_equals_a_recomputation_from_the_run_files(cranfield_runs, tmp_path):
    import ir_measures

    from rerank_core.trec import read_run

    dataset, full, _ = cranfield_runs
    data = json.loads(full.dumps())
    written = full.write_runs(tmp_path)
    qrels = {q: dataset.qrels[q] for q in full.query_ids}
    assert len(qrels) == 225

    # per-query nDCG@10, R@50 and R@3 from the run files, by ir_measures
    def per_query(path, measures):
        out: dict[str, dict[str, float]] = {str(m): {} for m in measures}
        for row in ir_measures.iter_calc(measures, qrels, read_run(path)):
            out[str(row.measure)][row.query_id] = row.value
        return out

    ndcg, r50, r3 = (
        ir_measures.parse_measure("nDCG@10"),
        ir_measures.parse_measure("R@50"),
        ir_measures.parse_measure("R@3"),
    )
    fs = per_query(written["bm25"], [ndcg, r50, r3])
    bi = per_query(written["bi-encoder"], [ndcg])
    diffs = np.array([bi["nDCG@10"][q] - fs["nDCG@10"][q] for q in full.query_ids])
    lo, hi = _recipe(diffs, LIFT_BOOTSTRAP_RESAMPLES)
    v = data["verdict"]
    assert v["lift"] == pytest.approx(diffs.mean(), abs=1e-9)
    assert v["ci"] == pytest.approx([lo, hi], abs=1e-6)

    # the call, by the rule written out again
    recall50 = np.mean([fs["R@50"][q] for q in full.query_ids])
    n_rel = {q: sum(1 for g in qrels[q].values() if g >= 1) for q in full.query_ids}
    of_ideal = np.mean([fs["R@3"][q] * n_rel[q] / min(3, n_rel[q]) for q in full.query_ids if n_rel[q]])
    if recall50 < FIX_RETRIEVAL_RECALL_AT_50:
        call = "fix-retrieval-first"
    elif lo > 0 and v["p"] < 0.05:
        call = "reranker-pays"
    elif of_ideal >= ALREADY_GOOD_RECALL_AT_3:
        call = "already-good"
    else:
        call = "inconclusive"
    assert v["call"] == call
    if call == "inconclusive":
        assert v["queries_needed"] == queries_needed(diffs)
    in_order = [full.query_ids, full.query_ids]  # the randomisation test flips signs by position
    a, b = ({q: src["nDCG@10"][q] for q in ids} for src, ids in zip((fs, bi), in_order, strict=True))
    assert v["p"] == pytest.approx(paired_test(a, b).p_value, abs=2e-4)
    print(f"225 queries: {v}; Recall@50 {recall50:.3f}, Recall@3 of ideal {of_ideal:.3f}")

    # per-query attribution adds up to each query's judged relevant documents
    rows = data["per_query_analysis"]["methods"]["bi-encoder"]["rows"]
    assert len(rows) == 225
    for row in rows:
        assert row["found"] + row["retrieval"] + row["reranker"] == row["relevant"] == n_rel[row["query"]]
