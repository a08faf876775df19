"""A hosted deployment, page by page with AppTest: sign-in, roles, demo mode, the quota, Stop.

Sign-in is switched on with ``[access] sign_in`` in a settings file of the test's own, and the signed-in
user is AppTest's ``user`` (what ``st.user`` reads). The pages run on the built-in sample; the one
reranker is Cohere against a loopback server (no network, no model to load), or no key at all.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from loopback_servers import RERANK_PATH, LoopbackServer, Recorded, Reply, cohere_rerank_body
from streamlit.testing.v1 import AppTest

from rerank_core.config import load_settings
from rerank_core.judgements import JudgementStore
from rerank_core.sample import example_queries
from ui import keys

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "app.py")
TIMEOUT = 240

ADMIN, LABELLER, VIEWER = "ada@example.org", "lab@example.org", "vera@example.org"
ACCESS = f"""
[access]
sign_in = true
admins = ["{ADMIN}"]
labellers = ["{LABELLER}"]
viewers = ["@example.org"]
default_role = "none"
"""
PAGES = ("views/compare.py", "views/corpus.py", "views/labels.py", "views/benchmark.py")


@pytest.fixture
def configure(tmp_path, monkeypatch):
    """Write the test's rerank.toml (``[access]`` plus ``extra``) and point RERANK_CONFIG at it."""
    for var in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "COHERE_API_KEY", "RERANK_COHERE_BASE_URL"):
        monkeypatch.delenv(var, raising=False)

    def write(extra: str = "", access: str = ACCESS) -> Path:
        path = tmp_path / "rerank.toml"
        path.write_text(access + "\n" + extra, encoding="utf-8")
        monkeypatch.setenv("RERANK_CONFIG", str(path))
        return path

    return write


def _app(user: str | None = None, **params) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.user = {"is_logged_in": user is not None, **({"email": user} if user else {})}
    for name, value in params.items():
        at.query_params[name] = value
    return at


