"""Fusion as a method: ``fusion:A+B+...`` fuses the orders methods A, B, ... give the SAME candidates.

Components are first stages and rerankers (``fusion:bm25+cross-encoder``,
``fusion:bm25+dense+late-interaction``). The core path computes each component on the candidates of
the first stage in use (a component that is not listed among the methods is computed too, and not
shown), then fuses:

- ``rrf`` (default): reciprocal rank fusion, ``score(d) = sum_i w_i / (k + rank_i(d))`` with 1-based
  ranks within the candidates and ``k`` 60 by default; a component that did not rank ``d`` adds
  nothing;
- ``weighted``: weighted normalised scores, ``score(d) = sum_i w_i * norm_i(d)``, where each
  component's scores over the candidates are normalised per query by ``minmax`` (to 0..1, the
  default) or ``z`` (zero mean, unit standard deviation); a candidate a component did not rank gets
  that component's lowest normalised score; a component whose scores are all equal adds nothing.

Weights default to 1 each. Equal fused scores keep the first-stage order. Sums use ``math.fsum``,
so the fused score does not depend on the order of the components.

A first stage other than the one in use, as a component, ranks the candidates by its own top
``depth`` (1,000 by default) for the query; candidates outside it are unranked.

Options, in ``[methods.fusion]``: ``mode`` ("rrf" | "weighted"), ``k`` (60), ``normalize``
("minmax" | "z"), ``weights`` (a table by component name, e.g. ``{ bm25 = 0.3, cross-encoder = 0.7 }``),
``depth`` (1000).

**Fitted fusions.** :func:`fit_weights` chooses weights on judged queries by k-fold cross-validation
by query: for each fold, the weights (a grid over the simplex) that give the best mean nDCG@10 on the
other folds are applied to the fold's queries, so every figure it reports is held out. The saved
fusion (``<data_dir>/fusions/<name>.json``, used as ``fusion:<name>``) keeps the weights fitted on
all queries AND each fold's weights with the fold of every query: evaluated again on a query it was
fitted on (same corpus), it uses the weights fitted without that query, so its figures stay held out
wherever they are shown; any other query gets the weights fitted on all of them.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from rerank_core.config import Settings
from rerank_core.errors import ConfigError, InvalidMethod
from rerank_core.types import (
    RERANKER_KIND,
    MethodError,
    MethodInfo,
    MethodSpec,
    RankedItem,
    RerankResult,
    ScoreScale,
)

FUSION = "fusion"
MODES = ("rrf", "weighted")
NORMALIZATIONS = ("minmax", "z")
DEFAULT_K = 60
DEFAULT_DEPTH = 1000
DEFAULT_FOLDS = 5
FUSIONS_DIR = "fusions"
SCHEMA_VERSION = 1
FIT_MEASURE = "nDCG@10"
_OPTIONS = ("mode", "k", "normalize", "weights", "depth")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
SECTION = "[methods.fusion]"


def is_fusion(spec: str) -> bool:
    return MethodSpec.parse(spec).name == FUSION


@dataclass(frozen=True)
class FusionConfig:
    """What a fusion does. ``weights`` None means 1 per component. A fitted fusion (``name`` set) also
    carries each fold's weights and the fold of every query it was fitted on (over corpus ``corpus``)."""

    components: tuple[str, ...]
    mode: str = "rrf"
    k: float = DEFAULT_K
    normalize: str = "minmax"
    weights: tuple[float, ...] | None = None
    depth: int = DEFAULT_DEPTH
    name: str | None = None
    corpus: str | None = None
    fold_weights: tuple[tuple[float, ...], ...] = ()
    query_folds: Mapping[str, int] = field(default_factory=dict, compare=False, hash=False)

    @property
    def scale(self) -> ScoreScale:
        return ScoreScale.RRF if self.mode == "rrf" else ScoreScale.FUSED

    @property
    def fitted(self) -> bool:
        return bool(self.fold_weights)

    def weights_for(self, query_id: str | None = None, corpus: str | None = None) -> tuple[float, ...]:
        """The weights for one query: a fitted fusion uses the weights fitted WITHOUT the query when
        it was one of the queries it was fitted on (same corpus); otherwise the overall weights."""
        if self.fitted and query_id is not None and corpus == self.corpus and query_id in self.query_folds:
            return self.fold_weights[self.query_folds[query_id]]
        return self.weights if self.weights is not None else (1.0,) * len(self.components)

    def held_out(self, query_id: str | None, corpus: str | None) -> bool:
        """True when :meth:`weights_for` gives this query its held-out fold's weights."""
        return self.fitted and query_id is not None and corpus == self.corpus and query_id in self.query_folds

    def describe(self, weights: Sequence[float] | None = None) -> str:
        """A label: ``RRF (k=60) of bm25, bi-encoder`` or ``weighted min-max scores: 0.3 bm25 + 0.7 ...``."""
        w = tuple(weights) if weights is not None else self.weights
        if self.mode == "rrf":
            how = f"RRF (k={self.k:g})"
        else:
            how = "weighted " + ("min-max" if self.normalize == "minmax" else "z") + "-normalised scores"
        if w is None or all(x == w[0] for x in w):
            parts = ", ".join(self.components)
            body = f"{how} of {parts}"
        else:
            body = f"{how}: " + " + ".join(f"{x:g}·{c}" for x, c in zip(w, self.components, strict=True))
        return (f"fitted fusion {self.name}: " if self.name else "") + body

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "components": list(self.components),
            "mode": self.mode,
            "k": self.k,
            "normalize": self.normalize,
            "weights": None if self.weights is None else list(self.weights),
            "depth": self.depth,
        }
        if self.name:
            out.update(
                name=self.name,
                corpus=self.corpus,
                fold_weights=[list(w) for w in self.fold_weights],
                query_folds=dict(self.query_folds),
            )
        return out


