"""Schema migrations of the label store, on SQLite and on a real PostgreSQL server.

A store written by the first release (no version table) opens with every row kept, the new
columns and tables in place and ``alembic_version`` at the head; two processes opening it at once
migrate it once; the migrated schema and the store's table definitions agree exactly."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import legacy_store
import pytest
from sqlalchemy import create_engine, inspect, text

from rerank_core import migrations
from rerank_core.errors import ConfigError
from rerank_core.judgements import JudgementStore, metadata, migrate

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request, tmp_path) -> str:
    if request.param == "postgres":
        return request.getfixturevalue("postgres_url")
    return f"sqlite:///{tmp_path / 'judgements.sqlite'}"


def _schema_diff(url: str, target) -> list:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), target)
    finally:
        engine.dispose()
    # the version table is Alembic's own, not part of the store's metadata
    return [d for d in diff if not (d[0] == "remove_table" and d[1].name == migrations.VERSION_TABLE)]


def _versions(url: str) -> list[str]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return list(conn.execute(text("SELECT version_num FROM alembic_version")).scalars())
    finally:
        engine.dispose()


def test_the_revisions_are_a_single_line_ending_at_head():
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(migrations.alembic_config())
    assert script.get_heads() == [migrations.HEAD]
    chain = [rev.revision for rev in script.walk_revisions()]  # newest first
    assert tuple(reversed(chain)) == migrations.REVISIONS


def test_a_new_store_is_at_head_and_matches_the_table_definitions(db_url):
    with JudgementStore(db_url) as store:
        assert store.schema_revision() == migrations.HEAD
        assert store._opened_at_revision is None  # it was new
    assert _versions(db_url) == [migrations.HEAD]
    assert _schema_diff(db_url, metadata) == []


def test_revision_1_is_exactly_the_first_release_schema(db_url):
    from alembic import command

    engine = create_engine(db_url)
    try:
        with engine.begin() as conn:
            command.upgrade(migrations.alembic_config(conn), "0001")
    finally:
        engine.dispose()
    assert _versions(db_url) == ["0001"]
    assert _schema_diff(db_url, legacy_store.metadata) == []


def test_a_store_of_the_first_release_keeps_every_row_and_gains_the_new_schema(db_url):
    legacy_store.write_legacy_store(db_url)
    engine = create_engine(db_url)
    assert migrations.VERSION_TABLE not in inspect(engine).get_table_names()
    engine.dispose()

    with JudgementStore(db_url) as store:
        assert store._opened_at_revision == "0001"  # stamped 0001, then upgraded
        assert store.schema_revision() == migrations.HEAD
        sample, cran = "Sample [chunks: 200 words]", "cranfield"
        assert store.corpora() == [sample, cran] or store.corpora() == sorted([sample, cran])
        # every judgement row, undone ones included, with its values
        history = store.history(sample) + store.history(cran)
        assert len(history) == len(legacy_store.JUDGEMENTS)
        for got, want in zip(history, legacy_store.JUDGEMENTS, strict=True):
            for key in ("corpus_id", "query_id", "doc_id", "judge", "grade", "action", "active"):
                assert got[key] == want[key], key
            assert got["created_at"].replace(tzinfo=None) == want["created_at"]
            assert got["rationale"] is None
        # current values as the first release read them
        assert store.grades(sample, "q-3f1a2b3c4d5e") == {"d1#0": 2, "d2#1": None}
        assert store.qrels(cran) == {"1": {"184": 4, "29": -1}}
        assert store.queries(sample) == {"q-3f1a2b3c4d5e": "what is lift"}
        assert store.queries(cran) == {"1": "what similarity laws must be obeyed"}
        log = store.shadow_log(sample)
        assert [e["method"] for e in log] == ["cohere", "bm25"]
        assert log[1]["top"] == [{"doc_id": "d1#0", "score": 7.25}, {"doc_id": "d2#1", "score": None}]
        assert not log[0]["available"] and log[0]["error"] == "no key Fix: set it"
        assert all(e["fallback"] is False and e["precision"] is None and e["extra"] == {} for e in log)
        # undo still takes back the legacy import as one action
        assert store.undo(cran, judge="import").rows == 2
        # and the new columns and tables work
        store.set_grade(sample, "q-3f1a2b3c4d5e", "d3#0", 1, rationale="mentions lift once")
        store.set_guideline(sample, "Grade 3 only for a full answer.")
        store.set_tags(sample, {"q-3f1a2b3c4d5e": ["aero"]})
        assert store.judgements(sample, judge="default")[-1].rationale == "mentions lift once"
    assert _versions(db_url) == [migrations.HEAD]
    assert _schema_diff(db_url, metadata) == []
    # opening again is a no-op that finds the head
    with JudgementStore(db_url) as again:
        assert again.schema_revision() == migrations.HEAD


def test_two_processes_opening_an_old_store_at_once_migrate_it_once(db_url):
    legacy_store.write_legacy_store(db_url)
    script = textwrap.dedent(
        """
        import sys
        from rerank_core.judgements import JudgementStore
        s = JudgementStore(sys.argv[1])
        print(s._opened_at_revision)
        s.set_grade("cranfield", "1", "doc-" + sys.argv[2], 1, judge=sys.argv[2])
        s.close()
        """
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, db_url, f"p{i}"],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(3)
    ]
    outs = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        outs.append(out.strip())
    # exactly one process found the old store (stamped 0001) and migrated it; the others found it done
    assert sorted(outs) == ["0001", "0002", "0002"]
    assert _versions(db_url) == [migrations.HEAD]
    with JudgementStore(db_url) as store:
        assert store.judges("cranfield") == ["import", "p0", "p1", "p2"]
        assert len(store.history("cranfield")) == 2 + 3


def test_an_old_store_that_cannot_be_written_gives_a_config_error(tmp_path):
    path = tmp_path / "old.sqlite"
    legacy_store.write_legacy_store(f"sqlite:///{path}")
    with pytest.raises(ConfigError, match="read-only") as info:
        JudgementStore(f"sqlite:///file:{path}?mode=ro&uri=true")
    assert "writable" in info.value.hint
    # the store is untouched: still the first release's schema
    engine = create_engine(f"sqlite:///{path}")
    assert migrations.VERSION_TABLE not in inspect(engine).get_table_names()
    engine.dispose()


def test_a_store_at_head_opens_read_only_and_refuses_writes_clearly(tmp_path, monkeypatch):
    path = tmp_path / "db" / "labels.sqlite"
    with JudgementStore(f"sqlite:///{path}") as store:
        store.set_grade("c", "q", "d", 2)
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    monkeypatch.chdir(workdir)
    with JudgementStore(f"sqlite:///file:{path}?mode=ro&uri=true") as ro:
        # a SQLite URI names the file after "file:": no "file:" folder appears where the app was started
        assert list(workdir.iterdir()) == []
        assert ro.qrels("c") == {"q": {"d": 2}}
        with pytest.raises(ConfigError, match="read-only") as info:
            ro.set_grade("c", "q", "d", 3)
        assert "writable" in info.value.hint
        assert ro.qrels("c") == {"q": {"d": 2}}


def test_a_newer_schema_is_refused_with_a_clear_message(db_url):
    JudgementStore(db_url).close()
    engine = create_engine(db_url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '0099'"))
    engine.dispose()
    with pytest.raises(ConfigError, match="0099") as info:
        JudgementStore(db_url)
    assert "upgrade the app" in info.value.hint


def test_migrate_function_and_command(db_url, capsys):
    from rerank_core import labels_cli

    legacy_store.write_legacy_store(db_url)
    assert labels_cli.main(["labels", "migrate", "--db", db_url]) == 0
    assert f"upgraded from revision 0001 to {migrations.HEAD}" in capsys.readouterr().err
    assert migrate(db_url) == (migrations.HEAD, migrations.HEAD)
    assert labels_cli.main(["labels", "migrate", "--db", db_url]) == 0
    assert f"already at revision {migrations.HEAD}" in capsys.readouterr().err


def test_the_migrate_command_on_a_new_database(tmp_path, capsys):
    from rerank_core import labels_cli

    url = f"sqlite:///{tmp_path / 'new.sqlite'}"
    assert labels_cli.main(["labels", "migrate", "--db", url]) == 0
    assert f"created at revision {migrations.HEAD}" in capsys.readouterr().err
    assert migrate(url) == (migrations.HEAD, migrations.HEAD)
