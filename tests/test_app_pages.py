"""The Streamlit pages, run headless with AppTest on the built-in sample corpus and real MiniLM models.

Covered: every page runs; the compare page draws one column per chosen method, a latency chart and
an agreement table from real BM25 / dense / late-interaction runs; unavailable methods show an error
with the fix while the others render; changing the number shown reruns no model; a ``<script>``
passage renders as text; bad uploads (through the real file uploader widget) show what is wrong and
keep the previous corpus; the sample can be restored; URL parameters set the view. Labelling on the
compare page: a grade given in one column shows in every column, the live nDCG follows the formula,
grades survive an app restart, undo, and the shadow log records each fresh run once.
"""

from __future__ import annotations

import json
import re
import socket
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from rerank_core.config import load_settings
from rerank_core.judgements import JudgementStore
from rerank_core.metrics import ndcg_at_k
from rerank_core.workspace import StoredCorpus, Workspace
from ui import keys, labelling, resources

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "app.py")
TIMEOUT = 240  # first runs load MiniLM and encode the sample corpus on 2 CPU cores

EVIL_TITLE = "<script>window.__pwned = 1</script>Evil title"
EVIL_TEXT = 'Airfoil lift notes <script>window.__pwned = 2</script> <img src=x onerror="window.__pwned = 3"> **bold?**'


def _app(**params) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    for name, value in params.items():
        at.query_params[name] = value
    return at


