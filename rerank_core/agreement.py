"""Agreement between two judges, and qrels that say whose judgements they hold.

Judges are compared on the (query, document) pairs both graded: the confusion matrix of their
grades and Cohen's kappa with quadratic weights, which counts a 0-vs-3 disagreement nine times a
0-vs-1 one and corrects for the agreement two judges with the same grade habits would reach by
chance. 1 is perfect agreement, 0 chance level, below 0 worse than chance.

Metrics can rest on people's judgements only, or on people's with an LLM judge filling the pairs
no person judged (:func:`merge_qrels`): the result says which, and how many judgements came from
each, so the two are never mixed silently.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

Qrels = Mapping[str, Mapping[str, int]]

#: the grades people give by hand; agreement tables always show at least these
GRADE_SCALE: tuple[int, ...] = (0, 1, 2, 3)


@dataclass(frozen=True)
class Kappa:
    """A kappa value, or None with the reason it is undefined."""

    value: float | None
    reason: str | None = None


def weighted_kappa(
    a: Sequence[int], b: Sequence[int], labels: Sequence[int] | None = None, weights: str = "quadratic"
) -> Kappa:
    """Cohen's kappa of two equally long grade lists, with ``quadratic`` (default), ``linear`` or no
    (``"none"``) weights.

    ``labels`` are the categories in order; the weight of a disagreement between the i-th and the
    j-th label is ``(i - j) ** 2`` (quadratic) or ``|i - j|`` (linear), by POSITION in ``labels``.
    Without ``labels`` the sorted grades seen in either list are used (as scikit-learn's
    ``cohen_kappa_score`` does): then grades 0 and 3 alone are one step apart. Pass
    ``labels=range(0, 4)`` to weigh by grade. ``kappa = 1 - sum(W * O) / sum(W * E)`` with O the
    observed confusion counts and E the counts expected from each judge's grade frequencies.
    Undefined (None with a reason) with no pairs, or when chance alone would explain every
    agreement (both judges always give the same single grade).
    """
    if len(a) != len(b):
        raise ValueError(f"the two judges have {len(a)} and {len(b)} grades: pair them first")
    if weights not in ("quadratic", "linear", "none"):
        raise ValueError(f"weights must be 'quadratic', 'linear' or 'none', got {weights!r}")
    if not a:
        return Kappa(None, "no pairs judged by both: nothing to compare")
    cats = list(labels) if labels is not None else sorted(set(a) | set(b))
    index = {g: i for i, g in enumerate(cats)}
    unknown = sorted({g for g in (*a, *b) if g not in index})
    if unknown:
        raise ValueError(f"grades {unknown} are not among the labels {cats}")
    observed = confusion_counts(a, b, cats)
    n = observed.sum()
    expected = np.outer(observed.sum(axis=1), observed.sum(axis=0)) / n
    pos = np.arange(len(cats), dtype=np.float64)
    diff = pos[:, None] - pos[None, :]
    if weights == "quadratic":
        w = diff**2
    elif weights == "linear":
        w = np.abs(diff)
    else:
        w = (diff != 0).astype(np.float64)
    denom = float((w * expected).sum())
    if denom == 0.0:
        only = sorted(set(a) | set(b))
        return Kappa(
            None,
            f"both judges gave only grade {only[0]}: with no variation, agreement beyond chance is undefined",
        )
    return Kappa(1.0 - float((w * observed).sum()) / denom)


def confusion_counts(a: Sequence[int], b: Sequence[int], labels: Sequence[int]) -> np.ndarray:
    """Counts of (a's grade, b's grade): rows follow ``labels`` for judge a, columns for judge b."""
    index = {g: i for i, g in enumerate(labels)}
    out = np.zeros((len(labels), len(labels)), dtype=np.int64)
    for x, y in zip(a, b, strict=True):
        out[index[x], index[y]] += 1
    return out


@dataclass(frozen=True)
class Agreement:
    """Two judges on the pairs both graded."""

    judge_a: str
    judge_b: str
    pairs: int
    kappa: float | None
    reason: str | None  # why kappa is None
    labels: tuple[int, ...]
    matrix: tuple[tuple[int, ...], ...]  # rows: judge_a's grade, columns: judge_b's grade
    exact: float | None  # share of pairs with the same grade

    def to_json(self) -> dict[str, Any]:
        return {
            "judges": [self.judge_a, self.judge_b],
            "pairs": self.pairs,
            "kappa_quadratic": self.kappa,
            "reason": self.reason,
            "labels": list(self.labels),
            "confusion": [list(r) for r in self.matrix],
            "exact_agreement": self.exact,
        }


def shared_pairs(a: Qrels, b: Qrels) -> list[tuple[str, str, int, int]]:
    """``(query, doc, a's grade, b's grade)`` for every pair both judged, sorted."""
    out = []
    for qid in sorted(set(a) & set(b)):
        for doc_id in sorted(set(a[qid]) & set(b[qid])):
            out.append((qid, doc_id, int(a[qid][doc_id]), int(b[qid][doc_id])))
    return out


def judge_agreement(
    a: Qrels, b: Qrels, judge_a: str = "a", judge_b: str = "b", labels: Sequence[int] | None = None
) -> Agreement:
    """Confusion matrix and quadratic-weighted kappa of two judges on their shared pairs.

    ``labels`` default: :data:`GRADE_SCALE` plus any other grade seen, sorted, so a 0-vs-3
    disagreement weighs 9 whatever grades happen to occur.
    """
    pairs = shared_pairs(a, b)
    ga = [p[2] for p in pairs]
    gb = [p[3] for p in pairs]
    cats = tuple(labels) if labels is not None else tuple(sorted(set(GRADE_SCALE) | set(ga) | set(gb)))
    k = weighted_kappa(ga, gb, cats)
    matrix = confusion_counts(ga, gb, cats)
    return Agreement(
        judge_a=judge_a,
        judge_b=judge_b,
        pairs=len(pairs),
        kappa=k.value,
        reason=k.reason,
        labels=cats,
        matrix=tuple(tuple(int(x) for x in row) for row in matrix),
        exact=(sum(1 for x, y in zip(ga, gb, strict=True) if x == y) / len(pairs)) if pairs else None,
    )


# ---------------------------------------------------------------------------------------------
# people first, an LLM filling gaps

PEOPLE_ONLY = "people only"
PEOPLE_THEN_LLM = "people, the LLM filling gaps"


@dataclass(frozen=True)
class LabelledQrels:
    """Qrels with the account of where they came from (shown next to every metric built on them)."""

    qrels: dict[str, dict[str, int]]
    basis: str  # PEOPLE_ONLY or PEOPLE_THEN_LLM
    label: str  # e.g. "people, the LLM filling gaps (llm:gpt-4o-mini: 120 of 410 judgements)"
    from_people: int
    from_llm: int
    llm_judge: str | None = None

    def source(self, people: Qrels, query_id: str, doc_id: str) -> str:
        """``"people"`` or the LLM judge's name for one pair of these qrels."""
        return "people" if doc_id in people.get(query_id, {}) else (self.llm_judge or "llm")


