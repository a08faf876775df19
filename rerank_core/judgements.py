"""Relevance judgements and the shadow log, stored in SQLite (default) or any SQLAlchemy database.

Design
------
* ``judgements`` is an append-only history. Every hand label, skip or imported row adds a row;
  nothing is ever updated except the ``active`` flag that :meth:`JudgementStore.undo` clears. The
  current value of a (corpus, query, document, judge) is its newest active row (highest ``id``).
  Rows written together (one click, or one whole import) share an ``action`` id, and undo takes
  back the judge's newest action as a whole, which restores whatever value was current before it.
* A grade is an int gain: hand labels are 0 not relevant, 1 partly, 2 relevant, 3 perfect;
  ``None`` means skipped (seen, not decided). Imports keep any int (Cranfield uses 1..4, TREC
  collections use negative grades for junk) so qrels round-trip exactly.
* Several judges may label the same pair. Asked for every judge at once (``judge=None``), the
  newest graded judgement wins; a skip never hides another judge's grade (a pair that every judge
  skipped reads as skipped).
* Writes are short transactions that only ever insert (or flip ``active``), so two people labelling
  at the same time never overwrite each other. On SQLite the store turns on WAL (readers never
  block the writer), sets a busy timeout, and starts write transactions with ``BEGIN IMMEDIATE`` so
  concurrent writers queue instead of failing. One engine is shared per URL inside a process.
* ``shadow_log`` records every query run on the compare page: method, first stage, depth,
  latency, model load time, availability, error, whether the order was a fallback, the numeric
  precision, the top ids with their scores (JSON) and ``extra`` (JSON: usage a service reported,
  the score scale).
* A judgement may carry a ``rationale`` (an LLM judge's or a person's reason). Judges whose name
  starts with ``llm:`` are LLM judges; every other judge is a person (``people_only=True`` reads
  only theirs).
* Each corpus may have one judging ``guideline`` and tags per query (``query_tags``). A corpus id
  moved to a new one (:meth:`JudgementStore.rekey_corpus`) is recorded in ``corpus_aliases``.
* The schema is versioned with Alembic (``rerank_core/migrations``). The first open of a database
  in a process brings it to the newest revision, under a lock so two processes never both migrate;
  a store of the first release (no version table) is stamped as revision 0001 and upgraded.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import threading
import unicodedata
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    and_,
    delete,
    event,
    exists,
    false,
    func,
    insert,
    select,
    update,
)
from sqlalchemy import text as sql_text
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import (
    ArgumentError,
    IntegrityError,
    NoSuchModuleError,
    OperationalError,
    SQLAlchemyError,
)

from rerank_core.config import Settings, load_settings
from rerank_core.errors import ConfigError, RerankError

if TYPE_CHECKING:
    from rerank_core.types import Dataset, RerankResult

#: the grades a person can give by hand (imports accept any int gain)
HAND_GRADES: dict[int, str] = {0: "not relevant", 1: "partly relevant", 2: "relevant", 3: "perfect"}
DEFAULT_JUDGE = "default"
IMPORT_JUDGE = "import"
#: judges whose name starts with this are LLM judges; every other judge is a person
LLM_JUDGE_PREFIX = "llm:"
#: seconds SQLite waits for a lock before giving up
SQLITE_BUSY_TIMEOUT_S = 30.0


class InvalidGrade(RerankError, ValueError):
    """A grade, judge or id that cannot be stored."""

    kind = "invalid-grade"


# --------------------------------------------------------------------------------------------------
# schema: the newest revision of rerank_core/migrations (a test checks that the two agree)
# --------------------------------------------------------------------------------------------------
metadata = MetaData()

queries_table = Table(
    "queries",
    metadata,
    Column("corpus_id", String(255), primary_key=True),
    Column("query_id", String(255), primary_key=True),
    Column("text", Text, nullable=False),
    Column("created_at", DateTime, nullable=False),
)

judgements_table = Table(
    "judgements",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("corpus_id", String(255), nullable=False),
    Column("query_id", String(255), nullable=False),
    Column("doc_id", String(255), nullable=False),
    Column("judge", String(255), nullable=False),
    Column("grade", Integer, nullable=True),  # NULL = skipped
    Column("created_at", DateTime, nullable=False),
    Column("action", String(32), nullable=False),  # rows written together share it; undo takes all
    Column("active", Boolean, nullable=False, default=True),
    Column("undone_at", DateTime, nullable=True),
    Column("rationale", Text, nullable=True),  # why: an LLM judge's or a person's reason
    Index("ix_judgements_pair", "corpus_id", "query_id", "doc_id", "judge", "active"),
    Index("ix_judgements_judge", "corpus_id", "judge", "active", "id"),
)

shadow_table = Table(
    "shadow_log",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("corpus_id", String(255), nullable=False),
    Column("query_text", Text, nullable=False),
    Column("method", String(255), nullable=False),
    Column("first_stage", String(255), nullable=False, default=""),
    Column("depth", Integer, nullable=False, default=0),
    Column("latency_ms", Float, nullable=False, default=0.0),
    Column("model_load_s", Float, nullable=False, default=0.0),
    Column("available", Boolean, nullable=False, default=True),
    Column("error", Text, nullable=True),
    Column("top", Text, nullable=False, default="[]"),  # JSON [[doc_id, score], ...]
    Column("created_at", DateTime, nullable=False),
    Column("fallback", Boolean, nullable=False, default=False, server_default=false()),
    Column("precision", String(64), nullable=True),  # fp32, bf16, onnx-int8, ...; NULL = not applicable
    Column("extra", Text, nullable=True),  # JSON: {"usage": {...}, "scale": "..."}
    Index("ix_shadow_corpus", "corpus_id", "id"),
)

guidelines_table = Table(
    "guidelines",
    metadata,
    Column("corpus_id", String(255), primary_key=True),
    Column("text", Text, nullable=False),
    Column("updated_at", DateTime, nullable=False),
    Column("updated_by", String(255), nullable=True),
)

tags_table = Table(
    "query_tags",
    metadata,
    Column("corpus_id", String(255), primary_key=True),
    Column("query_id", String(255), primary_key=True),
    Column("tag", String(255), primary_key=True),
)

aliases_table = Table(
    "corpus_aliases",
    metadata,
    Column("old_id", String(255), primary_key=True),
    Column("new_id", String(255), nullable=False),
    Column("migrated_at", DateTime, nullable=False),
)


# --------------------------------------------------------------------------------------------------
# result types
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Judgement:
    """The current judgement of one judge for one (query, document)."""

    corpus_id: str
    query_id: str
    doc_id: str
    judge: str
    grade: int | None  # None = skipped
    created_at: datetime
    rationale: str | None = None

    @property
    def skipped(self) -> bool:
        return self.grade is None

    @property
    def by_llm(self) -> bool:
        return is_llm_judge(self.judge)


@dataclass(frozen=True)
class Guideline:
    """The judging guideline of a corpus."""

    corpus_id: str
    text: str
    updated_at: datetime
    updated_by: str | None = None


@dataclass(frozen=True)
class CorpusSummary:
    """What the store holds for one corpus.

    ``judgements`` counts the current graded (query, document, judge) triples and ``skipped`` the
    current skips; ``judged_queries`` the queries with at least one current grade."""

    corpus_id: str
    queries: int
    judged_queries: int
    judgements: int
    skipped: int
    judges: tuple[str, ...]
    shadow_entries: int
    tagged_queries: int
    has_guideline: bool


@dataclass(frozen=True)
class UndoResult:
    """What :meth:`JudgementStore.undo` took back.

    ``query_id``/``doc_id``/``undone_grade`` describe the newest row of the undone action (the only
    row for a hand label); ``rows`` counts every row of the action (an undone import has many).
    ``restored`` says whether an earlier judgement of the same judge is current again, and
    ``restored_grade`` is its value (None with ``restored`` = it was a skip).
    """

    corpus_id: str
    judge: str
    query_id: str
    doc_id: str
    undone_grade: int | None
    restored: bool
    restored_grade: int | None
    rows: int = 1

    @property
    def message(self) -> str:
        was = _grade_word(self.undone_grade)
        now = _grade_word(self.restored_grade) if self.restored else "no label"
        if self.rows > 1:
            return f"Undid {self.rows} labels by {self.judge!r} (an import or batch)."
        return f"Undid {was} for document {self.doc_id} on query {self.query_id}; it is now {now}."


def _grade_word(grade: int | None) -> str:
    if grade is None:
        return "skipped"
    return f"{grade} ({HAND_GRADES[grade]})" if grade in HAND_GRADES else str(grade)


# --------------------------------------------------------------------------------------------------
# ids and validation
# --------------------------------------------------------------------------------------------------
_WS = re.compile(r"\s+")


def normalise_query(text: str) -> str:
    """The form two typed queries must share to be the same query: NFKC, case-folded, single spaces."""
    return _WS.sub(" ", unicodedata.normalize("NFKC", text)).strip().casefold()


def query_id_for(text: str) -> str:
    """A stable id for a typed query: ``"q-"`` + 12 hex digits of the normalised text's SHA-256.

    ``"What is BM25?"`` and ``"  what is  bm25?"`` get the same id. Imported queries keep the ids of
    their files; this is only for queries typed into the app.
    """
    norm = normalise_query(text)
    if not norm:
        raise InvalidGrade("an empty query has no id", hint="type a query first")
    return "q-" + hashlib.sha256(norm.encode("utf-8", "surrogatepass")).hexdigest()[:12]


def is_llm_judge(judge: str) -> bool:
    """Whether a judge name is an LLM judge's (``llm:<model>``); every other judge is a person."""
    return judge.startswith(LLM_JUDGE_PREFIX)


