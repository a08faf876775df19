"""Precision, instruction and remote code as the Compare page offers them, and precision in the reports.

The page: each local method chosen gets a precision box (bound to the link) whose choice reaches the
model and shows as a chip on the column; a model that reads an instruction gets an instruction box whose
text changes its scores; a model that ships its own code runs only after an admin ticks a box, which is
never kept in the link and never offered in demo mode. The core: method metadata says which precisions
a backend takes, session choices override ``[methods.<name>]``, and the evaluation JSON and the
comparison report record the precision each method ran at.
"""

from __future__ import annotations

import json
import re

from streamlit.testing.v1 import AppTest

from rerank_core.compare_report import comparison_report
from rerank_core.config import Settings
from rerank_core.evaluation import run_evaluation
from rerank_core.precision import PRECISIONS, TORCH_PRECISIONS
from rerank_core.registry import method_info
from rerank_core.sample import sample_dataset
from tests.test_app_pages import _app, _column_html
from ui import keys, methods

pytest_plugins = ["tiny_models"]

QUERY = "how does a swept wing change lift at high speed"


def _compare(model, **params) -> AppTest:
    """Compare on QUERY with the cross-encoder at ``model``, its top 10; ``params`` are more URL parameters."""
    at = _app(
        q=QUERY,
        methods=["cross-encoder"],
        depth="10",
        **{keys.model_key("cross-encoder"): str(model)},
        **params,
    )
    at.run()
    return at


def _precision_chip(at: AppTest, title: str) -> str:
    found = re.findall(r'class="rp-chip rp-prec" title="([^"]*)">([^<]+)<', _column_html(at, title))
    assert len(found) == 1, found
    return found[0][1]


def _result(at: AppTest, spec: str):
    assert not at.exception, [e.value for e in at.exception]
    return at.session_state[keys.CMP_LAST]["methods"][spec]


# -- the core ------------------------------------------------------------------------------------------


def test_method_metadata_lists_the_precisions_each_backend_takes():
    assert method_info("cross-encoder").precisions == PRECISIONS
    assert method_info("bi-encoder").precisions == PRECISIONS
    assert method_info("late-interaction").precisions == PRECISIONS
    assert method_info("dense").precisions == PRECISIONS
    assert method_info("colbert").precisions == TORCH_PRECISIONS
    assert set(method_info("flashrank").precisions) == {"auto", "onnx", "onnx-int8"}
    assert method_info("bm25").precisions == () and method_info("cohere").precisions == ()


def test_session_choices_override_the_configured_options_and_nothing_else():
    base = Settings(methods={"cross-encoder": {"batch_size": 8, "precision": "fp32"}, "bm25": {"k1": 1.2}})
    assert base.with_method_options({"cross-encoder": {}}) is base
    changed = base.with_method_options(
        {"cross-encoder": {"precision": "onnx-int8"}, "bi-encoder": {"precision": "bf16"}}
    )
    assert changed.method_options("cross-encoder") == {"batch_size": 8, "precision": "onnx-int8"}
    assert changed.method_options("bi-encoder") == {"precision": "bf16"}
    assert changed.method_options("bm25") == {"k1": 1.2}
    assert base.method_options("cross-encoder")["precision"] == "fp32"  # the original is untouched
    assert methods.precision_choices("flashrank", base) == (method_info("flashrank").precisions, "auto")
    assert (
        methods.precision_choices(
            "cross-encoder", base.with_method_options({"cross-encoder": {"precision": "bogus"}})
        )[1]
        == "fp32"
    )


def test_the_evaluation_and_the_comparison_report_record_each_methods_precision(tmp_path, minilm_path):
    dataset = sample_dataset()
    settings = Settings(data_dir=tmp_path, methods={"bi-encoder": {"precision": "bf16"}})
    report = run_evaluation(dataset, "bm25", 10, ["bm25", "bi-encoder"], max_queries=2, settings=settings)
    data = json.loads(report.dumps())
    assert data["methods"]["bi-encoder"]["precision"] == "bf16"
    assert "precision" not in data["methods"]["bm25"]  # no numeric path to speak of
    from rerank_core.report import render_html

    assert "precision bf16" in render_html(data)

    from rerank_core.pipeline import Runtime

    runtime = Runtime()
    comp = runtime.compare(QUERY, dataset.corpus, "bm25", ["bi-encoder"], 10, settings).comparison
    report_data = comparison_report(comp, k=5, titles={"bi-encoder": "Bi-encoder"})
    (column,) = [c for c in report_data["columns"] if c["method"].startswith("bi-encoder")]
    assert column["precision"] == "bf16"
    assert report_data["columns"][0]["precision"] is None  # bm25