def _no_exception(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def _html_bodies(at: AppTest) -> list[str]:
    return [h.proto.body for h in at.get("html")]


def _column_names(at: AppTest) -> list[str]:
    names = []
    for body in _html_bodies(at):
        names += re.findall(r'<div class="rp-name">(.*?)</div>', body)
    return names


def _column_docs(at: AppTest, title: str) -> list[str]:
    """The document ids shown in the column headed ``title``, in order (rows may be one HTML block per
    column, or one per row with its grade buttons)."""
    for col in at.columns:
        bodies = [h.proto.body for h in col.get("html")]
        if bodies and f'<div class="rp-name">{title}</div>' in bodies[0]:
            return [d for b in bodies for d in re.findall(r'<div class="rp-row[^"]*" data-doc="([^"]+)"', b)]
    raise AssertionError(f"no column {title!r} in {_column_names(at)}")


def _column_html(at: AppTest, title: str) -> str:
    for col in at.columns:
        bodies = [h.proto.body for h in col.get("html")]
        if bodies and f'<div class="rp-name">{title}</div>' in bodies[0]:
            return "".join(bodies)
    raise AssertionError(f"no column {title!r}")


def _results(at: AppTest) -> dict:
    """The comparison the compare page drew last: {"first": (candidates, result), "methods": {spec: result}}."""
    shown = [e.value for e in [*at.error, *at.warning, *at.info]]
    assert keys.CMP_LAST in at.session_state, shown
    return at.session_state[keys.CMP_LAST]


def _active(at: AppTest) -> StoredCorpus:
    """The stored corpus the session works on (its id is in the session and the URL)."""
    corpus_id = at.session_state[keys.ACTIVE_CORPUS]
    assert at.query_params[keys.CORPUS] == [corpus_id] or at.query_params[keys.CORPUS] == corpus_id
    return Workspace(load_settings().data_dir).get(corpus_id)


def _sample_queries() -> list[str]:
    from rerank_core.sample import example_queries

    return list(example_queries())


def _upload(at: AppTest, files: list[tuple[str, bytes, str]]) -> AppTest:
    at.switch_page("views/corpus.py").run()
    _no_exception(at)
    at.file_uploader(key=keys.CORPUS_UPLOADS).set_value(files)
    at.run()
    load = next(b for b in at.button if b.label == "Load files")
    load.click().run()
    _no_exception(at)
    return at


# -- every page -----------------------------------------------------------------------------------------


def test_every_page_runs_on_the_sample_corpus(monkeypatch):
    for var in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "COHERE_API_KEY", "RERANK_COHERE_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
    at = _app()  # the page as a user first sees it: the default methods, most without weights here
    at.run()
    _no_exception(at)
    assert at.multiselect(key=keys.METHODS).value == [
        "bi-encoder",
        "late-interaction",
        "cross-encoder",
        "flashrank",
        "colbert",
        "llm",
    ]
    methods = _results(at)["methods"]
    late = next(r for r in methods.values() if r.method.startswith("late-interaction"))
    assert late.ok and late.items
    bi = next(r for r in methods.values() if r.method.startswith("bi-encoder"))
    assert bi.ok and bi.items
    llm = next(r for r in methods.values() if r.method.startswith("llm"))
    assert llm.error is not None and llm.error.kind == "missing-api-key" and not llm.items
    active = _active(at)
    assert active.is_sample and len(active.corpus) > 0 and active.queries
    # the first example query is filled in, so a first comparison shows without typing
    assert at.text_input(key=keys.Q).value == _sample_queries()[0]
    assert len(at.get("plotly_chart")) == 1
    pages = ["views/corpus.py"] + [
        f"views/{name}" for name in ("benchmark.py", "labels.py") if (ROOT / "views" / name).exists()
    ]
    for page in pages:
        at.switch_page(page).run()
        _no_exception(at)
    at.switch_page("views/compare.py").run()
    _no_exception(at)


# -- compare page ---------------------------------------------------------------------------------------


@pytest.mark.slow
def test_compare_draws_one_column_per_method_chart_and_agreement():
    query = _sample_queries()[1]
    at = _app(q=query, methods=["late-interaction"], first_stage="hybrid", depth="30", k="8")
    at.run()
    _no_exception(at)
    entry = _results(at)
    candidates, first = entry["first"]
    assert len(candidates) == min(30, len(_active(at).corpus))
    assert first.method == "hybrid"
    (late,) = entry["methods"].values()
    assert late.ok and late.items, late.error
    # the method ordered exactly the first stage's candidates, best score first
    assert sorted(late.ids) == sorted(c.doc_id for c in candidates)
    scores = [it.score for it in late.items]
    assert scores == sorted(scores, reverse=True)
    assert "MaxSim" in str(late.scale)

    assert _column_names(at) == ["Hybrid · first stage", "Late interaction"]
    bodies = "".join(_html_bodies(at))
    # the shown rows follow the method's order, 8 per column
    assert _column_docs(at, "Late interaction") == late.ids[:8]
    assert _column_docs(at, "Hybrid · first stage") == first.ids[:8]
    assert "▲" in bodies or "▼" in bodies or "new ↑" in bodies or "rp-same" in bodies

    (chart,) = at.get("plotly_chart")
    spec = json.loads(chart.proto.spec)
    query_bars, load_bars = spec["data"][0], spec["data"][1]
    assert query_bars["y"] == ["Hybrid · first stage", "Late interaction"]
    assert all(v > 0 for v in query_bars["x"])
    assert load_bars["x"][1] == pytest.approx(late.model_load_s)

    table = at.dataframe[0].value
    assert list(table["Order A"]) == ["Hybrid · first stage"]
    assert 0.0 <= float(table["Overlap@8"][0]) <= 1.0
    assert -1.0 <= float(table["Kendall τ"][0]) <= 1.0


@pytest.mark.slow
def test_unavailable_methods_show_why_and_the_others_still_render():
    at = _app(q=_sample_queries()[0], methods=["cross-encoder", "late-interaction", "flashrank", "colbert"])
    at.run()
    _no_exception(at)
    errors = [e.value for e in at.error]
    assert len(errors) == 3, errors
    assert any("ms-marco-MiniLM-L-6-v2" in e.replace("\\", "") for e in errors)
    fixes = [c.value for c in at.caption if "How to fix" in c.value]
    assert len(fixes) == 3
    assert [n for n in _column_names(at)] == [
        "BM25 · first stage",
        "Cross-encoder",
        "Late interaction",
        "FlashRank",
        "ColBERT",
    ]
    late = next(r for r in _results(at)["methods"].values() if r.method.startswith("late-interaction"))
    assert late.ok and len(late.items) > 0
    assert len(at.get("plotly_chart")) == 1
    assert any("cannot run here" in i.value for i in at.info)


@pytest.mark.slow
def test_changing_the_number_shown_reruns_no_model(monkeypatch):
    from rerank_core.rerankers.base import Reranker
    from rerank_core.retrieval.base import Retriever

    calls = {"rerank": 0, "search": 0}
    real_rerank, real_candidates = Reranker.rerank, Retriever.candidates

    def counting_rerank(self, *a, **kw):
        calls["rerank"] += 1
        return real_rerank(self, *a, **kw)

    def counting_candidates(self, *a, **kw):
        calls["search"] += 1
        return real_candidates(self, *a, **kw)

    monkeypatch.setattr(Reranker, "rerank", counting_rerank)
    monkeypatch.setattr(Retriever, "candidates", counting_candidates)
    at = _app(q=_sample_queries()[0], methods="late-interaction", k="10")
    at.run()
    _no_exception(at)
    assert calls == {"rerank": 1, "search": 1}
    at.slider(key=keys.SHOW).set_value(4).run()
    _no_exception(at)
    assert calls == {"rerank": 1, "search": 1}
    assert len(_column_docs(at, "Late interaction")) == 4
    # picking a shown document highlights it in every column that shows it, again without a model run
    late = next(iter(_results(at)["methods"].values()))
    first_ids = _results(at)["first"][1].ids[:4]
    both = next(d for d in late.ids[:4] if d in first_ids)
    at.selectbox(key=keys.CMP_HIGHLIGHT).select(both).run()
    row_hl = re.compile(rf'class="rp-row rp-hl[^"]*" data-doc="{re.escape(both)}"')
    highlighted = [b for b in _html_bodies(at) if row_hl.search(b)]
    assert len(highlighted) == 2
    assert sum(len(re.findall(r'class="rp-row rp-hl[^"]*"', b)) for b in _html_bodies(at)) == 2
    assert calls == {"rerank": 1, "search": 1}
    # a new method reranks the very same candidates; the cached one is not run again
    at.multiselect(key=keys.METHODS).set_value(["late-interaction", "cross-encoder"]).run()
    _no_exception(at)
    assert calls == {"rerank": 2, "search": 1}


def test_url_parameters_set_the_view():
    at = _app(q="wing flutter", first_stage="bm25", depth="20", k="5", methods=["cross-encoder"])
    at.run()
    _no_exception(at)
    assert at.text_input(key=keys.Q).value == "wing flutter"
    assert at.number_input(key=keys.DEPTH).value == 20
    assert at.slider(key=keys.SHOW).value == 5
    assert at.multiselect(key=keys.METHODS).value == ["cross-encoder"]
    # API keys are password fields kept in the session, never bound to the URL
    at.multiselect(key=keys.METHODS).set_value(["cross-encoder", "llm"]).run()  # a method that reads a key
    openai = keys.secret_key("OPENAI_API_KEY")
    at.text_input(key=openai).input("sk-test-not-a-real-key").run()
    assert all("sk-test" not in str(v) for v in at.query_params.values())
    assert at.text_input(key=openai).proto.type == 1  # PASSWORD


@pytest.mark.slow
def test_hosted_failure_falls_back_to_the_first_stage_order_with_a_warning(monkeypatch):
    with socket.socket() as sock:  # a port nothing listens on: the call fails at once
        sock.bind(("127.0.0.1", 0))
        dead = sock.getsockname()[1]
    monkeypatch.setenv("RERANK_COHERE_BASE_URL", f"http://127.0.0.1:{dead}")
    monkeypatch.setenv("RERANK_MAX_RETRIES", "0")
    at = _app(q=_sample_queries()[0], methods=["cohere", "late-interaction"], k="5")
    at.run()
    _no_exception(at)
    cohere = next(r for r in _results(at)["methods"].values() if r.method.startswith("cohere"))
    first = _results(at)["first"][1]
    assert cohere.fallback and cohere.ids == first.ids and all(it.flagged for it in cohere.items)
    warnings = " ".join(w.value for w in at.warning)
    assert "Fell back to the first-stage order" in warnings
    title = "Cohere Rerank (fell back to the first stage)"  # the column says so in its title
    assert _column_docs(at, title) == first.ids[:5]
    column = _column_html(at, title)
    assert column.count("kept first-stage place") == 5
    # the first stage's scores under the first stage's scale, never the reranker's
    assert cohere.scale == first.scale and "BM25 score" in column and "API relevance" not in column
    # the agreement table compares only orders a method produced, and says what it left out
    agreement = next(df.value for df in at.dataframe if "Order A" in df.value.columns)
    assert not any("Cohere" in str(v) for v in [*agreement["Order A"], *agreement["Order B"]])
    assert any("Left out: Cohere Rerank" in c.value for c in at.caption)


# -- untrusted text -------------------------------------------------------------------------------------


@pytest.mark.slow
def test_script_passage_renders_as_text_everywhere():
    docs = [
        {"_id": "evil", "title": EVIL_TITLE, "text": EVIL_TEXT},
        {"_id": "plain", "title": "Plain", "text": "Airfoil drag notes and lift curves"},
        {"_id": "other", "title": "Other", "text": "Boundary layer transition on a flat plate"},
        {"_id": "long", "title": "Long", "text": "airfoil lift notes " + "wing section data " * 400},
    ]
    data = "\n".join(json.dumps(d) for d in docs).encode()
    at = _upload(_app(methods="late-interaction"), [("evil<b>.jsonl", data, "application/json")])
    active = _active(at)
    assert not active.is_sample and "evil" in active.corpus
    # corpus page: text is shown through data frames (data, not markup)
    preview = next(df.value for df in at.dataframe if "text" in df.value.columns)
    assert EVIL_TEXT in "".join(preview["text"]) or "<script>" in "".join(preview["text"])
    at.switch_page("views/compare.py").run()
    at.text_input(key=keys.Q).set_value("airfoil lift notes").run()
    _no_exception(at)
    bodies = _html_bodies(at)
    joined = "".join(bodies)
    assert "&lt;script&gt;window.__pwned = 2&lt;/script&gt;" in joined
    assert "&lt;script&gt;window.__pwned = 1&lt;/script&gt;Evil title" in joined
    assert "&lt;img src=x onerror=&quot;window.__pwned = 3&quot;&gt;" in joined
    for body in bodies:
        assert "<script" not in body and "<img" not in body
    # the 1,200-word passage is longer than MiniLM's input: flagged in the column and in a warning
    assert "truncated for this model" in joined
    n = len(_results(at)["first"][0])
    assert any(f"saw only the start of 1 of the {n} candidates" in w.value for w in at.warning), [
        w.value for w in at.warning
    ]
    # nothing that allows HTML carries the user's text, and Markdown never sees it unescaped
    for md in at.markdown:
        if md.proto.allow_html:
            assert "pwned" not in md.value
        assert "<script" not in md.value
    # the selectbox shows labels as plain text
    options = at.selectbox(key=keys.CMP_HIGHLIGHT).options
    assert any("<script>" in o for o in options)


# -- uploads --------------------------------------------------------------------------------------------

BAD_FILES = {
    "non-UTF-8 CSV": (
        "prices.csv",
        "id,text\n1,Caf\u00e9 cr\u00e8me br\u00fbl\u00e9e\n".encode("cp1252"),
        "is not valid UTF-8",
    ),
    "empty file": ("empty.jsonl", b"", "is empty"),
    "binary renamed .txt": ("photo.txt", b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4, "binary"),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_bad_upload_shows_the_problem_and_keeps_the_corpus(case):
    name, data, expected = BAD_FILES[case]
    at = _app(methods="late-interaction")
    at.run()
    before = at.session_state[keys.ACTIVE_CORPUS]
    _upload(at, [(name, data, "application/octet-stream")])
    after = at.session_state[keys.ACTIVE_CORPUS]
    assert after == before and _active(at).is_sample
    assert len(Workspace(load_settings().data_dir).list()) == 1  # nothing was stored
    text = " ".join(e.value for e in at.error).replace("\\", "")
    assert "Nothing was loaded" in text
    problems = " ".join(m.value for m in at.markdown).replace("\\", "")
    assert name in problems and expected in problems
    assert any("How to fix" in c.value for c in at.caption)
    # the previous corpus is still what the compare page uses
    at.switch_page("views/compare.py").run()
    _no_exception(at)
    assert at.session_state[keys.ACTIVE_CORPUS] == before


def test_good_csv_upload_with_column_choice_then_back_to_sample():
    csv_bytes = (
        b"doc,heading,body\nA1,Lift,Lift grows with the angle of attack\nA2,Drag,Drag rises near Mach one\n"
    )
    at = _app(methods="late-interaction")
    at.switch_page("views/corpus.py").run()
    at.file_uploader(key=keys.CORPUS_UPLOADS).set_value([("notes.csv", csv_bytes, "text/csv")])
    at.run()
    at.selectbox(key=keys.CORPUS_CSV_PREFIX + "text").select("body")
    at.selectbox(key=keys.CORPUS_CSV_PREFIX + "id").select("doc")
    at.selectbox(key=keys.CORPUS_CSV_PREFIX + "title").select("heading").run()
    next(b for b in at.button if b.label == "Load files").click().run()
    _no_exception(at)
    active = _active(at)
    assert not active.is_sample and active.corpus.ids == ["A1", "A2"]
    assert active.corpus.get("A2").title == "Drag"
    next(b for b in at.button if b.label == "Use the sample corpus").click().run()
    _no_exception(at)
    assert _active(at).is_sample
    # the upload is kept in the workspace: listed, and a link to it opens it after a restart
    stored = {i.name: i.id for i in Workspace(load_settings().data_dir).list()}
    assert set(stored) == {"notes.csv", _active(at).name}
    again = _app(corpus=stored["notes.csv"], q="lift", methods="cross-encoder")
    again.run()
    _no_exception(again)
    assert _active(again).corpus.ids == ["A1", "A2"]


def test_an_unknown_corpus_in_a_link_is_an_error_not_the_sample():
    for page in ("views/compare.py", "views/corpus.py", "views/benchmark.py"):
        at = _app(corpus="c-0123456789abcdef", q="lift")
        at.switch_page(page).run()
        _no_exception(at)
        text = " ".join(e.value for e in at.error).replace("\\", "")
        assert "c-0123456789abcdef" in text and "does not hold" in text, page
        assert keys.CMP_LAST not in at.session_state and not at.get("plotly_chart")


# -- labelling on the compare page ----------------------------------------------------------------------

FIRST = "BM25 · first stage"
LATE = "Late interaction"


def _qid(at: AppTest, query: str) -> str:
    with JudgementStore(load_settings().resolved_db_url) as store:
        return store.resolve_query_id(_corpus_id(at), query, _active(at).queries)


def _grade_widget(at: AppTest, column: str, query: str, doc_id: str):
    key = keys.grade_key(column, _qid(at, query), doc_id)
    return next(b for b in at.button_group if b.key == key)


def _live_table(at: AppTest, k: int) -> dict[str, dict]:
    frame = next(df.value for df in at.dataframe if f"nDCG@{k}" in df.value.columns)
    return {row["method"]: row for row in frame.to_dict("records")}


def _corpus_id(at: AppTest) -> str:
    return at.session_state[keys.ACTIVE_CORPUS]


def _header_chip(at: AppTest, title: str) -> str:
    found = re.findall(r'class="rp-chip rp-live[^"]*"[^>]*>([^<]+)<', _column_html(at, title))
    assert len(found) == 1, found
    return found[0]


# queries that are not among the sample's own (which come with judgements): they start unjudged
FRESH_QUERIES = ["why do planes need wings to fly", "how do rivers shape valleys over time"]


@pytest.mark.slow
def test_a_grade_given_in_one_column_shows_in_every_column_and_moves_ndcg():
    query, k = FRESH_QUERIES[0], 10
    at = _app(q=query, methods="late-interaction", k=str(k))
    at.run()
    _no_exception(at)
    first_ids = _results(at)["first"][1].ids
    late_ids = next(iter(_results(at)["methods"].values())).ids
    first_shown, late_shown = _column_docs(at, FIRST), _column_docs(at, LATE)
    both = next(d for d in first_shown if d in late_shown)
    only_late = next(d for d in late_shown if d not in first_shown)
    table = _live_table(at, k)
    assert table[FIRST][f"nDCG@{k}"] == 0.0 and table[LATE][f"nDCG@{k}"] == 0.0
    assert table[LATE]["unjudged"] == k
    assert _header_chip(at, LATE) == f"nDCG@{k} 0.000 · {k} unjudged"

    # grade in the first-stage column: the late-interaction column shows the same grade
    _grade_widget(at, "first", query, both).set_value("3").run()
    _no_exception(at)
    assert _grade_widget(at, "late-interaction", query, both).value == "3"
    for title in (FIRST, LATE):
        assert f'data-doc="{both}"' in _column_html(at, title)
        row = re.search(
            rf'<div class="rp-row[^"]*" data-doc="{re.escape(both)}">.*?</details>', _column_html(at, title)
        )
        assert row and "3 · perfect" in row.group(0)
    grades = {both: 3}
    table = _live_table(at, k)
    assert table[FIRST][f"nDCG@{k}"] == pytest.approx(ndcg_at_k(first_ids, grades, k))
    assert table[LATE][f"nDCG@{k}"] == pytest.approx(ndcg_at_k(late_ids, grades, k))
    assert table[LATE][f"nDCG@{k}"] > 0 and table[LATE]["unjudged"] == k - 1
    late_ndcg = table[LATE][f"nDCG@{k}"]
    assert _header_chip(at, LATE) == f"nDCG@{k} {late_ndcg:.3f} · {k - 1} unjudged"

    # a document only the reranker shows, graded in its column: both figures move (the ideal order grows)
    _grade_widget(at, "late-interaction", query, only_late).set_value("2").run()
    _no_exception(at)
    grades[only_late] = 2
    table = _live_table(at, k)
    assert table[LATE][f"nDCG@{k}"] == pytest.approx(ndcg_at_k(late_ids, grades, k))
    assert table[FIRST][f"nDCG@{k}"] == pytest.approx(ndcg_at_k(first_ids, grades, k))
    assert table[LATE][f"nDCG@{k}"] != pytest.approx(late_ndcg)
    with JudgementStore(load_settings().resolved_db_url) as store:
        qid = _qid(at, query)
        assert qid.startswith("q-")  # a typed query: none of the corpus's queries has this text
        assert store.grades(_corpus_id(at), qid) == grades  # one judgement per document, not per column
        assert len(store.judgements(_corpus_id(at), query_id=qid)) == 2
        assert store.queries(_corpus_id(at))[qid] == query

    # undo takes back the newest label only
    at.button(key=keys.LBL_UNDO).click().run()
    _no_exception(at)
    assert _grade_widget(at, "late-interaction", query, only_late).value is None
    assert _grade_widget(at, "late-interaction", query, both).value == "3"
    assert _live_table(at, k)[LATE][f"nDCG@{k}"] == pytest.approx(late_ndcg)
    assert any("Undid" in s.value for s in at.success)

    # with the grade buttons off, the columns are one block each and still show the grade as a badge
    at.toggle(key=keys.CMP_GRADE_MODE).set_value(False).run()
    _no_exception(at)
    assert not [b for b in at.button_group if b.key and b.key.startswith(keys.LBL_GRADE_PREFIX)]
    assert _column_docs(at, LATE) == late_shown
    assert _column_html(at, LATE).count("3 · perfect") == 1


@pytest.mark.slow
def test_grades_survive_an_app_restart():
    query, k = FRESH_QUERIES[1], 5
    at = _app(q=query, methods="late-interaction", k=str(k))
    at.run()
    shown = _column_docs(at, LATE)
    skipped = next(d for d in _column_docs(at, FIRST) if d not in (shown[0], shown[2]))
    _grade_widget(at, "late-interaction", query, shown[0]).set_value("2").run()
    _grade_widget(at, "first", query, skipped).set_value(labelling.SKIP).run()
    _grade_widget(at, "late-interaction", query, shown[2]).set_value("0").run()
    _no_exception(at)
    before = _live_table(at, k)
    expected = {shown[0]: "2", skipped: labelling.SKIP, shown[2]: "0"}

    resources.forget_label_store()  # a new process opens the database afresh (same RERANK_DATA_DIR)
    again = _app(q=query, methods="late-interaction", k=str(k))
    again.run()
    _no_exception(again)
    for doc_id, value in expected.items():
        for column, title in (("first", FIRST), ("late-interaction", LATE)):
            if doc_id in _column_docs(again, title):
                assert _grade_widget(again, column, query, doc_id).value == value
    assert "2 · relevant" in _column_html(again, LATE) and "0 · not relevant" in _column_html(again, LATE)
    assert "skipped" in _column_html(again, FIRST)
    after = _live_table(again, k)
    assert after[LATE][f"nDCG@{k}"] == before[LATE][f"nDCG@{k}"] > 0
    assert after[LATE]["unjudged"] == before[LATE]["unjudged"]


@pytest.mark.slow
def test_shadow_log_records_each_fresh_run_once():
    queries = _sample_queries()
    at = _app(q=queries[2], methods=["late-interaction", "cross-encoder"], k="5")
    at.run()
    _no_exception(at)
    corpus_id = _corpus_id(at)
    store = JudgementStore(load_settings().resolved_db_url)
    log = store.shadow_log(corpus_id)
    assert sorted(e["method"].partition(":")[0] for e in log) == ["bm25", "cross-encoder", "late-interaction"]
    entry = _results(at)
    by_method = {e["method"].partition(":")[0]: e for e in log}
    late = next(r for r in entry["methods"].values() if r.method.startswith("late-interaction"))
    assert by_method["late-interaction"]["method"] == late.method
    assert all(e["query_text"] == queries[2] and e["first_stage"] == "bm25" and e["depth"] == 50 for e in log)
    assert by_method["late-interaction"]["available"] and by_method["late-interaction"]["latency_ms"] > 0
    assert [t["doc_id"] for t in by_method["late-interaction"]["top"]] == late.ids[:10]
    assert by_method["late-interaction"]["top"][0]["score"] == pytest.approx(late.items[0].score, rel=1e-6)
    assert by_method["bm25"]["top"][0]["doc_id"] == entry["first"][1].ids[0]
    assert not by_method["cross-encoder"]["available"]
    assert "ms-marco-MiniLM-L-6-v2" in by_method["cross-encoder"]["error"]

    # redrawing is not a run: fewer shown, a grade, a highlight
    at.slider(key=keys.SHOW).set_value(3).run()
    _grade_widget(at, "first", queries[2], _column_docs(at, FIRST)[0]).set_value("1").run()
    at.selectbox(key=keys.CMP_HIGHLIGHT).select(_column_docs(at, FIRST)[1]).run()
    _no_exception(at)
    assert len(store.shadow_log(corpus_id)) == 3
    # a new query is a run; going back to one this session already ran is not
    at.text_input(key=keys.Q).set_value(queries[4]).run()
    assert len(store.shadow_log(corpus_id)) == 6
    assert store.shadow_log(corpus_id, limit=1)[0]["query_text"] == queries[4]
    at.text_input(key=keys.Q).set_value(queries[2]).run()
    assert len(store.shadow_log(corpus_id)) == 6
    # a method added to a query already shown runs (and is logged) alone
    at.multiselect(key=keys.METHODS).set_value(["late-interaction", "cross-encoder", "flashrank"]).run()
    _no_exception(at)
    log = store.shadow_log(corpus_id)
    assert len(log) == 7 and log[0]["method"].startswith("flashrank") and log[0]["query_text"] == queries[2]


def test_compare_page_works_when_the_judgement_store_cannot_be_opened(monkeypatch):
    monkeypatch.setenv("RERANK_DB_URL", "not a database url")
    at = _app(q=_sample_queries()[0], methods="cross-encoder", k="4")
    at.run()
    _no_exception(at)
    warning = " ".join(w.value for w in at.warning).replace("\\", "")
    assert "Grading is off" in warning and "not a database URL" in warning
    assert any("Fix:" in c.value and "sqlite" in c.value for c in at.caption)
    assert len(_column_docs(at, FIRST)) == 4  # the comparison itself still shows
    assert not [b for b in at.button_group if b.key and b.key.startswith(keys.LBL_GRADE_PREFIX)]