def _check_id(name: str, value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidGrade(f"{name} must be a non-empty string, got {value!r}")
    if len(value) > 255:
        raise InvalidGrade(f"{name} is longer than 255 characters: {value[:40]!r}...")
    if "\x00" in value:
        raise InvalidGrade(f"{name} {value[:40]!r} contains a NUL character, which databases cannot store")
    return value


def _clean_text(value: str) -> str:
    """Free text as every database can store it: a NUL character (PostgreSQL refuses it) becomes
    U+FFFD, the replacement character."""
    return value.replace("\x00", "\ufffd")


def _check_hand_grade(grade: object) -> int | None:
    if grade is None:
        return None
    if isinstance(grade, bool) or not isinstance(grade, int) or grade not in HAND_GRADES:
        raise InvalidGrade(
            f"grade {grade!r} is not a hand label",
            hint="use 0 (not relevant), 1 (partly), 2 (relevant), 3 (perfect) or None to skip",
        )
    return grade


def _check_gain(grade: object) -> int | None:
    if grade is None:
        return None
    if isinstance(grade, bool):
        raise InvalidGrade(f"grade {grade!r} is a bool, not an int gain")
    if isinstance(grade, float) and grade.is_integer():
        return int(grade)
    if not isinstance(grade, int):
        raise InvalidGrade(f"grade {grade!r} is not an integer gain", hint="qrels grades are integers")
    return grade


def _now() -> datetime:
    """UTC now, stored naive (SQLite keeps no zone); read back with :func:`_utc`."""
    return datetime.now(UTC).replace(tzinfo=None)


def _utc(value: datetime | str | None) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _naive_utc(value: datetime | str | None) -> datetime:
    aware = _utc(value)
    return _now() if aware is None else aware.replace(tzinfo=None)


# --------------------------------------------------------------------------------------------------
# engines: one per URL per process, shared by every store object on that URL
# --------------------------------------------------------------------------------------------------
#: URL -> (engine, stores using it, schema revision before this process first opened it)
_ENGINES: dict[str, tuple[Engine, int, str | None]] = {}
_ENGINES_LOCK = threading.Lock()
_PASSWORD_IN_URL = re.compile(r"(://[^/@:]*:)[^@/]*@")


def safe_url(url: str | URL) -> str:
    """The URL as it may be shown: any password replaced by ``***``."""
    if isinstance(url, URL):
        return url.render_as_string(hide_password=True)
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - an unparseable URL is still scrubbed below
        return _PASSWORD_IN_URL.sub(r"\1***@", str(url))


def _scrub(text: str, url: URL | None) -> str:
    if url is not None and url.password:
        text = text.replace(str(url.password), "***")
    return _PASSWORD_IN_URL.sub(r"\1***@", text)


_DRIVER_HINTS = {
    "postgresql": "pip install 'psycopg[binary]' and use postgresql+psycopg://user:password@host/db",
    "mysql": "pip install pymysql and use mysql+pymysql://user:password@host/db",
    "mariadb": "pip install pymysql and use mariadb+pymysql://user:password@host/db",
}


def _sqlite_on_connect(dbapi_conn: Any, _record: Any) -> None:
    # Hand transaction control to SQLAlchemy (the sqlite3 module's own implicit BEGIN is off), then
    # WAL so readers never block the writer, and a busy timeout so writers queue instead of failing.
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    try:
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA busy_timeout={int(SQLITE_BUSY_TIMEOUT_S * 1000)}")
    finally:
        cur.close()


def _sqlite_on_begin(conn: Connection) -> None:
    # A write transaction takes the write lock at BEGIN, so two writers never both read and then
    # fail to upgrade (SQLITE_BUSY without waiting); reads stay deferred and never block anyone.
    conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("rerank_write") else "BEGIN")