class Fusion:
    """The registry's view of ``fusion`` (metadata and cache identity); the work is :func:`fuse`."""

    name: ClassVar[str] = FUSION
    title: ClassVar[str] = "Fusion"
    description: ClassVar[str] = (
        "fuses the orders of several methods on the same candidates: reciprocal rank fusion or weighted "
        "normalised scores (fusion:A+B, or fusion:NAME for a fitted one)"
    )

    @classmethod
    def info(cls) -> MethodInfo:
        return MethodInfo(
            name=cls.name,
            kind=RERANKER_KIND,
            title=cls.title,
            description=cls.description,
            scale=ScoreScale.RRF,
            hosted=False,
            offline=True,
            reads=("data_dir",),
        )

    @classmethod
    def identity(cls, model: str | None, settings: Settings) -> dict:
        """The fusion's configuration and every component's own cache key."""
        from rerank_core.registry import method_key

        config = fusion_config(str(MethodSpec(FUSION, model)), settings)
        return {"config": config.to_json(), "parts": [method_key(c, settings) for c in config.components]}


# ---------------------------------------------------------------------------------------------
# configuration


def _number(value: Any, key: str, *, minimum: float, integer: bool = False) -> float:
    ok = not isinstance(value, bool) and isinstance(value, int | float) and math.isfinite(value)
    if ok and integer and not float(value).is_integer():
        ok = False
    if not ok or value < minimum:
        raise ConfigError(
            f"{SECTION} {key} = {value!r} is not a{' whole' if integer else ''} number >= {minimum:g}.",
            hint={"k": "the usual value is 60", "depth": "for example depth = 1000"}.get(key, ""),
        )
    return float(value)


def split_components(model: str) -> list[str]:
    return [p.strip() for p in model.split("+")]


