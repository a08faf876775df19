"""The core's access policy (roles, the actor, guarded writes), the settings tables of a hosted deployment,
the hosted-call limiter and its hook in the one compare path, and the upload budget."""

from __future__ import annotations

import threading

import pytest

from rerank_core.access import (
    AccessDenied,
    AccessSettings,
    Actor,
    DemoSettings,
    GuardedStore,
    GuardedWorkspace,
    Permission,
    Role,
    anonymous_actor,
    build,
    matches,
    permissions,
    run_benchmark,
    signed_in_actor,
)
from rerank_core.config import load_settings
from rerank_core.errors import ConfigError
from rerank_core.judgements import JudgementStore
from rerank_core.serving import (
    HostedLimiter,
    LimitSettings,
    UploadTooLarge,
    admission,
    check_upload_budget,
    is_limited,
)
from rerank_core.types import Document
from rerank_core.workspace import UnknownCorpus, Workspace

VIEWER = Actor("vera@example.org", Role.VIEWER, signed_in=True)
LABELLER = Actor("lab@example.org", Role.LABELLER, signed_in=True)
ADMIN = Actor("ada@example.org", Role.ADMIN, signed_in=True)


# -- roles and the actor -------------------------------------------------------------------------------


def test_each_role_holds_the_permissions_of_the_one_before_and_no_more():
    viewer, labeller, admin = (permissions(r) for r in (Role.VIEWER, Role.LABELLER, Role.ADMIN))
    assert viewer == {Permission.BROWSE, Permission.COMPARE, Permission.EXPORT}
    assert labeller == viewer | {Permission.GRADE}
    assert admin == set(Permission)
    assert not VIEWER.can(Permission.GRADE) and LABELLER.can(Permission.GRADE)
    assert not LABELLER.can(Permission.UPLOAD) and ADMIN.can(Permission.UPLOAD)
    with pytest.raises(AccessDenied) as err:
        LABELLER.require(Permission.BENCHMARK, "run benchmarks")
    assert "lab@example.org (labeller) may not run benchmarks" in err.value.message
    assert "admin role" in err.value.message and err.value.hint


@pytest.mark.parametrize(
    ("email", "pattern", "hit"),
    [
        ("Ann@Example.org", "ann@example.org", True),
        ("ann@example.org", "@example.org", True),
        ("ann@sub.example.org", "@example.org", False),
        ("ann@example.org.evil", "@example.org", False),
        ("@example.org", "@example.org", False),
        ("ann@example.org", "*", True),
        ("ann@example.org", "bob@example.org", False),
    ],
)
def test_email_patterns(email, pattern, hit):
    assert matches(email, pattern) is hit


def test_roles_come_from_the_access_lists_highest_first_then_the_default():
    access = AccessSettings(
        sign_in=True, admins=("ada@example.org",), labellers=("@example.org",), viewers=("*",)
    )
    assert access.role_for("ada@example.org") is Role.ADMIN  # in two lists: the higher wins
    assert access.role_for("lab@example.org") is Role.LABELLER
    assert access.role_for("someone@else.net") is Role.VIEWER
    closed = AccessSettings(sign_in=True, labellers=("@example.org",), default_role=None)
    assert closed.role_for("someone@else.net") is None
    with pytest.raises(AccessDenied, match="has no role"):
        signed_in_actor("someone@else.net", closed)
    actor = signed_in_actor("lab@example.org", closed)
    assert actor == Actor("lab@example.org", Role.LABELLER, signed_in=True)


def test_without_sign_in_everyone_is_an_admin_named_by_the_judge_field_unless_demo_mode_is_on():
    laptop = anonymous_actor("mia", AccessSettings(), DemoSettings())
    assert laptop == Actor("mia", Role.ADMIN, signed_in=False)
    demo = anonymous_actor("mia", AccessSettings(), DemoSettings(enabled=True))
    assert demo.role is Role.VIEWER
    open_demo = anonymous_actor(
        "mia", AccessSettings(), DemoSettings(enabled=True, anonymous_role=Role.LABELLER)
    )
    assert open_demo.role is Role.LABELLER


# -- the settings tables -------------------------------------------------------------------------------


