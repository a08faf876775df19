"""rerank_core.readers: every reader over every kind of source, every bad input named with its file
and line, and round trips (read -> write -> read gives the same data)."""

from __future__ import annotations

import io
import json
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import pytest

from rerank_core import readers
from rerank_core.errors import CorpusFormatError
from rerank_core.readers import (
    JudgementRow,
    inspect_beir,
    parse_tags,
    pick_split,
    read_beir,
    read_qrels,
    read_queries,
    read_run,
    write_judgements_csv,
    write_qrels,
    write_queries_jsonl,
    write_run,
)

TREC = "q1 0 d1 2\nq1 0 d2 0\nq2 0 d9 -1\n"
QRELS = {"q1": {"d1": 2, "d2": 0}, "q2": {"d9": -1}}


class Upload(io.BytesIO):
    """What Streamlit hands a page: a BytesIO with the file's name."""

    def __init__(self, name: str, data: bytes) -> None:
        super().__init__(data)
        self.name = name


def as_set(qrels):
    return {(q, d, g) for q, docs in qrels.items() for d, g in docs.items()}


# -- sources --------------------------------------------------------------------------------------


def sources(tmp_path: Path, name: str, text: str):
    """The same content as every kind of source, with the name each one shows in messages."""
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return [
        (text.encode(), {"name": name}, name),
        (io.BytesIO(text.encode()), {"name": name}, name),
        (io.StringIO(text), {"name": name}, name),
        (Upload(name, text.encode()), {}, name),
        (path, {}, str(path)),
        (str(path), {}, str(path)),
    ]


def test_read_qrels_from_every_kind_of_source(tmp_path):
    for source, kw, shown in sources(tmp_path, "in.qrels", TREC):
        got = read_qrels(source, **kw)
        assert got.qrels == QRELS and got.fmt == "trec" and got.name == shown and got.warnings == []
        assert [(r.query_id, r.doc_id, r.grade, r.line) for r in got.rows] == [
            ("q1", "d1", 2, 1),
            ("q1", "d2", 0, 2),
            ("q2", "d9", -1, 3),
        ]
    with open(tmp_path / "in.qrels", "rb") as fh:  # an open file names itself
        assert read_qrels(fh).name == str(tmp_path / "in.qrels")
    assert read_qrels(b"q 0 d 1\n").name == "qrels"  # bytes without a name
    with pytest.raises(TypeError, match="give bytes"):
        read_qrels(12345)  # type: ignore[arg-type]


def test_a_missing_path_or_a_folder_is_named(tmp_path):
    with pytest.raises(CorpusFormatError, match="does not exist") as info:
        read_qrels(tmp_path / "nope.qrels")
    assert info.value.file == str(tmp_path / "nope.qrels")
    with pytest.raises(CorpusFormatError, match="is a folder"):
        read_queries(tmp_path)


# -- qrels ----------------------------------------------------------------------------------------


def test_formats_are_detected_and_can_be_forced():
    beir = "query-id\tcorpus-id\tscore\nq 1\tdoc one\t2\nq2\td3\t1.0\n"
    assert read_qrels(beir.encode()).fmt == "beir"
    assert read_qrels(beir.encode()).qrels == {"q 1": {"doc one": 2}, "q2": {"d3": 1}}  # ids with spaces
    assert read_qrels(b"q1\td1\t1\n").qrels == {"q1": {"d1": 1}}  # BEIR without a header
    assert read_qrels(b"query_id,doc_id,grade\nq,d,1\n").fmt == "csv"  # a CSV header, any name
    with pytest.raises(CorpusFormatError, match="no column query_id"):  # *.csv is read as CSV
        read_qrels(b"q1 0 d1 1\n", name="labels.csv")
    with pytest.raises(CorpusFormatError, match="expected 4 columns"):
        read_qrels(beir.encode(), fmt="trec")
    with pytest.raises(CorpusFormatError, match="unknown qrels format 'xml'"):
        read_qrels(TREC.encode(), fmt="xml")


