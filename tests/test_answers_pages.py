"""The pages' answers in AppTest: LLM judges on the Compare page (graded over the wire by a loopback
OpenAI-compatible server, stored as their own judge, never mixed silently with people), the Coverage@k
chip and warning, the comparison report; on the Labels page the guideline, query tags and the agreement
between two judges (kappa checked against scikit-learn)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from loopback_servers import CHAT_PATH, Recorded, Reply, chat, loopback, split_prompt
from sklearn.metrics import cohen_kappa_score
from streamlit.testing.v1 import AppTest

from rerank_core.config import load_settings
from rerank_core.judgements import JudgementStore
from rerank_core.types import Document
from rerank_core.workspace import Workspace
from ui import keys

__all__ = ["loopback"]  # the fixture

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "app.py")
LABELS = str(ROOT / "views" / "labels.py")
TIMEOUT = 120

DOCS = [
    Document("d0", "BM25 is a ranking function used by search engines to score documents.", title="BM25"),
    Document("d1", "A cross-encoder reads the query and the passage together.", title="Cross-encoders"),
    Document("d2", "Dense retrieval compares embeddings of queries and documents.", title="Dense"),
    Document("d3", "The weather today is sunny with a light breeze.", title="Weather"),
    Document(
        "d4", "Ranking functions such as BM25 weight term frequency and document length.", title="Ranking"
    ),
    Document("d5", "Search engines rank documents for a query with a ranking function.", title="Engines"),
]
QUERY = "what is the bm25 ranking function"
QUERY_ID = "t1"


def _corpus_id() -> str:
    stored = Workspace(load_settings().data_dir).add(DOCS, name="tiny-docs", queries={QUERY_ID: QUERY})
    return stored.id


def _store() -> JudgementStore:
    return JudgementStore(load_settings().resolved_db_url)


def _grader(rec: Recorded) -> Reply:
    """Grade 3 when the passage names BM25, 0 otherwise, with a reason."""
    _, passages, _ = split_prompt(rec.message("user"))
    grade = 3 if "bm25" in passages[1].lower() else 0
    return chat(
        json.dumps({"grade": grade, "rationale": f"grade {grade}: {'names' if grade else 'no'} BM25"})
    )


def _chips(at: AppTest, cls: str) -> dict[str, str]:
    """Column title -> the text of its header chip of class ``cls``."""
    out = {}
    for h in at.get("html"):
        for part in h.proto.body.split('<div class="rp-colhead"')[1:]:
            head = part.split('<div class="rp-row', 1)[0]
            name = re.search(r'<div class="rp-name">(.*?)</div>', head)
            found = re.findall(rf'<span class="rp-chip {cls}[^"]*"[^>]*>(.*?)</span>', head)
            if name and found:
                out[name.group(1)] = found[0]
    return out


def test_an_llm_grades_the_unjudged_shown_documents_and_fills_gaps_only_when_asked(loopback, monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", loopback.openai_base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-0123456789")
    monkeypatch.setenv("RERANK_MAX_RETRIES", "0")
    loopback.responders[CHAT_PATH] = _grader
    corpus_id = _corpus_id()
    with _store() as store:
        store.add_query(corpus_id, QUERY, query_id=QUERY_ID)
        store.set_grade(corpus_id, QUERY_ID, "d0", 3, judge="alice")
        store.set_guideline(corpus_id, "3: explains what BM25 is. 0: anything else.")
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    for name, value in {"corpus": corpus_id, "q": QUERY, "methods": "cohere", "k": "5", "depth": "6"}.items():
        at.query_params[name] = value
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    # people only: one judgement; the coverage chip says how little of the top 5 is judged
    coverage = _chips(at, "rp-cov")
    # BM25 finds the three documents that share a word with the query (d0, d4, d5); alice judged d0
    assert coverage["BM25 · first stage"] == "Coverage@5 33%"
    assert any("Low judged coverage" in w.value for w in at.warning)
    before = _chips(at, "rp-live")["BM25 · first stage"]
    assert before.endswith("2 unjudged")
    button = next(b for b in at.button if b.key == keys.CMP_JUDGE_GO)
    assert button.label == "Grade the 2 unjudged shown documents with an LLM"
    assert at.text_input(key=keys.CMP_JUDGE_MODEL).value == "gpt-4o-mini"
    button.click().run()
    assert not at.exception, [e.value for e in at.exception]
    calls = loopback.calls(CHAT_PATH)
    assert len(calls) == 2 and all("explains what BM25 is" in c.message("system") for c in calls)
    with _store() as store:
        llm = {j.doc_id: j for j in store.judgements(corpus_id, judge="llm:gpt-4o-mini")}
        assert set(llm) == {"d4", "d5"}  # alice judged d0: only the unjudged shown ones
        assert all(j.rationale.startswith("grade ") for j in llm.values())
        assert store.grades(corpus_id, QUERY_ID, people_only=True) == {"d0": 3}  # people untouched
    assert any("llm:gpt-4o-mini graded 2 document(s)" in s.value.replace("\\", "") for s in at.success)
    # the LLM's grades show as their own badges; the metrics still rest on people only
    badges = " ".join(h.proto.body for h in at.get("html"))
    assert "rp-grade rp-gllm" in badges and "names BM25" in badges
    assert _chips(at, "rp-live")["BM25 · first stage"] == before
    assert at.radio(key=keys.CMP_BASIS).value == "people only"
    # switched on, labelled: the LLM fills the gaps and the figures move
    at.radio(key=keys.CMP_BASIS).set_value("people, the LLM filling gaps").run()
    assert not at.exception
    after = _chips(at, "rp-live")["BM25 · first stage"]
    assert after != before and _chips(at, "rp-cov")["BM25 · first stage"] == "Coverage@5 100%"
    captions = " ".join(c.value.replace("\\", "") for c in at.caption)
    assert "people, the LLM filling gaps (llm:gpt-4o-mini: 2 of 3 judgements)" in captions
    # the report buttons of the comparison
    labels = [b.label for b in at.get("download_button")]
    assert "Report (HTML)" in labels and "Report (Markdown)" in labels


def _labels_page(corpus_id: str) -> AppTest:
    at = AppTest.from_file(LABELS, default_timeout=TIMEOUT)
    at.session_state[keys.ACTIVE_CORPUS] = corpus_id
    return at


def test_guideline_tags_and_judge_agreement_on_the_labels_page():
    corpus_id = _corpus_id()
    people = [3, 2, 0, 1, 3, 0, 2, 2, 1, 0]
    llm = [3, 1, 0, 1, 2, 0, 3, 2, 0, 0]
    with _store() as store:
        for i, (a, b) in enumerate(zip(people, llm, strict=True)):
            store.set_grade(corpus_id, f"q{i % 3}", f"d{i}", a, judge="alice")
            store.import_judgements(corpus_id, [(f"q{i % 3}", f"d{i}", b, "llm:judge", None, "because")])
        store.set_grade(corpus_id, "q0", "only-alice", 1, judge="alice")  # not shared: not counted
    at = _labels_page(corpus_id).run()
    assert not at.exception, [e.value for e in at.exception]
    # agreement: kappa equals scikit-learn's quadratic-weighted kappa, pairs counted, a heatmap
    metrics = {m.label: m.value for m in at.metric}
    expected = cohen_kappa_score(people, llm, weights="quadratic", labels=[0, 1, 2, 3])
    assert metrics["Cohen's kappa (quadratic)"] == f"{expected:.3f}"
    assert metrics["Pairs both graded"] == "10"
    heat = next(json.loads(c.proto.spec) for c in at.get("plotly_chart"))
    z = heat["data"][0]["z"]
    assert (
        sum(map(sum, z)) == 10 and z[3][3] == 1 and z[2][1] == 1
    )  # alice 3 / llm 3 once; alice 2 / llm 1 once

    # the guideline: saved, shown beside the grade buttons, cleared
    key = f"{keys.LBL_GUIDELINE}|{corpus_id}"
    at.text_area(key=key).input("3: names BM25 and says what it scores.").run()
    next(b for b in at.button if b.key == keys.LBL_GUIDELINE_SAVE).click().run()
    assert not at.exception
    with _store() as store:
        assert store.guideline(corpus_id).text == "3: names BM25 and says what it scores."
        assert store.guideline(corpus_id).updated_by == "default"
    assert any("names BM25 and says" in t.value for t in at.text)  # the guideline box of the label tab

    # tags: pick a query, set its tags, saved in the store (and read by the benchmark)
    at.selectbox(key=keys.LBL_TAGS_QUERY).select(QUERY_ID).run()
    at.text_input(key=f"{keys.LBL_TAGS_TEXT}|{corpus_id}").input("definitions, short").run()
    next(b for b in at.button if b.key == keys.LBL_TAGS_SAVE).click().run()
    assert not at.exception
    with _store() as store:
        assert store.tags(corpus_id) == {QUERY_ID: ("definitions", "short")}
    assert any("2 tagged queries" in c.value or "1 tagged queries" in c.value for c in at.caption)


@pytest.mark.parametrize("count", [0, 1])
def test_agreement_needs_two_judges(count):
    corpus_id = _corpus_id()
    if count:
        with _store() as store:
            store.set_grade(corpus_id, "q", "d0", 2, judge="alice")
    at = _labels_page(corpus_id).run()
    assert not at.exception
    assert any("Agreement needs two judges" in i.value for i in at.info)
