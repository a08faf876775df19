"""The OpenVINO precisions (``openvino``, ``openvino-int8``) with tiny random-weight models in their
real layouts: conversion, static int8 quantisation, the cache, what ``auto`` picks, and the errors."""

from __future__ import annotations

import numpy as np
import pytest
from test_precision import MIXED, NO_AMX_VNNI, PLAIN_AVX2, QUERY, by_input, cands, fake_cpu

from rerank_core import openvino_path, precision
from rerank_core.encoders import encoder_precision, encoder_precision_note, load_sentence_transformer
from rerank_core.errors import BackendUnavailable
from rerank_core.registry import create_reranker
from rerank_core.types import MethodSpec

pytest_plugins = ["tiny_models"]


@pytest.fixture
def settings(tmp_path):
    from rerank_core.config import Settings

    return Settings(data_dir=tmp_path / "data")


@pytest.fixture
def tiny_bi_encoder_dir(tmp_path_factory):
    from tiny_bi_encoder import tiny_bi_encoder_once

    return tiny_bi_encoder_once(tmp_path_factory)


def _spearman(a, b) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(a, b).statistic)


# -- the cross-encoder ---------------------------------------------------------------------------------
def test_openvino_fp32_gives_the_torch_scores(tiny_cross_encoder_dir, settings):
    spec = MethodSpec("cross-encoder", str(tiny_cross_encoder_dir))
    c = cands()
    torch_result = create_reranker(spec, settings).rerank(QUERY, c)
    ov = create_reranker(spec, settings, precision="openvino").rerank(QUERY, c)
    assert ov.ok and ov.precision == "openvino", ov.error
    np.testing.assert_allclose(by_input(ov, c), by_input(torch_result, c), atol=1e-4)
    # the same pairs are cut at the same limit: truncation flags do not depend on the runtime
    assert [it.truncated for it in ov.items] == [it.truncated for it in torch_result.items]
    assert any("converted from an ONNX export now" in n for n in ov.notes)


def test_openvino_int8_is_quantised_once_and_reused(tiny_cross_encoder_dir, settings, monkeypatch):
    spec = MethodSpec("cross-encoder", str(tiny_cross_encoder_dir))
    calls: list[str] = []
    original = openvino_path.convert
    monkeypatch.setattr(openvino_path, "convert", lambda *a, **k: (calls.append(a[2]), original(*a, **k))[1])
    c = cands()
    first = create_reranker(spec, settings, precision="openvino-int8").rerank(QUERY, c)
    assert first.ok and first.precision == "openvino-int8", first.error
    assert calls == ["openvino-int8"] and any("quantised now" in n for n in first.notes)
    folder = next((settings.data_dir / "onnx-cache").glob("*/openvino-int8-*"))
    # the file really runs int8 arithmetic, and the ONNX it came from is not kept
    assert openvino_path.is_int8_model(folder / "openvino_model.xml")
    assert (folder / ".complete").exists() and not (folder / "onnx-export").exists()
    second = create_reranker(spec, settings, precision="openvino-int8").rerank(QUERY, c)
    assert calls == ["openvino-int8"] and any("from the cache" in n for n in second.notes)
    np.testing.assert_allclose(by_input(second, c), by_input(first, c), atol=1e-6)
    base = create_reranker(spec, settings).rerank(QUERY, c)
    assert np.all(np.isfinite(by_input(first, c)))
    # a tiny random network has no trained spread for int8 to keep (the real MiniLM keeps Spearman 0.99,
    # see the README); here the int8 scores must still be this model's: near, and ordered alike
    np.testing.assert_allclose(by_input(first, c), by_input(base, c), atol=0.3)
    assert _spearman(by_input(first, c), by_input(base, c)) > 0.5