def test_judgement_csv_keeps_judges_skips_times_and_rationales():
    text = (
        "query_id,doc_id,grade,judge,created_at,rationale,notes\n"
        'q1,d1,3,ann,2026-05-01T12:00:00Z,"exact answer, with the law",x\n'
        "q1,d1,1,llm:gpt-4o-mini,2026-05-01T12:01:00,,\n"
        "q1,d2,skip,ann,,,\n"
        "q1,d3,,bob,,,\n"
        "q2,d1,0,,2026-05-01T14:00:00+02:00,,\n"
    )
    got = read_qrels(text.encode(), name="labels.csv")
    assert got.fmt == "csv" and got.warnings == []
    first = got.rows[0]
    assert first == JudgementRow(
        "q1", "d1", 3, "ann", datetime(2026, 5, 1, 12, tzinfo=UTC), "exact answer, with the law", line=2
    )
    assert got.rows[1].created_at == datetime(2026, 5, 1, 12, 1, tzinfo=UTC)  # no zone = UTC
    assert got.rows[4].created_at == datetime(2026, 5, 1, 12, tzinfo=UTC)  # converted to UTC
    assert [r.grade for r in got.rows] == [3, 1, None, None, 0]
    assert got.qrels == {"q1": {"d1": 1}, "q2": {"d1": 0}}  # the later graded row wins; skips left out
    assert got.import_rows()[2] == ("q1", "d2", None, "ann", None, None)
    assert got.import_rows()[4][3] == "import"  # no judge stated
    assert {r[3] for r in got.import_rows(judge="expert")} == {"expert"}


def test_duplicate_judgements_with_another_grade_are_warnings():
    trec = read_qrels(b"1 0 184 1\n1 0 185 2\n1 0 184 1\n1 0 184 3\n", name="dup.qrels")
    assert trec.qrels == {"1": {"184": 1, "185": 2}}  # the first grade kept
    (warning,) = trec.warnings
    assert (warning.file, warning.line) == ("dup.qrels", 4)
    assert "graded 1 on line 1 and 3 here; the first is kept" in warning.message
    csv_text = b"query_id,doc_id,grade,judge\nq,d,1,ann\nq,d,2,ann\nq,d,0,bob\n"
    got = read_qrels(csv_text, name="log.csv")
    (warning,) = got.warnings
    assert warning.line == 3 and "the later row is the current one" in warning.message
    assert len(got.rows) == 3 and got.qrels == {"q": {"d": 0}}


@pytest.mark.parametrize(
    "name, data, line, words",
    [
        ("bad.qrels", b"1 0 d1 2\n1 0 d2 1\n1 d3 2\n", 3, "expected 4 columns"),
        ("bad.qrels", b"1 0 d1 2\n1 0 d2 high\n", 2, "'high' is not an integer"),
        ("bad.qrels", b"1 0 d1 2.5\n", 1, "'2.5' is not an integer"),
        ("bad.tsv", b"query-id\tcorpus-id\tscore\nq\td\t1\nq\td\n", 3, "3 tab-separated columns"),
        ("bad.csv", b"query_id,doc_id,grade\nq,d,1\nq,d2,1.5\n", 3, "not an integer"),
        ("bad.csv", b"query_id,doc_id,grade\nq,,1\n", 2, "must not be empty"),
        ("bad.csv", b"qid,docid,score\nq,d,1\n", 1, "no column query_id, doc_id, grade"),
        ("bad.csv", b"query_id,doc_id,grade\nq,d,1,extra\n", 2, "row has 4 fields but the header has 3"),
        ("bad.csv", b"query_id,doc_id,grade,created_at\nq,d,1,yesterday\n", 2, "ISO 8601"),
        ("latin1.qrels", "1 0 caf\xe9 1\n".encode("latin-1"), 1, "not valid UTF-8"),
    ],
)
def test_bad_qrels_name_the_file_and_line(name, data, line, words):
    with pytest.raises(CorpusFormatError) as info:
        read_qrels(data, name=name)
    err = info.value
    assert (err.file, err.line) == (name, line) and words in err.message, err.message