def merge_qrels(people: Qrels, llm: Qrels | None = None, llm_judge: str = "llm") -> LabelledQrels:
    """People's judgements, and, when ``llm`` is given, the LLM's only where no person judged.

    A person's grade always wins on a pair both judged; the LLM never overrides or hides it.
    Without ``llm`` the result is labelled :data:`PEOPLE_ONLY`; with it :data:`PEOPLE_THEN_LLM`,
    naming the judge and how many judgements each side gave.
    """
    merged = {q: {d: int(g) for d, g in docs.items()} for q, docs in people.items() if docs}
    n_people = sum(len(d) for d in merged.values())
    if llm is None:
        return LabelledQrels(merged, PEOPLE_ONLY, f"{PEOPLE_ONLY} ({n_people} judgements)", n_people, 0)
    n_llm = 0
    for qid, docs in llm.items():
        for doc_id, grade in docs.items():
            target = merged.setdefault(qid, {})
            if doc_id not in target:
                target[doc_id] = int(grade)
                n_llm += 1
    merged = {q: d for q, d in merged.items() if d}
    total = n_people + n_llm
    return LabelledQrels(
        merged,
        PEOPLE_THEN_LLM,
        f"{PEOPLE_THEN_LLM} ({llm_judge}: {n_llm} of {total} judgements)",
        n_people,
        n_llm,
        llm_judge,
    )
