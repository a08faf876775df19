"""The Labels page in AppTest: grading with live metrics, labels that survive a restart, qrels import and
export through the page, bad uploads, the shadow log, undo.

Each test has its own data directory (conftest), so its own SQLite judgement store.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest
from streamlit.testing.v1 import app_test as app_test_module

from rerank_core.config import load_settings
from rerank_core.judgements import JudgementStore
from rerank_core.types import Document
from rerank_core.workspace import Chunking, StoredCorpus, Workspace, corpus_id
from ui import keys, labelling

ROOT = Path(__file__).resolve().parents[1]
PAGE = str(ROOT / "views" / "labels.py")
TIMEOUT = 60

DOCS = [
    Document("d0", "BM25 is a ranking function used by search engines to score documents.", title="BM25"),
    Document("d1", "A cross-encoder reads the query and the passage together.", title="Cross-encoders"),
    Document("d2", "Dense retrieval compares embeddings of queries and documents.", title="Dense"),
    Document("d3", "The weather today is sunny with a light breeze.", title="Weather"),
    Document(
        "d4", "Ranking functions such as BM25 weight term frequency and document length.", title="Ranking"
    ),
]
QUERY = "what is the bm25 ranking function"
QUERY_ID = "t1"  # the corpus comes with this query, so the page offers it and grades it under this id
CID = corpus_id(DOCS, Chunking())  # the id its labels are stored under


def _active() -> StoredCorpus:
    """The corpus the page works on, stored in this test's workspace."""
    return Workspace(load_settings().data_dir).add(DOCS, name="tiny-docs", queries={QUERY_ID: QUERY})


def _page() -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT)
    at.session_state[keys.ACTIVE_CORPUS] = _active().id
    return at


def _store() -> JudgementStore:
    return JudgementStore(load_settings().resolved_db_url)


def _metrics(at: AppTest) -> dict:
    frame = at.dataframe[0].value
    assert "nDCG@10" in frame.columns
    return frame.iloc[0].to_dict()


def _table(at: AppTest, column: str):
    """The first data frame with ``column`` (the page's tables are all drawn, tab or not)."""
    return next(df.value for df in at.dataframe if column in df.value.columns)


def _grade_widget(at: AppTest, doc_id: str):
    return next(b for b in at.button_group if b.key == keys.grade_key("lbl", QUERY_ID, doc_id))


@pytest.fixture
def downloads(monkeypatch):
    """Every file handed to a download button, by file name (AppTest keeps them in memory only)."""
    files: dict[str, bytes] = {}
    base = app_test_module.MemoryMediaFileStorage

    class Recording(base):  # type: ignore[misc, valid-type]
        def load_and_get_id(self, path_or_data, mimetype, kind, filename=None):
            data = path_or_data.encode() if isinstance(path_or_data, str) else path_or_data
            if filename:
                files[filename] = bytes(data)
            return super().load_and_get_id(path_or_data, mimetype, kind, filename)

    monkeypatch.setattr(app_test_module, "MemoryMediaFileStorage", Recording)
    return files


def test_grading_moves_the_live_metrics_and_survives_a_restart():
    at = _page().run()
    assert not at.exception
    before = _metrics(at)
    assert before["nDCG@10"] == 0.0 and before["unjudged"] == before["shown"] > 0

    _grade_widget(at, "d0").set_value("3").run()
    assert not at.exception
    after = _metrics(at)
    assert after["nDCG@10"] > 0.0  # BM25 ranks d0, now graded relevant
    assert after["RR@10"] > 0.0 and after["unjudged"] == before["unjudged"] - 1
    _grade_widget(at, "d4").set_value("skip").run()
    assert _metrics(at)["unjudged"] == before["unjudged"] - 1  # a skip stays unjudged

    # a restart: nothing cached in the process, a new session on the same database
    st.cache_resource.clear()
    st.cache_data.clear()
    again = _page().run()
    assert not again.exception
    assert _grade_widget(again, "d0").value == "3"
    assert _grade_widget(again, "d4").value == labelling.SKIP
    assert _metrics(again)["nDCG@10"] == after["nDCG@10"]
    queries_table = _table(again, "query id")
    assert queries_table["query"].tolist() == [QUERY]
    assert queries_table["graded"].tolist() == [1] and queries_table["skipped"].tolist() == [1]