def _write(tmp_path, text: str):
    path = tmp_path / "rerank.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_access_demo_and_limits_tables_are_read_and_checked(tmp_path):
    path = _write(
        tmp_path,
        """
[access]
sign_in = true
admins = ["ada@example.org"]
labellers = ["@example.org"]
default_role = "none"

[demo]
enabled = true
corpora = ["sample"]
methods = ["bi-encoder", "cohere"]
quota = 3
quota_window_h = 1
rate_per_minute = 2

[demo.example_queries]
sample = ["What causes the seasons?"]

[limits]
upload_mb_per_session = 50
torch_threads = 1
""",
    )
    s = load_settings(path, env={})
    assert s.access.sign_in and s.access.admins == ("ada@example.org",) and s.access.default_role is None
    assert (
        s.demo.enabled and s.demo.quota == 3 and s.demo.quota_window_h == 1.0 and s.demo.rate_per_minute == 2
    )
    assert s.demo.example_queries == {"sample": ("What causes the seasons?",)}
    assert s.demo.offers("cohere") and s.demo.offers("bi-encoder:some/model") and not s.demo.offers("llm")
    assert s.demo.offers("bm25", first_stage=True)  # no first-stage list: every first stage
    assert s.limits == LimitSettings(upload_mb_per_session=50.0, torch_threads=1)
    # the environment switches sign-in and demo mode on or off
    s = load_settings(path, env={"RERANK_SIGN_IN": "false", "RERANK_DEMO": "0"})
    assert not s.access.sign_in and not s.demo.enabled
    # the defaults: a laptop
    plain = load_settings(_write(tmp_path, 'data_dir = "x"\n'), env={})
    assert not plain.access.sign_in and not plain.demo.enabled and plain.demo.offers("llm")


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("[access]\nsignin = true\n", "unknown setting(s) signin in [access]"),
        ('[access]\ndefault_role = "owner"\n', "not a role"),
        ('[access]\nadmins = "a@b.c"\nlabellers = [1]\n', "must be a list of strings"),
        ('[access]\nsign_in = "maybe"\n', "must be true or false"),
        ("[demo]\nquota = -1\n", "[demo] quota must be a number"),
        ('[demo]\nexample_queries = ["q"]\n', "example_queries must be a table"),
        ("[limits]\ntorch_threads = -2\n", "[limits] torch_threads"),
        ("[limits]\nthreads = 2\n", "unknown setting(s) threads in [limits]"),
    ],
)
def test_bad_access_settings_say_what_is_wrong(tmp_path, text, says):
    with pytest.raises(ConfigError) as err:
        load_settings(_write(tmp_path, text), env={})
    assert says in err.value.message and err.value.hint


# -- the core refuses what a role may not do --------------------------------------------------------------


@pytest.fixture
def store(tmp_path):
    with JudgementStore(f"sqlite:///{tmp_path / 'j.sqlite'}") as s:
        yield s


def test_the_store_refuses_a_viewers_writes_and_writes_nothing(store):
    guarded = GuardedStore(store, VIEWER)
    for write in (
        lambda: guarded.set_grade("c-1", "q1", "d1", 2),
        lambda: guarded.add_query("c-1", "a question"),
        lambda: guarded.undo("c-1"),
        lambda: guarded.import_qrels("c-1", {"q1": {"d1": 1}}),
        lambda: guarded.import_judgements("c-1", [("q1", "d1", 1, "x", None)]),
        lambda: guarded.set_tags("c-1", {"q1": ["t"]}),
        lambda: guarded.delete_corpus("c-1", judgements=True),
    ):
        with pytest.raises(AccessDenied):
            write()
    assert store.judgements("c-1") == [] and store.queries("c-1") == {}
    # reading and exporting are allowed
    assert guarded.grades("c-1", "q1") == {} and guarded.qrels("c-1") == {}


def test_a_signed_in_labeller_grades_only_under_their_own_identity(store):
    guarded = GuardedStore(store, LABELLER)
    guarded.set_grade("c-1", "q1", "d1", 3)
    guarded.set_grade("c-1", "q1", "d2", None, judge=LABELLER.identity)
    assert store.grades("c-1", "q1", judge=LABELLER.identity) == {"d1": 3, "d2": None}
    with pytest.raises(AccessDenied, match="as 'someone-else'"):
        guarded.set_grade("c-1", "q1", "d3", 1, judge="someone-else")
    with pytest.raises(AccessDenied):
        guarded.import_qrels("c-1", {"q1": {"d9": 1}})  # importing is an admin's
    with pytest.raises(AccessDenied):
        guarded.undo("c-1", judge="import")  # taking back an import too
    done = guarded.undo("c-1")
    assert done is not None and store.grades("c-1", "q1", judge=LABELLER.identity) == {"d1": 3}
    assert {j.judge for j in store.judgements("c-1")} == {LABELLER.identity}


def test_an_admin_may_import_undo_imports_and_delete(store):
    guarded = GuardedStore(store, ADMIN)
    assert guarded.import_qrels("c-1", {"q1": {"d1": 2}}) == 1
    assert guarded.undo("c-1", judge="import") is not None
    assert guarded.delete_corpus("c-1", judgements=True)["judgements"] >= 1


def test_a_laptop_user_grades_under_any_judge_name_as_before(store):
    laptop = GuardedStore(store, anonymous_actor("mia", AccessSettings(), DemoSettings()))
    laptop.set_grade("c-1", "q1", "d1", 1, judge="a-colleague")
    assert store.grades("c-1", "q1", judge="a-colleague") == {"d1": 1}