@pytest.mark.parametrize("data", [b"", b"  \n\n", io.StringIO("")])
def test_an_empty_qrels_file_is_an_error(data):
    with pytest.raises(CorpusFormatError, match="is empty") as info:
        read_qrels(data, name="empty.qrels")
    assert "judgements" in info.value.hint


def test_a_header_alone_holds_no_judgements_and_a_binary_file_is_named():
    with pytest.raises(CorpusFormatError, match="holds no judgements"):
        read_qrels(b"query-id\tcorpus-id\tscore\n", name="head.tsv")
    png = b"\x89PNG\r\n\x1a\n" + b"\x00" * 40
    with pytest.raises(CorpusFormatError, match="PNG image") as info:
        read_qrels(png, name="qrels.txt")
    assert "judgements" in info.value.hint


def test_qrels_round_trip_in_every_format():
    for fmt in readers.QRELS_FORMATS:
        text = write_qrels(fmt, QRELS)
        again = read_qrels(text.encode(), fmt=fmt)
        assert again.qrels == QRELS and again.fmt == fmt, fmt
    assert write_qrels("trec", QRELS) == TREC
    assert write_qrels("beir", QRELS).splitlines()[0] == "query-id\tcorpus-id\tscore"
    with pytest.raises(CorpusFormatError, match="whitespace"):
        write_qrels("trec", {"q 1": {"d": 1}}, name="out.qrels")
    with pytest.raises(CorpusFormatError, match="tab or line break"):
        write_qrels("beir", {"q": {"d\t1": 1}})
    with pytest.raises(ValueError, match="unknown qrels format"):
        write_qrels("xml", QRELS)


def test_cranfield_qrels_to_trec_and_back_are_identical(cranfield_dir):
    source = read_qrels(cranfield_dir / "qrels" / "test.tsv")
    assert source.fmt == "beir" and source.count == 1612 and source.warnings == []
    trec_text = write_qrels("trec", source.qrels)
    assert len(trec_text.splitlines()) == 1612
    assert read_qrels(io.StringIO(trec_text)).qrels == source.qrels
    assert read_qrels(write_qrels("beir", source.qrels).encode()).qrels == source.qrels


def test_judgements_csv_round_trip_keeps_every_field():
    rows = [
        JudgementRow(
            "q1", "doc, with comma", 3, "ann", datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC), None
        ),
        JudgementRow(
            "q 2", "d2", None, "bob", datetime(2026, 1, 3, tzinfo=UTC), 'said "maybe"\non two lines'
        ),
        JudgementRow("q3", "d3", -2, "llm:qwen", None, "junk"),
    ]
    text = write_judgements_csv(rows)
    assert text.splitlines()[0] == ",".join(readers.JUDGEMENT_CSV_COLUMNS)
    again = read_qrels(text.encode(), name="x.csv").rows
    assert [(r.query_id, r.doc_id, r.grade, r.judge, r.created_at, r.rationale) for r in again] == [
        (r.query_id, r.doc_id, r.grade, r.judge, r.created_at, r.rationale) for r in rows
    ]


# -- queries --------------------------------------------------------------------------------------


def test_read_queries_from_every_kind_of_source(tmp_path):
    text = '{"_id": "1", "text": "what is lift", "tags": ["aero", "basic"]}\n{"_id": 2, "text": "drag"}\n'
    for source, kw, shown in sources(tmp_path, "queries.jsonl", text):
        got = read_queries(source, **kw)
        assert got.queries == {"1": "what is lift", "2": "drag"} and got.fmt == "jsonl"
        assert got.tags == {"1": ("aero", "basic")} and got.name == shown


