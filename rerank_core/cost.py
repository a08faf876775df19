"""What a method costs: a price model per method, cost per 1,000 queries, and budgets that stop a run.

Prices come from the settings table ``[prices.<method>]`` (``rerank.toml``), in dollars:

- ``per_search_unit``: a hosted reranker billed per search unit (Cohere: one unit per query with
  up to 100 documents);
- ``per_million_input_tokens`` / ``per_million_output_tokens``: a hosted LLM billed per token;
- ``per_gpu_hour`` / ``per_cpu_hour``: a self-hosted method, priced by the hour of the machine it
  runs on, times its measured query time (warm-up and model load excluded: they are one-off).

A method's table is looked up by its full name first (``"cross-encoder:BAAI/bge-reranker-base"``,
quoted in TOML), then by its backend name (``cross-encoder``). The prices that apply are summed:
a query's cost is ``search_units * per_search_unit + input_tokens / 1e6 * per_million_input_tokens
+ output_tokens / 1e6 * per_million_output_tokens + seconds / 3600 * (per_gpu_hour + per_cpu_hour)``.

Usage is what the service reported for a query (``RerankResult.usage``: ``search_units``,
``input_tokens``, ``output_tokens``; OpenAI-compatible servers name tokens ``prompt_tokens`` and
``completion_tokens``, read as the same). A usage price with no reported usage has no cost to show:
the figure is None with the reason, never a silent zero.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from rerank_core.errors import ConfigError, RerankError

#: price keys of a ``[prices.<method>]`` table, and the usage key each one multiplies
USAGE_PRICES: dict[str, tuple[str, float]] = {
    "per_search_unit": ("search_units", 1.0),
    "per_million_input_tokens": ("input_tokens", 1e-6),
    "per_million_output_tokens": ("output_tokens", 1e-6),
}
TIME_PRICES = ("per_gpu_hour", "per_cpu_hour")
PRICE_KEYS = (*USAGE_PRICES, *TIME_PRICES)
USAGE_KEYS = tuple(key for key, _ in USAGE_PRICES.values())
#: other names services give the same usage (OpenAI-compatible chat completions)
USAGE_ALIASES: dict[str, tuple[str, ...]] = {
    "input_tokens": ("prompt_tokens",),
    "output_tokens": ("completion_tokens",),
}


def usage_value(usage: Mapping[str, float], key: str) -> float | None:
    """The usage figure ``key`` (``input_tokens``, ...) under its name or an alias, None if not reported."""
    for name in (key, *USAGE_ALIASES.get(key, ())):
        if name in usage:
            return float(usage[name])
    return None


CURRENCY = "USD"
PRICE_WORDS = {
    "per_search_unit": "per search unit",
    "per_million_input_tokens": "per million input tokens",
    "per_million_output_tokens": "per million output tokens",
    "per_gpu_hour": "per GPU-hour of measured query time",
    "per_cpu_hour": "per CPU-hour of measured query time",
}


def check_prices(table: Any, where: str = "the settings") -> dict[str, dict[str, float]]:
    """The ``prices`` settings table, checked: ``{method: {price key: non-negative number}}``."""
    if not isinstance(table, Mapping):
        raise ConfigError(
            f"prices in {where} must be a table of methods",
            hint="write [prices.cohere] then per_search_unit = 0.002 (see rerank.example.toml)",
        )
    out: dict[str, dict[str, float]] = {}
    for method, prices in table.items():
        if not isinstance(prices, Mapping):
            raise ConfigError(
                f"prices.{method} in {where} must be a table",
                hint=f"write [prices.{method}] followed by lines such as per_gpu_hour = 1.2",
            )
        clean: dict[str, float] = {}
        for key, value in prices.items():
            if key not in PRICE_KEYS:
                raise ConfigError(
                    f"unknown price {key!r} for {method!r} in {where}",
                    hint=f"known prices: {', '.join(PRICE_KEYS)}",
                )
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
            if not ok or not math.isfinite(float(value)) or float(value) < 0:
                raise ConfigError(
                    f"price {method}.{key} in {where} is {value!r}",
                    hint="a price is a non-negative number of dollars, e.g. 0.002",
                )
            clean[key] = float(value)
        out[str(method)] = clean
    return out


@dataclass(frozen=True)
class PriceModel:
    """One method's prices in dollars (0 = not charged that way)."""

    method: str
    per_search_unit: float = 0.0
    per_million_input_tokens: float = 0.0
    per_million_output_tokens: float = 0.0
    per_gpu_hour: float = 0.0
    per_cpu_hour: float = 0.0

    @classmethod
    def from_table(cls, method: str, table: Mapping[str, float]) -> PriceModel:
        return cls(method=method, **check_prices({method: table})[method])

    @property
    def usage_keys(self) -> tuple[str, ...]:
        """The usage figures this price model needs from the service."""
        return tuple(usage for key, (usage, _) in USAGE_PRICES.items() if getattr(self, key) > 0)

    @property
    def per_hour(self) -> float:
        return self.per_gpu_hour + self.per_cpu_hour

    @property
    def basis(self) -> str:
        """The prices in words, e.g. ``$0.002 per search unit``."""
        parts = [
            f"${getattr(self, key):g} {PRICE_WORDS[key]}" for key in PRICE_KEYS if getattr(self, key) > 0
        ]
        return ", ".join(parts) or "free"

    def query_cost(self, usage: Mapping[str, float] | None, seconds: float) -> float | None:
        """Dollars for one query, or None when a usage price applies but the usage was not reported."""
        usage = usage or {}
        total = 0.0
        for key, (usage_key, scale) in USAGE_PRICES.items():
            price = getattr(self, key)
            if price <= 0:
                continue
            value = usage_value(usage, usage_key)
            if value is None:
                return None
            total += value * scale * price
        if self.per_hour > 0:
            total += max(0.0, float(seconds)) / 3600.0 * self.per_hour
        return total