def check_components(components: Sequence[str]) -> tuple[str, ...]:
    """Two or more known methods, none a fusion, none twice. Raises :class:`InvalidMethod`."""
    from rerank_core.registry import RERANKERS, RETRIEVERS

    example = "for example fusion:bm25+cross-encoder"
    if len(components) < 2 or any(not c for c in components):
        raise InvalidMethod(
            f"a fusion needs two or more methods joined by '+', not {'+'.join(components)!r}", hint=example
        )
    seen = set()
    for comp in components:
        name = MethodSpec.parse(comp).name
        if name == FUSION:
            raise InvalidMethod(f"a fusion cannot fuse another fusion ({comp!r})", hint=example)
        if name not in RETRIEVERS and name not in RERANKERS:
            known = ", ".join(sorted(set(RETRIEVERS) | set(RERANKERS)))
            raise InvalidMethod(
                f"fusion component {comp!r} is not a known method", hint=f"choose from: {known}"
            )
        if comp in seen:
            raise InvalidMethod(f"fusion component {comp!r} is listed twice", hint="list each method once")
        seen.add(comp)
    return tuple(components)


def config_from_options(components: Sequence[str], options: Mapping[str, Any]) -> FusionConfig:
    """A fusion of ``components`` with ``[methods.fusion]`` options (checked; errors name the key)."""
    comps = check_components(components)
    unknown = sorted(set(options) - set(_OPTIONS))
    if unknown:
        raise ConfigError(
            f"{SECTION}: unknown option(s) {', '.join(unknown)}.",
            hint=f"fusion options are: {', '.join(_OPTIONS)}",
        )
    mode = str(options.get("mode", "rrf")).strip().lower()
    if mode not in MODES:
        raise ConfigError(f"{SECTION} mode = {mode!r} is not one of {', '.join(MODES)}.", hint='mode = "rrf"')
    normalize = str(options.get("normalize", "minmax")).strip().lower().replace("-", "")
    if normalize not in NORMALIZATIONS:
        raise ConfigError(
            f"{SECTION} normalize = {options.get('normalize')!r} is not one of {', '.join(NORMALIZATIONS)}.",
            hint='normalize = "minmax" (to 0..1 per query) or "z" (zero mean, unit deviation per query)',
        )
    k = _number(options.get("k", DEFAULT_K), "k", minimum=0)
    depth = int(_number(options.get("depth", DEFAULT_DEPTH), "depth", minimum=1, integer=True))
    raw = options.get("weights")
    weights: tuple[float, ...] | None = None
    if raw is not None:
        if isinstance(raw, Mapping):
            extra = sorted(set(raw) - set(comps))
            if extra:
                raise ConfigError(
                    f"{SECTION} weights name {', '.join(map(repr, extra))}, which this fusion does not fuse "
                    f"({', '.join(comps)}).",
                    hint="give a weight per component name; a missing one is 1",
                )
            weights = tuple(_number(raw.get(c, 1.0), f"weights.{c}", minimum=0) for c in comps)
        elif isinstance(raw, Sequence) and not isinstance(raw, str) and len(raw) == len(comps):
            weights = tuple(_number(w, "weights", minimum=0) for w in raw)
        else:
            raise ConfigError(
                f"{SECTION} weights must be a table by component (or a list of {len(comps)} numbers).",
                hint="e.g. weights = { bm25 = 0.3, cross-encoder = 0.7 }",
            )
        if not any(weights):
            raise ConfigError(f"{SECTION} weights are all zero.", hint="give at least one a positive weight")
    return FusionConfig(components=comps, mode=mode, k=k, normalize=normalize, weights=weights, depth=depth)