def test_queries_as_tsv_and_csv_with_tags_and_extra_columns():
    plain = read_queries(b"1\twhat is lift\n2\tdrag\tand lift\n", name="q.tsv")
    assert plain.queries == {"1": "what is lift", "2": "drag\tand lift"} and plain.tags == {}
    headed = read_queries(b'query_id\ttext\ttags\n1\twhat is "lift"\thard;aero\n', name="q.tsv")
    assert headed.queries == {"1": 'what is "lift"'} and headed.tags == {"1": ("hard", "aero")}
    table = read_queries(
        b'id,text,tags,source\n1,"lift, and drag","aero, basic",web\n2,mach,,book\n', name="q.csv"
    )
    assert table.queries == {"1": "lift, and drag", "2": "mach"} and table.tags == {"1": ("aero", "basic")}
    # detected without an extension
    assert (
        read_queries(b"1\tlift\n").fmt == "tsv" and read_queries(b'{"_id": "1", "text": "x"}').fmt == "jsonl"
    )
    assert read_queries(b"id,text\n1,x\n").fmt == "csv"
    assert (
        parse_tags("a; b;;a") == ("a", "b")
        and parse_tags(["x", " y "]) == ("x", "y")
        and parse_tags(None) == ()
    )


def test_bad_query_records_are_skipped_with_warnings():
    text = (
        b'{"_id": "1", "text": "first"}\n'
        b'{"_id": "2"\n'  # not JSON
        b'{"_id": "3", "text": "  "}\n'  # empty
        b'{"_id": "1", "text": "again"}\n'  # duplicate id
        b'{"id": "4", "title": "no text"}\n'
        b'{"_id": "5", "text": "tagged badly", "tags": {"a": 1}}\n'
        b"[1, 2]\n"
    )
    got = read_queries(text, name="queries.jsonl")
    assert got.queries == {"1": "first", "5": "tagged badly"} and got.tags == {}
    by_line = {w.line: w.message for w in got.warnings}
    assert "invalid JSON" in by_line[2] and "empty text" in by_line[3] and "'3'" in by_line[3]
    assert "already used on line 1" in by_line[4] and "no text field" in by_line[5]
    assert "tags of query '5' were not read" in by_line[6] and "not a JSON object" in by_line[7]
    assert all(w.file == "queries.jsonl" for w in got.warnings) and got.skipped == 5
    tsv = read_queries(b"1\tfirst\nno tab here\n", name="q.tsv")
    assert tsv.queries == {"1": "first"} and tsv.warnings[0].line == 2


@pytest.mark.parametrize(
    "name, data, words, line",
    [
        ("q.jsonl", b"", "is empty", None),
        ("q.csv", b"qid_x,body\n1,lift\n", "no an id column", 1),
        ("q.csv", b"id,body\n1,lift\n", "no a text column", 1),
        ("q.jsonl", b'{"_id": "1", "text": ""}\n', "holds no queries: every record was skipped", None),
        ("q.tsv", "1\tcaf\xe9\n".encode("cp1252"), "not valid UTF-8", 1),
        ("q.dat", b"just some words\n", "cannot tell the format", None),
    ],
)
def test_bad_queries_files_are_errors(name, data, words, line):
    with pytest.raises(CorpusFormatError) as info:
        read_queries(data, name=name)
    assert words in info.value.message and info.value.file == name and info.value.line == line


def test_queries_round_trip_with_tags():
    queries = {"1": "what is lift", "q 2": 'quote " and ünïcode'}
    tags = {"1": ("aero", "basic")}
    again = read_queries(write_queries_jsonl(queries, tags).encode(), name="q.jsonl")
    assert again.queries == queries and again.tags == tags
    assert json.loads(write_queries_jsonl({"x": "y"}).strip()) == {"_id": "x", "text": "y"}


# -- runs -----------------------------------------------------------------------------------------