def test_int8_keeps_the_first_feed_forward_outputs_in_fp32(tiny_cross_encoder_dir, settings):
    """The first two layers' feed-forward output projections stay fp32 (their inputs carry the outliers);
    the other MatMuls with weights read int8 inputs."""
    import re

    import openvino as ov

    spec = MethodSpec("cross-encoder", str(tiny_cross_encoder_dir))
    assert create_reranker(spec, settings, precision="openvino-int8").rerank(QUERY, cands()).ok
    path = next((settings.data_dir / "onnx-cache").glob("*/openvino-int8-*")) / "openvino_model.xml"
    kept, quantised = [], []
    for op in ov.Core().read_model(str(path)).get_ops():
        if op.get_type_name() != "MatMul" or "dense" not in op.get_friendly_name():
            continue
        fed = {op.input_value(i).get_node().get_type_name() for i in range(2)}
        name = op.get_friendly_name()
        (kept if any(re.fullmatch(p, name) for p in openvino_path.KEPT_FP32) else quantised).append(
            "FakeQuantize" in fed
        )
    assert kept and not any(kept)  # present in the graph, and left in fp32
    assert quantised and all(quantised)


def test_a_changed_recipe_builds_a_new_file(tiny_cross_encoder_dir, settings, monkeypatch):
    spec = MethodSpec("cross-encoder", str(tiny_cross_encoder_dir))
    assert create_reranker(spec, settings, precision="openvino-int8").rerank(QUERY, cands()).ok
    monkeypatch.setattr(openvino_path, "KEPT_FP32", (r".*layer\.0/output/dense/MatMul.*",))
    again = create_reranker(spec, settings, precision="openvino-int8").rerank(QUERY, cands())
    assert any("quantised now" in n for n in again.notes)
    assert len(list((settings.data_dir / "onnx-cache").glob("*/openvino-int8-*"))) == 2


def test_fp32_openvino_file_is_not_int8(tiny_cross_encoder_dir, settings):
    spec = MethodSpec("cross-encoder", str(tiny_cross_encoder_dir))
    assert create_reranker(spec, settings, precision="openvino").rerank(QUERY, cands()).ok
    folder = next(p for p in (settings.data_dir / "onnx-cache").glob("*/openvino-*") if "int8" not in p.name)
    assert not openvino_path.is_int8_model(folder / "openvino_model.xml")


def test_calibration_pairs_are_the_models_own_pair_inputs(tiny_cross_encoder_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tiny_cross_encoder_dir))
    items = openvino_path.calibration_inputs(
        tok, ["input_ids", "attention_mask", "token_type_ids", "absent"], pairs=True, max_length=40, size=10
    )
    assert len(items) == 10 and all(
        set(i) == {"input_ids", "attention_mask", "token_type_ids"} for i in items
    )
    for item in items:
        assert (
            item["input_ids"].shape == (1, item["attention_mask"].sum()) and item["input_ids"].shape[1] <= 40
        )
        assert item["input_ids"].dtype == np.int64
        assert set(item["token_type_ids"][0].tolist()) == {0, 1}  # query then passage
    singles = openvino_path.calibration_inputs(tok, ["input_ids"], pairs=False, max_length=40, size=8)
    assert all(set(i) == {"input_ids"} for i in singles)
    # fixed texts: the cached file never depends on the corpus that happened to be open
    again = openvino_path.calibration_inputs(tok, ["input_ids"], pairs=False, max_length=40, size=8)
    assert all(np.array_equal(a["input_ids"], b["input_ids"]) for a, b in zip(singles, again, strict=True))


def test_causal_lm_reranker_has_no_openvino_path(tiny_qwen3_reranker_dir, settings):
    result = create_reranker(
        MethodSpec("cross-encoder", str(tiny_qwen3_reranker_dir)), settings, precision="openvino-int8"
    ).rerank(QUERY, cands())
    assert not result.ok and "encoder cross-encoders only" in result.error.message
    assert "fp32 or bf16" in (result.error.hint or "")


def test_a_failed_conversion_is_an_error_not_another_precision(tiny_cross_encoder_dir, settings, monkeypatch):
    def broken(*_a, **_k):
        raise RuntimeError("unsupported operation Foo")

    monkeypatch.setattr(openvino_path, "convert", broken)
    result = create_reranker(
        MethodSpec("cross-encoder", str(tiny_cross_encoder_dir)), settings, precision="openvino-int8"
    ).rerank(QUERY, cands())
    assert not result.ok and result.precision != "fp32"
    assert "could not be converted to OpenVINO for precision openvino-int8" in result.error.message
    assert "unsupported operation Foo" in result.error.message
    assert not any((settings.data_dir / "onnx-cache").rglob(".complete"))  # nothing half-built looks done