def fusion_config(spec: str, settings: Settings) -> FusionConfig:
    """The configuration of ``fusion:A+B+...`` (options from ``[methods.fusion]``) or of a saved
    ``fusion:NAME``. Raises :class:`InvalidMethod` or :class:`ConfigError` saying what to fix."""
    parsed = MethodSpec.parse(spec)
    if parsed.name != FUSION:
        raise InvalidMethod(f"{spec!r} is not a fusion", hint="write fusion:A+B")
    model = parsed.model or ""
    if not model:
        raise InvalidMethod(
            "fusion needs the methods to fuse (fusion:A+B) or a fitted fusion's name (fusion:NAME)",
            hint="for example fusion:bm25+cross-encoder",
        )
    if "+" in model:
        return config_from_options(split_components(model), settings.method_options(FUSION))
    return load_fitted(model, settings)


# ---------------------------------------------------------------------------------------------
# fusing one query


def _ordered(result: RerankResult, candidates: Sequence[str]) -> list[tuple[str, float]]:
    """The component's order restricted to the candidates (its own 1-based ranks follow from it)."""
    wanted = set(candidates)
    return [(it.doc_id, float(it.score)) for it in result.items if it.doc_id in wanted]


def contributions(
    config: FusionConfig, results: Sequence[RerankResult], candidates: Sequence[str]
) -> np.ndarray:
    """A (components x candidates) matrix: what each component gives each candidate before weighting
    (``1 / (k + rank)`` or the normalised score)."""
    index = {d: i for i, d in enumerate(candidates)}
    out = np.zeros((len(results), len(candidates)), dtype=np.float64)
    for row, result in enumerate(results):
        ordered = _ordered(result, candidates)
        if config.mode == "rrf":
            for rank, (doc_id, _) in enumerate(ordered, start=1):
                out[row, index[doc_id]] = 1.0 / (config.k + rank)
            continue
        if not ordered:
            continue
        values = np.array([s for _, s in ordered], dtype=np.float64)
        finite = np.isfinite(values)
        if not finite.any():
            continue
        values[~finite] = values[finite].min()
        if config.normalize == "minmax":
            low, high = values.min(), values.max()
            norm = (values - low) / (high - low) if high > low else np.zeros_like(values)
        else:
            std = values.std()
            norm = (values - values.mean()) / std if std > 0 else np.zeros_like(values)
        out[row, :] = norm.min()
        for (doc_id, _), value in zip(ordered, norm, strict=True):
            out[row, index[doc_id]] = value
    return out


def fuse_scores(
    config: FusionConfig,
    results: Sequence[RerankResult],
    candidates: Sequence[str],
    weights: Sequence[float] | None = None,
) -> list[tuple[str, float]]:
    """The fused order of ``candidates`` (doc ids in first-stage order), best first, with scores.
    Equal fused scores keep the first-stage order."""
    w = tuple(weights) if weights is not None else config.weights_for()
    matrix = contributions(config, results, candidates)
    scores = [
        math.fsum(w[i] * matrix[i, j] for i in range(len(results)) if matrix[i, j] != 0.0)
        for j in range(len(candidates))
    ]
    order = sorted(range(len(candidates)), key=lambda j: (-scores[j], j))
    return [(candidates[j], scores[j]) for j in order]


