"""The judgement store: persistence, undo, skips, several judges, imports, concurrency, errors.

Every test that takes ``db_url`` (or ``store``) runs twice: on a SQLite file and on a fresh database
of a real PostgreSQL server the tests start themselves (``postgres_url`` in conftest.py)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from rerank_core.config import Settings
from rerank_core.errors import ConfigError
from rerank_core.judgements import (
    InvalidGrade,
    JudgementStore,
    normalise_query,
    query_id_for,
    shadow_log_csv,
)
from rerank_core.types import MethodError, RankedItem, RerankResult, ScoreScale

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request, tmp_path) -> str:
    if request.param == "postgres":
        return request.getfixturevalue("postgres_url")
    return f"sqlite:///{tmp_path / 'labels' / 'judgements.sqlite'}"


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'labels' / 'judgements.sqlite'}"


@pytest.fixture
def store(db_url):
    s = JudgementStore(db_url)
    yield s
    s.close()


def test_query_ids_are_stable_and_ignore_case_and_spacing():
    a = query_id_for("What is BM25?")
    assert a == query_id_for("  what   is\tbm25?  ")
    assert a != query_id_for("What is BM25")
    assert a.startswith("q-") and len(a) == 14 and int(a[2:], 16) >= 0
    assert normalise_query("Ａ  B") == "a b"  # NFKC folds the full-width letter
    with pytest.raises(InvalidGrade):
        query_id_for("   ")


def test_everything_survives_a_reopen(db_url):
    first = JudgementStore(db_url)
    qid = first.add_query("docs", "how do rerankers work")
    first.add_query("docs", "imported query text", query_id="Q17")
    first.set_grade("docs", qid, "d1", 3)
    first.set_grade("docs", qid, "d2", None)
    first.set_grade("docs", "Q17", "d9", 0, judge="alice")
    first.log_run("docs", "how do rerankers work", "bm25", latency_ms=3.5, top=[("d1", 7.25), ("d2", 1.0)])
    first.close()

    second = JudgementStore(db_url)
    try:
        assert second.queries("docs") == {qid: "how do rerankers work", "Q17": "imported query text"}
        assert second.grades("docs", qid) == {"d1": 3, "d2": None}
        assert second.qrels("docs") == {qid: {"d1": 3}, "Q17": {"d9": 0}}
        (entry,) = second.shadow_log("docs")
        assert entry["method"] == "bm25" and entry["latency_ms"] == 3.5
        assert entry["top"] == [{"doc_id": "d1", "score": 7.25}, {"doc_id": "d2", "score": 1.0}]
        assert second.corpora() == ["docs"]
        # the undo history survives too
        assert second.undo("docs").doc_id == "d2"
        assert second.grades("docs", qid) == {"d1": 3}
    finally:
        second.close()


def test_default_location_comes_from_settings_and_is_created(tmp_path):
    data_dir = tmp_path / "not" / "there" / "yet"
    with JudgementStore(settings=Settings(data_dir=data_dir)) as s:
        s.set_grade("c", "q", "d", 2)
        assert "judgements.sqlite" in s.url
    assert (data_dir / "judgements.sqlite").is_file()
    with JudgementStore(f"sqlite:///{data_dir / 'judgements.sqlite'}") as again:
        assert again.qrels("c") == {"q": {"d": 2}}


def test_undo_restores_the_previous_grade_then_nothing(store):
    store.set_grade("c", "q1", "d1", 1)
    store.set_grade("c", "q1", "d1", 3)
    assert store.grades("c", "q1") == {"d1": 3}

    undone = store.undo("c")
    assert (undone.query_id, undone.doc_id, undone.undone_grade) == ("q1", "d1", 3)
    assert undone.restored and undone.restored_grade == 1 and undone.rows == 1
    assert "now 1" in undone.message
    assert store.grades("c", "q1") == {"d1": 1}

    undone = store.undo("c")
    assert undone.undone_grade == 1 and not undone.restored
    assert store.grades("c", "q1") == {}
    assert store.qrels("c") == {}
    assert store.undo("c") is None

    history = store.history("c")
    assert [(h["grade"], h["active"]) for h in history] == [(1, False), (3, False)]
    assert all(h["undone_at"] is not None for h in history)


def test_undo_touches_only_that_judge_and_corpus(store):
    store.set_grade("c", "q", "d", 2, judge="alice")
    store.set_grade("c", "q", "d", 0, judge="bob")
    store.set_grade("other", "q", "d", 1, judge="alice")
    undone = store.undo("c", judge="alice")
    assert undone.judge == "alice" and undone.undone_grade == 2
    assert store.grades("c", "q", judge="bob") == {"d": 0}
    assert store.grades("c", "q", judge="alice") == {}
    assert store.qrels("other") == {"q": {"d": 1}}


def test_undo_after_skip_restores_the_grade(store):
    store.set_grade("c", "q", "d", 2)
    store.set_grade("c", "q", "d", None)
    assert store.grades("c", "q") == {"d": None}
    undone = store.undo("c")
    assert undone.undone_grade is None and undone.restored_grade == 2


def test_skipped_is_kept_but_not_a_qrel(store):
    store.set_grade("c", "q", "d1", None)
    store.set_grade("c", "q", "d2", 0)
    assert store.grades("c", "q") == {"d1": None, "d2": 0}
    assert store.qrels("c") == {"q": {"d2": 0}}
    assert store.judgement_count("c") == 1
    assert store.judgement_count("c", include_skipped=True) == 2
    (skip,) = [j for j in store.judgements("c") if j.doc_id == "d1"]
    assert skip.skipped and skip.created_at.tzinfo is not None


def test_several_judges_newest_grade_wins_and_skips_do_not_hide_grades(store):
    store.set_grade("c", "q", "d", 3, judge="alice")
    assert store.grades("c", "q") == {"d": 3}
    store.set_grade("c", "q", "d", 1, judge="bob")
    assert store.grades("c", "q") == {"d": 1}
    store.set_grade("c", "q", "d", None, judge="carol")
    assert store.grades("c", "q") == {"d": 1}
    assert store.grades("c", "q", judge="alice") == {"d": 3}
    assert store.grades("c", "q", judge="carol") == {"d": None}
    assert store.qrels("c", judge="alice") == {"q": {"d": 3}}
    assert store.judges("c") == ["alice", "bob", "carol"]
    store.set_grade("c", "q", "only-skipped", None, judge="carol")
    assert store.grades("c", "q")["only-skipped"] is None


@pytest.mark.parametrize("bad", [7, 4, -1, True, 2.5, "2"])
def test_hand_grades_are_validated(store, bad):
    with pytest.raises(InvalidGrade, match="not a hand label") as info:
        store.set_grade("c", "q", "d", bad)
    assert "0 (not relevant)" in info.value.hint
    assert store.history("c") == []


@pytest.mark.parametrize("field", ["corpus_id", "query_id", "doc_id", "judge"])
def test_empty_ids_are_rejected(store, field):
    args = {"corpus_id": "c", "query_id": "q", "doc_id": "d", "judge": "j"}
    args[field] = ""
    with pytest.raises(InvalidGrade, match=field):
        store.set_grade(args["corpus_id"], args["query_id"], args["doc_id"], 1, judge=args["judge"])


def test_imports_keep_any_int_gain_and_are_one_undoable_action(store):
    store.set_grade("c", "1", "hand", 2)
    qrels = {"1": {"a": 4, "b": -2, "c": 0}, "2": {"a": 1}}
    assert store.import_qrels("c", qrels, queries={"1": "first", "2": "second"}) == 4
    assert store.qrels("c", judge="import") == qrels
    assert store.queries("c") == {"1": "first", "2": "second"}
    # the same file again changes nothing; a changed grade writes one row
    assert store.import_qrels("c", qrels) == 0
    assert store.import_qrels("c", {"1": {"a": 3}}) == 1
    assert store.qrels("c", judge="import")["1"]["a"] == 3
    undone = store.undo("c", judge="import")
    assert undone.rows == 1 and undone.restored_grade == 4
    undone = store.undo("c", judge="import")
    assert undone.rows == 4
    assert store.qrels("c", judge="import") == {}
    assert store.qrels("c") == {"1": {"hand": 2}}  # hand labels untouched
    with pytest.raises(InvalidGrade):
        store.import_qrels("c", {"1": {"a": "high"}})


def test_cranfield_qrels_import_is_fast_and_lossless(store, cranfield_dir):
    from rerank_core.trec import read_beir_qrels

    qrels = read_beir_qrels(cranfield_dir / "qrels" / "test.tsv")
    n = sum(len(d) for d in qrels.values())
    assert n == 1612
    t0 = time.perf_counter()
    assert store.import_qrels("cranfield", qrels) == n
    elapsed = time.perf_counter() - t0
    assert elapsed < 1.0, f"importing 1612 judgements took {elapsed:.2f}s"
    back = store.qrels("cranfield")
    as_set = {(q, d, g) for q, docs in back.items() for d, g in docs.items()}
    assert as_set == {(q, d, g) for q, docs in qrels.items() for d, g in docs.items()}
    assert store.judgement_count("cranfield") == n


def test_eight_threads_writing_at_once_lose_nothing(db_url):
    stores = [JudgementStore(db_url) for _ in range(8)]
    errors: list[BaseException] = []
    start = threading.Barrier(8)

    def write(t: int) -> None:
        try:
            start.wait()
            for i in range(50):
                stores[t].set_grade("c", f"q{t}", f"d{i}", i % 4, judge=f"judge{t}")
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(t,)) for t in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []
    qrels = stores[0].qrels("c")
    assert sum(len(d) for d in qrels.values()) == 400
    assert qrels["q5"]["d49"] == 49 % 4
    assert len(stores[0].history("c")) == 400
    for s in stores:
        s.close()


def test_two_processes_writing_the_same_pairs_lose_nothing(db_url):
    script = textwrap.dedent(
        """
        import sys
        from rerank_core.judgements import JudgementStore
        s = JudgementStore(sys.argv[1])
        for i in range(100):
            s.set_grade("c", "q", f"d{i % 10}", i % 4, judge=sys.argv[2])
        s.close()
        """
    )
    JudgementStore(db_url).close()  # create the schema before both start
    procs = [
        subprocess.Popen([sys.executable, "-c", script, db_url, judge], cwd=ROOT, stderr=subprocess.PIPE)
        for judge in ("alice", "bob")
    ]
    for p in procs:
        _, err = p.communicate(timeout=60)
        assert p.returncode == 0, err.decode()
    with JudgementStore(db_url) as s:
        history = s.history("c")
        assert len(history) == 200
        assert {h["judge"] for h in history} == {"alice", "bob"}
        assert s.grades("c", "q", judge="alice") == {f"d{i}": (90 + i) % 4 for i in range(10)}


def _result(method: str, ids: list[str], latency: float, error: MethodError | None = None) -> RerankResult:
    items = tuple(
        RankedItem(doc_id=d, rank=i + 1, score=10.0 - i, first_stage_rank=i + 1) for i, d in enumerate(ids)
    )
    return RerankResult(method=method, scale=ScoreScale.LOGIT, items=items, latency_ms=latency, error=error)


def test_shadow_log_records_and_exports_runs(store):
    store.log_run("a", "q one", "bm25", first_stage="bm25", depth=50, latency_ms=2.0, top=[("x", 1.5)])
    n = store.log_results(
        "b",
        "q two",
        [
            _result("cross-encoder", ["d3", "d1", "d2"], 120.5),
            _result("cohere", [], 0.0, MethodError(kind="missing-api-key", message="no key", hint="set it")),
        ],
        first_stage="bm25",
        depth=100,
        top_n=2,
    )
    assert n == 2
    log = store.shadow_log()
    assert [e["method"] for e in log] == ["cohere", "cross-encoder", "bm25"]  # newest first
    cohere, cross, _ = log
    assert not cohere["available"] and "no key" in cohere["error"] and cohere["top"] == []
    assert cross["available"] and cross["depth"] == 100 and cross["latency_ms"] == 120.5
    assert [t["doc_id"] for t in cross["top"]] == ["d3", "d1"]
    assert [e["corpus_id"] for e in store.shadow_log("a")] == ["a"]
    assert len(store.shadow_log(limit=1)) == 1
    text = shadow_log_csv(log)
    lines = text.strip().splitlines()
    assert lines[0].startswith("id,created_at,corpus_id,query_text,method")
    assert len(lines) == 4 and "d3:10 d1:9" in text
    assert store.corpora() == ["a", "b"]


def test_closed_store_says_so(sqlite_url):
    db_url = sqlite_url
    s = JudgementStore(db_url)
    s.close()
    with pytest.raises(ConfigError, match="closed"):
        s.qrels("c")


@pytest.mark.parametrize(
    "url, shown",
    [
        ("postgresql://bob:s3cret@127.0.0.1:1/labels", "127.0.0.1"),
        ("nonsense:://bob:s3cret@host", "***"),
        ("nodriver://bob:s3cret@somehost/db", "somehost"),
        ("sqlite://bob:s3cret@/x.sqlite", "x.sqlite"),
    ],
)
def test_bad_urls_give_a_config_error_without_the_password(url, shown):
    with pytest.raises(ConfigError) as info:
        JudgementStore(url)
    err = info.value
    assert "s3cret" not in str(err) and "s3cret" not in repr(err) and "s3cret" not in (err.hint or "")
    assert shown in str(err)
    assert err.hint
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_a_file_that_is_not_a_database_is_named(tmp_path):
    bad = tmp_path / "notes.sqlite"
    bad.write_text("these are my notes, not a database" * 20)
    with pytest.raises(ConfigError, match="not a database") as info:
        JudgementStore(f"sqlite:///{bad}")
    assert str(bad) in str(info.value)


def test_an_unwritable_location_is_named(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ConfigError, match="cannot create the folder") as info:
        JudgementStore(f"sqlite:///{blocker / 'sub' / 'j.sqlite'}")
    assert "RERANK_DATA_DIR" in info.value.hint
