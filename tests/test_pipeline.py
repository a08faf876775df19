"""The one core path: first stages resolved and saved, rerankers loaded and prepared once, results memoised."""

from __future__ import annotations

import shutil
import threading

import pytest
from tiny_bi_encoder import tiny_bi_encoder_once

from rerank_core.artifacts import forget_stores
from rerank_core.config import Settings
from rerank_core.encoders import clear_shared_models
from rerank_core.pipeline import Runtime, delete_indexes, index_dir
from rerank_core.progress import Cancelled
from rerank_core.registry import method_key
from rerank_core.retrieval.bm25 import BM25Retriever
from rerank_core.types import Corpus, Document

DOCS = [
    Document("d1", "the cat sat on the mat and purred", title="cats"),
    Document("d2", "stock markets fell sharply on monday"),
    Document("d3", "a river flows through the old town"),
    Document("d4", "the cat chased a mouse along the river bank"),
    Document("d5", "bond markets and stock prices in the old town"),
]


@pytest.fixture
def corpus() -> Corpus:
    return Corpus(DOCS, name="five")


@pytest.fixture
def settings(tmp_path_factory, tmp_path) -> Settings:
    model = str(tiny_bi_encoder_once(tmp_path_factory))
    return Settings(
        data_dir=tmp_path / "data",
        methods={"dense": {"model": model}, "bi-encoder": {}, "late-interaction": {}},
    )


def _model(settings: Settings) -> str:
    return settings.method_options("dense")["model"]


class Sink:
    def __init__(self) -> None:
        self.calls: list[tuple[str, list[str]]] = []

    def log_results(self, corpus_id, query_text, results, *, first_stage="", depth=0, top_n=10):
        self.calls.append((query_text, [r.method for r in results]))
        return len(results)


def test_a_first_stage_is_built_once_saved_and_loaded_after_a_restart(corpus, settings, monkeypatch):
    builds = []
    original = BM25Retriever._build
    monkeypatch.setattr(
        BM25Retriever, "_build", lambda self, c, p: (builds.append(1), original(self, c, p))[1]
    )
    runtime = Runtime()
    first = runtime.first_stage("bm25", corpus, settings)
    assert runtime.first_stage("bm25", corpus, settings) is first and builds == [1]
    saved = index_dir(settings, corpus, method_key("bm25", settings))
    assert (saved / "meta.json").is_file()
    assert runtime.status("bm25", corpus, settings).state == "ready"
    # a new process: the index is loaded, not built
    restarted = Runtime()
    assert restarted.status("bm25", corpus, settings).state == "saved"
    loaded = restarted.first_stage("bm25", corpus, settings)
    assert builds == [1] and getattr(loaded, "loaded_from", None) == str(saved)
    assert loaded.search("cat river", 3) == first.search("cat river", 3)
    # a damaged index is rebuilt, never a crash
    (saved / "meta.json").write_text("{damaged")
    rebuilt = Runtime().first_stage("bm25", corpus, settings)
    assert builds == [1, 1] and rebuilt.search("cat", 2) == first.search("cat", 2)
    # deleting the corpus's indexes
    delete_indexes(settings, corpus)
    assert Runtime().status("bm25", corpus, settings).state == "missing"


def test_other_options_are_another_index(corpus, settings):
    runtime = Runtime()
    plain = runtime.first_stage("bm25", corpus, settings)
    tuned = Settings(data_dir=settings.data_dir, methods={"bm25": {"k1": 0.9}})
    other = runtime.first_stage("bm25", corpus, tuned)
    assert other is not plain and other.options["k1"] == 0.9
    assert method_key("bm25", settings) != method_key("bm25", tuned)


def test_hybrid_is_fused_from_the_parts_the_runtime_holds(corpus, settings):
    runtime = Runtime()
    bm25 = runtime.first_stage("bm25", corpus, settings)
    dense = runtime.first_stage("dense", corpus, settings)
    hybrid = runtime.first_stage("hybrid", corpus, settings)
    assert hybrid.bm25 is bm25 and hybrid.dense is dense  # type: ignore[attr-defined]
    assert runtime.status("hybrid", corpus, settings).state == "ready"
    assert Runtime().status("hybrid", corpus, settings).state == "saved"  # its parts are on disk