def fuse_results(
    spec: str,
    config: FusionConfig,
    first: RerankResult,
    components: Mapping[str, RerankResult],
    *,
    query_id: str | None = None,
    corpus: str | None = None,
    own_first_stage: str | None = None,
) -> RerankResult:
    """One query's fused result from the first stage's result (its candidates, in order) and each
    component's result on them. ``own_first_stage`` names the component that IS the first stage in
    use: its time is the first stage's, so it is not added to the fusion's query time.

    A component that failed without an order fails the fusion for this query; one that fell back to
    the first-stage order makes the fused order a fallback too (flagged, with a note)."""
    t0 = time.perf_counter()
    base: dict[str, Any] = {"method": spec, "scale": config.scale}
    candidates = [it.doc_id for it in first.items]
    weights = config.weights_for(query_id, corpus)
    label = config.describe(weights)
    results = []
    notes: list[str] = []
    fell_back: list[str] = []
    spent = 0.0
    parts_ms = []
    for comp in config.components:
        res = components[comp]
        if res.error is not None and not res.fallback:
            return RerankResult(
                **base,
                label=label,
                error=MethodError(
                    kind=res.error.kind,
                    message=f"fusion component {comp} failed: {res.error.message}",
                    hint=res.error.hint,
                ),
            )
        if res.fallback:
            fell_back.append(comp)
        results.append(res)
        if comp != own_first_stage:
            spent += res.latency_ms
            parts_ms.append(f"{comp} {res.latency_ms:.1f} ms")
    fused = fuse_scores(config, results, candidates, weights)
    rank_of = {it.doc_id: it.first_stage_rank for it in first.items}
    items = tuple(
        RankedItem(doc_id=d, rank=pos, score=s, first_stage_rank=rank_of[d])
        for pos, (d, s) in enumerate(fused, start=1)
    )
    own_ms = (time.perf_counter() - t0) * 1e3
    if parts_ms:
        notes.append(f"query time: its components' one after another ({', '.join(parts_ms)}) plus the fusion")
    if config.held_out(query_id, corpus):
        notes.append("weights fitted without this query (held out)")
    error = None
    if fell_back:
        notes.append(f"{', '.join(fell_back)} fell back to the first-stage order: fused as such")
        first_error = components[fell_back[0]].error
        error = MethodError(
            kind=first_error.kind if first_error else "fallback",
            message=f"fusion component {fell_back[0]} fell back to the first-stage order"
            + (f": {first_error.message}" if first_error else ""),
            hint=first_error.hint if first_error else None,
        )
    return RerankResult(
        **base,
        label=label,
        items=items,
        latency_ms=spent + own_ms,
        notes=tuple(notes),
        error=error,
        fallback=bool(fell_back),
    )


def first_stage_on_candidates(
    retriever: Any, query: str, query_id: str | None, first: RerankResult, depth: int
) -> RerankResult:
    """Another first stage's order of the candidates: its own top ``depth`` for the query, restricted
    to the candidates (those outside it are unranked). Its query time is its whole search."""
    t0 = time.perf_counter()
    hits = retriever.search(query, depth, query_id)
    latency_ms = (time.perf_counter() - t0) * 1e3
    rank_of = {it.doc_id: it.first_stage_rank for it in first.items}
    kept = [(d, s) for d, s in hits if d in rank_of]
    return RerankResult(
        method=retriever.name,
        scale=retriever.scale,
        label=retriever.label,
        items=tuple(
            RankedItem(doc_id=d, rank=pos, score=float(s), first_stage_rank=rank_of[d])
            for pos, (d, s) in enumerate(kept, start=1)
        ),
        latency_ms=latency_ms,
    )


# ---------------------------------------------------------------------------------------------
# fitting weights by cross-validation over queries


def weight_grid(n: int, step: float | None = None) -> np.ndarray:
    """Every weight vector of ``n`` non-negative multiples of ``step`` summing to 1 (rows). The step
    is 0.1 for up to 4 components, 0.2 for 5 or 6, else 0.25, unless given."""
    if step is None:
        step = 0.1 if n <= 4 else 0.2 if n <= 6 else 0.25
    units = round(1 / step)
    if not math.isclose(units * step, 1.0):
        raise ConfigError(f"grid step {step} does not divide 1.", hint="use 0.1, 0.2, 0.25 or 0.5")
    rows = [c for c in itertools.product(range(units + 1), repeat=n) if sum(c) == units]
    return np.array(rows, dtype=np.float64) / units


def _ndcg_grid(matrix: np.ndarray, grid: np.ndarray, gains: np.ndarray, ideal: float, k: int) -> np.ndarray:
    """nDCG@k of every weight vector of ``grid`` for one query (ties keep the candidates' order)."""
    if ideal <= 0 or matrix.shape[1] == 0:
        return np.zeros(len(grid))
    scores = grid @ matrix
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    discounts = 1.0 / np.log2(np.arange(2, order.shape[1] + 2))
    return (gains[order] * discounts).sum(axis=1) / ideal