def test_missing_openvino_is_reported(tiny_bi_encoder_dir, settings, monkeypatch):
    monkeypatch.setattr(precision, "openvino_runtime_available", lambda: False)
    with pytest.raises(BackendUnavailable, match="needs OpenVINO, NNCF") as info:
        load_sentence_transformer(str(tiny_bi_encoder_dir), settings, precision="openvino-int8", shared=False)
    assert "requirements.txt" in (info.value.hint or "")


# -- encoders -------------------------------------------------------------------------------------------
def test_encoder_embeddings_match_torch(tiny_bi_encoder_dir, settings):
    fp32 = load_sentence_transformer(str(tiny_bi_encoder_dir), settings, shared=False)
    ov = load_sentence_transformer(str(tiny_bi_encoder_dir), settings, precision="openvino", shared=False)
    assert encoder_precision(ov) == "openvino" and "openvino_model.xml" in encoder_precision_note(ov)
    a = fp32.encode(MIXED, normalize_embeddings=True)
    b = ov.encode(MIXED, normalize_embeddings=True)
    np.testing.assert_allclose(b, a, atol=1e-4)
    tokens_a = fp32.encode(MIXED[:3], output_value="token_embeddings")
    tokens_b = ov.encode(MIXED[:3], output_value="token_embeddings")
    for x, y in zip(tokens_a, tokens_b, strict=True):
        assert x.shape == y.shape
        np.testing.assert_allclose(y.numpy(), x.numpy(), atol=1e-4)


@pytest.mark.parametrize("method", ["bi-encoder", "late-interaction"])
def test_encoder_methods_run_at_openvino_int8(method, tiny_bi_encoder_dir, settings):
    spec = MethodSpec(method, str(tiny_bi_encoder_dir))
    c = cands()
    base = create_reranker(spec, settings).rerank(QUERY, c)
    int8 = create_reranker(spec, settings, precision="openvino-int8").rerank(QUERY, c)
    assert int8.ok and int8.precision == "openvino-int8", int8.error
    np.testing.assert_allclose(by_input(int8, c), by_input(base, c), rtol=0.05, atol=0.1)
    assert _spearman(by_input(int8, c), by_input(base, c)) > 0.5


def test_dense_retriever_takes_openvino(tiny_bi_encoder_dir, settings):
    from rerank_core.retrieval.dense import DenseRetriever
    from rerank_core.types import Corpus, Document

    corpus = Corpus([Document(id=f"d{i}", text=t) for i, t in enumerate(MIXED)])
    dense = DenseRetriever(settings=settings, model=str(tiny_bi_encoder_dir), precision="openvino").build(
        corpus
    )
    base = DenseRetriever(settings=settings, model=str(tiny_bi_encoder_dir)).build(corpus)
    assert dense.precision == "openvino"
    assert [h[0] for h in dense.search(QUERY, 5)] == [h[0] for h in base.search(QUERY, 5)]


# -- what auto picks ------------------------------------------------------------------------------------
def test_auto_picks_openvino_int8_on_a_vnni_cpu_without_amx(monkeypatch, tiny_bi_encoder_dir, settings):
    fake_cpu(monkeypatch, NO_AMX_VNNI)
    choice = precision.choose_auto(precision.ENCODER)
    assert choice.precision == "openvino-int8" and "no AMX-BF16" in choice.reason
    auto = load_sentence_transformer(str(tiny_bi_encoder_dir), settings, precision="auto")
    int8 = load_sentence_transformer(str(tiny_bi_encoder_dir), settings, precision="openvino-int8")
    assert auto is int8 and encoder_precision(auto) == "openvino-int8"
    # decoders and ColBERT have no int8 path: a safe fp32
    assert precision.choose_auto(precision.DECODER).precision == "fp32"


def test_auto_without_openvino_falls_back_to_onnx_int8_and_says_why(monkeypatch):
    fake_cpu(monkeypatch, NO_AMX_VNNI)
    monkeypatch.setattr(precision, "openvino_runtime_available", lambda: False)
    choice = precision.choose_auto(precision.ENCODER)
    assert choice.precision == "onnx-int8" and "needs openvino and nncf" in choice.reason


