"""Cost: price models from the settings, cost per 1,000 queries, budgets that stop a run."""

from __future__ import annotations

import pytest
from loopback_servers import loopback

from rerank_core.config import load_settings
from rerank_core.cost import (
    Budget,
    BudgetExceeded,
    CostMeter,
    PriceModel,
    check_prices,
    cost_per_1000,
    price_for,
)
from rerank_core.errors import ConfigError, RerankError

__all__ = ["loopback"]  # the fixture

PRICES = {
    "cohere": {"per_search_unit": 0.002},
    "llm": {"per_million_input_tokens": 0.15, "per_million_output_tokens": 0.6},
    "cross-encoder": {"per_gpu_hour": 1.2},
    "cross-encoder:BAAI/bge-reranker-v2-m3": {"per_gpu_hour": 2.4},
    "bm25": {"per_cpu_hour": 0.05},
}


def test_prices_are_read_from_the_settings_table(tmp_path):
    cfg = tmp_path / "rerank.toml"
    cfg.write_text(
        '[prices.cohere]\nper_search_unit = 0.002\n\n[prices."cross-encoder:BAAI/bge-reranker-v2-m3"]\n'
        "per_gpu_hour = 2\n",
        encoding="utf-8",
    )
    s = load_settings(cfg, env={})
    assert s.prices == {
        "cohere": {"per_search_unit": 0.002},
        "cross-encoder:BAAI/bge-reranker-v2-m3": {"per_gpu_hour": 2.0},
    }
    assert load_settings(tmp_path / "rerank.toml", env={}).prices["cohere"]["per_search_unit"] == 0.002
    for bad, match in (
        ("[prices.cohere]\nper_unit = 1\n", "unknown price 'per_unit'"),
        ("[prices.cohere]\nper_search_unit = -1\n", "non-negative"),
        ("[prices.cohere]\nper_search_unit = 'cheap'\n", "non-negative"),
        ("prices = 3\n", "table of methods"),
    ):
        cfg.write_text(bad, encoding="utf-8")
        with pytest.raises(ConfigError, match=match):
            load_settings(cfg, env={})


def test_the_example_settings_file_documents_prices(tmp_path):
    from pathlib import Path

    example = Path(__file__).resolve().parents[1] / "rerank.example.toml"
    text = example.read_text(encoding="utf-8")
    for key in (
        "per_search_unit",
        "per_million_input_tokens",
        "per_million_output_tokens",
        "per_gpu_hour",
        "per_cpu_hour",
    ):
        assert key in text
    s = load_settings(example, env={})
    assert isinstance(s.prices, dict)


def test_query_cost_by_formula():
    cohere = PriceModel.from_table("cohere", PRICES["cohere"])
    assert cohere.query_cost({"search_units": 3}, 0.4) == pytest.approx(3 * 0.002)
    assert cohere.query_cost({}, 0.4) is None  # billed per unit, but no units reported
    llm = PriceModel.from_table("llm", PRICES["llm"])
    # an OpenAI-compatible server reports prompt and completion tokens: the same prices apply
    assert llm.query_cost(
        {"prompt_tokens": 12_000, "completion_tokens": 300, "total_tokens": 12_300}, 1.0
    ) == (llm.query_cost({"input_tokens": 12_000, "output_tokens": 300}, 1.0))
    assert llm.query_cost({"input_tokens": 12_000, "output_tokens": 300}, 1.0) == pytest.approx(
        12_000 / 1e6 * 0.15 + 300 / 1e6 * 0.6
    )
    gpu = PriceModel.from_table("cross-encoder", PRICES["cross-encoder"])
    assert gpu.query_cost(None, 0.09) == pytest.approx(0.09 / 3600 * 1.2)
    assert gpu.usage_keys == () and "per GPU-hour" in gpu.basis
    assert "$0.002 per search unit" in cohere.basis


def test_price_lookup_prefers_the_full_method_name():
    assert price_for("cross-encoder:BAAI/bge-reranker-v2-m3", PRICES).per_gpu_hour == 2.4
    assert price_for("cross-encoder:other", PRICES).per_gpu_hour == 1.2
    assert price_for("flashrank", PRICES) is None and price_for("cohere", None) is None


