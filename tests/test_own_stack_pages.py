"""The Compare and Corpus pages with the user's own stack, run headless with AppTest: a run file uploaded on
Compare becomes the first stage named in the link and offers its queries; a search engine set up in the
form (a loopback ``_search`` server) is tested with one hit and then is a first stage column; a bad URL, a
missing index or a wrong field name gives a message naming the setting; fusions are columns; the Benchmark
page takes a concurrency and fusions. The core these pages call is tested in test_run_first_stage.py,
test_fusion.py and test_engine_form.py.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from engine_servers import SearchEngine
from loopback_servers import LoopbackServer
from streamlit.testing.v1 import AppTest

from rerank_core.sample import sample_dataset
from ui import keys

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "app.py")
TIMEOUT = 240


def _app(**params) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    for name, value in params.items():
        at.query_params[name] = value
    return at


def _text(elements) -> list[str]:
    """Element texts without the Markdown escapes the pages add."""
    return [str(e.value).replace("\\", "") for e in elements]


def _ok(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def _column_names(at: AppTest) -> list[str]:
    names = []
    for h in at.get("html"):
        names += re.findall(r'<div class="rp-name">(.*?)</div>', h.proto.body)
    return names


def _last(at: AppTest) -> dict:
    shown = [e.value for e in [*at.error, *at.warning]]
    assert keys.CMP_LAST in at.session_state, shown
    return at.session_state[keys.CMP_LAST]


@pytest.fixture
def sample():
    return sample_dataset()


def _run_text(sample, queries: list[str]) -> bytes:
    lines = []
    for qid in queries:
        docs = [d.id for d in sample.corpus][:6]
        lines += [f"{qid} Q0 {d} {r} {10 - r} mine" for r, d in enumerate(docs, start=1)]
    return ("\n".join(lines) + "\n").encode()


def test_a_run_file_uploaded_on_compare_is_the_first_stage_and_offers_its_queries(sample):
    qids = list(sample.queries)[:2]
    at = _app(methods=[])
    at.run()
    _ok(at)
    at.toggle(key=keys.CMP_OWN_STACK).set_value(True).run()
    at.file_uploader(key=keys.CMP_RUN_UPLOAD).set_value([("mine.run", _run_text(sample, qids), "text/plain")])
    at.run()
    _ok(at)
    first_stage = at.session_state[keys.FIRST_STAGE]
    assert first_stage.startswith("run:") and len(first_stage) == 4 + 16
    assert any("mine.run: 2 queries, 12 lines" in t for t in _text(at.success))
    picker = at.selectbox(key=keys.CMP_PICK_QUERY)
    assert picker.options and len(picker.options) == 2 and "run file's 2 queries" in picker.label
    picker.select_index(0).run()
    _ok(at)
    last = _last(at)
    assert last["first_stage"] == first_stage and last["query_id"] in qids
    assert [c.doc_id for c in last["first"][0]] == [d.id for d in sample.corpus][:6]
    assert at.query_params[keys.FIRST_STAGE] in (first_stage, [first_stage])
    # the link names it: a new session opening the link gets the same first stage and candidates
    again = _app(q=sample.queries[last["query_id"]], first_stage=first_stage, methods=[])
    again.run()
    _ok(again)
    assert [c.doc_id for c in _last(again)["first"][0]] == [c.doc_id for c in last["first"][0]]
    # a query the run does not list: a clear message, no traceback
    missing = _app(q="a query the run file does not list", first_stage=first_stage, methods=[])
    missing.run()
    _ok(missing)
    assert any("has no candidates for" in t for t in _text(missing.warning))
    # a file that is not a run: what is wrong, and the first stage stays
    at.file_uploader(key=keys.CMP_RUN_UPLOAD).set_value([("bad.run", b"only three columns\n", "text/plain")])
    at.run()
    _ok(at)
    assert any("expected 6 columns" in t for t in _text(at.error))


def test_fusion_columns_on_compare(sample):
    query = next(iter(sample.queries.values()))
    at = _app(q=query, methods=["late-interaction"], fuse=["fusion:bm25+late-interaction"], depth="20")
    at.run()
    _ok(at)
    last = _last(at)
    fused = last["methods"]["fusion:bm25+late-interaction"]
    assert fused.ok and sorted(fused.ids) == sorted(c.doc_id for c in last["first"][0])
    assert "Fusion · bm25+late-interaction" in _column_names(at)
    options = at.multiselect(key=keys.FUSIONS).options
    assert "fusion:bm25+late-interaction" in options


@pytest.fixture
def engine_server(sample):
    docs = {d.id: {"title": d.title, "text": d.text} for d in sample.corpus}
    with SearchEngine(docs=docs).mount(LoopbackServer()) as server:
        yield server


def _fill(at: AppTest, page: str, engine: str, **values: str) -> None:
    for option, value in values.items():
        at.text_input(key=keys.engine_field_key(page, engine, option)).input(value)


def _submit(at: AppTest, label: str) -> None:
    next(b for b in at.button if b.label == label).click().run()
    _ok(at)


def test_an_engine_set_up_on_compare_is_tested_then_a_first_stage_column(sample, engine_server):
    query = next(iter(sample.queries.values()))
    at = _app(q=query, methods=[])
    at.run()
    _ok(at)
    at.toggle(key=keys.CMP_OWN_STACK).set_value(True).run()
    at.selectbox(key=keys.engine_pick_key("cmp")).select("opensearch").run()
    _ok(at)
    # a bad URL: the message names the setting
    _fill(at, "cmp", "opensearch", url="not a url", index="docs")
    _submit(at, "Test connection")
    assert any("[methods.opensearch] url" in t for t in _text([*at.markdown, *at.error]))
    # a missing index
    _fill(at, "cmp", "opensearch", url=engine_server.url, index="nope")
    _submit(at, "Test connection")
    assert any("Setting to fix: `[methods.opensearch] index`" in t for t in _text(at.markdown))
    # a wrong field name
    _fill(at, "cmp", "opensearch", url=engine_server.url, index="docs", text_field="body")
    _submit(at, "Test connection")
    assert any("Setting to fix: `[methods.opensearch] text_field`" in t for t in _text(at.markdown))
    # right: one hit, then it is the first stage
    _fill(at, "cmp", "opensearch", url=engine_server.url, index="docs", text_field="text")
    _submit(at, "Use as first stage")
    assert any("One hit" in t for t in _text(at.success))
    assert at.session_state[keys.FIRST_STAGE] == "opensearch"
    assert "opensearch" in at.segmented_control(key=keys.FIRST_STAGE).options
    last = _last(at)
    assert last["first_stage"] == "opensearch" and last["first"][0]
    assert any(n.endswith("· first stage") and "OpenSearch" in n for n in _column_names(at))
    assert any("[methods.opensearch]" in c.value and "index = " in c.value for c in at.code)
    # the settings live in this session only: nothing about them in the URL
    assert all("docs" not in str(v) for k, v in at.query_params.items() if k != "q")


def test_the_engine_form_on_the_corpus_page(engine_server):
    at = _app()
    at.switch_page("views/corpus.py").run()
    _ok(at)
    at.selectbox(key=keys.engine_pick_key("corpus")).select("opensearch").run()
    _fill(at, "corpus", "opensearch", url=engine_server.url, index="docs")
    _submit(at, "Test connection")
    assert any("One hit" in t for t in _text(at.success))


def test_benchmark_page_takes_a_concurrency_and_fusions():
    at = _app()
    at.switch_page("views/benchmark.py").run()
    _ok(at)
    assert at.number_input(key=keys.BENCH_CONCURRENCY).value == 1
    at.multiselect(key=keys.BENCH_METHODS).set_value(["bi-encoder"]).run()
    at.multiselect(key=keys.BENCH_FUSIONS).set_value(["fusion:bm25+bi-encoder"]).run()
    _ok(at)
    next(b for b in at.button if b.label == "Run benchmark").click().run()
    _ok(at)
    bench = at.session_state[keys.BENCH_RESULT]["bench"]
    fused = bench.report.methods["fusion:bm25+bi-encoder"]
    assert fused.available and fused.metrics is not None


def test_a_link_to_a_hybrid_of_two_first_stages(sample):
    query = next(iter(sample.queries.values()))
    at = _app(q=query, methods=[], first_stage="hybrid:bm25+dense", depth="10")
    at.run()
    _ok(at)
    last = _last(at)
    assert last["first_stage"] == "hybrid:bm25+dense" and len(last["first"][0]) == 10
    assert "Hybrid (bm25+dense) · first stage" in _column_names(at)
    assert (
        last["first"][1].label.startswith("hybrid RRF (k=60) of BM25") and "dense" in last["first"][1].label
    )