def fold_of(query_ids: Sequence[str], folds: int, seed: int = 0) -> dict[str, int]:
    """A fold per query: the queries in an order fixed by a hash of (seed, id), dealt round-robin."""
    ordered = sorted(query_ids, key=lambda q: hashlib.sha256(f"{seed}:{q}".encode()).hexdigest())
    return {q: i % folds for i, q in enumerate(ordered)}


def _best(means: np.ndarray, grid: np.ndarray) -> int:
    """The grid row with the highest mean; ties go to the weights closest to equal, then grid order."""
    top = np.flatnonzero(means >= means.max() - 1e-12)
    equal = np.full(grid.shape[1], 1.0 / grid.shape[1])
    return int(min(top, key=lambda i: (float(np.abs(grid[i] - equal).sum()), int(i))))


@dataclass
class FitResult:
    """A fitted fusion and its held-out figures. ``held_out[qid]`` is the query's nDCG@10 with the
    weights fitted on the other folds; ``unfitted[qid]`` the same fusion with equal weights; and
    ``components[name][qid]`` each component alone, on the same candidates."""

    config: FusionConfig
    held_out: dict[str, float]
    unfitted: dict[str, float]
    components: dict[str, dict[str, float]]
    folds: int
    measure: str = FIT_MEASURE
    first_stage: str = ""
    depth: int = 0
    dataset: str = ""

    @staticmethod
    def _mean(values: Mapping[str, float]) -> float:
        return float(np.mean(list(values.values()))) if values else 0.0

    def summary(self) -> dict[str, Any]:
        return {
            "measure": self.measure,
            "queries": len(self.held_out),
            "folds": self.folds,
            "held_out": self._mean(self.held_out),
            "unfitted": self._mean(self.unfitted),
            "components": {c: self._mean(v) for c, v in self.components.items()},
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            **self.config.to_json(),
            "fitted_on": {
                "dataset": self.dataset,
                "first_stage": self.first_stage,
                "depth": self.depth,
                **self.summary(),
                "held_out_per_query": self.held_out,
            },
        }