def test_the_workspace_refuses_uploads_and_deletes_and_hides_corpora_outside_a_demo(tmp_path):
    ws = Workspace(tmp_path / "data")
    sample = ws.sample()
    other = ws.add([Document(id="a", text="alpha"), Document(id="b", text="beta")], name="other")
    viewer = GuardedWorkspace(ws, VIEWER, visible=[sample.id])
    assert [i.id for i in viewer.list()] == [sample.id]
    assert other.id not in viewer and sample.id in viewer
    with pytest.raises(UnknownCorpus, match="this demo does not show"):
        viewer.get(other.id)
    with pytest.raises(AccessDenied):
        viewer.add([Document(id="c", text="gamma")], name="mine")
    with pytest.raises(AccessDenied):
        viewer.delete(sample.id)
    with pytest.raises(AccessDenied):
        GuardedWorkspace(ws, LABELLER).rename(sample.id, "renamed")
    assert ws.get(sample.id).name == sample.name and other.id in ws
    admin = GuardedWorkspace(ws, ADMIN, visible=[sample.id])  # an admin sees every corpus
    assert {i.id for i in admin.list()} == {sample.id, other.id}
    assert admin.delete(other.id).id == other.id and other.id not in ws


def test_benchmarks_and_builds_need_an_admin():
    class Runtime:
        def build(self, *args, **kwargs):
            return "built"

    with pytest.raises(AccessDenied, match="run benchmarks"):
        run_benchmark(LABELLER, None, "bm25", 10, ["bm25"])
    with pytest.raises(AccessDenied, match="build indexes"):
        build(VIEWER, Runtime(), ["bm25"], None, None)
    assert build(ADMIN, Runtime(), ["bm25"], None, None) == "built"


# -- the limiter ------------------------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_quota_counts_per_user_in_a_rolling_window_and_says_when_the_next_run_frees_up():
    clock = Clock()
    limiter = HostedLimiter(quota=3, window_s=3600, per_minute=0, clock=clock)
    for _ in range(3):
        assert limiter.acquire("ann").allowed
        clock.now += 600
    refused = limiter.acquire("ann")
    assert not refused.allowed and refused.kind == "quota"
    assert "all 3 runs" in refused.message and "per 1 h 00 min" in refused.message
    assert refused.retry_after_s == pytest.approx(1800)  # the first run leaves the window 1 h after it
    assert "30 min" in refused.message
    assert limiter.acquire("bob").allowed  # other users go on
    assert limiter.used("ann") == 3 and limiter.remaining("ann") == 0 and limiter.remaining("bob") == 2
    clock.now += 1800  # the first run has left the window
    assert limiter.acquire("ann").allowed
    assert not limiter.acquire("ann").allowed


def test_the_rate_limit_counts_runs_in_any_minute():
    clock = Clock()
    limiter = HostedLimiter(quota=0, window_s=86400, per_minute=2, clock=clock)
    assert limiter.acquire("ann").allowed
    clock.now += 10
    assert limiter.acquire("ann").allowed
    clock.now += 5
    refused = limiter.acquire("ann")
    assert refused.kind == "rate-limit" and refused.retry_after_s == pytest.approx(45)
    assert "at most 2 runs" in refused.message and "45 s" in refused.message
    clock.now += 45
    assert limiter.acquire("ann").allowed
    assert limiter.remaining("ann") is None  # no quota, only a rate


def test_the_limiter_is_thread_safe():
    limiter = HostedLimiter(quota=50, window_s=3600, per_minute=0)
    allowed = []

    def worker():
        for _ in range(20):
            allowed.append(limiter.acquire("ann").allowed)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(allowed) == 50 and limiter.used("ann") == 50


def test_hosted_methods_and_the_llm_are_limited_local_ones_are_not():
    assert is_limited("cohere") and is_limited("llm") and is_limited("llm:smollm2")
    assert not is_limited("late-interaction") and not is_limited("cross-encoder:some/model")
    assert not is_limited("no-such-method")
    limiter = HostedLimiter(quota=1, window_s=3600, per_minute=0)
    admit = admission(limiter, "ann")
    assert admit is not None
    assert admit("late-interaction") is None and admit("cohere") is None
    refused = admit("llm")
    assert refused is not None and refused.kind == "quota" and refused.hint
    assert admission(None, "ann") is None


