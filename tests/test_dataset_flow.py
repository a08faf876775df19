"""A BEIR dataset end to end: uploaded as a .zip on the Corpus page, benchmarked on the Benchmark page.

The fast tests upload the real Cranfield collection (zipped here from ``../shared/data/cranfield``)
through the real file uploader and check that its queries and qrels come along: the Corpus page
says what came with it, the Benchmark page offers the dataset's qrels (also after visiting other
pages), one click imports them into the label store, and a broken queries file or a second qrels
split behave as they should.

The slow test is the issue's done-when: the Benchmark page on Cranfield (BM25 first stage, the
real packaged MiniLM as a late-interaction reranker, depth 100, sweep 10-100, 20 queries) finishes
with its table, sweep, verdict and adaptive-policy plot, and the table's figures equal those of
``python -m rerank_core evaluate`` run as a separate process with the same settings.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from rerank_core import analysis
from rerank_core.benchmark import KEY_MEASURE
from rerank_core.config import load_settings
from rerank_core.corpus import load_beir
from rerank_core.workspace import StoredCorpus, Workspace
from ui import keys
from ui.corpus_state import beir_splits, pick_split

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "app.py")
MEASURES = ("nDCG@10", "R@10", "R@50", "RR", "P@5")
BEIR_FILES = ("corpus.jsonl", "queries.jsonl", "qrels/test.tsv")


def _zip(folder: Path, prefix: str = "cranfield/", replace: dict[str, bytes] | None = None) -> bytes:
    """A BEIR zip of ``folder`` (members under ``prefix``), with some members replaced or added."""
    members = {rel: (folder / rel).read_bytes() for rel in BEIR_FILES}
    members.update(replace or {})
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for rel, data in members.items():
            zf.writestr(prefix + rel, data)
    return buf.getvalue()


@pytest.fixture(scope="module")
def cranfield(cranfield_dir):
    return load_beir(cranfield_dir)


@pytest.fixture(scope="module")
def cranfield_zip(cranfield_dir) -> bytes:
    return _zip(cranfield_dir)


def _no_exception(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def _upload(at: AppTest, name: str, data: bytes, split: str | None = None) -> AppTest:
    at.switch_page("views/corpus.py").run()
    _no_exception(at)
    at.file_uploader(key=keys.CORPUS_UPLOADS).set_value([(name, data, "application/zip")])
    at.run()
    if split is not None:
        at.selectbox(key=keys.CORPUS_SPLIT).select(split).run()
    next(b for b in at.button if b.label == "Load files").click().run()
    _no_exception(at)
    return at


def _text(elements) -> str:
    return " ".join(e.value for e in elements).replace("\\", "")


def _sources(at: AppTest) -> list[str]:
    at.switch_page("views/benchmark.py").run()
    _no_exception(at)
    return list(at.radio(key=keys.BENCH_SOURCE).options)


def _active(at: AppTest) -> StoredCorpus:
    return Workspace(load_settings().data_dir).get(at.session_state[keys.ACTIVE_CORPUS])


# -- fast: the upload brings its queries and qrels ---------------------------------------------------------


def test_a_beir_zip_brings_its_queries_and_qrels_to_the_benchmark_page(cranfield, cranfield_zip):
    n_judgements = sum(len(d) for d in cranfield.qrels.values())
    n_judged = len(cranfield.judged_query_ids)
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    _upload(at, "cranfield.zip", cranfield_zip)

    # the corpus is the one the evaluate command reads (documents without text kept), named after the dataset
    active = _active(at)
    assert not active.is_sample and active.name == cranfield.name == "cranfield"
    assert active.corpus.fingerprint == cranfield.corpus.fingerprint and len(active.corpus) == 1400
    notice = _text(at.success)
    assert f"{len(cranfield.corpus):,} documents from cranfield.zip" in notice
    assert f"{n_judgements:,} judgements (qrels/test.tsv)" in notice
    came = _text(m for m in at.markdown if "Came with it" in m.value)
    assert f"{len(cranfield.queries):,} queries" in came and f"{n_judgements:,} judgements" in came
    assert "2 warnings" in came  # the two Cranfield abstracts with neither title nor text, kept
    info = active.info
    assert (info.split, info.queries, info.judged_queries, info.judgements) == (
        "test",
        len(cranfield.queries),
        n_judged,
        n_judgements,
    )

    # the Benchmark page offers the dataset's qrels, and still does after visiting other pages
    expected = f"Dataset qrels: cranfield, qrels/test.tsv ({n_judged})"
    assert _sources(at) == [expected]
    at.switch_page("views/labels.py").run()
    _no_exception(at)
    at.switch_page("views/corpus.py").run()
    _no_exception(at)
    assert _sources(at) == [expected]

    # one click imports them into the label store, under the corpus id the Labels page uses
    at.switch_page("views/corpus.py").run()
    importer = next(b for b in at.button if b.label.startswith("Import "))
    assert importer.label == f"Import {n_judgements:,} judgements into the label store"
    importer.click().run()
    _no_exception(at)
    assert f"Imported the {n_judgements:,} judgements of {n_judged:,} queries" in _text(at.success)
    from rerank_core.judgements import JudgementStore

    with JudgementStore(load_settings().resolved_db_url) as store:
        assert store.qrels(active.id) == cranfield.qrels
        assert store.queries(active.id) == {q: cranfield.queries[q] for q in cranfield.qrels}
    assert any(f"holds {n_judgements:,} judgements" in c.value for c in at.caption)
    # importing twice changes nothing
    next(b for b in at.button if b.label.startswith("Import ")).click().run()
    assert "(0 new or changed)" in _text(at.success)
    # the labels now appear as a query set of their own next to the dataset's qrels
    assert _sources(at) == [expected, f"Labelled queries ({n_judged})"]


def test_a_zip_whose_queries_cannot_be_read_loads_nothing(cranfield_dir):
    bad = _zip(cranfield_dir, replace={"queries.jsonl": "Caf\u00e9 query\n".encode("cp1252")})
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    before = at.session_state[keys.ACTIVE_CORPUS]
    _upload(at, "broken.zip", bad)
    assert at.session_state[keys.ACTIVE_CORPUS] == before and _active(at).is_sample
    assert "Nothing was loaded" in _text(at.error)
    problems = _text(at.markdown)
    assert "queries.jsonl" in problems and "is not valid UTF-8" in problems
    assert any("How to fix" in c.value for c in at.caption)
    # the previous corpus keeps its own qrels on the Benchmark page
    sample = _active(at).name
    assert any(s.startswith(f"Dataset qrels: {sample}") for s in _sources(at))
    assert at.session_state[keys.ACTIVE_CORPUS] == before


def test_a_zip_with_several_splits_lets_the_user_choose_one(cranfield_dir, cranfield):
    # a "dev" split judging the first two queries only, and one row naming an unknown document
    dev_rows = [f"{q}\t{d}\t{g}" for q in ("1", "2") for d, g in cranfield.qrels[q].items()]
    dev = "query-id\tcorpus-id\tscore\n" + "\n".join([*dev_rows, "1\tno-such-doc\t1"]) + "\n"
    data = _zip(cranfield_dir, replace={"qrels/dev.tsv": dev.encode()})
    assert beir_splits(data) == ["dev", "test"] and pick_split(["dev", "test"]) == "test"
    assert pick_split(["dev", "train"]) == "dev" and pick_split([]) is None
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    _upload(at, "cranfield.zip", data, split="dev")
    info = _active(at).info
    n_dev = len(cranfield.qrels["1"]) + len(cranfield.qrels["2"])
    assert (info.split, info.judged_queries, info.judgements) == ("dev", 2, n_dev)
    assert info.splits == ("dev", "test")
    warnings = _active(at).warnings
    assert any("no-such-doc" in w and "dev.tsv" in w for w in warnings)
    assert _sources(at) == ["Dataset qrels: cranfield, qrels/dev.tsv (2)"]


def test_a_plain_document_zip_brings_no_qrels(cranfield_dir):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("docs/corpus.jsonl", (cranfield_dir / "corpus.jsonl").read_bytes())
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    _upload(at, "docs.zip", buf.getvalue())
    active = _active(at)
    assert not active.queries and len(active.corpus) == 1398  # the plain reader skips the 2 empty ones
    assert not any("Came with it" in m.value for m in at.markdown)
    at.switch_page("views/benchmark.py").run()
    _no_exception(at)
    assert any("nothing to benchmark" in i.value for i in at.info)


# -- slow: the done-when, on the real collection with the real packaged MiniLM ------------------------------

N_QUERIES = 20
DEPTH = 100
SWEEP = (10, 25, 50, 100)


def _evaluate_cli(dataset_dir: Path, out: Path) -> dict:
    cmd = [
        sys.executable,
        "-m",
        "rerank_core",
        "evaluate",
        "--dataset",
        str(dataset_dir),
        "--first-stage",
        "bm25",
        "--depth",
        str(DEPTH),
        "--methods",
        "bm25,late-interaction",
        "--max-queries",
        str(N_QUERIES),
        "--output",
        str(out / "report.json"),
        "--run-dir",
        str(out / "runs"),
        "--no-progress",
    ]
    done = subprocess.run(cmd, cwd=ROOT, env=dict(os.environ), capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stderr[-2000:]
    print("\n" + done.stderr.strip())
    return json.loads((out / "report.json").read_text(encoding="utf-8"))


@pytest.mark.slow
def test_the_benchmark_page_on_cranfield_matches_the_evaluate_command(
    cranfield_dir, cranfield_zip, minilm_path, tmp_path, cranfield_cache
):
    at = AppTest.from_file(APP, default_timeout=1800)  # MiniLM encodes all 1,400 abstracts once (~50 s idle)
    at.run()
    _upload(at, "cranfield.zip", cranfield_zip)
    at.switch_page("views/benchmark.py").run()
    _no_exception(at)
    assert at.radio(key=keys.BENCH_SOURCE).value == "Dataset qrels: cranfield, qrels/test.tsv (225)"
    at.multiselect(key=keys.BENCH_METHODS).set_value(["late-interaction"])
    at.number_input(key=keys.BENCH_DEPTH).set_value(DEPTH)
    at.number_input(key=keys.BENCH_MAX_QUERIES).set_value(N_QUERIES)
    at.text_input(key=keys.BENCH_SWEEP).set_value(", ".join(str(d) for d in SWEEP))
    at.run()
    _no_exception(at)
    at.button(key=keys.BENCH_RUN).click().run()
    _no_exception(at)

    # the table
    table = next(df.value for df in at.dataframe if "p-value" in df.value.columns).set_index("method")
    assert list(table.index) == ["bm25", "late-interaction"]
    bench = at.session_state[keys.BENCH_RESULT]["bench"]
    assert bench.report.query_ids == [str(i) for i in range(1, N_QUERIES + 1)]

    # the same settings through the command line, in its own process
    cli = _evaluate_cli(cranfield_dir, tmp_path / "cli")
    assert cli["queries"] == N_QUERIES and cli["depth"] == DEPTH
    print(f"\n{'method':18}" + "".join(f"{m:>9}" for m in MEASURES) + "   (page | evaluate)")
    for name in ("bm25", "late-interaction"):
        assert cli["methods"][name]["available"]
        for measure in MEASURES:
            assert table.loc[name, measure] == pytest.approx(
                cli["methods"][name]["metrics"][measure], abs=1e-9
            )
        print(
            f"{name:18}"
            + "".join(f"{table.loc[name, m]:9.4f}" for m in MEASURES)
            + "  |"
            + "".join(f"{cli['methods'][name]['metrics'][m]:7.4f}" for m in MEASURES)
        )
    assert table.loc["late-interaction", f"Δ {KEY_MEASURE} vs first stage"] == pytest.approx(
        cli["methods"]["late-interaction"]["metrics"][KEY_MEASURE]
        - cli["methods"]["bm25"]["metrics"][KEY_MEASURE]
    )

    # the verdict: first-stage recall as measured, the rule stated
    verdict = bench.verdict
    assert verdict is not None and verdict.kind in analysis.VERDICT_KINDS
    assert verdict.recall_at_50 == pytest.approx(cli["methods"]["bm25"]["metrics"]["R@50"], abs=1e-9)
    assert 0.0 <= verdict.recall_at_3 <= verdict.recall_at_3_of_ideal <= 1.0
    shown = _text([*at.success, *at.warning, *at.info])
    assert "of the relevant documents it could hold" in shown or "Fix retrieval first" in shown
    print(f"verdict ({verdict.kind}): {verdict.text}")
    # one rule: the page's verdict is the evaluate report's
    page_v, cli_v = verdict.to_json(), cli["verdict"]
    assert (page_v["call"], page_v["method"], page_v["queries_needed"]) == (
        cli_v["call"],
        cli_v["method"],
        cli_v["queries_needed"],
    )
    assert page_v["ci"] == pytest.approx(cli_v["ci"], abs=1e-9)

    # the sweep (from the same scores: its deepest point is the table's figure) and the policy plot
    charts = {c.proto.id.rsplit("-", 1)[-1]: json.loads(c.proto.spec) for c in at.get("plotly_chart")}
    sweep, policy = charts[keys.BENCH_SWEEP_PLOT], charts[keys.BENCH_POLICY]
    line = next(t for t in sweep["data"] if t.get("mode") == "lines+markers")
    assert line["x"] == list(SWEEP)
    assert line["y"][-1] == pytest.approx(table.loc["late-interaction", KEY_MEASURE], abs=1e-9)
    assert any(t.get("marker", {}).get("symbol") == "star" for t in sweep["data"])
    curve = policy["data"][0]
    assert curve["y"][0] == pytest.approx(table.loc["bm25", KEY_MEASURE], abs=1e-9)  # never rerank
    assert curve["y"][-1] == pytest.approx(table.loc["late-interaction", KEY_MEASURE], abs=1e-9)  # always
    print(
        "sweep nDCG@10: "
        + ", ".join(f"{d}: {v:.4f}" for d, v in zip(line["x"], line["y"], strict=True))
        + f"; knee {bench.knees['late-interaction']}"
    )
