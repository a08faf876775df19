"""Side-by-side comparison of rankings for one query: the runner and agreement measures.

:func:`run_comparison` takes the first stage's top-N once and hands the SAME candidates to every
reranker, one after another, so latencies are measured under the same conditions. Each reranker
orders all N candidates (the page shows the top k of that order), so changing the number shown
never reruns a model.

Agreement between two orders of document ids:

- :func:`overlap_at_k`: the share of the top k that both orders contain;
- :func:`kendall_tau`: Kendall's tau-a over the documents both orders rank (no ties in a ranking);
- :func:`rbo`: rank-biased overlap (Webber, Moffat and Zobel, 2010), extrapolated, top-weighted by
  the persistence ``p``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import combinations

from rerank_core.progress import ProgressFn, report
from rerank_core.rerankers.base import Reranker
from rerank_core.retrieval.base import Retriever
from rerank_core.types import Candidate, RankedItem, RerankResult

# -- agreement measures ------------------------------------------------------------------------------


def _check_unique(order: Sequence[str], name: str) -> None:
    if len(set(order)) != len(order):
        raise ValueError(f"{name} contains a document more than once")


def overlap_at_k(a: Sequence[str], b: Sequence[str], k: int) -> float:
    """``|a[:k] ∩ b[:k]| / min(k, max(len(a), len(b)))``; 1.0 for two empty orders.

    The denominator is the number of places shown, so two orders of 5 documents that hold the same
    5 agree fully at k=10.
    """
    if k <= 0:
        raise ValueError("k must be positive")
    _check_unique(a, "first order")
    _check_unique(b, "second order")
    places = min(k, max(len(a), len(b)))
    if places == 0:
        return 1.0
    return len(set(a[:k]) & set(b[:k])) / places


def kendall_tau(a: Sequence[str], b: Sequence[str]) -> float:
    """Kendall's tau-a between two orders, over the documents that both contain.

    ``(concordant - discordant) / (n (n - 1) / 2)``. With no ties (a ranking has none) this equals
    tau-b, as ``scipy.stats.kendalltau`` computes it. NaN when fewer than two documents are shared.
    """
    _check_unique(a, "first order")
    _check_unique(b, "second order")
    pos_b = {doc: i for i, doc in enumerate(b)}
    shared = [doc for doc in a if doc in pos_b]  # in a's order
    n = len(shared)
    if n < 2:
        return math.nan
    ranks = [pos_b[doc] for doc in shared]
    concordant = discordant = 0
    for i in range(n):
        ri = ranks[i]
        for j in range(i + 1, n):
            if ranks[j] > ri:
                concordant += 1
            else:
                discordant += 1
    return (concordant - discordant) / (n * (n - 1) / 2)


def rbo(a: Sequence[str], b: Sequence[str], p: float = 0.9) -> float:
    """Extrapolated rank-biased overlap (RBO_ext, Webber et al. 2010, eq. 32) of two orders.

    For the shorter order S (length s) and the longer L (length l), with X_d the overlap of the
    prefixes at depth d (S's whole list once d > s)::

        RBO_ext = (1-p)/p * ( sum_{d=1..l} X_d/d * p^d  +  sum_{d=s+1..l} X_s (d-s)/(s d) * p^d )
                  + ( (X_l - X_s)/l + X_s/s ) * p^l

    1.0 for identical orders, 0.0 for disjoint ones; ``p`` near 1 weighs deeper ranks more.
    """
    if not 0.0 < p < 1.0:
        raise ValueError("p must be in (0, 1)")
    _check_unique(a, "first order")
    _check_unique(b, "second order")
    short, long_ = (a, b) if len(a) <= len(b) else (b, a)
    s, l_ = len(short), len(long_)
    if s == 0:
        return 1.0 if l_ == 0 else 0.0
    seen_s: set[str] = set()
    seen_l: set[str] = set()
    overlap = 0
    x: list[int] = [0]  # x[d] = overlap at depth d
    for d in range(1, l_ + 1):
        item_l = long_[d - 1]
        if d <= s:
            item_s = short[d - 1]
            if item_s == item_l:
                overlap += 1
            else:
                overlap += (item_s in seen_l) + (item_l in seen_s)
            seen_s.add(item_s)
        else:
            overlap += item_l in seen_s
        seen_l.add(item_l)
        x.append(overlap)
    x_s, x_l = x[s], x[l_]
    total = sum(x[d] / d * p**d for d in range(1, l_ + 1))
    total += sum(x_s * (d - s) / (s * d) * p**d for d in range(s + 1, l_ + 1))
    return (1 - p) / p * total + ((x_l - x_s) / l_ + x_s / s) * p**l_


@dataclass(frozen=True)
class Agreement:
    """How far two orders agree. ``tau_n`` is the number of documents tau was computed over."""

    a: str
    b: str
    k: int
    overlap: float
    kendall_tau: float
    tau_n: int
    rbo: float


def agreement_table(orders: Mapping[str, Sequence[str]], k: int, p: float = 0.9) -> list[Agreement]:
    """Agreement for every pair of orders, in the mapping's order (put the first stage first).

    Overlap and RBO look at the top ``k`` (what the page shows); Kendall's tau uses each whole
    order (every candidate the methods ranked), so it also sees moves below the fold.
    """
    rows = []
    for (name_a, order_a), (name_b, order_b) in combinations(orders.items(), 2):
        shared = len(set(order_a) & set(order_b))
        rows.append(
            Agreement(
                a=name_a,
                b=name_b,
                k=k,
                overlap=overlap_at_k(order_a, order_b, k),
                kendall_tau=kendall_tau(order_a, order_b),
                tau_n=shared,
                rbo=rbo(list(order_a[:k]), list(order_b[:k]), p),
            )
        )
    return rows


# -- rank movement -------------------------------------------------------------------------------------


def shown_rows(items: Sequence[RankedItem], k: int) -> list[RankedItem]:
    """The rows a method's column shows: its first ``k`` items (movement and ``is_new`` are on the item)."""
    return list(items[:k])


def dropouts(first_stage: Sequence[str], method: Sequence[str], k: int) -> list[str]:
    """Documents in the first stage's top k that are not in the method's top k, in first-stage order."""
    kept = set(method[:k])
    return [doc for doc in first_stage[:k] if doc not in kept]


# -- the runner ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Comparison:
    """The first stage and every method's order for one query, over the same candidates."""

    query: str
    depth: int
    candidates: tuple[Candidate, ...]
    first_stage: RerankResult
    results: tuple[RerankResult, ...]
    corpus_fingerprint: str = ""
    total_s: float = 0.0
    method_specs: tuple[str, ...] = field(default=())

    def candidate(self, doc_id: str) -> Candidate:
        for c in self.candidates:
            if c.doc_id == doc_id:
                return c
        raise KeyError(doc_id)

    def orders(self) -> dict[str, list[str]]:
        """Every order a method produced itself (first stage first), keyed by method name.

        Failed methods are left out, and so are fallbacks: a method that fell back shows the first
        stage's order, and comparing that with the first stage would report a perfect agreement that
        no reranker produced (see :meth:`fallbacks`)."""
        out = {self.first_stage.method: self.first_stage.ids}
        for res in self.results:
            if res.items and not res.fallback:
                out[res.method] = res.ids
        return out

    def fallbacks(self) -> list[str]:
        """The methods that fell back to the first-stage order (left out of :meth:`agreement`)."""
        return [res.method for res in self.results if res.fallback]

    def agreement(self, k: int, p: float = 0.9) -> list[Agreement]:
        """Agreement of every pair of :meth:`orders` (fallbacks left out)."""
        return agreement_table(self.orders(), k, p)


def run_comparison(
    query: str,
    retriever: Retriever,
    rerankers: Sequence[Reranker],
    depth: int = 50,
    *,
    progress: ProgressFn | None = None,
    on_result: Callable[[RerankResult], None] | None = None,
    first_stage: tuple[Sequence[Candidate], RerankResult] | None = None,
) -> Comparison:
    """Retrieve ``depth`` candidates once, then rerank them with each method in turn.

    Every method orders all candidates (the caller shows a prefix). A method that cannot run
    returns a result with ``error`` set; the others go on. ``progress(done, total, message)`` is
    called before each step (message names the step, and says when a model is loaded first);
    ``on_result`` after each method. ``first_stage`` reuses candidates retrieved earlier (the
    app keeps them, so adding a method reranks the very same list).
    """
    if depth <= 0:
        raise ValueError("depth must be positive")
    if not query.strip():
        raise ValueError("the query is empty")
    t0 = time.perf_counter()
    total = len(rerankers) + 1
    report(progress, 0, total, f"First stage: {retriever.label} top {depth}")
    if first_stage is None:
        candidates, first = retriever.candidates(query, depth)
    else:
        candidates, first = list(first_stage[0]), first_stage[1]
    results: list[RerankResult] = []
    for i, reranker in enumerate(rerankers, start=1):
        loading = "" if reranker.loaded else " (loading the model first)"
        report(
            progress, i, total, f"Reranking {len(candidates)} candidates with {reranker.method_name}{loading}"
        )
        result = reranker.rerank(query, candidates, top_k=None, first_stage_scale=first.scale)
        results.append(result)
        if on_result is not None:
            on_result(result)
    report(progress, total, total, "done")
    return Comparison(
        query=query,
        depth=depth,
        candidates=tuple(candidates),
        first_stage=first,
        results=tuple(results),
        corpus_fingerprint=retriever.corpus.fingerprint if retriever.corpus is not None else "",
        total_s=time.perf_counter() - t0,
        method_specs=tuple(r.method_name for r in rerankers),
    )