def test_compare_puts_a_refusal_in_that_methods_result_and_runs_the_others(monkeypatch):
    from rerank_core import registry
    from rerank_core.pipeline import Runtime
    from rerank_core.rerankers.base import Reranker
    from rerank_core.types import Corpus

    class Counting(Reranker):
        name = "counting-hosted"
        hosted = True
        calls = 0

        def score(self, query, candidates):
            type(self).calls += 1
            return [float(len(c.text)) for c in candidates]

    class Local(Counting):
        name = "counting-local"
        hosted = False

    monkeypatch.setitem(registry.RERANKERS, "counting-hosted", Counting)
    monkeypatch.setitem(registry.RERANKERS, "counting-local", Local)
    corpus = Corpus([Document(id=str(i), text="wing lift " * (i + 1)) for i in range(6)], name="c")
    runtime = Runtime()
    limiter = HostedLimiter(quota=1, window_s=3600, per_minute=0)
    settings = load_settings(env={})
    methods = ["counting-hosted", "counting-local"]
    first = runtime.compare(
        "wing lift", corpus, "bm25", methods, 5, settings, admit=admission(limiter, "ann")
    )
    assert all(r.ok for r in first.comparison.results)
    # the same query again comes from the memo: no run, no quota used
    again = runtime.compare(
        "wing lift", corpus, "bm25", methods, 5, settings, admit=admission(limiter, "ann")
    )
    assert again.fresh == [] and limiter.used("ann") == 1
    # a new query: the hosted method is refused, the local one runs, and other users go on
    hosted_calls, local_calls = Counting.calls, Local.calls
    run = runtime.compare("lift", corpus, "bm25", methods, 5, settings, admit=admission(limiter, "ann"))
    hosted, local = run.comparison.results
    assert hosted.error is not None and hosted.error.kind == "quota" and not hosted.items
    assert local.ok and local.items
    assert (Counting.calls, Local.calls) == (hosted_calls, local_calls + 1)  # only the local one scored
    assert runtime.memoised("lift", corpus, "bm25", 5, "counting-hosted", settings) is None  # retried later
    other = runtime.compare(
        "lift", corpus, "bm25", ["counting-hosted"], 5, settings, admit=admission(limiter, "bob")
    )
    assert other.comparison.results[0].ok


# -- uploads ----------------------------------------------------------------------------------------------


def test_the_upload_budget_of_a_session():
    assert check_upload_budget([1024, 2048], 1) == 3072
    assert check_upload_budget([10 * 1024 * 1024], 0) == 10 * 1024 * 1024  # 0: no limit
    with pytest.raises(UploadTooLarge) as err:
        check_upload_budget([600_000, 600_000], 1)
    assert "1.1 MB, more than the 1 MB" in err.value.message and "upload_mb_per_session" in err.value.hint


# -- the demo's corpora and the documented settings --------------------------------------------------------


def test_demo_corpora_are_the_sample_stored_ids_and_beir_folders(tmp_path, cranfield_dir):
    from rerank_core.access import demo_corpora, demo_examples

    ws = Workspace(tmp_path / "data")
    stored = ws.add([Document(id="a", text="alpha"), Document(id="b", text="beta")], name="mine")
    demo = DemoSettings(
        enabled=True,
        corpora=("sample", stored.id, str(cranfield_dir)),
        example_queries={"sample": ("What causes the seasons?",), str(cranfield_dir): ("shock waves",)},
    )
    ids = demo_corpora(ws, demo)
    assert list(ids) == ["sample", stored.id, str(cranfield_dir)]
    assert ids["sample"] == ws.sample().id and ids[stored.id] == stored.id
    cranfield = ws.get(ids[str(cranfield_dir)])
    assert len(cranfield.corpus) == 1400 and len(cranfield.queries) == 225
    assert demo_corpora(ws, demo) == ids  # the same content is the same corpus: a restart finds it again
    assert demo_examples(demo, ids, ids["sample"]) == ("What causes the seasons?",)
    assert demo_examples(demo, ids, cranfield.id) == ("shock waves",)
    assert demo_examples(demo, ids, stored.id) is None
    for bad, says in (("c-00000000deadbeef", "does not hold"), (str(tmp_path / "nowhere"), "neither")):
        with pytest.raises(ConfigError, match=says):
            demo_corpora(ws, DemoSettings(enabled=True, corpora=(bad,)))


def test_the_example_settings_file_documents_every_hosted_key():
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    example = (root / "rerank.example.toml").read_text(encoding="utf-8")
    s = load_settings(root / "rerank.example.toml", env={})
    assert s.access == AccessSettings() and not s.demo.enabled and s.limits == LimitSettings()
    for section, cls in (("access", AccessSettings), ("demo", DemoSettings), ("limits", LimitSettings)):
        assert f"[{section}]" in example
        for key in cls.KEYS:
            assert key in example, (section, key)
    secrets_example = (root / ".streamlit" / "secrets.example.toml").read_text(encoding="utf-8")
    for key in (
        "[auth]",
        "redirect_uri",
        "cookie_secret",
        "client_id",
        "client_secret",
        "server_metadata_url",
    ):
        assert key in secrets_example