def test_runs_over_streams_and_round_trip(tmp_path):
    run = {"q1": {"d1": 0.1 + 0.2, "d2": 1 / 3, "d3": -1e-300}, "q2": {"x": 1.0}}
    text = write_run(run, "my-run")
    assert text.splitlines()[0].split() == ["q1", "Q0", "d2", "1", repr(1 / 3), "my-run"]
    for source, kw, _ in sources(tmp_path, "m.run", text):
        assert read_run(source, **kw).run == run  # bit-exact
    with pytest.raises(CorpusFormatError, match="appears twice") as info:
        read_run(b"q Q0 d 1 1.0 r\nq Q0 d 2 0.5 r\n", name="dup.run")
    assert (info.value.file, info.value.line) == ("dup.run", 2)
    with pytest.raises(CorpusFormatError, match="run name"):
        write_run(run, "my run")


# -- BEIR -----------------------------------------------------------------------------------------


def beir_files() -> dict[str, bytes]:
    return {
        "corpus.jsonl": b'{"_id": "d1", "title": "Lift", "text": "Lift on wings."}\n'
        b'{"_id": "d2", "text": "Drag on bodies."}\n{"_id": "d3", "title": "", "text": ""}\n',
        "queries.jsonl": b'{"_id": "q1", "text": "what is lift", "tags": "aero;basic"}\n'
        b'{"_id": "q2", "text": "drag"}\n',
        "qrels/test.tsv": b"query-id\tcorpus-id\tscore\nq1\td1\t2\nq1\td3\t1\nq2\td9\t1\nq7\td1\t1\n",
        "qrels/dev.tsv": b"query-id\tcorpus-id\tscore\nq2\td2\t1\n",
    }


def make_zip(files: dict[str, bytes], prefix: str = "") -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(prefix + name, data)
    return buf.getvalue()


def write_folder(root: Path, files: dict[str, bytes]) -> Path:
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return root


def check_tiny(got, where: str) -> None:
    ds = got.dataset
    assert ds.name == "tiny" and ds.corpus.ids == ["d1", "d2", "d3"]
    assert ds.queries == {"q1": "what is lift", "q2": "drag"}
    assert got.tags == {"q1": ("aero", "basic")}
    assert got.split == "test" and got.splits == ("dev", "test")
    assert ds.qrels == {"q1": {"d1": 2, "d3": 1}}
    unknown = {w.line: w for w in got.warnings if "unknown" in w.message}
    assert unknown[4].file == f"{where}qrels/test.tsv" and "'d9'" in unknown[4].message
    assert "'q7'" in unknown[5].message
    assert any("kept record 'd3'" in w.message for w in got.warnings)


def test_beir_from_a_folder_a_zip_path_zip_bytes_and_a_zip_stream(tmp_path):
    folder = write_folder(tmp_path / "tiny", beir_files())
    check_tiny(read_beir(folder), "tiny/")
    check_tiny(read_beir(tmp_path), "tiny/")  # the parent of a single dataset folder
    data = make_zip(beir_files(), prefix="tiny/")  # a nested root folder
    (tmp_path / "upload.zip").write_bytes(data)
    check_tiny(read_beir(tmp_path / "upload.zip"), "upload.zip:tiny/")
    check_tiny(read_beir(data, name="upload.zip"), "upload.zip:tiny/")
    check_tiny(read_beir(Upload("upload.zip", data)), "upload.zip:tiny/")
    check_tiny(read_beir(io.BytesIO(data)), "dataset.zip:tiny/")
    flat = read_beir(make_zip(beir_files()), name="flat.zip")
    assert flat.dataset.name == "flat" and flat.source == "flat.zip"


def test_beir_split_choice():
    data = make_zip(beir_files(), prefix="tiny/")
    assert read_beir(data, split="dev").dataset.qrels == {"q2": {"d2": 1}}
    files = beir_files()
    del files["qrels/test.tsv"]
    files["qrels/train.tsv"] = b"q1\td2\t1\n"
    got = read_beir(make_zip(files))
    assert got.split == "dev" and got.splits == ("dev", "train")  # test, then dev, validation, train
    assert pick_split(["train", "zeta"]) == "train" and pick_split(["b", "a"]) == "a"
    assert pick_split([]) is None and pick_split(["dev", "test"], "dev") == "dev"