def test_cost_per_1000_queries():
    lat = {"q1": 100.0, "q2": 300.0}
    est = cost_per_1000("cross-encoder", PRICES, lat)
    assert est.per_1000_queries == pytest.approx(1000 * (0.1 + 0.3) / 2 / 3600 * 1.2)
    assert est.queries == 2 and est.reason is None
    usage = {"q1": {"search_units": 1}, "q2": {"search_units": 2}}
    assert cost_per_1000("cohere", PRICES, lat, usage).per_1000_queries == pytest.approx(1000 * 1.5 * 0.002)
    partial = cost_per_1000("cohere", PRICES, lat, {"q1": {"search_units": 1}})
    assert partial.per_1000_queries == pytest.approx(2.0) and "1 of 2 queries" in partial.reason
    unknown = cost_per_1000("cohere", PRICES, lat, {})
    assert unknown.per_1000_queries is None and "search_units" in unknown.reason
    unpriced = cost_per_1000("flashrank", PRICES, lat)
    assert unpriced.per_1000_queries is None and "[prices.flashrank]" in unpriced.reason
    assert set(unpriced.to_json()) == {"per_1000_queries", "currency", "basis", "queries", "reason"}


def test_a_budget_stops_a_run_before_it_goes_over():
    meter = CostMeter(Budget(dollars=0.01), PRICES)
    spent = []
    with pytest.raises(BudgetExceeded) as err:
        for _ in range(100):
            meter.check("cohere")
            spent.append(meter.record("cohere", {"search_units": 1}, 0.2))
    assert len(spent) == 5 and meter.dollars == pytest.approx(0.01)  # the sixth query would pass $0.01
    assert isinstance(err.value, RerankError) and err.value.kind == "budget-exceeded"
    assert "cohere" in str(err.value) and "$0.01 budget" in str(err.value) and err.value.hint

    timed = CostMeter(Budget(seconds=1.0))
    timed.record("flashrank", None, 0.4)
    timed.check("flashrank")
    timed.record("flashrank", None, 0.4)
    with pytest.raises(BudgetExceeded, match="1 s budget"):
        timed.check("flashrank")  # 0.8 s spent, about 0.4 s more would pass 1 s
    over = CostMeter(Budget(seconds=0.5))
    with pytest.raises(BudgetExceeded, match="used up"):
        over.record("llm", None, 0.9)  # a single query can only be seen afterwards
    with pytest.raises(ConfigError):
        Budget(dollars=-1)
    assert check_prices({}) == {}


def test_an_llm_reranker_is_priced_by_the_tokens_its_server_reports(loopback, tmp_path):
    """Pointwise LLM reranking against a loopback OpenAI-compatible server that reports 1 prompt and 1
    completion token per call: the report's cost per 1,000 queries follows from the token prices."""
    from loopback_servers import CHAT_PATH, chat

    from rerank_core.config import Settings
    from rerank_core.evaluation import run_evaluation
    from rerank_core.sample import sample_dataset

    loopback.responders[CHAT_PATH] = lambda rec: chat('{"grade": 5}')
    settings = Settings(
        data_dir=tmp_path / "data",
        openai_base_url=loopback.openai_base_url,
        max_retries=0,
        methods={"llm": {"cache": False}},
        prices={"llm": {"per_million_input_tokens": 2.0, "per_million_output_tokens": 6.0}},
    )
    depth = 4
    rep = run_evaluation(
        sample_dataset(), "bm25", depth, ["llm:loopback-model"], max_queries=3, settings=settings
    )
    cost = rep.to_json()["methods"]["llm:loopback-model"]["cost"]
    # one call per candidate, each 1 input and 1 output token
    assert cost["per_1000_queries"] == pytest.approx(1000 * depth * (2.0 + 6.0) / 1e6)
    assert cost["queries"] == 3 and cost["reason"] is None


def test_small_amounts_are_never_shown_as_zero():
    from rerank_core.cost import dollars_text

    assert (
        dollars_text(0) == "$0.0000" and dollars_text(2.0) == "$2.0000" and dollars_text(0.0042) == "$0.0042"
    )
    assert dollars_text(0.000028) == "$0.000028" and dollars_text(2.8e-9) == "$2.8e-09"
