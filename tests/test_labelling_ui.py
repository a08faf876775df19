"""The grading component: one stored grade per (query, document) across columns, undo, live metrics,
and reading / writing judgement files the way the command line does."""

from __future__ import annotations

import io
import math
import zipfile

import pytest
from streamlit.testing.v1 import AppTest

from rerank_core.judgements import JudgementStore, query_id_for
from rerank_core.types import RankedItem, RerankResult, ScoreScale
from ui import keys, labelling

TIMEOUT = 60


def _result(method: str, ids: list[str]) -> RerankResult:
    items = tuple(
        RankedItem(doc_id=d, rank=i, score=float(len(ids) - i), first_stage_rank=i)
        for i, d in enumerate(ids, 1)
    )
    return RerankResult(method=method, scale=ScoreScale.LOGIT, items=items)


# -- live metrics ---------------------------------------------------------------------------------------


def test_live_metrics_follow_the_formulas():
    grades = {"d2": 3, "d1": 1, "d4": None}  # d4 skipped: not relevant, counted as unjudged
    results = {"a": _result("a", ["d1", "d2", "d3", "d4"]), "b": _result("b", ["d3", "d4", "d2", "d1"])}
    rows = {r["method"]: r for r in labelling.live_metrics_rows(grades, results, k=3)}
    idcg = 3 / math.log2(2) + 1 / math.log2(3)
    assert rows["a"]["nDCG@3"] == pytest.approx((1 / math.log2(2) + 3 / math.log2(3)) / idcg)
    assert rows["b"]["nDCG@3"] == pytest.approx((3 / math.log2(4)) / idcg)
    assert rows["a"]["P@3"] == pytest.approx(2 / 3)
    assert rows["b"]["P@3"] == pytest.approx(1 / 3)
    assert rows["a"]["RR@3"] == 1.0
    assert rows["b"]["RR@3"] == pytest.approx(1 / 3)
    assert rows["a"]["unjudged"] == 1  # d3
    assert rows["b"]["unjudged"] == 2  # d3 unlabelled, d4 skipped
    assert rows["a"]["Coverage@3"] == pytest.approx(2 / 3) and rows["b"]["Coverage@3"] == pytest.approx(1 / 3)
    # the chip and the warning say when a figure rests on few judgements
    assert labelling.coverage_chip(rows["a"], 3) == (
        "Coverage@3 67%",
        "2 of the 3 shown documents carry a grade",
        False,
    )
    text, title, low = labelling.coverage_chip(rows["b"], 3)
    assert text == "Coverage@3 33%" and low and "rests on few judgements" in title
    warning = labelling.live_coverage_warning(list(rows.values()), 3)
    assert warning is not None and "b 33%" in warning and "a 67%" not in warning
    assert labelling.live_coverage_warning([rows["a"]], 3) is None


def test_live_metrics_without_grades_are_zero_and_count_every_shown_document():
    rows = labelling.live_metrics_rows({}, {"a": _result("a", ["x", "y", "z"])}, k=2)
    assert rows == [
        {"method": "a", "nDCG@2": 0.0, "P@2": 0.0, "RR@2": 0.0, "unjudged": 2, "Coverage@2": 0.0, "shown": 2}
    ]


def test_a_method_that_did_not_run_has_no_figures():
    failed = RerankResult(method="x", scale=ScoreScale.LOGIT)
    (row,) = labelling.live_metrics_rows({"d": 2}, {"x": failed}, k=5)
    assert row["nDCG@5"] is None and row["Coverage@5"] is None and row["shown"] == 0
    assert labelling.coverage_chip(row, 5) == ("", "", False)


def test_header_chip_shows_ndcg_and_the_unjudged_count():
    res = _result("a", ["d1", "d2", "d3", "d4"])
    text, title, muted = labelling.live_chip({"d2": 2}, res, k=3)
    expected = (2 / math.log2(3)) / (2 / math.log2(2))
    assert text == f"nDCG@3 {expected:.3f} · 2 unjudged" and not muted
    assert "P@3 0.333" in title and "RR@3 0.500" in title
    text, _, muted = labelling.live_chip({"d4": 3, "d1": 0}, res, k=3)  # the relevant one is below k
    assert text == "nDCG@3 0.000 · 2 unjudged" and muted
    assert labelling.live_chip({"d1": 1, "d2": 0, "d3": 0}, res, k=3)[0] == "nDCG@3 1.000"  # all judged
    assert labelling.live_chip({}, RerankResult(method="x", scale=ScoreScale.LOGIT), k=3) == ("", "", False)


def test_row_badges_for_every_kind_of_grade():
    from ui import render

    grades = {"a": 3, "b": 0, "c": None, "d": 4}
    assert "3 · perfect" in render.grade_badge("a", grades) and "rp-g3" in render.grade_badge("a", grades)
    assert "0 · not relevant" in render.grade_badge("b", grades)
    assert "skipped" in render.grade_badge("c", grades) and render.grade_class("c", grades) == "rp-gs"
    assert "grade 4 (imported)" in render.grade_badge("d", grades)
    assert render.grade_badge("e", grades) == "" and render.grade_class("e", None) == ""


def test_widget_values_for_stored_grades():
    assert labelling.option_for(None, known=False) is None
    assert labelling.option_for(None, known=True) == labelling.SKIP
    assert labelling.option_for(2, known=True) == "2"
    assert labelling.option_for(4, known=True) is None  # an imported gain outside 0..3


def test_live_metrics_equal_the_evaluate_path_on_ties():
    """Equal scores: the order shown is the order scored (evaluate's run conversion keeps it)."""
    items = tuple(RankedItem(doc_id=d, rank=i, score=1.0, first_stage_rank=i) for i, d in enumerate("zya", 1))
    tied = RerankResult(method="t", scale=ScoreScale.LOGIT, items=items)
    (row,) = labelling.live_metrics_rows({"z": 1}, {"t": tied}, k=1)
    assert row["nDCG@1"] == 1.0  # "z" is shown first, and counted first, although "a" < "z"