def _create_engine(url: URL, shown: str) -> tuple[Engine, str | None]:
    from sqlalchemy import create_engine

    kwargs: dict[str, Any] = {"future": True}
    is_sqlite = url.get_backend_name() == "sqlite"
    memory = is_sqlite and url.database in (None, "", ":memory:")
    if is_sqlite:
        if memory:
            from sqlalchemy.pool import StaticPool

            kwargs["poolclass"] = StaticPool
        else:
            database = url.database or ""
            if str(url.query.get("uri", "")).lower() in ("true", "1") and database.startswith("file:"):
                database = database[len("file:") :].split("?", 1)[0]  # a SQLite URI: the path follows "file:"
            db_path = Path(database).expanduser()
            try:
                if str(url.query.get("mode", "")) != "ro":  # read-only never creates anything
                    db_path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise ConfigError(
                    f"cannot create the folder for the judgement database {shown}: {exc.strerror or exc}",
                    hint="set RERANK_DATA_DIR (or db_url in rerank.toml) to a writable location",
                ) from None
        kwargs["connect_args"] = {"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_S}
    else:
        kwargs["pool_pre_ping"] = True
    try:
        engine = create_engine(url, **kwargs)
    except ArgumentError as exc:
        raise ConfigError(
            f"{shown!r} is not a valid database URL: {_scrub(str(exc).splitlines()[0], url)}",
            hint="use e.g. sqlite:////absolute/path/judgements.sqlite or "
            "postgresql+psycopg://user:password@host/db (RERANK_DB_URL or db_url in rerank.toml)",
        ) from None
    except (NoSuchModuleError, ImportError) as exc:
        backend = url.get_backend_name()
        raise ConfigError(
            f"cannot open the judgement database {shown}: no SQLAlchemy driver for {url.drivername!r} "
            f"({_scrub(str(exc), url)})",
            hint=_DRIVER_HINTS.get(backend, f"install the Python driver for {backend} or fix the URL"),
        ) from None
    if is_sqlite and not memory:
        event.listen(engine, "connect", _sqlite_on_connect)
        event.listen(engine, "begin", _sqlite_on_begin)
    elif is_sqlite:
        event.listen(engine, "connect", lambda c, r: setattr(c, "isolation_level", None))
        event.listen(engine, "begin", _sqlite_on_begin)
    try:
        before = _ensure_schema(engine, url, shown)[0]
    except ConfigError:
        engine.dispose()
        raise
    except SQLAlchemyError as exc:
        engine.dispose()
        detail = _scrub(str(getattr(exc, "orig", None) or exc).splitlines()[0], url)
        if _is_read_only(exc):
            raise _read_only_error(shown, is_sqlite, "its schema must be upgraded first") from None
        if is_sqlite:
            hint = (
                "point RERANK_DB_URL (or db_url in rerank.toml) at a new or existing SQLite file you "
                "can write, or move the file that is in the way"
            )
        else:
            hint = (
                "check that the database server is running and reachable, that the user and password "
                "are right and may create tables (RERANK_DB_URL or db_url in rerank.toml)"
            )
        raise ConfigError(f"cannot open the judgement database {shown}: {detail}", hint=hint) from None
    return engine, before


#: pg_advisory_xact_lock keys: one for schema migrations, one namespace for per-judge undo
_MIGRATION_LOCK = 0x5245524B  # "RERK"
_UNDO_LOCK_NS = 0x554E44  # "UND"


def _ensure_schema(engine: Engine, url: URL, shown: str) -> tuple[str | None, str]:
    """Bring the database to the newest schema revision (see ``rerank_core/migrations``).

    A database already at the head costs one small read. Otherwise the migration runs in ONE
    transaction that first takes a lock (SQLite ``BEGIN IMMEDIATE``, PostgreSQL
    ``pg_advisory_xact_lock``) and then looks again, so of two processes opening an old store at
    once one migrates and the other finds it done. Returns ``(revision before, revision after)``."""
    from rerank_core import migrations

    with engine.connect() as conn:
        with conn.begin():
            current = migrations.current_revision(conn)
    if current == migrations.HEAD:
        return current, current
    if current is not None and current not in migrations.REVISIONS:
        raise ConfigError(
            f"the judgement database {shown} has schema revision {current!r}, which this version of "
            f"the app does not know (it knows up to {migrations.HEAD})",
            hint="upgrade the app to the release that wrote this database, or use another database",
        )
    with engine.connect() as conn:
        conn.execution_options(rerank_write=True)  # SQLite: BEGIN IMMEDIATE, the write lock
        with conn.begin():
            if url.get_backend_name() == "postgresql":
                conn.execute(sql_text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK})
            return migrations.upgrade(conn)


def migrate(url: str | None = None, settings: Settings | None = None) -> tuple[str | None, str]:
    """Open the database (which migrates it) and return ``(revision before, revision now)``.

    ``before`` is None for a new database and ``"0001"`` for a store of the first release (which
    has no version table). This is what ``python -m rerank_core labels migrate`` runs."""
    from rerank_core import migrations

    store = JudgementStore(url, settings=settings)
    try:
        before = store._opened_at_revision
        with store._tx() as conn:
            now = migrations.current_revision(conn) or ""
    finally:
        store.close()
    return before, now


def _is_read_only(exc: BaseException) -> bool:
    text_ = str(getattr(exc, "orig", None) or exc).lower()
    return any(
        w in text_ for w in ("readonly database", "read-only", "read only", "unable to open database file")
    )


def _read_only_error(shown: str, is_sqlite: bool, why: str) -> ConfigError:
    return ConfigError(
        f"the judgement database {shown} is read-only, and {why}",
        hint=(
            "make the file and its folder writable (SQLite needs to write next to the file too), or "
            "point RERANK_DB_URL (or db_url in rerank.toml) at a copy you can write"
            if is_sqlite
            else "connect as a user that may write (and alter) these tables (RERANK_DB_URL or db_url)"
        ),
    )


def _acquire_engine(url: URL) -> tuple[Engine, str | None]:
    """The shared engine of ``url`` and the schema revision the database had when this process
    first opened it (None: a new database)."""
    key = url.render_as_string(hide_password=False)
    with _ENGINES_LOCK:
        if key in _ENGINES:
            engine, count, before = _ENGINES[key]
            _ENGINES[key] = (engine, count + 1, before)
            return engine, before
        engine, before = _create_engine(url, safe_url(url))
        _ENGINES[key] = (engine, 1, before)
        return engine, before


def _release_engine(url: URL) -> None:
    key = url.render_as_string(hide_password=False)
    with _ENGINES_LOCK:
        if key not in _ENGINES:
            return
        engine, count, before = _ENGINES[key]
        if count <= 1:
            del _ENGINES[key]
            engine.dispose()
        else:
            _ENGINES[key] = (engine, count - 1, before)


