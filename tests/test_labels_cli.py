"""``labels import|export|shadow|migrate``: lossless round trips in every format, clear errors with lines."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from rerank_core import labels_cli, readers
from rerank_core.errors import CorpusFormatError
from rerank_core.judgements import JudgementStore
from rerank_core.trec import read_beir_qrels, read_trec_qrels

ROOT = Path(__file__).resolve().parents[1]


def as_set(qrels: dict[str, dict[str, int]]) -> set[tuple[str, str, int]]:
    return {(q, d, g) for q, docs in qrels.items() for d, g in docs.items()}


@pytest.fixture
def db(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'labels.sqlite'}"


def run(*argv: str) -> int:
    return labels_cli.main(["labels", *argv])


def test_cranfield_trec_round_trip_is_exact(db, tmp_path, cranfield_dir, capsys):
    source = cranfield_dir / "qrels" / "test.tsv"
    assert run("import", "--db", db, "--corpus", "cran", str(source)) == 0
    assert "imported 1612 judgements" in capsys.readouterr().err
    out = tmp_path / "export.qrels"
    assert run("export", "--db", db, "--corpus", "cran", "--format", "trec", "--output", str(out)) == 0
    assert as_set(read_trec_qrels(out)) == as_set(read_beir_qrels(source))
    assert len(out.read_text().splitlines()) == 1612
    # the same on stdout
    assert run("export", "--db", db, "--corpus", "cran", "--format", "trec") == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1612 and all(len(line.split()) == 4 for line in lines)


def test_the_real_command_line_round_trips_cranfield(db, tmp_path, cranfield_dir):
    source = cranfield_dir / "qrels" / "test.tsv"
    base = [sys.executable, "-m", "rerank_core", "labels"]
    imp = subprocess.run(
        [*base, "import", "--db", db, "--corpus", "cran", str(source)],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert imp.returncode == 0, imp.stderr
    exp = subprocess.run(
        [*base, "export", "--db", db, "--corpus", "cran", "--format", "trec", "--output", "-"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert exp.returncode == 0, exp.stderr
    exported = tmp_path / "out.qrels"
    exported.write_text(exp.stdout)
    assert as_set(read_trec_qrels(exported)) == as_set(read_beir_qrels(source))
    bad = subprocess.run(
        [*base, "import", "--db", "postgresql://ann:hunter2@db.example:5432/x", "--corpus", "c", str(source)],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2
    assert "hunter2" not in bad.stderr and "db.example" in bad.stderr and "Traceback" not in bad.stderr


def test_beir_folder_brings_its_qrels_and_the_judged_queries(db, tmp_path, cranfield_dir):
    assert run("import", "--db", db, "--corpus", "cran", str(cranfield_dir)) == 0
    with JudgementStore(db) as store:
        qrels = store.qrels("cran")
        queries = store.queries("cran")
    assert as_set(qrels) == as_set(read_beir_qrels(cranfield_dir / "qrels" / "test.tsv"))
    assert set(queries) == set(qrels) & set(queries) and len(queries) >= 200
    assert queries["1"].startswith("what similarity laws")

    out, qout = tmp_path / "qrels.tsv", tmp_path / "queries.jsonl"
    args = ["export", "--db", db, "--corpus", "cran", "--format", "beir", "-o", str(out)]
    assert run(*args, "--queries-output", str(qout)) == 0
    assert out.read_text().splitlines()[0] == "query-id\tcorpus-id\tscore"
    assert as_set(read_beir_qrels(out)) == as_set(qrels)
    written = [json.loads(line) for line in qout.read_text().splitlines()]
    assert {q["_id"]: q["text"] for q in written} == queries


def _small_beir(folder: Path) -> Path:
    (folder / "qrels").mkdir(parents=True)
    (folder / "corpus.jsonl").write_text('{"_id": "d", "text": "a"}\n{"_id": "e", "text": "b"}\n')
    (folder / "queries.jsonl").write_text(
        '{"_id": "q", "text": "first", "tags": ["hard"]}\n{"_id": "r", "text": "second"}\n'
    )
    (folder / "qrels" / "dev.tsv").write_text("query-id\tcorpus-id\tscore\nq\td\t1\n")
    (folder / "qrels" / "train.tsv").write_text("query-id\tcorpus-id\tscore\nq\te\t2\nr\td\t1\n")
    return folder


def test_beir_folder_split_choice_and_a_missing_split_names_the_available_ones(db, tmp_path, capsys):
    ds = _small_beir(tmp_path / "ds")
    assert run("import", "--db", db, "--corpus", "c", "--split", "test", str(ds)) == 2
    assert "dev, train" in capsys.readouterr().err
    # without --split: test, else dev, validation, train
    assert run("import", "--db", db, "--corpus", "c", str(ds)) == 0
    assert "split 'dev' of dev, train" in capsys.readouterr().err
    with JudgementStore(db) as store:
        assert store.qrels("c") == {"q": {"d": 1}}
        assert store.queries("c") == {"q": "first"}  # the judged queries of the split
        assert store.tags("c") == {"q": ("hard",)}
    assert run("import", "--db", db, "--corpus", "c", "--split", "train", str(ds)) == 0
    with JudgementStore(db) as store:
        assert store.qrels("c") == {"q": {"d": 1, "e": 2}, "r": {"d": 1}}


def test_beir_zip_imports_like_its_folder(db, tmp_path):
    ds = _small_beir(tmp_path / "mini")
    archive = tmp_path / "mini.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for f in ds.rglob("*"):
            if f.is_file():
                zf.write(f, f"mini/{f.relative_to(ds).as_posix()}")
    assert run("import", "--db", db, "--corpus", "z", "--split", "train", str(archive)) == 0
    with JudgementStore(db) as store:
        assert store.qrels("z") == {"q": {"e": 2}, "r": {"d": 1}}
        assert store.queries("z") == {"q": "first", "r": "second"}


def test_csv_round_trip_keeps_judges_skips_and_times(db, tmp_path):
    with JudgementStore(db) as store:
        store.set_grade("c", "q1", "a", 3, judge="alice")
        store.set_grade("c", "q1", "a", 1, judge="bob")
        store.set_grade("c", "q1", "b", None, judge="alice")
        store.set_grade("c", "q 2", "doc, with comma", 0, judge="alice", rationale='off topic, "wrong" era')
        before = {
            (j.query_id, j.doc_id, j.judge): (j.grade, j.created_at, j.rationale)
            for j in store.judgements("c")
        }
    out = tmp_path / "labels.csv"
    assert run("export", "--db", db, "--corpus", "c", "--format", "csv", "-o", str(out)) == 0
    rows = list(csv.DictReader(out.open()))
    assert list(rows[0]) == ["query_id", "doc_id", "grade", "judge", "created_at", "rationale"]
    assert len(rows) == 4 and {r["grade"] for r in rows} == {"3", "1", "", "0"}

    other = f"sqlite:///{tmp_path / 'other.sqlite'}"
    assert run("import", "--db", other, "--corpus", "c", str(out)) == 0
    with JudgementStore(other) as store:
        after = {
            (j.query_id, j.doc_id, j.judge): (j.grade, j.created_at, j.rationale)
            for j in store.judgements("c")
        }
        assert after == before
        # one import per file, but undo still goes judge by judge
        assert store.undo("c", judge="bob").rows == 1
        assert store.qrels("c", judge="alice") == {"q1": {"a": 3}, "q 2": {"doc, with comma": 0}}


def test_csv_with_only_the_required_columns_and_a_judge_override(db, tmp_path):
    path = tmp_path / "mine.csv"
    path.write_text("query_id,doc_id,grade\nq1,d1,2\nq1,d2,skip\nq2,d1,-1\n")
    assert run("import", "--db", db, "--corpus", "c", "--judge", "expert", str(path)) == 0
    with JudgementStore(db) as store:
        assert store.grades("c", "q1", judge="expert") == {"d1": 2, "d2": None}
        assert store.qrels("c") == {"q1": {"d1": 2}, "q2": {"d1": -1}}


def test_negative_and_large_trec_grades_round_trip(db, tmp_path):
    src = tmp_path / "in.qrels"
    src.write_text("301 0 FBIS3-10082 -2\n301 0 FBIS3-10169 4\n302 0 LA-1 0\n")
    assert run("import", "--db", db, "--corpus", "t", "--format", "trec", str(src)) == 0
    out = tmp_path / "out.qrels"
    assert run("export", "--db", db, "--corpus", "t", "--format", "trec", "-o", str(out)) == 0
    assert as_set(read_trec_qrels(out)) == as_set(read_trec_qrels(src))


@pytest.mark.parametrize(
    "name, text, line, words",
    [
        ("bad.qrels", "1 0 d1 2\n1 0 d2 1\n1 d3 2\n", 3, "4 columns"),
        ("bad.qrels", "1 0 d1 2\n1 0 d2 high\n", 2, "not an integer"),
        ("bad.tsv", "query-id\tcorpus-id\tscore\nq\td\t1\nq\td\n", 3, "3 tab-separated"),
        ("bad.csv", "query_id,doc_id,grade\nq,d,1\nq,d2,1.5\n", 3, "not an integer"),
        ("bad.csv", "query_id,doc_id,grade\nq,,1\n", 2, "must not be empty"),
        ("bad.csv", "qid,docid,score\nq,d,1\n", 1, "no column query_id"),
        ("bad.csv", "query_id,doc_id,grade,created_at\nq,d,1,yesterday\n", 2, "ISO 8601"),
    ],
)
def test_malformed_files_name_the_line_and_store_nothing(db, tmp_path, capsys, name, text, line, words):
    path = tmp_path / name
    path.write_text(text)
    assert run("import", "--db", db, "--corpus", "c", str(path)) == 2
    err = capsys.readouterr().err
    assert f"line {line}" in err and words in err and str(path) in err
    with JudgementStore(db) as store:
        assert store.history("c") == []


def test_csv_reader_raises_with_file_and_line(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("query_id,doc_id,grade\nq,d,1\nq,d,x\n")
    with pytest.raises(CorpusFormatError) as info:
        readers.read_qrels(path)
    assert info.value.line == 3 and info.value.file == str(path)


def test_queries_files_with_tags_and_a_broken_line(tmp_path, db, capsys):
    tsv = tmp_path / "q.tsv"
    tsv.write_text("1\tfirst\n2\tsecond query\n")
    csv_file = tmp_path / "q.csv"
    csv_file.write_text('id,text,tags,source\n1,first,"hard;numeric",x\n2,second query,,y\n')
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"_id": "1", "text": "first"}\n{"_id": "2"\n')
    qrels = tmp_path / "q.qrels"
    qrels.write_text("1 0 d 1\n")
    assert run("import", "--db", db, "--corpus", "c", "--queries", str(tsv), str(qrels)) == 0
    with JudgementStore(db) as store:
        assert store.queries("c") == {"1": "first", "2": "second query"}
    assert run("import", "--db", db, "--corpus", "t", "--queries", str(csv_file), str(qrels)) == 0
    with JudgementStore(db) as store:
        assert store.tags("t") == {"1": ("hard", "numeric")}
    capsys.readouterr()
    # a line that is not JSON is skipped with a warning naming it; the rest is imported
    assert run("import", "--db", db, "--corpus", "b", "--queries", str(broken), str(qrels)) == 0
    assert f"warning: {broken}, line 2: skipped (invalid JSON)" in capsys.readouterr().err
    with JudgementStore(db) as store:
        assert store.queries("b") == {"1": "first"}


def test_missing_file_and_export_of_an_empty_corpus(db, tmp_path, capsys):
    assert run("import", "--db", db, "--corpus", "c", str(tmp_path / "nope.qrels")) == 2
    assert "does not exist" in capsys.readouterr().err
    assert run("export", "--db", db, "--corpus", "empty", "--format", "trec") == 0
    captured = capsys.readouterr()
    assert captured.out == "" and "exported 0 judgements" in captured.err


def test_shadow_log_export(db, tmp_path, capsys):
    with JudgementStore(db) as store:
        store.log_run("c", "first query", "bm25", latency_ms=1.0, top=[("d1", 2.0)])
        store.log_run("c", "second query", "cross-encoder", latency_ms=80.0, available=True)
        store.log_run("other", "x", "bm25")
    assert run("shadow", "--db", db, "--corpus", "c") == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [r["query_text"] for r in rows] == ["first query", "second query"]  # oldest first
    assert rows[0]["top"] == "d1:2"
    out = tmp_path / "shadow.jsonl"
    assert run("shadow", "--db", db, "--format", "jsonl", "-o", str(out)) == 0
    entries = [json.loads(line) for line in out.read_text().splitlines()]
    assert [e["method"] for e in entries] == ["bm25", "cross-encoder", "bm25"]
    assert entries[0]["top"] == [{"doc_id": "d1", "score": 2.0}]


def test_export_people_only_leaves_out_llm_judges(db, tmp_path, capsys):
    with JudgementStore(db) as store:
        store.set_grade("c", "q", "d1", 2, judge="ann")
        store.set_grade("c", "q", "d2", 3, judge="llm:gpt-4o-mini", rationale="names the law")
    assert run("export", "--db", db, "--corpus", "c", "--format", "trec", "--people-only") == 0
    assert capsys.readouterr().out == "q 0 d1 2\n"
    out = tmp_path / "all.csv"
    assert run("export", "--db", db, "--corpus", "c", "--format", "csv", "-o", str(out)) == 0
    rows = list(csv.DictReader(out.open()))
    assert [(r["judge"], r["rationale"]) for r in rows] == [("ann", ""), ("llm:gpt-4o-mini", "names the law")]