def test_auto_without_int8_instructions_keeps_fp32(monkeypatch):
    fake_cpu(monkeypatch, PLAIN_AVX2)
    assert precision.choose_auto(precision.ENCODER).precision == "fp32"


# -- the benchmark's JSON -------------------------------------------------------------------------------
def test_precision_benchmark_writes_the_documented_json(tiny_bi_encoder_dir, tmp_path, monkeypatch, capsys):
    """``scripts/benchmark.py --precision ... --json FILE`` on the built-in sample: every precision of the
    method gets the documented keys, measured against fp32 in the same run."""
    import importlib.util
    import json
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    spec = importlib.util.spec_from_file_location(
        "precision_benchmark_script", root / "scripts" / "benchmark.py"
    )
    script = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, script)  # its dataclasses look their module up
    spec.loader.exec_module(script)
    monkeypatch.setenv("RERANK_DATA_DIR", str(tmp_path / "data"))
    out = tmp_path / "bench.json"
    method = f"bi-encoder:{tiny_bi_encoder_dir}"
    argv = ["--precision", "fp32,openvino,openvino-int8,auto", "--methods", f"{method},colbert:none"]
    argv += ["--data", str(root / "rerank_core" / "sample"), "--queries", "2", "--candidates", "5"]
    assert script.main([*argv, "--json", str(out)]) == 0
    data = json.loads(out.read_text(encoding="utf-8"))
    assert isinstance(data["cpu"]["flags"], list)
    table = data["methods"][method]
    assert set(table) == {"fp32", "openvino", "openvino-int8", "auto"}
    for row in table.values():
        assert {"p50_ms", "p95_ms", "speedup_vs_fp32", "spearman_vs_fp32", "ndcg10"} <= set(row)
        assert row["p50_ms"] > 0 and row["p95_ms"] >= row["p50_ms"]
        assert row["encode_ms_per_doc"] > 0 and row["ndcg10"] is not None  # local weights: nDCG is measured
    assert table["fp32"]["speedup_vs_fp32"] == 1.0 and table["fp32"]["spearman_vs_fp32"] == 1.0
    assert table["openvino"]["resolved"] == "openvino" and table["openvino"]["spearman_vs_fp32"] > 0.99
    assert table["openvino-int8"]["resolved"] == "openvino-int8"
    # a method whose model is missing says so per precision, and the run goes on
    assert all(row["p50_ms"] is None and row["error"] for row in data["methods"]["colbert:none"].values())
    assert "| " + method + " | openvino-int8 | openvino-int8 |" in capsys.readouterr().out


def test_openvino_keeps_to_the_process_thread_limit(tiny_bi_encoder_dir, settings, monkeypatch):
    import torch

    monkeypatch.setattr(torch, "get_num_threads", lambda: 1)
    model = load_sentence_transformer(str(tiny_bi_encoder_dir), settings, precision="openvino", shared=False)
    network = model[0].model
    assert isinstance(network, openvino_path.OpenVINONetwork)
    assert int(network.compiled.get_property("INFERENCE_NUM_THREADS")) == 1


@pytest.mark.parametrize("method", ["bi-encoder", "late-interaction"])
def test_auto_says_what_it_chose_and_why(method, tiny_bi_encoder_dir, settings, monkeypatch):
    """The precision chip's tooltip reads these notes: an encoder method under auto names its choice."""
    fake_cpu(monkeypatch, PLAIN_AVX2)
    result = create_reranker(MethodSpec(method, str(tiny_bi_encoder_dir)), settings, precision="auto").rerank(
        QUERY, cands()
    )
    assert result.ok and result.precision == "fp32"
    assert [n for n in result.notes if n.startswith("auto:")] == [
        "auto: fp32 (no AMX-BF16 and no int8 dot-product instructions on this CPU)."
    ]
    plain = create_reranker(MethodSpec(method, str(tiny_bi_encoder_dir)), settings).rerank(QUERY, cands())
    assert not any(n.startswith("auto:") for n in plain.notes)