# -- the page ------------------------------------------------------------------------------------------


def test_a_precision_chosen_on_the_page_reaches_the_model_shows_on_its_column_and_stays_in_the_link(
    tiny_cross_encoder_dir,
):
    at = _compare(tiny_cross_encoder_dir)
    box = at.selectbox(key=keys.precision_key("cross-encoder"))
    assert list(box.options) == list(PRECISIONS) and box.value == "fp32"
    assert _result(at, f"cross-encoder:{tiny_cross_encoder_dir}").precision == "fp32"
    assert _precision_chip(at, "Cross-encoder") == "fp32"

    box.set_value("bf16").run()
    assert _result(at, f"cross-encoder:{tiny_cross_encoder_dir}").precision == "bf16"
    assert _precision_chip(at, "Cross-encoder") == "bf16"
    # (AppTest does not write bound widgets into its query parameters; a link is read back below)

    # the link alone reproduces it
    again = _compare(tiny_cross_encoder_dir, **{keys.precision_key("cross-encoder"): "bf16"})
    assert _result(again, f"cross-encoder:{tiny_cross_encoder_dir}").precision == "bf16"


def test_auto_says_on_the_chip_what_it_chose_and_why(tiny_cross_encoder_dir):
    at = _compare(tiny_cross_encoder_dir, **{keys.precision_key("cross-encoder"): "auto"})
    result = _result(at, f"cross-encoder:{tiny_cross_encoder_dir}")
    assert result.precision in (
        "fp32",
        "bf16",
        "onnx-int8",
        "openvino-int8",
    )  # what auto resolved to, never "auto"
    titles = re.findall(r'class="rp-chip rp-prec" title="([^"]*)"', _column_html(at, "Cross-encoder"))
    assert titles and "auto: " + result.precision in titles[0]


def test_the_instruction_box_shows_for_a_model_that_reads_one_and_its_text_reaches_the_prompt(
    tiny_qwen3_reranker_dir, tiny_cross_encoder_dir
):
    spec = f"cross-encoder:{tiny_qwen3_reranker_dir}"
    at = _compare(tiny_qwen3_reranker_dir)
    default_scores = {it.doc_id: it.score for it in _result(at, spec).items}
    box = at.text_input(key=keys.instruction_key("cross-encoder"))
    box.input("Given a question about aircraft structures, retrieve passages that answer it").run()
    instructed = {it.doc_id: it.score for it in _result(at, spec).items}
    assert instructed.keys() == default_scores.keys()
    assert any(
        abs(instructed[d] - default_scores[d]) > 1e-6 for d in instructed
    )  # another prompt, other scores

    plain = _compare(tiny_cross_encoder_dir)
    assert not [t for t in plain.text_input if t.key == keys.instruction_key("cross-encoder")]


def test_remote_code_runs_only_once_an_admin_ticks_it_and_never_from_a_link(tmp_path, monkeypatch):
    from tiny_models import build_tiny_remote_code_cross_encoder

    path = build_tiny_remote_code_cross_encoder(tmp_path / "remote")
    spec = f"cross-encoder:{path}"
    at = _compare(path)
    refused = _result(at, spec)
    assert refused.error is not None and "trust_remote_code" in (refused.error.hint or "")
    at.checkbox(key=keys.remote_code_key("cross-encoder")).check().run()
    allowed = _result(at, spec)
    assert allowed.ok and any("trust_remote_code is on" in n for n in allowed.notes)
    assert any("runs Python code" in w.value for w in at.warning)
    assert all("remote_code" not in name for name in at.query_params)

    # a link cannot turn it on
    linked = _compare(path, **{keys.remote_code_key("cross-encoder"): "true"})
    assert _result(linked, spec).error is not None

    # a demo never offers it
    config = tmp_path / "rerank.toml"
    config.write_text('[demo]\nenabled = true\nmethods = ["cross-encoder"]\n', encoding="utf-8")
    monkeypatch.setenv("RERANK_CONFIG", str(config))
    demo = _app(q=QUERY, methods=["cross-encoder"], depth="10")
    demo.run()
    assert not [c for c in demo.checkbox if c.key == keys.remote_code_key("cross-encoder")]