def _ok(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def _grade_widgets(at: AppTest) -> list:
    return [b for b in at.button_group if b.key and b.key.startswith(keys.LBL_GRADE_PREFIX)]


def _texts(at: AppTest) -> str:
    parts = [*at.markdown, *at.caption, *at.info, *at.error, *at.warning, *at.success]
    return " ".join(str(e.value) for e in parts).replace("\\", "").replace("**", "")


def _buttons(at: AppTest) -> set[str]:
    return {b.label for b in at.button}


# -- sign-in ---------------------------------------------------------------------------------------------


def test_without_a_signed_in_user_only_the_sign_in_screen_shows(configure):
    configure()
    at = _app()
    at.run()
    _ok(at)
    assert "Secrets have no" not in _texts(at)
    assert "[auth]" in _texts(at)  # no [auth] section: the page says how to configure the provider
    at.secrets["auth"] = {"redirect_uri": "http://localhost:8501/oauth2callback"}
    at.run()
    _ok(at)
    assert _buttons(at) == {"Sign in"}
    assert (
        not at.text_input
        and not at.get("html")
        or all("rp-colhead" not in h.proto.body for h in at.get("html"))
    )
    assert keys.CMP_LAST not in at.session_state  # nothing was compared


def test_a_signed_in_user_without_a_role_is_told_so(configure):
    configure()
    at = _app("someone@else.net")
    at.run()
    _ok(at)
    assert "someone@else.net is signed in but has no role" in _texts(at)
    assert _buttons(at) == {"Sign out"}
    assert keys.CMP_LAST not in at.session_state


# -- roles on every page -------------------------------------------------------------------------------


def test_a_viewer_browses_and_compares_but_gets_no_grade_upload_delete_import_or_benchmark(configure):
    configure()
    at = _app(VIEWER, methods="cohere", k="5")
    at.run()
    _ok(at)
    assert "Signed in as vera@example.org" in _texts(at) and "Role viewer" in _texts(at)
    assert keys.CMP_LAST in at.session_state  # the comparison shows
    assert not _grade_widgets(at) and not [t for t in at.toggle if t.key == keys.CMP_GRADE_MODE]
    assert keys.LBL_UNDO not in {b.key for b in at.button}
    assert "grading needs the labeller role" in _texts(at)
    assert not [t for t in at.text_input if t.key and t.key.startswith(keys.SECRET_PREFIX)]  # no key fields
    assert not [t for t in at.text_input if t.key == keys.LBL_JUDGE]  # no free-text judge name

    at.switch_page("views/corpus.py").run()
    _ok(at)
    assert not at.get("file_uploader")
    assert "Uploading and re-chunking corpora needs the admin role" in _texts(at)
    assert not {"Load files", "Build", "Re-chunk corpus in use"} & _buttons(at)
    assert not [b for b in at.button if b.key == keys.CORPUS_IMPORT_QRELS]
    assert "Importing them into the label store needs the admin role" in _texts(at)
    rows = at.dataframe(key=keys.CORPUS_TABLE)
    assert rows is not None  # the stored corpora are listed

    at.switch_page("views/labels.py").run()
    _ok(at)
    assert not at.get("file_uploader") and not _grade_widgets(at)
    assert "Importing judgements needs the admin role" in _texts(at)
    assert [b for b in at.get("download_button")]  # exporting is open to every role

    at.switch_page("views/benchmark.py").run()
    _ok(at)
    assert not [b for b in at.button if b.key == keys.BENCH_RUN]
    assert "Running a benchmark needs the admin role (you are viewer)" in _texts(at)


def test_a_labeller_grades_under_their_sign_in_and_may_not_upload_or_benchmark(configure):
    configure()
    query = "why do planes need wings to fly"
    at = _app(LABELLER, methods="cohere", k="5", q=query)
    at.run()
    _ok(at)
    assert "Role labeller" in _texts(at) and not [t for t in at.text_input if t.key == keys.LBL_JUDGE]
    widgets = [w for w in _grade_widgets(at) if w.key.startswith(keys.LBL_GRADE_PREFIX + "first|")]
    assert len(widgets) == 5
    doc = widgets[0].key.rsplit("|", 1)[1]
    widgets[0].set_value("2").run()
    _ok(at)
    corpus_id = at.session_state[keys.ACTIVE_CORPUS]
    with JudgementStore(load_settings().resolved_db_url) as store:
        (judgement,) = store.judgements(corpus_id, judge=LABELLER)
        assert (judgement.doc_id, judgement.grade) == (doc, 2)
        assert store.judges(corpus_id) == ["import", LABELLER]  # the sample's own qrels, and the grade
    assert f"Judge {LABELLER} (your sign-in)" in _texts(at)

    at.switch_page("views/corpus.py").run()
    _ok(at)
    assert not at.get("file_uploader") and "Build" not in _buttons(at)
    at.switch_page("views/benchmark.py").run()
    _ok(at)
    assert not [b for b in at.button if b.key == keys.BENCH_RUN]


def test_an_admin_gets_everything(configure):
    configure()
    at = _app(ADMIN, methods="cohere", k="5")
    at.run()
    _ok(at)
    assert "Role admin" in _texts(at) and _grade_widgets(at)
    secrets = [t for t in at.text_input if t.key and t.key.startswith(keys.SECRET_PREFIX)]
    assert [t.key for t in secrets] == [keys.secret_key("COHERE_API_KEY")]  # typed keys: an admin's
    at.switch_page("views/corpus.py").run()
    _ok(at)
    assert at.get("file_uploader") and {"Load files", "Build"} <= _buttons(at)
    at.switch_page("views/labels.py").run()
    _ok(at)
    assert len(at.get("file_uploader")) == 2
    at.switch_page("views/benchmark.py").run()
    _ok(at)
    assert [b for b in at.button if b.key == keys.BENCH_RUN]


# -- demo mode -------------------------------------------------------------------------------------------


def _cohere_server(monkeypatch) -> LoopbackServer:
    def score(rec: Recorded) -> Reply:
        docs = rec.body["documents"]
        return Reply(body=cohere_rerank_body([(i, 1.0 / (1 + i)) for i in range(len(docs))]))

    server = LoopbackServer().start()
    server.responders[RERANK_PATH] = score
    monkeypatch.setenv("COHERE_API_KEY", "server-side-key")
    monkeypatch.setenv("RERANK_COHERE_BASE_URL", server.url)
    monkeypatch.setenv("RERANK_MAX_RETRIES", "0")
    return server


def _cohere(at: AppTest):
    return next(
        r for r in at.session_state[keys.CMP_LAST]["methods"].values() if r.method.startswith("cohere")
    )


def test_the_quota_stops_one_user_with_a_message_and_the_others_go_on(configure, monkeypatch):
    configure('[demo]\nenabled = true\nmethods = ["cohere"]\nquota = 2\nrate_per_minute = 0\n')
    server = _cohere_server(monkeypatch)
    try:
        queries = list(example_queries())
        ann = _app(LABELLER, methods="cohere", k="5", q=queries[0])
        ann.run()
        for query in queries[1:2]:
            ann.text_input(key=keys.Q).set_value(query).run()
        assert _cohere(ann).ok and len(server.calls(RERANK_PATH)) == 2
        ann.text_input(key=keys.Q).set_value(queries[2]).run()  # the third run: over the quota
        _ok(ann)
        refused = _cohere(ann)
        assert refused.error is not None and refused.error.kind == "quota" and not refused.items
        assert len(server.calls(RERANK_PATH)) == 2  # no call was made
        shown = " ".join(str(i.value) for i in ann.info).replace("\\", "")
        assert "Quota reached" in shown and "has used all 2 runs" in shown
        assert ann.session_state[keys.CMP_LAST]["first"][1].items  # the first stage still shows
        ann.text_input(key=keys.Q).set_value(queries[0]).run()  # a query already run comes from the memo
        assert _cohere(ann).ok

        bob = _app(ADMIN, methods="cohere", k="5", q=queries[2])  # another user, the same query
        bob.run()
        _ok(bob)
        assert _cohere(bob).ok and len(server.calls(RERANK_PATH)) == 3
        # the server's key served both; a typed key is never used in demo mode, not even an admin's
        assert {c.headers.get("authorization") for c in server.calls(RERANK_PATH)} == {
            "Bearer server-side-key"
        }
        assert not [t for t in bob.text_input if t.key and t.key.startswith(keys.SECRET_PREFIX)]
    finally:
        server.stop()


def test_a_demo_runs_its_configured_models_whatever_the_link_says(configure):
    """A visitor's link cannot make the shared server load another model or convert one to int8."""
    configure('[demo]\nenabled = true\nmethods = ["bi-encoder", "flashrank"]\n', access="")
    link = {
        "methods": "bi-encoder",
        keys.model_key("bi-encoder"): "someone/huge-model",
        keys.precision_key("bi-encoder"): "openvino-int8",
    }
    at = _app(**link)
    at.run()
    _ok(at)
    model_box = at.text_input(key=keys.model_key("bi-encoder"))
    precision_box = at.selectbox(key=keys.precision_key("bi-encoder"))
    assert model_box.disabled and precision_box.disabled
    # the boxes show what runs, not what the link asked for
    assert model_box.value == "sentence-transformers/all-MiniLM-L6-v2" and precision_box.value == "fp32"
    assert "This demo runs the configured models at their configured precision" in _texts(at)
    result = at.session_state[keys.CMP_LAST]
    text = repr(result)
    assert "someone/huge-model" not in text and "openvino-int8" not in text
    assert "all-MiniLM-L6-v2" in text  # the configured default model ran
    # the same link on a laptop (no demo) runs what it names
    configure("", access="")
    at = _app(**{**link, keys.model_key("bi-encoder"): "", keys.precision_key("bi-encoder"): "bf16"})
    at.run()
    _ok(at)
    assert not at.text_input(key=keys.model_key("bi-encoder")).disabled
    assert at.session_state[keys.CMP_LAST]["methods"]["bi-encoder"].precision == "bf16"


def test_an_anonymous_demo_shows_its_corpora_methods_and_examples_to_a_viewer(configure, tmp_path):
    from rerank_core.types import Document
    from rerank_core.workspace import Workspace

    other = Workspace(load_settings().data_dir).add([Document(id="x", text="private notes")], name="private")
    configure(
        '[demo]\nenabled = true\ncorpora = ["sample"]\nmethods = ["cohere", "flashrank"]\n'
        'first_stages = ["bm25"]\n[demo.example_queries]\nsample = ["What causes the seasons?"]\n',
        access="",
    )
    at = _app(methods="cohere", k="5")
    at.run()
    _ok(at)
    assert at.text_input(key=keys.Q).value == "What causes the seasons?"  # the demo's own example
    assert at.multiselect(key=keys.METHODS).options == ["flashrank", "cohere"]
    assert "Demo · as a guest you may browse, compare and export" in _texts(at)
    assert not _grade_widgets(at) and not [t for t in at.text_input if t.key == keys.LBL_JUDGE]
    assert "st.user" not in _texts(at)
    # a link to a corpus outside the demo is refused, never shown
    at = _app(methods="cohere", corpus=other.id)
    at.run()
    _ok(at)
    assert "this demo does not show corpus" in _texts(at) and keys.CMP_LAST not in at.session_state
    at = _app()
    at.switch_page("views/corpus.py").run()
    _ok(at)
    listed = at.dataframe(key=keys.CORPUS_TABLE).value
    assert other.id not in list(listed["id"]) and len(listed) == 1


# -- a stopped run ---------------------------------------------------------------------------------------


def test_a_stopped_run_stays_stopped_until_asked_to_run_again(configure, monkeypatch):
    configure(access="")
    server = _cohere_server(monkeypatch)
    try:
        query = "why do planes need wings to fly"
        at = _app(methods="cohere", k="5", q=query, first_stage="bm25", depth="50")
        at.run()
        corpus_id = at.session_state[keys.ACTIVE_CORPUS]
        (spec,) = at.session_state[keys.CMP_LAST]["methods"]  # cohere with its default model
        other = "how do rivers shape valleys over time"
        # what the Stop button leaves behind when pressed during a run of this query
        at.session_state[keys.CMP_STOPPED] = ((corpus_id, other, "bm25", 50), (spec,))
        calls = len(server.calls(RERANK_PATH))
        at.text_input(key=keys.Q).set_value(other).run()
        _ok(at)
        assert len(server.calls(RERANK_PATH)) == calls  # not started
        assert "Stopped: Cohere Rerank did not run for this query" in _texts(at)
        assert spec not in at.session_state[keys.CMP_LAST]["methods"]
        at.button(key=keys.CMP_RUN_AGAIN).click().run()
        _ok(at)
        assert len(server.calls(RERANK_PATH)) == calls + 1 and _cohere(at).ok
    finally:
        server.stop()


def test_the_narrow_screen_picker_offers_every_order():
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params["methods"] = "cohere"
    at.run()
    _ok(at)
    picker = at.button_group(key=keys.CMP_ORDER)
    assert len(picker.options) == 2 and picker.value == "cohere:rerank-v3.5"  # the reranker first
    picker.set_value("first").run()
    _ok(at)
    styles = "".join(h.proto.body for h in at.get("html"))
    assert "@media (max-width: 700px)" in styles and ".st-key-rpcol-c1)" in styles  # the reranker is hidden


def test_uploads_past_the_session_cap_are_refused_and_dropped(configure):
    configure("[limits]\nupload_mb_per_session = 0.001\n", access="")  # about 1 KB
    at = _app()
    at.switch_page("views/corpus.py").run()
    _ok(at)
    before = at.session_state[keys.ACTIVE_CORPUS]
    big = "\n".join(
        f'{{"_id": "d{i}", "text": "lift and drag notes number {i}"}}' for i in range(60)
    ).encode()
    at.file_uploader(key=keys.CORPUS_UPLOADS).set_value([("big.jsonl", big, "application/json")])
    at.run()
    _ok(at)
    shown = " ".join(str(e.value) for e in at.error).replace("\\", "")
    assert "Nothing was loaded" in shown and "more than the 0.001 MB one session may upload" in shown
    assert "upload_mb_per_session" in shown
    assert at.session_state[keys.CORPUS_UPLOADS_GEN] == 1  # a new, empty uploader: the files are dropped
    assert at.get("file_uploader")[0].key == keys.CORPUS_UPLOADS + "_1"
    assert (
        at.session_state[keys.ACTIVE_CORPUS] == before and len(at.dataframe(key=keys.CORPUS_TABLE).value) == 1
    )
    small = b'{"_id": "a", "text": "lift"}\n{"_id": "b", "text": "drag"}'
    at.file_uploader(key=keys.CORPUS_UPLOADS + "_1").set_value([("small.jsonl", small, "application/json")])
    at.run()
    next(b for b in at.button if b.label == "Load files").click().run()
    _ok(at)
    assert at.session_state[keys.ACTIVE_CORPUS] != before  # a small upload still loads