def test_dense_and_bi_encoder_embed_each_document_once_across_a_restart(corpus, settings):
    runtime = Runtime()
    runtime.first_stage("dense", corpus, settings)
    reranker = runtime.reranker("bi-encoder:" + _model(settings), settings)
    ready = runtime.ready(reranker, corpus)
    assert ready.prepare_s is not None
    assert runtime.status("bi-encoder:" + _model(settings), corpus, settings).state == "saved"
    forget_stores()
    clear_shared_models()
    restarted = Runtime()
    spec = "bi-encoder:" + _model(settings)
    assert restarted.status(spec, corpus, settings).state == "saved"
    again = restarted.reranker(spec, settings)
    restarted.ready(again, corpus)
    assert again.encoder.missing([d.full_text for d in corpus]) == 0


def test_compare_memoises_and_logs_only_fresh_runs(corpus, settings):
    runtime = Runtime()
    sink = Sink()
    spec = "bi-encoder:" + _model(settings)
    seen: list[str] = []
    run = runtime.compare(
        "cat river", corpus, "bm25", [spec], 5, settings, shadow=sink, on_result=lambda s, r: seen.append(s)
    )
    cmp = run.comparison
    assert run.fresh == ["bm25", spec] and seen == [spec]
    assert cmp.results[0].ok and sorted(cmp.results[0].ids) == sorted(c.doc_id for c in cmp.candidates)
    assert sink.calls == [("cat river", ["bm25", spec])]
    again = runtime.compare("cat river", corpus, "bm25", [spec], 5, settings, shadow=sink)
    assert again.fresh == [] and again.comparison.results[0] is cmp.results[0]
    assert len(sink.calls) == 1  # nothing fresh, nothing logged
    assert runtime.memoised("cat river", corpus, "bm25", 5, spec, settings) is cmp.results[0]
    runtime.forget_result("cat river", corpus, "bm25", 5, spec, settings)
    assert runtime.compare("cat river", corpus, "bm25", [spec], 5, settings).fresh == [spec]


def test_compare_goes_on_when_a_method_cannot_run(corpus, settings):
    runtime = Runtime()
    run = runtime.compare(
        "cat",
        corpus,
        "bm25",
        ["cross-encoder:/no/such/model", "no-such-method", "late-interaction:" + _model(settings)],
        5,
        settings,
    )
    missing, unknown, good = run.comparison.results
    assert missing.error is not None and missing.error.kind == "model-not-found"
    assert unknown.error is not None and unknown.error.kind == "invalid-method"
    assert good.ok and good.items


def test_a_hosted_fallback_carries_the_first_stage_scale_is_left_out_of_agreement_and_logged(
    corpus, settings, tmp_path
):
    """Cohere pointed at a port nothing listens on: the column keeps BM25's order, scores and scale,
    the agreement table does not compare it with BM25, and the shadow log stores it as a fallback."""
    import socket
    from dataclasses import replace

    from rerank_core.judgements import JudgementStore
    from rerank_core.types import ScoreScale

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = sock.getsockname()[1]
    hosted = replace(settings, cohere_base_url=f"http://127.0.0.1:{dead}", max_retries=0)
    spec = "late-interaction:" + _model(settings)
    with JudgementStore(f"sqlite:///{tmp_path / 'labels.sqlite'}") as store:
        run = Runtime().compare("cat river", corpus, "bm25", ["cohere", spec], 5, hosted, shadow=store)
        cmp = run.comparison
        cohere, late = cmp.results
        assert cohere.fallback and cohere.error is not None and cohere.ids == cmp.first_stage.ids
        assert cohere.scale == cmp.first_stage.scale == ScoreScale.BM25
        assert [it.score for it in cohere.items] == [it.score for it in cmp.first_stage.items]
        assert late.ok and late.scale != ScoreScale.BM25
        assert cmp.fallbacks() == [cohere.method]
        assert list(cmp.orders()) == ["bm25", late.method]
        assert {(a.a, a.b) for a in cmp.agreement(5)} == {("bm25", late.method)}
        logged = {e["method"]: e for e in store.shadow_log(corpus.fingerprint)}
    entry = logged[cohere.method]
    assert entry["fallback"] is True and entry["available"] is False and entry["error"]
    assert entry["extra"]["scale"] == str(ScoreScale.BM25)
    assert logged[late.method]["fallback"] is False and logged[late.method]["available"] is True


