"""TREC run files, TREC qrels and BEIR qrels: round trips and clear errors on malformed input."""

from __future__ import annotations

import math

import pytest

from rerank_core.errors import CorpusFormatError
from rerank_core.metrics import rank_documents
from rerank_core.trec import (
    read_beir_qrels,
    read_qrels,
    read_run,
    read_trec_qrels,
    results_to_run,
    write_beir_qrels,
    write_run,
    write_trec_qrels,
)
from rerank_core.types import RankedItem, RerankResult, ScoreScale


def test_run_round_trip_exact_scores_and_ranks(tmp_path):
    run = {
        "q1": {"d1": 0.1 + 0.2, "d2": 1 / 3, "d3": 1 / 3, "d4": -1e-300, "d5": 12345.678901234567},
        "q2": {"x": 1.0},
    }
    path = write_run(tmp_path / "sub" / "m.run", run, run_name="my-run")
    lines = path.read_text().splitlines()
    assert len(lines) == 6
    q1 = [ln.split() for ln in lines if ln.startswith("q1 ")]
    # ranks 1..n in evaluation order (ties: doc id descending), columns in TREC order
    assert [c[2] for c in q1] == rank_documents(run["q1"]) == ["d5", "d3", "d2", "d1", "d4"]
    assert [int(c[3]) for c in q1] == [1, 2, 3, 4, 5]
    assert all(c[1] == "Q0" and c[5] == "my-run" for c in q1)
    assert read_run(path) == run  # bit-exact floats


def test_run_rejects_ids_with_spaces_and_nan(tmp_path):
    with pytest.raises(CorpusFormatError, match="document id 'a b'.*whitespace") as info:
        write_run(tmp_path / "x.run", {"q": {"a b": 1.0}})
    assert info.value.hint
    with pytest.raises(CorpusFormatError, match="query id"):
        write_run(tmp_path / "x.run", {"q 1": {"a": 1.0}})
    with pytest.raises(CorpusFormatError, match="run name"):
        write_run(tmp_path / "x.run", {"q": {"a": 1.0}}, run_name="my run")
    with pytest.raises(CorpusFormatError, match="NaN"):
        write_run(tmp_path / "x.run", {"q": {"a": float("nan")}})


@pytest.mark.parametrize(
    "content,line,match",
    [
        ("q1 Q0 d1 1 0.5 r\nq1 Q0 d2 2 0.4\n", 2, "expected 6 columns"),
        ("q1 Q0 d1 1 high r\n", 1, "must be an integer and score 'high' a number"),
        ("q1 Q0 d1 one 0.5 r\n", 1, "rank 'one'"),
        ("\nq1 Q0 d1 1 0.5 r\nq1 Q0 d1 2 0.4 r\n", 3, "appears twice"),
        ("q1 Q0 d1 1 nan r\n", 1, "NaN"),
    ],
)
def test_run_malformed_lines_name_file_and_line(tmp_path, content, line, match):
    path = tmp_path / "bad.run"
    path.write_text(content)
    with pytest.raises(CorpusFormatError, match=match) as info:
        read_run(path)
    assert info.value.file == str(path) and info.value.line == line
    assert f"{path}, line {line}: " in str(info.value)


def test_missing_and_non_utf8_files(tmp_path):
    with pytest.raises(CorpusFormatError, match="does not exist"):
        read_run(tmp_path / "nope.run")
    bad = tmp_path / "latin1.run"
    bad.write_bytes("q1 Q0 caf\xe9 1 1.0 r\n".encode("latin-1"))
    with pytest.raises(CorpusFormatError, match="not valid UTF-8") as info:
        read_run(bad)
    assert info.value.file == str(bad) and info.value.line == 1