def fit_weights(
    config: FusionConfig,
    first: Mapping[str, RerankResult],
    components: Mapping[str, Mapping[str, RerankResult]],
    qrels: Mapping[str, Mapping[str, int]],
    *,
    name: str,
    corpus: str,
    folds: int = DEFAULT_FOLDS,
    step: float | None = None,
    seed: int = 0,
) -> FitResult:
    """Fit ``config``'s weights on the judged queries of ``first`` by ``folds``-fold cross-validation
    by query (see the module docstring). ``first[qid]`` is the first stage's result (the candidates),
    ``components[comp][qid]`` each component's result on them. Raises :class:`ConfigError` when there
    are fewer usable queries than folds."""
    from rerank_core.metrics import evaluate
    from rerank_core.trec import results_to_run

    check_name(name)
    comps = config.components
    usable = [
        q for q in first if qrels.get(q) and all(q in components[c] and components[c][q].items for c in comps)
    ]
    if isinstance(folds, bool) or not isinstance(folds, int) or folds < 2:
        raise ConfigError(f"folds = {folds!r}: cross-validation needs 2 or more.", hint="for example 5 folds")
    if len(usable) < folds:
        raise ConfigError(
            f"{len(usable)} judged queries with every component's order: too few for {folds} folds.",
            hint="judge more queries, or use fewer folds",
        )
    grid = weight_grid(len(comps), step)
    k = 10
    per_query = np.zeros((len(usable), len(grid)))
    for row, qid in enumerate(usable):
        cands = [it.doc_id for it in first[qid].items]
        matrix = contributions(config, [components[c][qid] for c in comps], cands)
        judged = qrels[qid]
        gains = np.array([max(float(judged.get(d, 0)), 0.0) for d in cands])
        ideal_gains = sorted((float(g) for g in judged.values() if g > 0), reverse=True)[:k]
        ideal = float(sum(g / math.log2(i + 2) for i, g in enumerate(ideal_gains)))
        per_query[row] = _ndcg_grid(matrix, grid, gains, ideal, k)
    assignment = fold_of(usable, folds, seed)
    fold_weights = []
    for f in range(folds):
        train = np.array([i for i in range(len(usable)) if assignment[usable[i]] != f])
        fold_weights.append(tuple(float(x) for x in grid[_best(per_query[train].mean(axis=0), grid)]))
    overall = tuple(float(x) for x in grid[_best(per_query.mean(axis=0), grid)])
    fitted = FusionConfig(
        components=comps,
        mode=config.mode,
        k=config.k,
        normalize=config.normalize,
        weights=overall,
        depth=config.depth,
        name=name,
        corpus=corpus,
        fold_weights=tuple(fold_weights),
        query_folds=assignment,
    )

    def measured(results: Mapping[str, RerankResult]) -> dict[str, float]:
        values = evaluate(results_to_run(results), {q: dict(qrels[q]) for q in usable}, [FIT_MEASURE])
        return {q: float(values[FIT_MEASURE][q]) for q in usable}

    spec = f"{FUSION}:{name}"
    held = {
        q: fuse_results(
            spec, fitted, first[q], {c: components[c][q] for c in comps}, query_id=q, corpus=corpus
        )
        for q in usable
    }
    plain = FusionConfig(components=comps, mode=config.mode, k=config.k, normalize=config.normalize)
    unfitted = {q: fuse_results(spec, plain, first[q], {c: components[c][q] for c in comps}) for q in usable}
    return FitResult(
        config=fitted,
        held_out=measured(held),
        unfitted=measured(unfitted),
        components={c: measured({q: components[c][q] for q in usable}) for c in comps},
        folds=folds,
    )


def fit_fusion(
    dataset: Any,
    first_stage: str,
    depth: int,
    components: Sequence[str],
    *,
    name: str,
    mode: str = "weighted",
    normalize: str = "minmax",
    k: float = DEFAULT_K,
    folds: int = DEFAULT_FOLDS,
    step: float | None = None,
    max_queries: int | None = None,
    settings: Settings | None = None,
    runtime: Any = None,
    progress: Any = None,
    concurrency: int = 1,
) -> FitResult:
    """Run the components on ``first_stage``'s top ``depth`` for the judged queries of ``dataset``
    (the core path of ``evaluate``), then :func:`fit_weights`. Nothing is saved (see :func:`save_fitted`)."""
    from dataclasses import replace

    from rerank_core.config import load_settings
    from rerank_core.evaluation import run_evaluation

    check_name(name)
    settings = settings or load_settings()
    own = {
        key: value for key, value in settings.method_options(FUSION).items() if key == "depth"
    }  # the fit chooses the weights; mode, k and normalisation are given
    options = {**own, "mode": mode, "normalize": normalize, "k": k}
    fit_settings = replace(settings, methods={**settings.methods, FUSION: options})
    spec = f"{FUSION}:{'+'.join(components)}"
    config = fusion_config(spec, fit_settings)
    report = run_evaluation(
        dataset,
        first_stage,
        depth,
        [spec],
        max_queries=max_queries,
        settings=fit_settings,
        progress=progress,
        runtime=runtime,
        concurrency=concurrency,
    )
    entry = report.methods[spec]
    if spec not in report.fusion_inputs:
        raise ConfigError(f"the fusion cannot be fitted: {entry.error}", hint="fix the component named there")
    assert report.first_stage_eval is not None
    fit = fit_weights(
        config,
        report.first_stage_eval.results,
        report.fusion_inputs[spec],
        report.qrels,
        name=name,
        corpus=dataset.corpus.fingerprint,
        folds=folds,
        step=step,
    )
    fit.first_stage, fit.depth, fit.dataset = first_stage, depth, dataset.name
    return fit