# -- the widgets: one judgement whatever column it is graded in ------------------------------------------


def _two_columns_app(db_url: str, query: str, doc_id: str) -> None:
    import streamlit as st

    from rerank_core.judgements import JudgementStore
    from ui import labelling

    store = JudgementStore(db_url)
    judge = labelling.render_judge_input()
    labelling.show_notice()
    ref = labelling.QueryRef("c1", store.resolve_query_id("c1", query), query)
    left, right = st.columns(2)
    with left:
        labelling.render_grade_controls(store, ref, doc_id, "col-a", judge=judge)
    with right:
        labelling.render_grade_controls(store, ref, doc_id, "col-b", judge=judge)
    labelling.render_undo(store, "c1", judge)


def test_one_grade_per_document_across_columns_and_undo(tmp_path):
    url = f"sqlite:///{tmp_path / 'j.sqlite'}"
    query, doc = "what is bm25", "doc-7"
    at = AppTest.from_function(_two_columns_app, args=(url, query, doc), default_timeout=TIMEOUT).run()
    assert not at.exception
    a, b = at.button_group
    assert a.value is None and b.value is None

    a.set_value("2").run()
    assert not at.exception
    assert [g.value for g in at.button_group] == ["2", "2"]  # the other column shows the same grade
    with JudgementStore(url) as store:
        qid = query_id_for(query)
        assert store.grades("c1", qid) == {doc: 2}
        assert store.queries("c1") == {qid: query}

    at.button_group[1].set_value(labelling.SKIP).run()  # re-grade from the other column
    assert [g.value for g in at.button_group] == [labelling.SKIP, labelling.SKIP]
    with JudgementStore(url) as store:
        assert len(store.judgements("c1")) == 1  # one current judgement, not one per column
        assert store.grades("c1", qid) == {doc: None}

    at.button_group[0].set_value(None).run()  # unselecting deletes nothing: the stored grade shows again
    assert [g.value for g in at.button_group] == [labelling.SKIP, labelling.SKIP]

    at.button(key=keys.LBL_UNDO).click().run()
    assert [g.value for g in at.button_group] == ["2", "2"]  # the earlier grade is back
    assert any("now 2" in s.value for s in at.success)

    at.text_input(key=keys.LBL_JUDGE).set_value("alice").run()
    assert [g.value for g in at.button_group] == [None, None]  # alice has not graded it
    at.button_group[0].set_value("3").run()
    with JudgementStore(url) as store:
        assert store.grades("c1", qid, judge="alice") == {doc: 3}
        assert store.grades("c1", qid, judge="default") == {doc: 2}


# -- reading uploads and writing exports ---------------------------------------------------------------


def test_bad_trec_upload_names_the_file_and_line():
    data = b"q1 0 d1 2\nq1 0 d2\n"
    with pytest.raises(labelling.UploadError) as err:
        labelling.parse_judgements_upload("my-qrels.txt", data, "auto")
    assert err.value.file == "my-qrels.txt" and err.value.line == 2
    assert err.value.where == "my-qrels.txt, line 2"
    assert "4 columns" in err.value.message and "/tmp" not in err.value.message


def test_bad_csv_grade_names_the_line():
    data = b"query_id,doc_id,grade\nq1,d1,2\nq1,d2,very\n"
    with pytest.raises(labelling.UploadError) as err:
        labelling.parse_judgements_upload("labels.csv", data)
    assert err.value.where == "labels.csv, line 3"


def test_beir_zip_brings_qrels_and_query_texts():
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("mini/corpus.jsonl", '{"_id": "d1", "text": "a"}\n{"_id": "d2", "text": "b"}\n')
        zf.writestr("mini/queries.jsonl", '{"_id": "q1", "text": "first question"}\n')
        zf.writestr("mini/qrels/test.tsv", "query-id\tcorpus-id\tscore\nq1\td1\t2\nq1\td2\t0\n")
    parsed = labelling.parse_judgements_upload("mini.zip", buf.getvalue())
    assert sorted((r[0], r[1], r[2]) for r in parsed.rows) == [("q1", "d1", 2), ("q1", "d2", 0)]
    assert parsed.queries == {"q1": "first question"}


def test_exports_round_trip_what_was_imported(tmp_path):
    trec = "q1 0 d1 2\nq1 0 d2 0\nq2 0 d9 -1\n"
    parsed = labelling.parse_judgements_upload("in.qrels", trec.encode(), "trec", judge="ann")
    with JudgementStore(f"sqlite:///{tmp_path / 'j.sqlite'}") as store:
        store.import_judgements("c", parsed.rows)
        assert labelling.export_judgements(store, "c", "trec") == trec
        beir = labelling.export_judgements(store, "c", "beir")
        assert beir.splitlines()[0] == "query-id\tcorpus-id\tscore"
        assert [r[:5] for r in labelling.parse_judgements_upload("x.tsv", beir.encode(), "beir").rows] == [
            (q, d, g, "import", None) for q, d, g in (("q1", "d1", 2), ("q1", "d2", 0), ("q2", "d9", -1))
        ]
        csv_text = labelling.export_judgements(store, "c", "csv")
        again = labelling.parse_judgements_upload("x.csv", csv_text.encode(), "csv")
        assert [(r[0], r[1], r[2], r[3]) for r in again.rows] == [
            ("q1", "d1", 2, "ann"),
            ("q1", "d2", 0, "ann"),
            ("q2", "d9", -1, "ann"),
        ]
