"""The evaluation runner and the ``evaluate`` command.

The runner's plumbing is tested with deterministic fake backends registered for these tests only
(a word-overlap first stage and text-length rerankers): they are not features and their numbers
mean nothing; what is checked is the wiring, the timing rules, the report and the run files.
The command is also run end to end in a subprocess with the real BM25 first stage.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from rerank_core import cli
from rerank_core.errors import BackendUnavailable, CorpusFormatError, InvalidMethod
from rerank_core.evaluation import run_evaluation, run_file_name
from rerank_core.progress import Cancelled
from rerank_core.registry import RERANKERS, RETRIEVERS
from rerank_core.rerankers.base import Reranker
from rerank_core.retrieval.base import Retriever
from rerank_core.trec import read_run, write_beir_qrels
from rerank_core.types import Corpus, Dataset, Document, Scores, ScoreScale

ir_measures = pytest.importorskip("ir_measures")

ROOT = Path(__file__).resolve().parents[1]
MEASURES = ("nDCG@10", "R@10", "R@50", "RR", "P@5")

# -- fake plumbing backends -----------------------------------------------------------------------


class OverlapRetriever(Retriever):
    """Counts shared words (plumbing only)."""

    name = "fake-overlap"
    builds = 0

    def _build(self, corpus, progress):
        type(self).builds += 1
        self._words = [set(d.full_text.lower().split()) for d in corpus]

    def _search(self, query, k):
        q = set(query.lower().split())
        scored = [(len(q & w), i) for i, w in enumerate(self._words)]
        scored.sort(key=lambda t: (-t[0], t[1]))
        return [(self.corpus[i].id, float(s)) for s, i in scored[:k]]

    def save(self, directory):  # pragma: no cover - not used
        raise NotImplementedError

    @classmethod
    def load(cls, directory, corpus, settings=None):  # pragma: no cover - not used
        raise NotImplementedError


class BrokenRetriever(OverlapRetriever):
    name = "fake-broken-index"

    def _build(self, corpus, progress):
        raise BackendUnavailable("the fake index cannot be built", hint="do something else")


class LengthReranker(Reranker):
    """Longer text first (plumbing only). Records what it was asked."""

    name = "fake-length"
    scale = ScoreScale.LOGIT
    log: list = []

    def _load(self):
        type(self).log.append(("load",))

    def prepare(self, corpus, progress=None):
        type(self).log.append(("prepare", len(corpus)))
        if progress:
            progress(1, 1, "done")

    def score(self, query, candidates):
        type(self).log.append(("score", query, tuple(c.doc_id for c in candidates)))
        return [float(len(c.text)) for c in candidates]


class MissingReranker(LengthReranker):
    name = "fake-missing"

    def _load(self):
        raise BackendUnavailable("fake weights are not here", hint="put the fake weights in place")


class FlakyReranker(LengthReranker):
    name = "fake-flaky"

    def score(self, query, candidates):
        if "wing" in query:
            raise RuntimeError("boom on wing")
        return [-float(len(c.text)) for c in candidates]


class BilledReranker(LengthReranker):
    """Reports one search unit per call, as a hosted reranker does (plumbing only)."""

    name = "fake-billed"

    def score(self, query, candidates):
        type(self).log.append(("score", query, tuple(c.doc_id for c in candidates)))
        return Scores(values=[float(len(c.text)) for c in candidates], usage={"search_units": 1})


@pytest.fixture(autouse=True)
def fakes(monkeypatch):
    monkeypatch.setitem(RETRIEVERS, "fake-overlap", OverlapRetriever)
    monkeypatch.setitem(RETRIEVERS, "fake-broken-index", BrokenRetriever)
    for cls in (LengthReranker, MissingReranker, FlakyReranker, BilledReranker):
        monkeypatch.setitem(RERANKERS, cls.name, cls)
    LengthReranker.log = []
    OverlapRetriever.builds = 0


WORDS = "wing lift drag flow shock heat boundary layer mach plate cone pressure".split()


@pytest.fixture
def dataset() -> Dataset:
    docs = []
    for i in range(30):
        words = [WORDS[(i * 7 + j * 3) % len(WORDS)] for j in range(2 + i % 5)]
        docs.append(Document(id=f"d{i:02d}", title=f"doc {i}", text=" ".join(words) + " x" * (i % 4)))
    queries = {f"q{j}": f"{WORDS[j]} {WORDS[(j + 5) % len(WORDS)]}" for j in range(7)}
    queries["unjudged"] = "mach cone"
    qrels = {f"q{j}": {f"d{(j * 4 + t) % 30:02d}": (t % 4) for t in range(6)} for j in range(7)}
    return Dataset(name="toy", corpus=Corpus(docs, name="toy"), queries=queries, qrels=qrels)


# -- the runner -----------------------------------------------------------------------------------


def test_report_shape_is_exact_and_unavailable_method_does_not_stop_others(dataset):
    report = run_evaluation(dataset, "fake-overlap", 12, ["fake-overlap", "fake-missing", "fake-length"])
    data = json.loads(report.dumps())
    base = {"dataset", "queries", "depth", "first_stage", "methods"}
    answers = {"verdict", "verdict_detail", "per_query_analysis", "coverage_warning", "query_texts"}
    answers |= {"query_tags", "settings", "versions"}
    assert set(data) == base | answers
    assert set(data["verdict"]) == {"call", "method", "lift", "ci", "p", "queries_needed"}
    assert (data["dataset"], data["queries"], data["depth"], data["first_stage"]) == (
        "toy",
        7,
        12,
        "fake-overlap",
    )
    assert list(data["methods"]) == ["fake-overlap", "fake-missing", "fake-length"]
    required = {"available", "error", "metrics", "latency_ms", "model_load_s"}
    for entry in data["methods"].values():
        assert required <= set(entry)
        assert isinstance(entry["model_load_s"], float)
    for name in ("fake-overlap", "fake-length"):
        entry = data["methods"][name]
        assert entry["available"] is True and entry["error"] is None
        assert set(entry["metrics"]) == set(MEASURES)
        assert set(entry["latency_ms"]) == {"p50", "p95", "mean"}
        assert entry["warmup_ms"] is not None
    missing = data["methods"]["fake-missing"]
    assert missing["available"] is False and missing["metrics"] is None and missing["latency_ms"] is None
    assert (
        "fake weights are not here" in missing["error"]
        and "put the fake weights in place" in missing["error"]
    )
    assert data["methods"]["fake-length"]["prepare_s"] >= 0
    assert data["methods"]["fake-overlap"]["index_build_s"] >= 0


def test_rerankers_reorder_all_candidates_of_the_first_stage(dataset):
    report = run_evaluation(dataset, "fake-overlap", 9, ["fake-length"])
    fs = report.methods  # the first stage is not listed, so it is not in the report
    assert list(fs) == ["fake-length"]
    ranker = report.methods["fake-length"]
    scored = [e for e in LengthReranker.log if e[0] == "score"]
    # one warm-up call plus one per judged query, each with all 9 candidates
    assert len(scored) == report.queries + 1 and all(len(e[2]) == 9 for e in scored)
    assert [e[0] for e in LengthReranker.log[:2]] == ["load", "prepare"]
    # the warm-up query is not an evaluated one (an answer cache must not make a timed query a hit)
    assert scored[0][1] == "mach cone" and scored[0][1] not in {dataset.queries[q] for q in report.query_ids}
    for qid in report.query_ids:
        assert len(ranker.run[qid]) == 9
    assert set(ranker.latencies_ms) == set(report.query_ids)  # the warm-up is not among them
    assert report.query_ids == [f"q{j}" for j in range(7)]  # the unjudged query is not run


def test_same_candidates_as_the_first_stage_and_order_by_the_reranker(dataset):
    report = run_evaluation(dataset, "fake-overlap", 10, ["fake-overlap", "fake-length"])
    fs, rr = report.methods["fake-overlap"], report.methods["fake-length"]
    texts = {d.id: d.text for d in dataset.corpus}
    for qid in report.query_ids:
        assert set(fs.run[qid]) == set(rr.run[qid])
        order = sorted(rr.run[qid], key=lambda d: -rr.run[qid][d])
        lengths = [len(texts[d]) for d in order]
        assert lengths == sorted(lengths, reverse=True)


def test_metrics_recomputed_by_ir_measures_from_the_run_files(dataset, tmp_path):
    report = run_evaluation(dataset, "fake-overlap", 15, ["fake-overlap", "fake-length", "fake-flaky"])
    written = report.write_runs(tmp_path / "runs")
    assert set(written) == {"fake-overlap", "fake-length", "fake-flaky"}
    data = report.to_json()
    qrels = {q: dataset.qrels[q] for q in report.query_ids}
    for name, path in written.items():
        run = read_run(path)
        assert set(run) <= set(report.query_ids)
        theirs = ir_measures.calc_aggregate([ir_measures.parse_measure(m) for m in MEASURES], qrels, run)
        for m in MEASURES:
            assert data["methods"][name]["metrics"][m] == pytest.approx(
                theirs[ir_measures.parse_measure(m)], abs=1e-6
            )
        # per-query values stay on the report, in query order
        per = report.methods[name].values("nDCG@10", report.query_ids)
        assert per.mean() == pytest.approx(data["methods"][name]["metrics"]["nDCG@10"])


def test_a_method_failing_on_some_queries_is_reported(dataset):
    report = run_evaluation(dataset, "fake-overlap", 8, ["fake-flaky"])
    flaky = report.methods["fake-flaky"]
    failed = [q for q in report.query_ids if "wing" in dataset.queries[q]]
    assert failed and flaky.available
    assert set(flaky.failed_queries) == set(failed)
    assert f"{len(failed)} of 7 queries failed" in flaky.error and "boom on wing" in flaky.error
    assert all(flaky.per_query["RR"][q] == 0.0 for q in failed)
    assert set(flaky.latencies_ms) == set(report.query_ids) - set(failed)
    assert report.to_json()["methods"]["fake-flaky"]["failed_queries"] == len(failed)


def test_unavailable_first_stage_makes_rerankers_unavailable_but_others_run(dataset):
    report = run_evaluation(
        dataset, "fake-broken-index", 5, ["fake-broken-index", "fake-length", "fake-overlap"]
    )
    data = report.to_json()["methods"]
    assert (
        data["fake-broken-index"]["available"] is False
        and "do something else" in data["fake-broken-index"]["error"]
    )
    assert (
        data["fake-length"]["available"] is False
        and "first stage 'fake-broken-index'" in data["fake-length"]["error"]
    )
    assert data["fake-overlap"]["available"] is True and data["fake-overlap"]["metrics"] is not None


def test_max_queries_cache_progress_and_cancel(dataset):
    from rerank_core.config import load_settings
    from rerank_core.pipeline import Runtime

    runtime = Runtime()
    runtime.first_stage("fake-overlap", dataset.corpus, load_settings())
    OverlapRetriever.builds = 0
    seen = []
    report = run_evaluation(
        dataset,
        "fake-overlap",
        5,
        ["fake-length"],
        max_queries=3,
        runtime=runtime,
        progress=lambda d, t, m: seen.append((d, t, m)),
    )
    assert report.query_ids == ["q0", "q1", "q2"] and OverlapRetriever.builds == 0
    assert seen[-1][0] == seen[-1][1] == 2 * (3 + 1)
    assert [d for d, _, _ in seen] == sorted(d for d, _, _ in seen)

    def cancel(done, total, message):
        if "query 2/" in message:
            raise Cancelled()

    with pytest.raises(Cancelled):
        run_evaluation(dataset, "fake-overlap", 5, ["fake-length"], progress=cancel)


def test_a_dollar_budget_stops_the_run_before_it_goes_over(dataset):
    from rerank_core.config import Settings
    from rerank_core.cost import Budget, BudgetExceeded

    settings = Settings(prices={"fake-billed": {"per_search_unit": 1.0}})
    with pytest.raises(BudgetExceeded) as caught:
        run_evaluation(
            dataset, "fake-overlap", 5, ["fake-billed"], settings=settings, budget=Budget(dollars=2.5)
        )
    # the warm-up ($1) and the first query ($1) ran; a third dollar would pass $2.5, so it stops
    scored = [e for e in LengthReranker.log if e[0] == "score"]
    assert len(scored) == 2
    message = str(caught.value)
    assert "fake-billed" in message and "$2.5 budget" in message and "$2.0000" in message
    assert caught.value.hint and "--max-queries" in caught.value.hint
    # a budget the run fits in changes nothing
    LengthReranker.log = []
    report = run_evaluation(
        dataset, "fake-overlap", 5, ["fake-billed"], settings=settings, budget=Budget(dollars=100)
    )
    assert report.methods["fake-billed"].available
    assert report.to_json()["methods"]["fake-billed"]["cost"]["per_1000_queries"] == pytest.approx(1000.0)


def test_a_time_budget_counts_the_first_stage_and_the_rerankers(dataset):
    from rerank_core.cost import Budget, BudgetExceeded

    with pytest.raises(BudgetExceeded, match="0 s budget is used up"):
        run_evaluation(dataset, "fake-overlap", 5, ["fake-length"], budget=Budget(seconds=0.0))


def test_bad_input_raises_typed_errors(dataset):
    with pytest.raises(InvalidMethod, match="unknown method 'nope'"):
        run_evaluation(dataset, "fake-overlap", 5, ["nope"])
    with pytest.raises(InvalidMethod, match="unknown first stage"):
        run_evaluation(dataset, "fake-length", 5, ["fake-length"])
    with pytest.raises(InvalidMethod, match="listed twice"):
        run_evaluation(dataset, "fake-overlap", 5, ["fake-length", "fake-length"])
    with pytest.raises(InvalidMethod, match="depth"):
        run_evaluation(dataset, "fake-overlap", 0, ["fake-length"])
    empty = Dataset(name="e", corpus=dataset.corpus, queries=dataset.queries, qrels={})
    with pytest.raises(CorpusFormatError, match="no query with relevance judgements"):
        run_evaluation(empty, "fake-overlap", 5, ["fake-length"])


def test_run_file_names_are_safe():
    assert run_file_name("cross-encoder:BAAI/bge-reranker-v2-m3") == "cross-encoder__BAAI--bge-reranker-v2-m3"
    assert run_file_name("bm25") == "bm25"
    assert run_file_name("llm:my model?") == "llm__my_model_"


# -- the command ----------------------------------------------------------------------------------


def write_beir(folder: Path, dataset: Dataset) -> Path:
    folder.mkdir(parents=True)
    with (folder / "corpus.jsonl").open("w") as fh:
        for d in dataset.corpus:
            fh.write(json.dumps({"_id": d.id, "title": d.title, "text": d.text}) + "\n")
    with (folder / "queries.jsonl").open("w") as fh:
        for qid, text in dataset.queries.items():
            fh.write(json.dumps({"_id": qid, "text": text}) + "\n")
    write_beir_qrels(folder / "qrels" / "test.tsv", dataset.qrels)
    return folder


def test_cli_in_process_with_fakes(dataset, tmp_path, capsys):
    pytest.importorskip("rerank_core.corpus")
    folder = write_beir(tmp_path / "toy", dataset)
    out, runs = tmp_path / "out" / "report.json", tmp_path / "runs"
    code = cli.main(
        [
            "evaluate", "--dataset", str(folder), "--first-stage", "fake-overlap", "--depth", "10",
            "--methods", "fake-overlap,fake-length,fake-missing", "--output", str(out), "--run-dir", str(runs),
            "--max-queries", "4", "--no-progress",
        ]
    )  # fmt: skip
    assert code == 0
    data = json.loads(out.read_text())
    assert data["queries"] == 4 and data["methods"]["fake-missing"]["available"] is False
    assert data["verdict"]["method"] == "fake-length" and data["verdict"]["call"] in (
        "fix-retrieval-first",
        "reranker-pays",
        "already-good",
        "inconclusive",
    )
    assert sorted(p.name for p in runs.iterdir()) == ["fake-length.run", "fake-overlap.run"]
    err = capsys.readouterr().err
    assert "fake-length" in err and "fake-missing: not available: fake weights are not here" in err
    assert f"verdict: {data['verdict']['call']} (fake-length" in err


def test_cli_budget_stops_the_run_with_a_clear_message(dataset, tmp_path, capsys, monkeypatch):
    pytest.importorskip("rerank_core.corpus")
    folder = write_beir(tmp_path / "toy", dataset)
    config = tmp_path / "rerank.toml"
    config.write_text("[prices.fake-billed]\nper_search_unit = 0.5\n", encoding="utf-8")
    out = tmp_path / "report.json"
    args = ["evaluate", "--dataset", str(folder), "--first-stage", "fake-overlap", "--depth", "10",
            "--methods", "fake-billed", "--output", str(out), "--run-dir", str(tmp_path / "runs"),
            "--config", str(config), "--no-progress"]  # fmt: skip
    assert cli.main([*args, "--budget-dollars", "1.2"]) == cli.EXIT_BUDGET
    err = capsys.readouterr().err
    assert err.startswith("stopped: the run stopped before fake-billed's next query") and "$1.2 budget" in err
    assert not out.exists()  # nothing half-done is written
    assert cli.main([*args, "--budget-dollars", "10", "--budget-seconds", "600"]) == 0
    assert json.loads(out.read_text())["methods"]["fake-billed"]["cost"]["per_1000_queries"] == pytest.approx(
        500.0
    )
    with pytest.raises(SystemExit):
        cli.main([*args, "--budget-dollars", "-1"])
    assert "must be a non-negative number" in capsys.readouterr().err


def test_cli_qrels_from_the_label_store(dataset, tmp_path):
    pytest.importorskip("rerank_core.corpus")
    judgements = pytest.importorskip("rerank_core.judgements")
    folder = write_beir(tmp_path / "toy", dataset)
    url = f"sqlite:///{tmp_path / 'labels.sqlite'}"
    with judgements.JudgementStore(url) as store:
        qid = store.add_query("toy", "lift boundary")  # a query typed in the app, not in the dataset
        store.set_grade("toy", qid, "d03", 2)
        store.set_grade("toy", qid, "d07", 0)
    out = tmp_path / "report.json"
    args = ["evaluate", "--dataset", str(folder), "--first-stage", "fake-overlap", "--depth", "30",
            "--methods", "fake-overlap", "--output", str(out), "--run-dir", str(tmp_path / "runs"), "--no-progress"]  # fmt: skip
    assert cli.main([*args, "--qrels-db", url, "--corpus", "toy"]) == 0
    data = json.loads(out.read_text())
    assert data["queries"] == 1
    run = read_run(tmp_path / "runs" / "fake-overlap.run")
    assert list(run) == [qid] and len(run[qid]) == 30
    assert cli.main([*args, "--qrels-db", url, "--corpus", "other"]) == 2

    # an LLM judge's grades count only when asked, labelled; tags set in the store group the analysis
    with judgements.JudgementStore(url) as store:
        store.import_judgements("toy", [(qid, "d11", 3, "llm:judge", None, "on topic")])
        store.set_tags("toy", {qid: ["typed"]})
    assert cli.main([*args, "--qrels-db", url, "--corpus", "toy"]) == 0
    people = json.loads(out.read_text())
    assert people["dataset"].endswith("people only)") and people["query_tags"] == {qid: ["typed"]}
    assert cli.main([*args, "--qrels-db", url, "--corpus", "toy", "--llm-judge", "llm:judge"]) == 0
    filled = json.loads(out.read_text())
    assert filled["dataset"].endswith("people, the LLM filling gaps)")
    assert filled["methods"]["fake-overlap"]["metrics"] != people["methods"]["fake-overlap"]["metrics"]
    assert cli.main([*args, "--qrels-db", url, "--corpus", "toy", "--llm-judge", "llm:nobody"]) == 2
    assert cli.main([*args, "--llm-judge", "llm:judge"]) == 2  # without --qrels-db


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "rerank_core", *args], cwd=cwd, capture_output=True, text=True, timeout=120,
        env={"PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT), "HOME": str(cwd)},
    )  # fmt: skip


def test_cli_subprocess_end_to_end_with_bm25_and_exit_codes(dataset, tmp_path):
    pytest.importorskip("rerank_core.corpus")
    pytest.importorskip("rerank_core.retrieval.bm25")
    folder = write_beir(tmp_path / "toy", dataset)
    out, runs = tmp_path / "report.json", tmp_path / "runs"
    missing_model = "no-such-model"  # a FlashRank model that does not exist: reported, not fatal
    done = run_cli(
        "evaluate", "--dataset", str(folder), "--first-stage", "bm25", "--depth", "20",
        "--methods", f"bm25,flashrank:{missing_model}", "--output", str(out), "--run-dir", str(runs),
        cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    data = json.loads(out.read_text())
    assert data["methods"]["bm25"]["available"] is True
    ce = data["methods"][f"flashrank:{missing_model}"]
    assert ce["available"] is False and ce["error"]
    assert (runs / "bm25.run").exists() and "bm25" in done.stderr and "Traceback" not in done.stderr

    # bad input: exit 2 with a one-line message, no traceback
    bad = run_cli(
        "evaluate", "--dataset", str(tmp_path / "nowhere"), "--first-stage", "bm25", "--depth", "5",
        "--methods", "bm25", "--output", str(out), "--run-dir", str(runs), cwd=tmp_path,
    )  # fmt: skip
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert (
        bad.stderr.startswith("error: ")
        and "nowhere" in bad.stderr
        and len(bad.stderr.strip().splitlines()) == 1
    )
    unknown = run_cli(
        "evaluate", "--dataset", str(folder), "--first-stage", "bm25", "--depth", "5",
        "--methods", "bm25,colbertish", "--output", str(out), "--run-dir", str(runs), cwd=tmp_path,
    )  # fmt: skip
    assert unknown.returncode == 2 and "unknown method 'colbertish'" in unknown.stderr
    assert "Traceback" not in unknown.stderr
    usage = run_cli("evaluate", "--dataset", str(folder), "--depth", "0", cwd=tmp_path)
    assert usage.returncode == 2 and "must be at least 1" in usage.stderr