# ---------------------------------------------------------------------------------------------
# saved fusions


def check_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME.match(name) or "+" in name:
        raise ConfigError(
            f"{name!r} is not a usable fusion name.",
            hint="letters, digits, '.', '_' and '-' (up to 64), starting with a letter or digit",
        )
    return name


def fusions_dir(settings: Settings) -> Path:
    return Path(settings.data_dir) / FUSIONS_DIR


def save_fitted(fit: FitResult, settings: Settings) -> Path:
    """Write a fitted fusion to ``<data_dir>/fusions/<name>.json`` (replacing one of that name)."""
    name = check_name(fit.config.name or "")
    folder = fusions_dir(settings)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(fit.to_json(), indent=2), encoding="utf-8")
    tmp.replace(path)
    return path


def fitted_names(settings: Settings) -> list[str]:
    """The names of the saved fusions, sorted."""
    folder = fusions_dir(settings)
    return sorted(p.stem for p in folder.glob("*.json")) if folder.is_dir() else []


def fitted_summary(name: str, settings: Settings) -> dict[str, Any]:
    """What a saved fusion was fitted on and its held-out figures (``fitted_on`` of the file)."""
    return dict(_read(name, settings).get("fitted_on") or {})


def _read(name: str, settings: Settings) -> dict[str, Any]:
    path = fusions_dir(settings) / f"{check_name(name)}.json"
    if not path.is_file():
        known = fitted_names(settings)
        raise InvalidMethod(
            f"there is no fitted fusion {name!r} in {fusions_dir(settings)}",
            hint=(
                f"fitted fusions: {', '.join(known)}"
                if known
                else "fit one first: python -m rerank_core fusion fit"
            )
            + "; or fuse methods directly: fusion:A+B",
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"the fitted fusion {path} cannot be read: {exc}", hint="fit it again") from None
    if not isinstance(data, dict) or data.get("schema_version") != SCHEMA_VERSION:
        raise ConfigError(f"{path} is not a fitted fusion this version reads.", hint="fit it again")
    return data


def load_fitted(name: str, settings: Settings) -> FusionConfig:
    """A saved fusion (``fusion:NAME``)."""
    data = _read(name, settings)
    try:
        comps = check_components([str(c) for c in data["components"]])
        n = len(comps)
        fold_weights = tuple(tuple(float(x) for x in w) for w in data.get("fold_weights", []))
        weights = tuple(float(x) for x in data["weights"])
        folds = {str(q): int(f) for q, f in dict(data.get("query_folds", {})).items()}
        if len(weights) != n or any(len(w) != n for w in fold_weights):
            raise ValueError("a weight per component")
        if any(not 0 <= f < len(fold_weights) for f in folds.values()):
            raise ValueError("query folds out of range")
        return FusionConfig(
            components=comps,
            mode=str(data["mode"]),
            k=float(data["k"]),
            normalize=str(data["normalize"]),
            weights=weights,
            depth=int(data.get("depth", DEFAULT_DEPTH)),
            name=name,
            corpus=data.get("corpus"),
            fold_weights=fold_weights,
            query_folds=folds,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(
            f"the fitted fusion {name!r} is damaged ({exc}).", hint="fit it again with the same name"
        ) from None


__all__ = [
    "DEFAULT_DEPTH",
    "DEFAULT_K",
    "FUSION",
    "FitResult",
    "Fusion",
    "FusionConfig",
    "check_components",
    "config_from_options",
    "first_stage_on_candidates",
    "fit_fusion",
    "fit_weights",
    "fitted_names",
    "fitted_summary",
    "fold_of",
    "fuse_results",
    "fuse_scores",
    "fusion_config",
    "is_fusion",
    "load_fitted",
    "save_fitted",
    "weight_grid",
]