def price_for(method: str, prices: Mapping[str, Mapping[str, float]] | None) -> PriceModel | None:
    """The price model of ``method`` (full name first, then the backend name), None if unpriced."""
    if not prices:
        return None
    for key in (method, method.split(":", 1)[0].strip()):
        if key in prices:
            return PriceModel.from_table(method, prices[key])
    return None


@dataclass(frozen=True)
class CostEstimate:
    """Cost per 1,000 queries of one method; None with ``reason`` when it cannot be given."""

    method: str
    per_1000_queries: float | None
    basis: str = ""
    queries: int = 0  # the queries the figure rests on
    reason: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "per_1000_queries": self.per_1000_queries,
            "currency": CURRENCY,
            "basis": self.basis,
            "queries": self.queries,
            "reason": self.reason,
        }


def cost_per_1000(
    method: str,
    prices: Mapping[str, Mapping[str, float]] | None,
    latencies_ms: Mapping[str, float],
    usage: Mapping[str, Mapping[str, float]] | None = None,
) -> CostEstimate:
    """Mean cost of a query times 1,000, over the timed queries whose cost is known.

    ``latencies_ms[query]`` is the method's measured query time (the queries that ran);
    ``usage[query]`` what the service reported for it. A query whose usage was not reported is
    left out (the estimate says on how many queries it rests); when none is left, or no price is
    configured, the figure is None and ``reason`` says why.
    """
    model = price_for(method, prices)
    if model is None:
        return CostEstimate(
            method,
            None,
            reason=f"no price configured for {method}: add [prices.{method.split(':', 1)[0]}] to rerank.toml",
        )
    usage = usage or {}
    costs = []
    for qid, ms in latencies_ms.items():
        c = model.query_cost(usage.get(qid), ms / 1000.0)
        if c is not None:
            costs.append(c)
    if not costs:
        needed = ", ".join(model.usage_keys) or "timings"
        return CostEstimate(
            method,
            None,
            basis=model.basis,
            reason=f"the service reported no {needed} for any query of {method}, so its cost is unknown",
        )
    reason = None
    if len(costs) < len(latencies_ms):
        reason = f"{len(latencies_ms) - len(costs)} of {len(latencies_ms)} queries reported no usage and are left out"
    return CostEstimate(
        method, 1000.0 * sum(costs) / len(costs), basis=model.basis, queries=len(costs), reason=reason
    )