def test_import_a_qrels_file_and_export_the_same_judgements(downloads):
    trec = "q1 0 d0 2\nq1 0 d3 0\nq2 0 d4 1\nq2 0 d1 3\n"
    at = _page().run()
    at.file_uploader(key=keys.LBL_IMPORT_FILE).upload("qrels.txt", trec.encode(), "text/plain")
    at.file_uploader(key=keys.LBL_IMPORT_QUERIES).upload(
        "queries.tsv", b"q1\tWhat is BM25?\nq2\tHow do rankers work?\n", "text/plain"
    )
    at.run()
    at.button(key=keys.LBL_IMPORT_GO).click().run()
    assert not at.exception and not at.error
    assert any("Imported 4 judgements of 2 queries" in s.value for s in at.success)

    with _store() as store:
        assert store.qrels(CID) == {"q1": {"d0": 2, "d3": 0}, "q2": {"d4": 1, "d1": 3}}
        assert store.queries(CID) == {"q1": "What is BM25?", "q2": "How do rankers work?"}
    assert downloads["tiny-docs-qrels.txt"].decode() == trec
    beir = downloads["tiny-docs-qrels.tsv"].decode().splitlines()
    assert beir[0] == "query-id\tcorpus-id\tscore"
    assert sorted(beir[1:]) == sorted(
        line.replace(" 0 ", "\t").replace(" ", "\t") for line in trec.splitlines()
    )
    csv_rows = downloads["tiny-docs-judgements.csv"].decode().splitlines()
    assert csv_rows[0] == "query_id,doc_id,grade,judge,created_at,rationale" and len(csv_rows) == 5
    assert all(",import," in row for row in csv_rows[1:])
    assert '"What is BM25?"' in downloads["tiny-docs-queries.jsonl"].decode()

    table = _table(at, "relevant")  # labelled queries
    assert table["query id"].tolist() == ["q1", "q2"] and table["relevant"].tolist() == [1, 2]

    at.button(key=keys.LBL_UNDO).click().run()  # the sidebar judge's undo leaves the import alone
    with _store() as store:
        assert len(store.qrels(CID)) == 2
    at.button(key=keys.LBL_UNDO_IMPORT).click().run()  # one import is one undo step
    assert not at.exception
    assert any("Undid the import (4 labels)" in s.value for s in at.success)
    with _store() as store:
        assert store.qrels(CID) == {}
    assert _table(at, "nDCG@10") is not None and not any(
        "relevant" in df.value.columns for df in at.dataframe
    )


def test_a_bad_upload_names_the_file_and_line_and_imports_nothing():
    at = _page().run()
    at.file_uploader(key=keys.LBL_IMPORT_FILE).upload("broken.qrels", b"q1 0 d0 2\nq1 0 d3 x\n", "text/plain")
    at.run()
    at.button(key=keys.LBL_IMPORT_GO).click().run()
    assert not at.exception
    (error,) = at.error
    assert r"broken\.qrels, line 2" in error.value and "nothing was imported" in error.value
    with _store() as store:
        assert store.judgement_count(CID, include_skipped=True) == 0


def test_shadow_log_is_shown_and_exported(downloads):
    with _store() as store:
        store.log_run(
            CID,
            QUERY,
            "cross-encoder",
            first_stage="bm25",
            depth=50,
            latency_ms=12.5,
            top=[("d0", 3.2), ("d4", 1.1)],
        )
        store.log_run(CID, QUERY, "cohere", available=False, error="no key")
    at = _page().run()
    assert not at.exception
    shadow = _table(at, "latency ms")
    assert shadow["method"].tolist() == ["cohere", "cross-encoder"]  # newest first
    assert shadow["top"].tolist()[1] == "d0 d4"
    csv_text = downloads["tiny-docs-shadow-log.csv"].decode().splitlines()
    assert csv_text[0].startswith("id,created_at,corpus_id,query_text,method")
    assert "cross-encoder" in csv_text[1] and "d0:3.2" in csv_text[1]  # oldest first in the file


def test_the_page_opens_on_the_sample_corpus():
    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT).run()
    assert not at.exception
    assert at.selectbox(key=keys.LBL_CORPUS_ID).value.startswith("c-")  # the sample's corpus id
    assert _metrics(at)["shown"] == 10