def test_beir_split_that_does_not_exist_names_the_splits_present():
    with pytest.raises(CorpusFormatError) as info:
        read_beir(make_zip(beir_files(), prefix="tiny/"), split="train", name="up.zip")
    assert "no qrels for split 'train'" in info.value.message and "dev, test" in info.value.hint
    assert info.value.file == "up.zip:tiny/"


def test_beir_without_qrels_loads_unless_they_are_required():
    files = {k: v for k, v in beir_files().items() if not k.startswith("qrels/")}
    got = read_beir(make_zip(files), split="test")  # asked for, but there are no qrels at all
    assert got.split is None and got.splits == () and got.dataset.qrels == {}
    with pytest.raises(CorpusFormatError, match="has no qrels"):
        read_beir(make_zip(files), require_qrels=True)


def test_beir_bad_inputs_name_the_member(tmp_path):
    with pytest.raises(CorpusFormatError, match="holds no corpus.jsonl") as info:
        read_beir(make_zip({"a.txt": b"hello"}), name="docs.zip")
    assert "a.txt" in info.value.message and info.value.file == "docs.zip"
    files = beir_files()
    del files["queries.jsonl"]
    with pytest.raises(CorpusFormatError, match="missing queries.jsonl"):
        read_beir(make_zip(files, prefix="x/"), name="noq.zip")
    files = beir_files()
    files["qrels/test.tsv"] = b"query-id\tcorpus-id\tscore\nq1\td1\t2\nq1\td2\n"
    with pytest.raises(CorpusFormatError) as info:
        read_beir(make_zip(files, prefix="tiny/"), name="bad.zip")
    assert (info.value.file, info.value.line) == ("bad.zip:tiny/qrels/test.tsv", 3)
    assert "/tmp" not in str(info.value)
    files = beir_files()
    files["corpus.jsonl"] = "caf\xe9".encode("latin-1")
    with pytest.raises(CorpusFormatError, match="not valid UTF-8") as info:
        read_beir(make_zip(files), name="enc.zip")
    assert info.value.file == "enc.zip:corpus.jsonl"
    with pytest.raises(CorpusFormatError, match="neither a BEIR folder nor a .zip"):
        read_beir(b"just text", name="x.txt")
    with pytest.raises(CorpusFormatError, match="not a valid zip"):
        read_beir(b"PK\x03\x04 truncated", name="broken.zip")
    with pytest.raises(CorpusFormatError, match="does not exist"):
        read_beir(tmp_path / "absent")
    (tmp_path / "plain").mkdir()
    with pytest.raises(CorpusFormatError, match="not a BEIR dataset folder"):
        read_beir(tmp_path / "plain")


def test_inspect_beir_reads_no_file():
    layout = inspect_beir(make_zip(beir_files(), prefix="tiny/"), name="t.zip")
    assert (layout.name, layout.source, layout.splits, layout.has_queries) == (
        "tiny",
        "t.zip",
        ("dev", "test"),
        True,
    )
    docs_only = inspect_beir(make_zip({"corpus.jsonl": b'{"_id": "a", "text": "x"}\n'}), name="d.zip")
    assert docs_only.has_queries is False and docs_only.splits == ()


def test_cranfield_folder(cranfield_dir):
    got = read_beir(cranfield_dir)
    ds = got.dataset
    assert (len(ds.corpus), len(ds.queries), sum(len(v) for v in ds.qrels.values())) == (1400, 225, 1612)
    assert got.split == "test" and "test" in got.splits
    assert [w.line for w in got.warnings] == [471, 995]  # two empty documents, kept
    assert ds.qrels == read_qrels(cranfield_dir / "qrels" / "test.tsv").qrels


def test_text_given_as_a_str_is_refused_with_the_fix():
    with pytest.raises(ValueError, match="io.StringIO"):
        read_qrels("q1 0 d1 2\nq1 0 d2 1\n")