# --------------------------------------------------------------------------------------------------
# the store
# --------------------------------------------------------------------------------------------------
class JudgementStore:
    """Judgements, queries, tags, guidelines and the shadow log in one database.

    ``url`` is any SQLAlchemy URL; by default ``settings.resolved_db_url`` (a SQLite file in the data
    directory, created if missing). Opening a database brings its schema to the newest revision
    (see the module docstring). Safe to share between threads. Call :meth:`close` when done (or
    use it as a context manager).
    """

    def __init__(self, url: str | None = None, settings: Settings | None = None) -> None:
        if url is None:
            settings = settings or load_settings()
            url = settings.resolved_db_url
        shown = safe_url(url)
        try:
            self._url = make_url(url)
        except (ArgumentError, ValueError):
            raise ConfigError(
                f"{shown!r} is not a database URL",
                hint="use e.g. sqlite:///path/to/judgements.sqlite or "
                "postgresql+psycopg://user:password@host/db (RERANK_DB_URL or db_url in rerank.toml)",
            ) from None
        self.url = shown
        self._engine: Engine | None
        self._engine, self._opened_at_revision = _acquire_engine(self._url)
        self._backend = self._url.get_backend_name()
        # resolve_query_id's indexes: stored queries per corpus (with the version they were built
        # at), and the last few dataset query mappings (kept by identity, see resolve_query_id)
        self._index_lock = threading.Lock()
        self._stored_index: dict[str, tuple[tuple[int, Any], dict[str, str]]] = {}
        self._dataset_index: list[tuple[Mapping[str, str], int, dict[str, str]]] = []

    # -- lifecycle ---------------------------------------------------------------------------------
    def close(self) -> None:
        if self._engine is not None:
            self._engine = None
            _release_engine(self._url)

    def __enter__(self) -> JudgementStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"JudgementStore({self.url!r})"

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            raise ConfigError(f"the judgement store {self.url} is closed", hint="open a new JudgementStore")
        return self._engine

    def schema_revision(self) -> str | None:
        """The database's schema revision (``rerank_core.migrations.HEAD`` once opened)."""
        from rerank_core import migrations

        with self._tx() as conn:
            return migrations.current_revision(conn)

    @contextmanager
    def _tx(self, write: bool = False) -> Iterator[Connection]:
        try:
            with self.engine.connect() as conn:
                if write:
                    conn.execution_options(rerank_write=True)
                with conn.begin():
                    yield conn
        except OperationalError as exc:
            if write and _is_read_only(exc):
                raise _read_only_error(self.url, self._backend == "sqlite", "nothing can be saved") from None
            raise

    def _insert_ignore(self, conn: Connection, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
        """Insert rows, leaving out any whose primary key is already there (another writer's)."""
        if not rows:
            return
        if self._backend == "sqlite":
            from sqlalchemy.dialects.sqlite import insert as sqlite_insert

            conn.execute(sqlite_insert(table).on_conflict_do_nothing(), list(rows))
            return
        if self._backend == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as pg_insert

            conn.execute(pg_insert(table).on_conflict_do_nothing(), list(rows))
            return
        for row in rows:  # other databases: one savepoint per row
            try:
                with conn.begin_nested():
                    conn.execute(insert(table), [row])
            except IntegrityError:
                pass

    def _lock(self, conn: Connection, namespace: int, key: str) -> None:
        """On PostgreSQL, serialise writers of ``key`` until the transaction ends (SQLite's
        BEGIN IMMEDIATE already serialises every writer)."""
        if self._backend == "postgresql":
            conn.execute(
                sql_text("SELECT pg_advisory_xact_lock(:ns, hashtext(:key))"), {"ns": namespace, "key": key}
            )

    # -- queries -----------------------------------------------------------------------------------
    @staticmethod
    def query_id_for(text: str) -> str:
        return query_id_for(text)

    def add_query(self, corpus_id: str, text: str, query_id: str | None = None) -> str:
        """Remember a query's text; returns its id (``query_id_for(text)`` unless one is given).

        Adding a known id again updates its text."""
        _check_id("corpus_id", corpus_id)
        if not isinstance(text, str) or not text.strip():
            raise InvalidGrade("query text must be a non-empty string")
        qid = _check_id("query_id", query_id) if query_id is not None else query_id_for(text)
        with self._tx(write=True) as conn:
            self._upsert_queries(conn, corpus_id, {qid: text})
        return qid

    def _upsert_queries(self, conn: Connection, corpus_id: str, queries: Mapping[str, str]) -> None:
        if not queries:
            return
        t = queries_table
        known = dict(
            conn.execute(select(t.c.query_id, t.c.text).where(t.c.corpus_id == corpus_id)).tuples().all()
        )
        at = _now()
        # one microsecond apart, so "in the order they were added" holds on every database
        new = [
            {
                "corpus_id": corpus_id,
                "query_id": _check_id("query_id", str(q)),
                "text": _clean_text(str(text)),
                "created_at": at + timedelta(microseconds=i),
            }
            for i, (q, text) in enumerate(queries.items())
            if q not in known
        ]
        for q, query_text in queries.items():
            query_text = _clean_text(str(query_text))
            if q in known and known[q] != query_text:
                conn.execute(
                    update(t)
                    .where(and_(t.c.corpus_id == corpus_id, t.c.query_id == q))
                    .values(text=query_text)
                )
        self._insert_ignore(conn, t, new)
        self._forget_index(corpus_id)

    def queries(self, corpus_id: str) -> dict[str, str]:
        """Every known query of a corpus, id -> text, in the order they were added."""
        t = queries_table
        with self._tx() as conn:
            rows = conn.execute(
                select(t.c.query_id, t.c.text)
                .where(t.c.corpus_id == corpus_id)
                .order_by(t.c.created_at, t.c.query_id)
            ).tuples()
            return dict(rows.all())

    def corpora(self) -> list[str]:
        """Every corpus id with queries, judgements, shadow-log entries, tags or a guideline, sorted."""
        ids: set[str] = set()
        with self._tx() as conn:
            for table in (queries_table, judgements_table, shadow_table, tags_table, guidelines_table):
                ids.update(conn.execute(select(table.c.corpus_id).distinct()).scalars())
        return sorted(ids)

    # -- one query identity ------------------------------------------------------------------------
    def resolve_query_id(
        self, corpus_id: str, text: str, dataset_queries: Mapping[str, str] | None = None
    ) -> str:
        """The id a typed query is stored under: the dataset query whose normalised text
        (:func:`normalise_query`) equals the text's, else a stored query of this corpus with that
        text (ids from imported files before typed ``q-`` ids), else :func:`query_id_for`.

        Both lookups use an index of normalised texts: the stored one is rebuilt only when the
        corpus's queries change; the dataset one is kept for the last few mappings by identity, so
        pass the same (unchanging) mapping each time, e.g. ``dataset.queries``."""
        norm = normalise_query(text)
        if not norm:
            raise InvalidGrade("an empty query has no id", hint="type a query first")
        if dataset_queries:
            found = self._dataset_lookup(dataset_queries).get(norm)
            if found is not None:
                return found
        found = self._stored_lookup(corpus_id).get(norm)
        return found if found is not None else query_id_for(text)

    def dataset_query_mapping(self, corpus_id: str, dataset_queries: Mapping[str, str]) -> dict[str, str]:
        """Stored query ids whose text matches a dataset query under another id -> that dataset id.

        Feed it to :meth:`rekey_queries` so that queries typed before the dataset was known (``q-``
        ids) and the dataset's own judgements count as one query."""
        index = self._dataset_lookup(dataset_queries)
        out: dict[str, str] = {}
        for qid, query_text in self.queries(corpus_id).items():
            target = index.get(normalise_query(query_text))
            if target is not None and target != qid and qid not in dataset_queries:
                out[qid] = target
        return out

    def _dataset_lookup(self, dataset_queries: Mapping[str, str]) -> dict[str, str]:
        with self._index_lock:
            for mapping, size, index in self._dataset_index:
                if mapping is dataset_queries and size == len(dataset_queries):
                    return index
        index = {}
        for qid, query_text in dataset_queries.items():
            index.setdefault(normalise_query(str(query_text)), str(qid))  # the first id of a text wins
        with self._index_lock:
            self._dataset_index = [(dataset_queries, len(dataset_queries), index), *self._dataset_index[:3]]
        return index

    def _stored_lookup(self, corpus_id: str) -> dict[str, str]:
        t = queries_table
        with self._tx() as conn:
            version = tuple(
                conn.execute(
                    select(func.count(), func.max(t.c.created_at)).where(t.c.corpus_id == corpus_id)
                ).one()
            )
            with self._index_lock:
                cached = self._stored_index.get(corpus_id)
            if cached is not None and cached[0] == version:
                return cached[1]
            rows = conn.execute(
                select(t.c.query_id, t.c.text)
                .where(t.c.corpus_id == corpus_id)
                .order_by(t.c.created_at, t.c.query_id)
            ).all()
        index: dict[str, str] = {}
        for qid, query_text in rows:
            norm = normalise_query(query_text)
            held = index.get(norm)
            if held is None or (held.startswith("q-") and not qid.startswith("q-")):
                index[norm] = qid  # an id from a file beats a typed query's hash id
        with self._index_lock:
            self._stored_index[corpus_id] = ((version[0], version[1]), index)
        return index

    def _forget_index(self, corpus_id: str | None = None) -> None:
        with self._index_lock:
            if corpus_id is None:
                self._stored_index.clear()
            else:
                self._stored_index.pop(corpus_id, None)

    # -- judgements --------------------------------------------------------------------------------
    def set_grade(
        self,
        corpus_id: str,
        query_id: str,
        doc_id: str,
        grade: int | None,
        judge: str = DEFAULT_JUDGE,
        rationale: str | None = None,
    ) -> None:
        """Record a hand label: 0..3, or None for skipped, with an optional reason. Earlier labels
        stay in the history."""
        grade = _check_hand_grade(grade)
        row = self._row(
            corpus_id, query_id, doc_id, judge, grade, _now(), uuid.uuid4().hex, _check_rationale(rationale)
        )
        with self._tx(write=True) as conn:
            conn.execute(insert(judgements_table), [row])

    @staticmethod
    def _row(
        corpus_id: str,
        query_id: str,
        doc_id: str,
        judge: str,
        grade: int | None,
        at: datetime,
        action: str,
        rationale: str | None = None,
    ) -> dict[str, Any]:
        return {
            "corpus_id": _check_id("corpus_id", corpus_id),
            "query_id": _check_id("query_id", query_id),
            "doc_id": _check_id("doc_id", doc_id),
            "judge": _check_id("judge", judge),
            "grade": grade,
            "created_at": at,
            "action": action,
            "active": True,
            "rationale": rationale,
        }

    def undo(self, corpus_id: str, judge: str = DEFAULT_JUDGE) -> UndoResult | None:
        """Take back the judge's newest action in this corpus (one label, or a whole import).

        Returns what was undone, or None when the judge has nothing left to undo. Undo is itself
        recorded (``active`` off, ``undone_at`` set), so the history keeps every row. Two undos by
        one judge at the same time take back two actions, one each."""
        t = judgements_table
        with self._tx(write=True) as conn:
            self._lock(conn, _UNDO_LOCK_NS, f"{len(corpus_id)}:{corpus_id}{judge}")
            newest = (
                select(t.c.id, t.c.action, t.c.query_id, t.c.doc_id, t.c.grade)
                .where(and_(t.c.corpus_id == corpus_id, t.c.judge == judge, t.c.active.is_(True)))
                .order_by(t.c.id.desc())
                .limit(1)
            )
            if self._backend not in ("sqlite", "postgresql"):
                newest = newest.with_for_update()
            last = conn.execute(newest).first()
            if last is None:
                return None
            done = conn.execute(
                update(t)
                .where(
                    and_(
                        t.c.corpus_id == corpus_id,
                        t.c.action == last.action,
                        t.c.judge == judge,
                        t.c.active.is_(True),
                    )
                )
                .values(active=False, undone_at=_now())
            )
            previous = conn.execute(
                select(t.c.grade)
                .where(
                    and_(
                        t.c.corpus_id == corpus_id,
                        t.c.query_id == last.query_id,
                        t.c.doc_id == last.doc_id,
                        t.c.judge == judge,
                        t.c.active.is_(True),
                    )
                )
                .order_by(t.c.id.desc())
                .limit(1)
            ).first()
        return UndoResult(
            corpus_id=corpus_id,
            judge=judge,
            query_id=last.query_id,
            doc_id=last.doc_id,
            undone_grade=last.grade,
            restored=previous is not None,
            restored_grade=previous.grade if previous is not None else None,
            rows=max(1, done.rowcount or 1),
        )

    def _current_rows(
        self,
        conn: Connection,
        corpus_id: str,
        query_id: str | None = None,
        judge: str | None = None,
        judges: Sequence[str] | None = None,
        people_only: bool = False,
    ) -> list[Any]:
        """The newest active row per (query, doc, judge), oldest first, of the judges asked for."""
        t = judgements_table
        cond = [t.c.corpus_id == corpus_id, t.c.active.is_(True)]
        if query_id is not None:
            cond.append(t.c.query_id == query_id)
        if judge is not None:
            cond.append(t.c.judge == judge)
        if judges is not None:
            if isinstance(judges, str):
                raise TypeError("judges is a sequence of judge names; use judge= for one judge")
            cond.append(t.c.judge.in_(list(judges)))
        if people_only:  # case-sensitive on every database (LIKE is not, on SQLite)
            cond.append(func.substr(t.c.judge, 1, len(LLM_JUDGE_PREFIX)) != LLM_JUDGE_PREFIX)
        newest = (
            select(func.max(t.c.id).label("mid"))
            .where(and_(*cond))
            .group_by(t.c.query_id, t.c.doc_id, t.c.judge)
            .subquery()
        )
        stmt = (
            select(t.c.query_id, t.c.doc_id, t.c.judge, t.c.grade, t.c.created_at, t.c.id, t.c.rationale)
            .join(newest, t.c.id == newest.c.mid)
            .order_by(t.c.id)
        )
        return list(conn.execute(stmt).all())

    @staticmethod
    def _merge_judges(rows: Iterable[Any]) -> dict[str, dict[str, int | None]]:
        """query -> doc -> grade, newest graded judge winning; skips only where nobody graded."""
        merged: dict[str, dict[str, int | None]] = {}
        for r in rows:  # oldest first, so later grades overwrite earlier ones
            docs = merged.setdefault(r.query_id, {})
            if r.grade is not None or r.doc_id not in docs:
                docs[r.doc_id] = r.grade
        return merged

    def grades(
        self,
        corpus_id: str,
        query_id: str,
        judge: str | None = None,
        *,
        judges: Sequence[str] | None = None,
        people_only: bool = False,
    ) -> dict[str, int | None]:
        """doc_id -> current grade (None = skipped) for one query.

        ``judge=None`` merges every judge (or those in ``judges``, or only people with
        ``people_only``): the most recent grade wins, and a skip by one judge does not hide another
        judge's grade."""
        with self._tx() as conn:
            rows = self._current_rows(conn, corpus_id, query_id, judge, judges, people_only)
        return self._merge_judges(rows).get(query_id, {})

    def qrels(
        self,
        corpus_id: str,
        judge: str | None = None,
        *,
        judges: Sequence[str] | None = None,
        people_only: bool = False,
    ) -> dict[str, dict[str, int]]:
        """query_id -> doc_id -> grade, skipped pairs left out (judges chosen and merged as in
        :meth:`grades`)."""
        with self._tx() as conn:
            rows = self._current_rows(conn, corpus_id, None, judge, judges, people_only)
        out: dict[str, dict[str, int]] = {}
        for qid, docs in self._merge_judges(rows).items():
            graded = {d: g for d, g in docs.items() if g is not None}
            if graded:
                out[qid] = graded
        return out

    def judgements(
        self,
        corpus_id: str,
        judge: str | None = None,
        query_id: str | None = None,
        *,
        judges: Sequence[str] | None = None,
        people_only: bool = False,
    ) -> list[Judgement]:
        """Every current judgement, one per (query, doc, judge), skipped ones included, oldest first."""
        with self._tx() as conn:
            rows = self._current_rows(conn, corpus_id, query_id, judge, judges, people_only)
        return [
            Judgement(
                corpus_id,
                r.query_id,
                r.doc_id,
                r.judge,
                r.grade,
                _utc(r.created_at),  # type: ignore[arg-type]
                r.rationale,
            )
            for r in rows
        ]

    def judgement_count(self, corpus_id: str, include_skipped: bool = False) -> int:
        """How many (query, doc, judge) currently carry a grade (plus skips if asked)."""
        return sum(1 for j in self.judgements(corpus_id) if include_skipped or j.grade is not None)

    def judges(self, corpus_id: str) -> list[str]:
        """Every judge who ever labelled in this corpus, sorted (``llm:...`` ones are LLM judges)."""
        t = judgements_table
        with self._tx() as conn:
            stmt = select(t.c.judge).where(t.c.corpus_id == corpus_id).distinct()
            return sorted(conn.execute(stmt).scalars())

    def history(self, corpus_id: str, query_id: str | None = None, judge: str | None = None) -> list[dict]:
        """Every row ever written (undone ones too), oldest first: the audit trail."""
        t = judgements_table
        cond = [t.c.corpus_id == corpus_id]
        if query_id is not None:
            cond.append(t.c.query_id == query_id)
        if judge is not None:
            cond.append(t.c.judge == judge)
        with self._tx() as conn:
            rows = conn.execute(select(t).where(and_(*cond)).order_by(t.c.id)).mappings().all()
        return [{**r, "created_at": _utc(r["created_at"]), "undone_at": _utc(r["undone_at"])} for r in rows]

    def import_judgements(
        self,
        corpus_id: str,
        rows: Iterable[Sequence[Any]],
        queries: Mapping[str, str] | None = None,
    ) -> int:
        """Bulk-write ``(query_id, doc_id, grade, judge, created_at[, rationale])`` rows as ONE
        undoable action (``QrelsRead.import_rows()`` gives them from any qrels or judgements file).

        Grades may be any int (or None = skipped). A row equal to the judge's current value (the
        same grade, and the same rationale where the row has one) is not written again, so importing
        the same file twice changes nothing. Returns the rows written."""
        _check_id("corpus_id", corpus_id)
        action = uuid.uuid4().hex
        wanted: dict[tuple[str, str, str], dict[str, Any]] = {}
        for n, item in enumerate(rows, start=1):
            if len(item) not in (5, 6):
                raise InvalidGrade(
                    f"import row {n} has {len(item)} fields",
                    hint="rows are (query_id, doc_id, grade, judge, created_at[, rationale])",
                )
            query_id, doc_id, grade, judge, created_at = item[:5]
            rationale = _check_rationale(item[5] if len(item) == 6 else None)
            row = self._row(
                corpus_id, str(query_id), str(doc_id), judge, _check_gain(grade), _now(), action, rationale
            )
            if created_at is not None:
                row["created_at"] = _naive_utc(created_at)
            wanted[(row["query_id"], row["doc_id"], row["judge"])] = row  # a later duplicate wins
        with self._tx(write=True) as conn:
            if queries:
                self._upsert_queries(conn, corpus_id, {str(k): str(v) for k, v in queries.items()})
            current = {
                (r.query_id, r.doc_id, r.judge): (r.grade, r.rationale)
                for r in self._current_rows(conn, corpus_id)
            }
            todo = [
                row
                for key, row in wanted.items()
                if key not in current
                or current[key][0] != row["grade"]
                or (row["rationale"] is not None and current[key][1] != row["rationale"])
            ]
            if todo:
                conn.execute(insert(judgements_table), todo)
        return len(todo)

    def import_qrels(
        self,
        corpus_id: str,
        qrels: Mapping[str, Mapping[str, int]],
        judge: str = IMPORT_JUDGE,
        queries: Mapping[str, str] | None = None,
    ) -> int:
        """Bulk-import ``qrels[query_id][doc_id] = grade`` (any int gain) as one undoable action.

        ``queries`` (id -> text) are stored too, keeping their ids. Returns the judgements written
        (unchanged ones are skipped)."""
        rows = ((q, d, g, judge, None) for q, docs in qrels.items() for d, g in docs.items())
        return self.import_judgements(corpus_id, rows, queries=queries)

    def import_dataset(
        self, dataset: Dataset, corpus_id: str | None = None, judge: str = IMPORT_JUDGE
    ) -> int:
        """Store a loaded dataset's queries and qrels (e.g. a BEIR folder) under ``corpus_id``."""
        return self.import_qrels(
            corpus_id or dataset.name, dataset.qrels, judge=judge, queries=dataset.queries
        )

    # -- tags and guidelines -----------------------------------------------------------------------
    def set_tags(self, corpus_id: str, tags: Mapping[str, Iterable[str]]) -> int:
        """Set the tags of the given queries (replacing theirs; an empty list clears them; blank tags
        are left out). Other queries keep their tags. Returns the number of tags stored."""
        _check_id("corpus_id", corpus_id)
        rows: list[dict[str, str]] = []
        for qid, given in tags.items():
            _check_id("query_id", qid)
            if isinstance(given, str):
                raise InvalidGrade(
                    f"the tags of query {qid!r} are a string", hint="give a list of tags, e.g. ['hard']"
                )
            seen: list[str] = []
            for tag in given:
                tag = str(tag).strip()
                if not tag:
                    continue
                _check_id("tag", tag)
                if tag not in seen:
                    seen.append(tag)
            rows.extend({"corpus_id": corpus_id, "query_id": qid, "tag": tag} for tag in seen)
        t = tags_table
        with self._tx(write=True) as conn:
            for qid in tags:
                conn.execute(delete(t).where(and_(t.c.corpus_id == corpus_id, t.c.query_id == qid)))
            self._insert_ignore(conn, t, rows)
        return len(rows)

    def tags(self, corpus_id: str) -> dict[str, tuple[str, ...]]:
        """query_id -> its tags (sorted), for the queries of this corpus that have any."""
        t = tags_table
        with self._tx() as conn:
            rows = conn.execute(
                select(t.c.query_id, t.c.tag).where(t.c.corpus_id == corpus_id).order_by(t.c.query_id)
            ).all()
        out: dict[str, list[str]] = {}
        for qid, tag in rows:
            out.setdefault(qid, []).append(tag)
        return {qid: tuple(sorted(ts)) for qid, ts in out.items()}

    def set_guideline(self, corpus_id: str, text: str, *, updated_by: str | None = None) -> None:
        """Set the corpus's judging guideline (an empty text removes it)."""
        _check_id("corpus_id", corpus_id)
        if not isinstance(text, str):
            raise InvalidGrade(f"a guideline is text, not {type(text).__name__}")
        if updated_by is not None:
            _check_id("updated_by", updated_by)
        g = guidelines_table
        with self._tx(write=True) as conn:
            if not text.strip():
                conn.execute(delete(g).where(g.c.corpus_id == corpus_id))
                return
            values = {"text": _clean_text(text), "updated_at": _now(), "updated_by": updated_by}
            self._insert_ignore(conn, g, [{"corpus_id": corpus_id, **values}])
            conn.execute(update(g).where(g.c.corpus_id == corpus_id).values(**values))

    def guideline(self, corpus_id: str) -> Guideline | None:
        """The corpus's judging guideline, or None."""
        g = guidelines_table
        with self._tx() as conn:
            row = conn.execute(select(g).where(g.c.corpus_id == corpus_id)).first()
        if row is None:
            return None
        return Guideline(row.corpus_id, row.text, _utc(row.updated_at), row.updated_by)  # type: ignore[arg-type]

    # -- identity changes and housekeeping ----------------------------------------------------------
    def rekey_corpus(self, old_id: str, new_id: str) -> int:
        """Move everything stored under ``old_id`` (judgements, queries, tags, guideline, shadow
        log) to ``new_id`` in one transaction, and record the move in ``corpus_aliases``.

        Rows already under ``new_id`` stay: the judgement history of both is kept and the newest
        row still wins; a query or tag both have is kept once; of two guidelines the newer one is
        kept. Aliases that pointed to ``old_id`` now point to ``new_id``. Running it again moves
        nothing. Returns the number of rows moved."""
        _check_id("old_id", old_id)
        _check_id("new_id", new_id)
        if old_id == new_id:
            return 0
        moved = 0
        with self._tx(write=True) as conn:
            for table in (judgements_table, shadow_table):
                moved += conn.execute(
                    update(table).where(table.c.corpus_id == old_id).values(corpus_id=new_id)
                ).rowcount
            q, q2 = queries_table, queries_table.alias("q2")
            conn.execute(
                delete(q).where(
                    and_(
                        q.c.corpus_id == old_id,
                        exists().where(and_(q2.c.corpus_id == new_id, q2.c.query_id == q.c.query_id)),
                    )
                )
            )
            moved += conn.execute(update(q).where(q.c.corpus_id == old_id).values(corpus_id=new_id)).rowcount
            t, t2 = tags_table, tags_table.alias("t2")
            conn.execute(
                delete(t).where(
                    and_(
                        t.c.corpus_id == old_id,
                        exists().where(
                            and_(t2.c.corpus_id == new_id, t2.c.query_id == t.c.query_id, t2.c.tag == t.c.tag)
                        ),
                    )
                )
            )
            moved += conn.execute(update(t).where(t.c.corpus_id == old_id).values(corpus_id=new_id)).rowcount
            g = guidelines_table
            old_g = conn.execute(select(g.c.updated_at).where(g.c.corpus_id == old_id)).first()
            if old_g is not None:
                new_g = conn.execute(select(g.c.updated_at).where(g.c.corpus_id == new_id)).first()
                if new_g is not None and new_g.updated_at >= old_g.updated_at:
                    conn.execute(delete(g).where(g.c.corpus_id == old_id))
                else:
                    conn.execute(delete(g).where(g.c.corpus_id == new_id))
                    moved += conn.execute(
                        update(g).where(g.c.corpus_id == old_id).values(corpus_id=new_id)
                    ).rowcount
            a = aliases_table
            conn.execute(update(a).where(a.c.new_id == old_id).values(new_id=new_id))
            self._insert_ignore(conn, a, [{"old_id": old_id, "new_id": new_id, "migrated_at": _now()}])
            conn.execute(update(a).where(a.c.old_id == old_id).values(new_id=new_id))
        self._forget_index()
        return moved

    def corpus_aliases(self) -> dict[str, str]:
        """Every corpus id that was moved -> the id its rows are under now."""
        a = aliases_table
        with self._tx() as conn:
            return dict(conn.execute(select(a.c.old_id, a.c.new_id).order_by(a.c.old_id)).tuples().all())

    def rekey_queries(self, corpus_id: str, mapping: Mapping[str, str]) -> int:
        """Move judgements, query texts and tags from old query ids to new ones (e.g. a typed
        query's ``q-...`` id to the dataset's id of the same query), in one transaction.

        Judgements under the new id stay (history kept, the newest row wins); a text or tag the new
        id already has is kept. Ids are moved as given, not chained: a new id may not also be an
        old one. Running it again moves nothing. Returns the number of rows moved."""
        _check_id("corpus_id", corpus_id)
        pairs = [(_check_id("query_id", o), _check_id("query_id", n)) for o, n in mapping.items() if o != n]
        chained = sorted({n for _, n in pairs} & {o for o, _ in pairs})
        if chained:
            raise InvalidGrade(
                f"query ids {', '.join(map(repr, chained[:5]))} are both moved and moved to",
                hint="give each old id its final id (no chains such as a -> b, b -> c)",
            )
        j, q, q2 = judgements_table, queries_table, queries_table.alias("q2")
        t, t2 = tags_table, tags_table.alias("t2")
        moved = 0
        with self._tx(write=True) as conn:
            for old, new in pairs:
                moved += conn.execute(
                    update(j)
                    .where(and_(j.c.corpus_id == corpus_id, j.c.query_id == old))
                    .values(query_id=new)
                ).rowcount
                conn.execute(
                    delete(q).where(
                        and_(
                            q.c.corpus_id == corpus_id,
                            q.c.query_id == old,
                            exists().where(and_(q2.c.corpus_id == corpus_id, q2.c.query_id == new)),
                        )
                    )
                )
                moved += conn.execute(
                    update(q)
                    .where(and_(q.c.corpus_id == corpus_id, q.c.query_id == old))
                    .values(query_id=new)
                ).rowcount
                conn.execute(
                    delete(t).where(
                        and_(
                            t.c.corpus_id == corpus_id,
                            t.c.query_id == old,
                            exists().where(
                                and_(t2.c.corpus_id == corpus_id, t2.c.query_id == new, t2.c.tag == t.c.tag)
                            ),
                        )
                    )
                )
                moved += conn.execute(
                    update(t)
                    .where(and_(t.c.corpus_id == corpus_id, t.c.query_id == old))
                    .values(query_id=new)
                ).rowcount
        self._forget_index(corpus_id)
        return moved

    def delete_corpus(self, corpus_id: str, *, judgements: bool = False) -> dict[str, int]:
        """Remove a corpus's shadow log; with ``judgements=True`` also its judgements (history
        included), queries, tags and guideline. Returns the rows removed per table."""
        _check_id("corpus_id", corpus_id)
        tables = [shadow_table]
        if judgements:
            tables += [judgements_table, queries_table, tags_table, guidelines_table]
        counts = {
            t.name: 0 for t in (shadow_table, judgements_table, queries_table, tags_table, guidelines_table)
        }
        with self._tx(write=True) as conn:
            for table in tables:
                counts[table.name] = conn.execute(
                    delete(table).where(table.c.corpus_id == corpus_id)
                ).rowcount
        self._forget_index(corpus_id)
        return counts

    def corpus_summary(self, corpus_id: str) -> CorpusSummary:
        """Counts of what the store holds for a corpus (see :class:`CorpusSummary`)."""
        with self._tx() as conn:
            rows = self._current_rows(conn, corpus_id)
            n_queries = conn.execute(
                select(func.count()).select_from(queries_table).where(queries_table.c.corpus_id == corpus_id)
            ).scalar_one()
            n_shadow = conn.execute(
                select(func.count()).select_from(shadow_table).where(shadow_table.c.corpus_id == corpus_id)
            ).scalar_one()
            n_tagged = conn.execute(
                select(func.count(func.distinct(tags_table.c.query_id))).where(
                    tags_table.c.corpus_id == corpus_id
                )
            ).scalar_one()
            has_guideline = (
                conn.execute(
                    select(guidelines_table.c.corpus_id).where(guidelines_table.c.corpus_id == corpus_id)
                ).first()
                is not None
            )
            judges = sorted(
                conn.execute(
                    select(judgements_table.c.judge)
                    .where(judgements_table.c.corpus_id == corpus_id)
                    .distinct()
                ).scalars()
            )
        graded = [r for r in rows if r.grade is not None]
        return CorpusSummary(
            corpus_id=corpus_id,
            queries=int(n_queries),
            judged_queries=len({r.query_id for r in graded}),
            judgements=len(graded),
            skipped=len(rows) - len(graded),
            judges=tuple(judges),
            shadow_entries=int(n_shadow),
            tagged_queries=int(n_tagged),
            has_guideline=has_guideline,
        )

    # -- shadow log --------------------------------------------------------------------------------
    def log_run(
        self,
        corpus_id: str,
        query_text: str,
        method: str,
        *,
        first_stage: str = "",
        depth: int = 0,
        latency_ms: float = 0.0,
        model_load_s: float = 0.0,
        available: bool = True,
        error: str | None = None,
        top: Sequence[tuple[str, float]] = (),
        fallback: bool = False,
        precision: str = "",
        extra: Mapping[str, Any] | None = None,
    ) -> int:
        """Record one method's run of one query; returns the log entry's id.

        ``extra`` is stored as JSON (e.g. ``{"usage": {"search_units": 1}}``)."""
        row = self._shadow_row(
            corpus_id,
            query_text,
            method,
            first_stage,
            depth,
            latency_ms,
            model_load_s,
            available,
            error,
            top,
            fallback,
            precision,
            extra,
        )
        with self._tx(write=True) as conn:
            res = conn.execute(insert(shadow_table).values(**row))
            if not res.inserted_primary_key:
                return -1
            return int(res.inserted_primary_key[0])

    def log_results(
        self,
        corpus_id: str,
        query_text: str,
        results: Sequence[RerankResult],
        *,
        first_stage: str = "",
        depth: int = 0,
        top_n: int = 10,
    ) -> int:
        """Record every method's result of one compare-page query in one transaction; returns the
        count. Each entry keeps the result's fallback flag, precision, usage and score scale. A
        fallback is stored as not available (the method did not rank that query; the order kept is
        the first stage's) with ``fallback`` set and the first stage's scale."""
        rows = []
        for r in results:
            extra: dict[str, Any] = {"scale": str(getattr(r.scale, "value", r.scale))}
            if r.usage:
                extra["usage"] = {str(k): _json_float(v) for k, v in r.usage.items()}
            rows.append(
                self._shadow_row(
                    corpus_id,
                    query_text,
                    r.method,
                    first_stage,
                    depth,
                    r.latency_ms,
                    r.model_load_s,
                    r.available and not r.fallback,
                    str(r.error) if r.error is not None else None,
                    [(it.doc_id, it.score) for it in r.items[:top_n]],
                    r.fallback,
                    r.precision,
                    extra,
                )
            )
        if rows:
            with self._tx(write=True) as conn:
                conn.execute(insert(shadow_table), rows)
        return len(rows)

    @staticmethod
    def _shadow_row(
        corpus_id: str,
        query_text: str,
        method: str,
        first_stage: str,
        depth: int,
        latency_ms: float,
        model_load_s: float,
        available: bool,
        error: str | None,
        top: Sequence[tuple[str, float]],
        fallback: bool = False,
        precision: str = "",
        extra: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        return {
            "corpus_id": _check_id("corpus_id", corpus_id),
            "query_text": _clean_text(str(query_text)),
            "method": _check_id("method", method),
            "first_stage": str(first_stage or ""),
            "depth": int(depth),
            "latency_ms": float(latency_ms),
            "model_load_s": float(model_load_s),
            "available": bool(available),
            "error": _clean_text(error) if error is not None else None,
            "top": json.dumps([[str(d), _json_float(s)] for d, s in top]),
            "created_at": _now(),
            "fallback": bool(fallback),
            "precision": str(precision)[:64] or None,
            "extra": json.dumps(dict(extra), allow_nan=False, default=str) if extra else None,
        }

    def shadow_log(self, corpus_id: str | None = None, limit: int | None = 1000) -> list[dict]:
        """Newest entries first. ``top`` is a list of ``{"doc_id", "score"}``; times are UTC;
        ``extra`` the stored JSON as a dict and ``usage`` its usage (``{}`` when none)."""
        t = shadow_table
        stmt = select(t).order_by(t.c.id.desc())
        if corpus_id is not None:
            stmt = stmt.where(t.c.corpus_id == corpus_id)
        if limit is not None:
            stmt = stmt.limit(int(limit))
        with self._tx() as conn:
            rows = conn.execute(stmt).mappings().all()
        out = []
        for r in rows:
            entry = dict(r)
            entry["top"] = [{"doc_id": d, "score": s} for d, s in json.loads(entry["top"] or "[]")]
            entry["created_at"] = _utc(entry["created_at"])
            entry["available"] = bool(entry["available"])
            entry["fallback"] = bool(entry["fallback"])
            entry["extra"] = json.loads(entry["extra"]) if entry["extra"] else {}
            entry["usage"] = dict(entry["extra"].get("usage") or {})
            out.append(entry)
        return out


def _check_rationale(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidGrade(f"a rationale is text, not {type(value).__name__}")
    return _clean_text(value) if value.strip() else None


def _json_float(value: float) -> float | None:
    v = float(value)
    return v if v == v and v not in (float("inf"), float("-inf")) else None


SHADOW_COLUMNS = (
    "id",
    "created_at",
    "corpus_id",
    "query_text",
    "method",
    "first_stage",
    "depth",
    "latency_ms",
    "model_load_s",
    "available",
    "error",
    "top",
    "fallback",
    "precision",
    "usage",
    "extra",
)


def shadow_log_csv(entries: Sequence[Mapping[str, Any]]) -> str:
    """The shadow log as CSV text (``top`` as ``doc:score`` pairs separated by spaces; ``usage``
    and the rest of ``extra`` as JSON)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(SHADOW_COLUMNS)
    for e in entries:
        top = " ".join(
            f"{t['doc_id']}:{t['score']:.6g}" if t["score"] is not None else f"{t['doc_id']}:"
            for t in e.get("top", [])
        )
        created = e.get("created_at")
        extra = dict(e.get("extra") or {})
        usage = extra.pop("usage", None) or e.get("usage") or {}
        writer.writerow(
            [
                e.get("id"),
                created.isoformat() if isinstance(created, datetime) else created,
                e.get("corpus_id"),
                e.get("query_text"),
                e.get("method"),
                e.get("first_stage"),
                e.get("depth"),
                f"{float(e.get('latency_ms') or 0):.3f}",
                f"{float(e.get('model_load_s') or 0):.3f}",
                bool(e.get("available")),
                e.get("error") or "",
                top,
                bool(e.get("fallback")),
                e.get("precision") or "",
                json.dumps(usage, sort_keys=True) if usage else "",
                json.dumps(extra, sort_keys=True) if extra else "",
            ]
        )
    return buf.getvalue()