# ---------------------------------------------------------------------------------------------
# budgets


def dollars_text(value: float) -> str:
    """``$0.0042``; a small amount keeps two significant digits (``$0.000028``), never a bare ``$0.0000``."""
    if value == 0 or abs(value) >= 0.001:
        return f"${value:.4f}"
    return f"${value:.2g}" if abs(value) < 1e-6 else f"${value:.6f}".rstrip("0")


class BudgetExceeded(RerankError):
    """A run would go over its dollar or time budget; it stops before spending more."""

    kind = "budget-exceeded"


@dataclass(frozen=True)
class Budget:
    """Limits for one run: dollars (priced methods only) and seconds of measured query time."""

    dollars: float | None = None
    seconds: float | None = None

    def __post_init__(self) -> None:
        for name in ("dollars", "seconds"):
            value = getattr(self, name)
            if value is not None and (not math.isfinite(float(value)) or float(value) < 0):
                raise ConfigError(
                    f"the {name} budget is {value!r}", hint="give a non-negative number, or no budget"
                )


class CostMeter:
    """Counts dollars and seconds of a run and stops it before it goes over its :class:`Budget`.

    Call :meth:`check` before each query and :meth:`record` after it. ``check`` raises
    :class:`BudgetExceeded` when the next query, estimated by the mean cost and time of the
    method's queries so far, would take the run over a limit (nothing is estimated before the
    first query of a method); ``record`` raises when the run has gone over (a query's cost is
    only known afterwards). Unpriced methods cost no dollars here but do count seconds.
    """

    def __init__(self, budget: Budget, prices: Mapping[str, Mapping[str, float]] | None = None) -> None:
        self.budget = budget
        self.prices = dict(prices or {})
        self.dollars = 0.0
        self.seconds = 0.0
        self._per_method: dict[str, tuple[int, float, float]] = {}  # queries, dollars, seconds

    def _stop(self, method: str, what: str) -> BudgetExceeded:
        spent = f"{dollars_text(self.dollars)} and {self.seconds:.1f} s spent so far"
        return BudgetExceeded(
            f"the run stopped before {method}'s next query: {what} ({spent})",
            hint="raise the budget, evaluate fewer queries (--max-queries) or choose a cheaper method",
        )

    def check(self, method: str) -> None:
        n, dollars, seconds = self._per_method.get(method, (0, 0.0, 0.0))
        if n == 0:
            return
        if self.budget.dollars is not None and self.dollars + dollars / n > self.budget.dollars:
            raise self._stop(
                method,
                f"at about {dollars_text(dollars / n)} a query it would pass the ${self.budget.dollars:g} budget",
            )
        if self.budget.seconds is not None and self.seconds + seconds / n > self.budget.seconds:
            raise self._stop(
                method,
                f"at about {seconds / n:.2f} s a query it would pass the {self.budget.seconds:g} s budget",
            )

    def record(self, method: str, usage: Mapping[str, float] | None, seconds: float) -> float:
        """Add one query; returns its dollars (0 when unpriced or its usage is unknown)."""
        model = price_for(method, self.prices)
        cost = (model.query_cost(usage, seconds) if model else None) or 0.0
        n, dollars, secs = self._per_method.get(method, (0, 0.0, 0.0))
        self._per_method[method] = (n + 1, dollars + cost, secs + float(seconds))
        self.dollars += cost
        self.seconds += float(seconds)
        if self.budget.dollars is not None and self.dollars > self.budget.dollars:
            raise self._stop(method, f"the ${self.budget.dollars:g} budget is spent")
        if self.budget.seconds is not None and self.seconds > self.budget.seconds:
            raise self._stop(method, f"the {self.budget.seconds:g} s budget is used up")
        return cost