def test_compare_is_cancellable(corpus, settings):
    def cancel(done, total, message):
        if "Reranking" in message:
            raise Cancelled()

    with pytest.raises(Cancelled):
        Runtime().compare(
            "cat", corpus, "bm25", ["bi-encoder:" + _model(settings)], 5, settings, progress=cancel
        )


def test_a_failing_shadow_log_does_not_stop_the_comparison(corpus, settings):
    class Broken:
        def log_results(self, *a, **k):
            raise RuntimeError("database is down")

    run = Runtime().compare("cat", corpus, "bm25", [], 5, settings, shadow=Broken())
    assert run.comparison.candidates and "database is down" in run.problems[0]


def test_build_reports_each_method_and_two_builds_at_once_build_once(corpus, settings, monkeypatch):
    builds = []
    original = BM25Retriever._build
    monkeypatch.setattr(
        BM25Retriever, "_build", lambda self, c, p: (builds.append(1), original(self, c, p))[1]
    )
    runtime = Runtime()
    outcomes: list[dict] = []
    threads = [
        threading.Thread(target=lambda: outcomes.append(runtime.build(["bm25", "no-such"], corpus, settings)))
        for _ in range(3)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert builds == [1]
    for out in outcomes:
        assert isinstance(out["bm25"], float) and isinstance(out["no-such"], Exception)


def test_evaluation_takes_the_same_path(corpus, settings):
    from rerank_core.evaluation import run_evaluation
    from rerank_core.types import Dataset

    runtime = Runtime()
    dataset = Dataset(
        "five",
        corpus,
        queries={"q1": "cat", "q2": "markets"},
        qrels={"q1": {"d1": 2, "d4": 1}, "q2": {"d2": 1}},
    )
    spec = "late-interaction:" + _model(settings)
    report = run_evaluation(dataset, "bm25", 5, ["bm25", spec], settings=settings, runtime=runtime)
    assert report.methods[spec].available and report.methods["bm25"].available
    # what evaluate built is what Compare uses: no new first stage, no new reranker
    assert runtime.first_stage_ready("bm25", corpus, settings) is not None
    assert runtime.reranker(spec, settings).loaded
    shutil.rmtree(settings.data_dir, ignore_errors=True)


def test_two_processes_building_one_index_build_it_once(corpus, settings, monkeypatch):
    """Separate runtimes (as separate server processes) on one data directory: the folder lock makes the
    second wait and load what the first saved."""
    builds = []
    original = BM25Retriever._build
    monkeypatch.setattr(
        BM25Retriever, "_build", lambda self, c, p: (builds.append(1), original(self, c, p))[1]
    )
    found, errors = [], []

    def serve():
        try:
            found.append(Runtime().first_stage("bm25", corpus, settings).search("cat", 3))
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=serve) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and builds == [1] and found[0] == found[1] == found[2]
    assert not list(index_dir(settings, corpus, method_key("bm25", settings)).parent.glob(".*.tmp"))


def test_an_unwritable_data_directory_keeps_the_index_in_memory_and_says_so(corpus, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    settings = Settings(data_dir=blocker)
    runtime = Runtime()
    retriever = runtime.first_stage("bm25", corpus, settings)
    assert retriever.search("cat", 2)  # it works
    status = runtime.status("bm25", corpus, settings)
    assert (
        status.state == "ready" and "in memory only" in status.detail and "RERANK_DATA_DIR" in status.detail
    )
