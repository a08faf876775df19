"""A run file as the first stage (``run:PATH``): TREC and JSONL runs, counted warnings, query ids through
the core path, stored uploads named by their content, and the issue's check on Cranfield: ``evaluate
--first-stage run:PATH`` with the ``bm25.run`` that ``evaluate`` wrote gives every reranker exactly the
metrics of ``--first-stage bm25``.

The plumbing tests use a deterministic length reranker registered for these tests only (its numbers
mean nothing); the Cranfield test uses the real MiniLM bi-encoder and late interaction.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rerank_core.cli import main as cli_main
from rerank_core.config import Settings
from rerank_core.errors import ConfigError, CorpusFormatError
from rerank_core.evaluation import run_evaluation
from rerank_core.pipeline import Runtime
from rerank_core.readers import read_run
from rerank_core.registry import RERANKERS, create_retriever, method_key
from rerank_core.rerankers.base import Reranker
from rerank_core.retrieval.base import NoCandidatesForQuery
from rerank_core.retrieval.run_file import resolve_run_path, store_run, stored_runs
from rerank_core.trec import read_run as read_run_file
from rerank_core.trec import write_beir_qrels
from rerank_core.types import Corpus, Dataset, Document, ScoreScale

DOCS = [
    Document("d1", "the cat sat on the mat", title="cats"),
    Document("d2", "stock markets fell sharply"),
    Document("d3", "a river flows through town"),
    Document("d4", "the cat chased a mouse by the river bank"),
    Document("d5", "bond markets and stock prices"),
]


class LengthReranker(Reranker):
    """Longer text first (plumbing only)."""

    name = "test-length"
    scale = ScoreScale.LOGIT

    def score(self, query, candidates):
        return [float(len(c.text)) for c in candidates]


@pytest.fixture(autouse=True)
def length_reranker(monkeypatch):
    monkeypatch.setitem(RERANKERS, LengthReranker.name, LengthReranker)


@pytest.fixture
def corpus() -> Corpus:
    return Corpus(DOCS, name="five")


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings(data_dir=tmp_path / "data")


def _bound(path: Path, corpus: Corpus, settings: Settings):
    return create_retriever(f"run:{path}", settings).build(corpus)


# -- reading --------------------------------------------------------------------------------------


def test_jsonl_runs_carry_query_texts_titles_and_texts():
    text = (
        '{"query_id": "q1", "query": "Cat?", "doc_id": "d4", "score": 2.5, "title": "T4", "text": "own text"}\n'
        '{"query_id": "q1", "doc_id": "d1", "score": 3}\n'
        '{"qid": "q2", "docid": "x9", "score": 1.0, "text": "outside the corpus"}\n'
    )
    got = read_run(text.encode(), name="run.jsonl")
    assert got.format == "jsonl" and got.warnings == []
    assert got.run == {"q1": {"d4": 2.5, "d1": 3.0}, "q2": {"x9": 1.0}}
    assert got.queries == {"q1": "Cat?"}
    assert got.documents == {"d4": ("T4", "own text"), "x9": (None, "outside the corpus")}
    # detected from the content too, and strict about what it cannot read
    assert read_run(text.encode(), name="upload").format == "jsonl"
    with pytest.raises(CorpusFormatError, match="has no score") as info:
        read_run(b'{"query_id": "q", "doc_id": "d"}\n', name="r.jsonl")
    assert info.value.line == 1
    with pytest.raises(CorpusFormatError, match="not valid JSON"):
        read_run(b'{"query_id": "q", "doc_id": "d", "score": 1}\n{oops\n', name="r.jsonl")
    with pytest.raises(CorpusFormatError, match="appears twice"):
        read_run(
            b'{"query_id": "q", "doc_id": "d", "score": 1}\n{"query_id": "q", "doc_id": "d", "score": 2}\n'
        )


def test_rank_problems_are_counted_warnings_never_silent():
    lines = [
        "q1 Q0 a 1 3.0 r", "q1 Q0 b 1 2.0 r", "q1 Q0 c 3 1.0 r",  # duplicate rank 1, no rank 2
        "q2 Q0 a 1 1.0 r", "q2 Q0 b 2 2.0 r",  # ranks against the scores
        "q3 Q0 a 1 2.0 r", "q3 Q0 b 2 1.0 r",  # fine
    ]  # fmt: skip
    got = read_run(("\n".join(lines) + "\n").encode(), name="x.run")
    messages = [w.message for w in got.warnings]
    assert messages == [
        "1 of 3 queries have duplicate ranks (e.g. q1)",
        "1 of 3 queries have missing ranks (a gap in 1..n) (e.g. q1)",
        "1 of 3 queries list ranks in another order than their scores; documents are ordered by score, as "
        "trec_eval does (e.g. q2)",
    ]
    assert got.run["q2"] == {"a": 1.0, "b": 2.0}


# -- the first stage --------------------------------------------------------------------------------


def test_candidates_by_query_id_with_text_from_the_file_or_the_corpus(tmp_path, corpus, settings):
    path = tmp_path / "mine.jsonl"
    path.write_text(
        '{"query_id": "q1", "query": "cats near rivers", "doc_id": "d4", "score": 9}\n'
        '{"query_id": "q1", "doc_id": "new", "score": 8, "title": "New", "text": "a passage only the run has"}\n'
        '{"query_id": "q1", "doc_id": "ghost", "score": 7}\n'
        '{"query_id": "q1", "doc_id": "d1", "score": 6}\n'
        '{"query_id": "q2", "doc_id": "ghost2", "score": 1}\n',
        encoding="utf-8",
    )
    run = _bound(path, corpus, settings)
    cands, first = run.candidates("anything", 10, query_id="q1")
    assert [c.doc_id for c in cands] == ["d4", "new", "d1"]  # 'ghost' has no text anywhere: left out
    assert (cands[0].text, cands[0].title) == (DOCS[3].text, "")  # from the corpus by id
    assert (cands[1].text, cands[1].title) == ("a passage only the run has", "New")  # from the file
    assert [c.first_stage_rank for c in cands] == [1, 2, 3] and first.method == "run"
    # the text the file carries finds the query without an id; so does a query id alone
    assert [c.doc_id for c in run.candidates("Cats  near RIVERS", 2)[0]] == ["d4", "new"]
    assert run.warnings == (
        "3 document id(s) in the run are not in the corpus in use; 2 such line(s) carry no text and were left out",
        "1 of 2 queries have no candidates left (every document unknown to the corpus)",
    )
    with pytest.raises(NoCandidatesForQuery, match=r"mine.jsonl has no candidates for query id 'q9'") as info:
        run.candidates("a query the run never saw", 5, query_id="q9")
    assert (
        "it lists 2 queries (q1, q2)" in info.value.message
        and "pick one of the run's queries" in info.value.hint
    )
    with pytest.raises(ConfigError, match="does not exist"):
        create_retriever("run:/no/such/file.run", settings)
    with pytest.raises(ConfigError, match="needs a file"):
        create_retriever("run", settings)


def test_stored_runs_are_content_addressed_and_a_link_names_them(tmp_path, corpus, settings):
    data = b"q1 Q0 d2 1 2.0 up\nq1 Q0 d5 2 1.0 up\n"
    first = store_run(data, "upload.run", settings, corpus_id="corpus-a")
    again = store_run(data, "same-bytes.run", settings, corpus_id="corpus-b")
    assert first.id == again.id and first.spec == f"run:{first.id}" and len(first.id) == 16
    assert resolve_run_path(first.id, settings) == first.path and first.path.read_bytes() == data
    assert [r.id for r in stored_runs(settings, "corpus-b")] == [first.id]
    assert stored_runs(settings, "corpus-a")[0].corpora == ("corpus-a", "corpus-b")
    other = store_run(b"q1 Q0 d1 1 2.0 up\n", "other.run", settings, corpus_id="corpus-a")
    assert other.id != first.id and len(stored_runs(settings, "corpus-a")) == 2
    run = create_retriever(first.spec, settings).build(corpus)
    assert run.search("", 5, "q1") == [] and run.search("x", 5, "q1") == [("d2", 2.0), ("d5", 1.0)]
    assert run.label == "run file same-bytes.run (1 queries)"
    with pytest.raises(CorpusFormatError):
        store_run(b"not a run\n", "bad.run", settings)
    # the same path with other content is another first stage (its cache key follows the content)
    path = tmp_path / "edited.run"
    path.write_bytes(data)
    before = method_key(f"run:{path}", settings)
    path.write_bytes(data.replace(b"2.0", b"3.25"))
    assert method_key(f"run:{path}", settings) != before


def test_compare_passes_the_query_id_through_the_core_path(tmp_path, corpus, settings):
    path = tmp_path / "r.run"
    path.write_text("7 Q0 d4 1 2.0 r\n7 Q0 d1 2 1.5 r\n7 Q0 d3 3 1.0 r\n", encoding="utf-8")
    runtime = Runtime()
    spec = f"run:{path}"
    run = runtime.compare("cat", corpus, spec, ["test-length"], 10, settings, query_id="7")
    cmp = run.comparison
    assert [c.doc_id for c in cmp.candidates] == ["d4", "d1", "d3"]
    assert sorted(cmp.results[0].ids) == ["d1", "d3", "d4"] and cmp.results[0].ids[0] == "d4"
    assert runtime.memoised("cat", corpus, spec, 10, "test-length", settings, query_id="7") is cmp.results[0]
    with pytest.raises(NoCandidatesForQuery, match="query id '8'"):
        runtime.compare("cat", corpus, spec, ["test-length"], 10, settings, query_id="8")


def test_hybrid_fuses_a_run_file_with_another_first_stage(tmp_path, corpus, settings):
    path = tmp_path / "r.run"
    path.write_text("7 Q0 d2 1 2.0 r\n7 Q0 d5 2 1.5 r\n", encoding="utf-8")
    runtime = Runtime()
    spec = f"hybrid:run:{path}+bm25"
    fused = runtime.first_stage(spec, corpus, settings)
    got = [d for d, _ in fused.search("cat river", 10, "7")]
    # RRF (k=60) of the run's [d2, d5] and bm25's own order for the text
    bm25 = [d for d, _ in runtime.first_stage("bm25", corpus, settings).search("cat river", 100)]
    scores = {d: 1 / (60 + r) for r, d in enumerate(["d2", "d5"], 1)}
    for r, d in enumerate(bm25, 1):
        scores[d] = scores.get(d, 0) + 1 / (60 + r)
    assert set(got) == set(scores) and [scores[d] for d in got] == sorted(scores.values(), reverse=True)
    assert runtime.status(spec, corpus, settings).state in ("ready", "saved")
    # a query the run does not list still gets the other side's order
    assert [d for d, _ in fused.search("cat river", 10, "8")] == bm25[:10]
    assert method_key(spec, settings) != method_key(f"hybrid:run:{path}+dense", settings)


# -- evaluate -----------------------------------------------------------------------------------------


def _toy_dataset() -> Dataset:
    words = "wing lift drag flow shock heat boundary layer mach plate cone pressure".split()
    docs = [
        Document(
            f"d{i:02d}", " ".join(words[(i * 7 + j * 3) % 12] for j in range(2 + i % 5)) + " x" * (i % 4)
        )
        for i in range(30)
    ]
    queries = {f"q{j}": f"{words[j]} {words[(j + 5) % 12]}" for j in range(7)}
    qrels = {f"q{j}": {f"d{(j * 4 + t) % 30:02d}": t % 4 for t in range(6)} for j in range(7)}
    return Dataset(name="toy", corpus=Corpus(docs, name="toy"), queries=queries, qrels=qrels)


def test_evaluate_with_its_own_bm25_run_gives_the_same_reranker_metrics_and_counts_missing_queries(tmp_path):
    dataset = _toy_dataset()
    bm25 = run_evaluation(dataset, "bm25", 10, ["bm25", "test-length"])
    written = bm25.write_runs(tmp_path / "runs")
    spec = f"run:{written['bm25']}"
    again = run_evaluation(dataset, spec, 10, [spec, "test-length"])
    assert again.methods["test-length"].metrics == bm25.methods["test-length"].metrics
    assert again.methods["test-length"].run == bm25.methods["test-length"].run
    assert again.methods[spec].metrics == bm25.methods["bm25"].metrics
    assert again.to_json().get("first_stage_warnings") is None
    # a run that lists only some of the judged queries: the others have no candidates, counted
    lines = [ln for ln in written["bm25"].read_text().splitlines() if ln.split()[0] in ("q0", "q1")]
    part = tmp_path / "part.run"
    part.write_text("\n".join(lines) + "\n", encoding="utf-8")
    partial = run_evaluation(dataset, f"run:{part}", 10, ["test-length"])
    data = partial.to_json()
    assert data["first_stage_warnings"] == [
        "5 of 7 judged queries have no candidates in it (q2, q3, q4, q5, q6); they score 0"
    ]
    length = partial.methods["test-length"]
    assert all(length.per_query["nDCG@10"][q] == 0.0 for q in ("q2", "q3", "q4", "q5", "q6"))
    assert length.error is None and not length.failed_queries  # no candidates is not a failure


# -- the check on Cranfield ----------------------------------------------------------------------


@pytest.mark.slow
def test_cranfield_run_file_of_evaluates_own_bm25_gives_every_reranker_the_bm25_metrics(
    cranfield_dir, minilm_path, cranfield_cache, tmp_path, capsys
):
    def evaluate(first_stage: str, methods: str, name: str) -> dict:
        out = tmp_path / f"{name}.json"
        args = ["evaluate", "--dataset", str(cranfield_dir), "--first-stage", first_stage, "--depth", "100",
                "--methods", methods, "--output", str(out), "--run-dir", str(tmp_path / f"runs-{name}"),
                "--no-progress"]  # fmt: skip
        assert cli_main(args) == 0, capsys.readouterr().err
        return json.loads(out.read_text())

    rerankers = ["bi-encoder", "late-interaction"]
    bm25 = evaluate("bm25", ",".join(["bm25", *rerankers]), "bm25")
    run_path = tmp_path / "runs-bm25" / "bm25.run"
    from_run = evaluate(f"run:{run_path}", ",".join(rerankers), "run")
    assert bm25["queries"] == from_run["queries"] == 225
    assert "first_stage_warnings" not in from_run
    for name in rerankers:
        assert bm25["methods"][name]["available"] and from_run["methods"][name]["available"]
        assert from_run["methods"][name]["metrics"] == bm25["methods"][name]["metrics"], name
        assert read_run_file(tmp_path / "runs-run" / f"{name}.run") == read_run_file(
            tmp_path / "runs-bm25" / f"{name}.run"
        )
    print(
        "Cranfield, bm25 top 100 vs its run file: "
        + ", ".join(f"{n} nDCG@10 {from_run['methods'][n]['metrics']['nDCG@10']:.4f}" for n in rerankers)
    )


def test_cli_takes_a_run_file_and_prints_its_warnings(tmp_path, capsys):
    dataset = _toy_dataset()
    folder = tmp_path / "toy"
    folder.mkdir()
    with (folder / "corpus.jsonl").open("w") as fh:
        for d in dataset.corpus:
            fh.write(json.dumps({"_id": d.id, "title": d.title, "text": d.text}) + "\n")
    with (folder / "queries.jsonl").open("w") as fh:
        for qid, text in dataset.queries.items():
            fh.write(json.dumps({"_id": qid, "text": text}) + "\n")
    write_beir_qrels(folder / "qrels" / "test.tsv", dataset.qrels)
    run = tmp_path / "some.run"
    run.write_text("q0 Q0 d00 1 2.0 r\nq0 Q0 nowhere 2 1.0 r\n", encoding="utf-8")
    code = cli_main(
        [
            "evaluate",
            "--dataset",
            str(folder),
            "--first-stage",
            f"run:{run}",
            "--depth",
            "10",
            "--methods",
            "test-length",
            "--output",
            str(tmp_path / "r.json"),
            "--run-dir",
            str(tmp_path / "runs"),
            "--no-progress",
        ]  # fmt: skip
    )
    assert code == 0
    err = capsys.readouterr().err
    assert "warning: first stage run:" in err and "6 of 7 judged queries have no candidates" in err
    assert "1 document id(s) in the run are not in the corpus in use" in err