def test_trec_qrels_round_trip_and_errors(tmp_path):
    qrels = {"1": {"184": 3, "29": 0, "x": -1}, "2": {"7": 1}}
    path = write_trec_qrels(tmp_path / "q.txt", qrels)
    assert path.read_text().splitlines()[0] == "1 0 184 3"
    assert read_trec_qrels(path) == qrels
    assert read_qrels(path) == qrels
    bad = tmp_path / "bad.txt"
    bad.write_text("1 0 184 3\n1 0 185\n")
    with pytest.raises(CorpusFormatError, match="expected 4 columns") as info:
        read_trec_qrels(bad)
    assert info.value.line == 2
    bad.write_text("1 0 184 high\n")
    with pytest.raises(CorpusFormatError, match="not an integer"):
        read_trec_qrels(bad)
    # a pair judged twice with different grades: the first grade is kept (readers.read_qrels warns)
    bad.write_text("1 0 184 1\n1 0 184 2\n")
    assert read_trec_qrels(bad) == {"1": {"184": 1}}


def test_beir_qrels_round_trip_header_and_errors(tmp_path):
    qrels = {"q 1": {"doc one": 2, "d2": 0}, "q2": {"d3": 1}}  # BEIR ids may hold spaces
    path = write_beir_qrels(tmp_path / "test.tsv", qrels)
    assert path.read_text().splitlines()[0] == "query-id\tcorpus-id\tscore"
    assert read_beir_qrels(path) == qrels
    assert read_qrels(path) == qrels
    # a file without a header is read from its first line
    (tmp_path / "nohead.tsv").write_text("1\t184\t3\n1\t29\t1.0\n")
    assert read_beir_qrels(tmp_path / "nohead.tsv") == {"1": {"184": 3, "29": 1}}
    bad = tmp_path / "bad.tsv"
    bad.write_text("query-id\tcorpus-id\tscore\n1\t184\t3\n1 185 2\n")
    with pytest.raises(CorpusFormatError, match="3 tab-separated columns") as info:
        read_beir_qrels(bad)
    assert (info.value.file, info.value.line) == (str(bad), 3)
    bad.write_text("query-id\tcorpus-id\tscore\n1\t184\t2.5\n")
    with pytest.raises(CorpusFormatError, match="'2.5' is not an integer"):
        read_beir_qrels(bad)


def test_reads_the_shared_cranfield_qrels(cranfield_dir):
    qrels = read_beir_qrels(cranfield_dir / "qrels" / "test.tsv")
    assert len(qrels) == 225 and sum(len(v) for v in qrels.values()) == 1612
    assert qrels["1"]["184"] == 3


def _result(method, pairs):
    items = tuple(
        RankedItem(doc_id=d, rank=i, score=s, first_stage_rank=i) for i, (d, s) in enumerate(pairs, start=1)
    )
    return RerankResult(method=method, scale=ScoreScale.LOGIT, items=items)


def test_results_to_run_keeps_each_methods_order_through_ties(tmp_path):
    # a reranker's order among equal scores (first-stage order) must survive TREC tie-breaking
    res = _result("llm", [("a", 7.0), ("b", 7.0), ("c", 7.0), ("z", 3.0), ("y", float("-inf"))])
    run = results_to_run({"q": res, "empty": RerankResult(method="llm", scale=ScoreScale.LOGIT)})
    assert rank_documents(run["q"]) == ["a", "b", "c", "z", "y"]
    assert run["q"]["a"] == 7.0 and run["q"]["z"] == 3.0  # untied scores are unchanged
    assert run["q"]["b"] == pytest.approx(7.0, rel=1e-6) and run["q"]["b"] < 7.0
    assert all(math.isfinite(v) for v in run["q"].values())
    assert run["empty"] == {}
    back = read_run(write_run(tmp_path / "llm.run", run))
    assert rank_documents(back["q"]) == ["a", "b", "c", "z", "y"]


def test_results_to_run_separates_scores_that_tie_at_float32_precision():
    # trec_eval compares 32-bit floats: 1.0 and 1.0 - 1e-12 would tie there and the doc id would decide
    res = _result("ce", [("a", 1.0), ("b", 1.0 - 1e-12), ("c", 1.0 - 2e-12), ("d", 0.5)])
    run = results_to_run({"q": res})
    assert rank_documents(run["q"]) == ["a", "b", "c", "d"]
    assert run["q"]["a"] == 1.0 and run["q"]["d"] == 0.5
