"""Judge agreement (quadratic-weighted kappa, confusion matrix) and people-first merged qrels."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score, confusion_matrix

from rerank_core.agreement import (
    PEOPLE_ONLY,
    PEOPLE_THEN_LLM,
    judge_agreement,
    merge_qrels,
    shared_pairs,
    weighted_kappa,
)

# two judges on 40 pairs: mostly agreeing, a few one-step and two big disagreements
RNG = np.random.default_rng(11)
A = [int(x) for x in RNG.integers(0, 4, 40)]
B = [min(3, max(0, a + int(RNG.choice([0, 0, 0, 1, -1])))) for a in A]
B[3], B[17] = 3 - A[3], 3 - A[17]


def _sklearn(a, b, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return cohen_kappa_score(a, b, **kw)


def test_kappa_equals_scikit_learn():
    ours = weighted_kappa(A, B)
    assert ours.reason is None
    assert ours.value == pytest.approx(_sklearn(A, B, weights="quadratic"), abs=1e-12)
    assert weighted_kappa(A, B, weights="linear").value == pytest.approx(
        _sklearn(A, B, weights="linear"), abs=1e-12
    )
    assert weighted_kappa(A, B, weights="none").value == pytest.approx(_sklearn(A, B), abs=1e-12)
    # with labels given, positions follow them (here: weigh by grade on the full 0-4 scale)
    labels = [0, 1, 2, 3, 4]
    assert weighted_kappa(A, B, labels).value == pytest.approx(
        _sklearn(A, B, weights="quadratic", labels=labels), abs=1e-12
    )


def test_kappa_by_formula_on_a_small_case():
    # O = [[1, 1], [0, 2]] over labels 0, 1; quadratic weights are 0 on the diagonal, 1 off it
    a, b = [0, 0, 1, 1], [0, 1, 1, 1]
    expected = np.outer([2, 2], [1, 3]) / 4
    kappa = 1 - 1 / (expected[0, 1] + expected[1, 0])
    assert weighted_kappa(a, b).value == pytest.approx(kappa)
    assert weighted_kappa([0, 1, 2, 3], [0, 1, 2, 3]).value == pytest.approx(1.0)
    assert weighted_kappa([0, 3], [3, 0]).value == pytest.approx(-1.0)


def test_kappa_edge_cases_say_why():
    none = weighted_kappa([], [])
    assert none.value is None and "no pairs" in none.reason
    one = weighted_kappa([2, 2, 2], [2, 2, 2], labels=[0, 1, 2, 3])
    assert one.value is None and "only grade 2" in one.reason
    assert np.isnan(_sklearn([2, 2, 2], [2, 2, 2], weights="quadratic"))  # scikit-learn: nan
    # one label each, but different: defined, and no better than chance
    assert weighted_kappa([0, 0], [3, 3]).value == pytest.approx(
        _sklearn([0, 0], [3, 3], weights="quadratic")
    )
    with pytest.raises(ValueError, match="pair them"):
        weighted_kappa([1], [1, 2])
    with pytest.raises(ValueError, match="not among the labels"):
        weighted_kappa([5], [1], labels=[0, 1])


def _qrels(grades):
    """Ten documents per query: grade i goes to document d<i> of query q<i // 10>."""
    return {
        f"q{q}": {f"d{i}": grades[i] for i in range(10 * q, 10 * q + 10)} for q in range(len(grades) // 10)
    }


def test_judge_agreement_on_shared_pairs():
    people = _qrels(A)
    llm = _qrels(B)
    llm["q0"].pop("d0")  # judged by people only
    llm["q9"] = {"d99": 2}  # judged by the LLM only
    people["q1"]["extra"] = 1
    agreement = judge_agreement(people, llm, "me", "llm:gpt-4o-mini")
    pairs = shared_pairs(people, llm)
    assert agreement.pairs == len(pairs) == 39
    a = [p[2] for p in pairs]
    b = [p[3] for p in pairs]
    assert agreement.kappa == pytest.approx(
        _sklearn(a, b, weights="quadratic", labels=[0, 1, 2, 3]), abs=1e-12
    )
    assert agreement.labels == (0, 1, 2, 3)
    assert np.array_equal(np.array(agreement.matrix), confusion_matrix(a, b, labels=[0, 1, 2, 3]))
    assert agreement.exact == pytest.approx(np.mean(np.array(a) == np.array(b)))
    data = agreement.to_json()
    assert data["judges"] == ["me", "llm:gpt-4o-mini"] and data["kappa_quadratic"] == agreement.kappa
    nothing = judge_agreement({"q": {"a": 1}}, {"q": {"b": 1}})
    assert (
        nothing.pairs == 0
        and nothing.kappa is None
        and "no pairs" in nothing.reason
        and nothing.exact is None
    )


def test_people_first_merge_is_labelled_and_never_overrides_a_person():
    people = {"q1": {"a": 3, "b": 0}, "q2": {"c": 1}, "q3": {}}
    llm = {"q1": {"a": 0, "x": 2}, "q3": {"y": 1}, "q4": {"z": 0}}
    only = merge_qrels(people)
    assert only.basis == PEOPLE_ONLY and only.qrels == {"q1": {"a": 3, "b": 0}, "q2": {"c": 1}}
    assert only.label == "people only (3 judgements)" and only.from_llm == 0
    merged = merge_qrels(people, llm, llm_judge="llm:gpt-4o-mini")
    assert merged.basis == PEOPLE_THEN_LLM
    assert merged.qrels == {"q1": {"a": 3, "b": 0, "x": 2}, "q2": {"c": 1}, "q3": {"y": 1}, "q4": {"z": 0}}
    assert (merged.from_people, merged.from_llm) == (3, 3)
    assert merged.label == "people, the LLM filling gaps (llm:gpt-4o-mini: 3 of 6 judgements)"
    assert (
        merged.source(people, "q1", "a") == "people" and merged.source(people, "q1", "x") == "llm:gpt-4o-mini"
    )
