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
  latency, model load time, availability, error, and the top ids with their scores (JSON).
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
from datetime import UTC, datetime
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
    event,
    func,
    insert,
    select,
    union,
    update,
)
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, IntegrityError, NoSuchModuleError, SQLAlchemyError

from rerank_core.config import Settings, load_settings
from rerank_core.errors import ConfigError, RerankError

if TYPE_CHECKING:
    from rerank_core.types import Dataset, RerankResult

#: the grades a person can give by hand (imports accept any int gain)
HAND_GRADES: dict[int, str] = {0: "not relevant", 1: "partly relevant", 2: "relevant", 3: "perfect"}
DEFAULT_JUDGE = "default"
IMPORT_JUDGE = "import"
#: seconds SQLite waits for a lock before giving up
SQLITE_BUSY_TIMEOUT_S = 30.0


class InvalidGrade(RerankError, ValueError):
    """A grade, judge or id that cannot be stored."""

    kind = "invalid-grade"


# --------------------------------------------------------------------------------------------------
# schema
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
    Index("ix_shadow_corpus", "corpus_id", "id"),
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

    @property
    def skipped(self) -> bool:
        return self.grade is None


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


def _check_id(name: str, value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidGrade(f"{name} must be a non-empty string, got {value!r}")
    if len(value) > 255:
        raise InvalidGrade(f"{name} is longer than 255 characters: {value[:40]!r}...")
    return value


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
_ENGINES: dict[str, tuple[Engine, int]] = {}
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


def _create_engine(url: URL, shown: str) -> Engine:
    from sqlalchemy import create_engine

    kwargs: dict[str, Any] = {"future": True}
    is_sqlite = url.get_backend_name() == "sqlite"
    memory = is_sqlite and url.database in (None, "", ":memory:")
    if is_sqlite:
        if memory:
            from sqlalchemy.pool import StaticPool

            kwargs["poolclass"] = StaticPool
        else:
            db_path = Path(url.database or "").expanduser()
            try:
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
        metadata.create_all(engine)
    except SQLAlchemyError as exc:
        engine.dispose()
        detail = _scrub(str(getattr(exc, "orig", None) or exc).splitlines()[0], url)
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
    return engine


def _acquire_engine(url: URL) -> Engine:
    key = url.render_as_string(hide_password=False)
    with _ENGINES_LOCK:
        if key in _ENGINES:
            engine, count = _ENGINES[key]
            _ENGINES[key] = (engine, count + 1)
            return engine
        engine = _create_engine(url, safe_url(url))
        _ENGINES[key] = (engine, 1)
        return engine


def _release_engine(url: URL) -> None:
    key = url.render_as_string(hide_password=False)
    with _ENGINES_LOCK:
        if key not in _ENGINES:
            return
        engine, count = _ENGINES[key]
        if count <= 1:
            del _ENGINES[key]
            engine.dispose()
        else:
            _ENGINES[key] = (engine, count - 1)


# --------------------------------------------------------------------------------------------------
# the store
# --------------------------------------------------------------------------------------------------
class JudgementStore:
    """Judgements, queries and the shadow log in one database.

    ``url`` is any SQLAlchemy URL; by default ``settings.resolved_db_url`` (a SQLite file in the data
    directory, created if missing). Safe to share between threads. Call :meth:`close` when done (or
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
        self._engine: Engine | None = _acquire_engine(self._url)

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

    @contextmanager
    def _tx(self, write: bool = False) -> Iterator[Connection]:
        with self.engine.connect() as conn:
            if write:
                conn.execution_options(rerank_write=True)
            with conn.begin():
                yield conn

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
        new = [
            {"corpus_id": corpus_id, "query_id": str(q), "text": str(text), "created_at": _now()}
            for q, text in queries.items()
            if q not in known
        ]
        for q, text in queries.items():
            if q in known and known[q] != text:
                conn.execute(
                    update(t).where(and_(t.c.corpus_id == corpus_id, t.c.query_id == q)).values(text=text)
                )
        if new:
            try:
                with conn.begin_nested():
                    conn.execute(insert(t), new)
            except IntegrityError:  # another writer added some of them meanwhile (not on SQLite)
                for row in new:
                    try:
                        with conn.begin_nested():
                            conn.execute(insert(t), [row])
                    except IntegrityError:
                        pass

    def queries(self, corpus_id: str) -> dict[str, str]:
        """Every known query of a corpus, id -> text, in the order they were added."""
        t = queries_table
        with self._tx() as conn:
            rows = conn.execute(
                select(t.c.query_id, t.c.text).where(t.c.corpus_id == corpus_id).order_by(t.c.created_at)
            ).tuples()
            return dict(rows.all())

    def corpora(self) -> list[str]:
        """Every corpus id with queries, judgements or shadow-log entries, sorted."""
        stmt = union(
            select(queries_table.c.corpus_id),
            select(judgements_table.c.corpus_id),
            select(shadow_table.c.corpus_id),
        )
        with self._tx() as conn:
            return sorted(r[0] for r in conn.execute(stmt))

    # -- judgements --------------------------------------------------------------------------------
    def set_grade(
        self, corpus_id: str, query_id: str, doc_id: str, grade: int | None, judge: str = DEFAULT_JUDGE
    ) -> None:
        """Record a hand label: 0..3, or None for skipped. Earlier labels stay in the history."""
        grade = _check_hand_grade(grade)
        row = self._row(corpus_id, query_id, doc_id, judge, grade, _now(), uuid.uuid4().hex)
        with self._tx(write=True) as conn:
            conn.execute(insert(judgements_table), [row])

    @staticmethod
    def _row(
        corpus_id: str, query_id: str, doc_id: str, judge: str, grade: int | None, at: datetime, action: str
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
        }

    def undo(self, corpus_id: str, judge: str = DEFAULT_JUDGE) -> UndoResult | None:
        """Take back the judge's newest action in this corpus (one label, or a whole import).

        Returns what was undone, or None when the judge has nothing left to undo. Undo is itself
        recorded (``active`` off, ``undone_at`` set), so the history keeps every row."""
        t = judgements_table
        with self._tx(write=True) as conn:
            last = conn.execute(
                select(t.c.id, t.c.action, t.c.query_id, t.c.doc_id, t.c.grade)
                .where(and_(t.c.corpus_id == corpus_id, t.c.judge == judge, t.c.active.is_(True)))
                .order_by(t.c.id.desc())
                .limit(1)
                .with_for_update()
            ).first()
            if last is None:
                return None
            done = conn.execute(
                update(t)
                .where(and_(t.c.action == last.action, t.c.judge == judge, t.c.active.is_(True)))
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
        self, conn: Connection, corpus_id: str, query_id: str | None = None, judge: str | None = None
    ) -> list[Any]:
        """The newest active row per (query, doc, judge), oldest first."""
        t = judgements_table
        cond = [t.c.corpus_id == corpus_id, t.c.active.is_(True)]
        if query_id is not None:
            cond.append(t.c.query_id == query_id)
        if judge is not None:
            cond.append(t.c.judge == judge)
        newest = (
            select(func.max(t.c.id).label("mid"))
            .where(and_(*cond))
            .group_by(t.c.query_id, t.c.doc_id, t.c.judge)
            .subquery()
        )
        stmt = (
            select(t.c.query_id, t.c.doc_id, t.c.judge, t.c.grade, t.c.created_at, t.c.id)
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

    def grades(self, corpus_id: str, query_id: str, judge: str | None = None) -> dict[str, int | None]:
        """doc_id -> current grade (None = skipped) for one query.

        ``judge=None`` merges every judge: the most recent grade wins, and a skip by one judge does
        not hide another judge's grade."""
        with self._tx() as conn:
            rows = self._current_rows(conn, corpus_id, query_id=query_id, judge=judge)
        return self._merge_judges(rows).get(query_id, {})

    def qrels(self, corpus_id: str, judge: str | None = None) -> dict[str, dict[str, int]]:
        """query_id -> doc_id -> grade, skipped pairs left out (judges merged as in :meth:`grades`)."""
        with self._tx() as conn:
            rows = self._current_rows(conn, corpus_id, judge=judge)
        out: dict[str, dict[str, int]] = {}
        for qid, docs in self._merge_judges(rows).items():
            graded = {d: g for d, g in docs.items() if g is not None}
            if graded:
                out[qid] = graded
        return out

    def judgements(
        self, corpus_id: str, judge: str | None = None, query_id: str | None = None
    ) -> list[Judgement]:
        """Every current judgement, one per (query, doc, judge), skipped ones included, oldest first."""
        with self._tx() as conn:
            rows = self._current_rows(conn, corpus_id, query_id=query_id, judge=judge)
        return [
            Judgement(corpus_id, r.query_id, r.doc_id, r.judge, r.grade, _utc(r.created_at))  # type: ignore[arg-type]
            for r in rows
        ]

    def judgement_count(self, corpus_id: str, include_skipped: bool = False) -> int:
        """How many (query, doc, judge) currently carry a grade (plus skips if asked)."""
        return sum(1 for j in self.judgements(corpus_id) if include_skipped or j.grade is not None)

    def judges(self, corpus_id: str) -> list[str]:
        t = judgements_table
        with self._tx() as conn:
            stmt = select(t.c.judge).where(t.c.corpus_id == corpus_id).distinct().order_by(t.c.judge)
            return [r[0] for r in conn.execute(stmt)]

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
        rows: Iterable[tuple[str, str, int | None, str, datetime | str | None]],
        queries: Mapping[str, str] | None = None,
    ) -> int:
        """Bulk-write ``(query_id, doc_id, grade, judge, created_at)`` rows as ONE undoable action.

        Grades may be any int (or None = skipped). Rows equal to the judge's current value are not
        written again, so importing the same file twice changes nothing. Returns the rows written."""
        _check_id("corpus_id", corpus_id)
        action = uuid.uuid4().hex
        wanted: dict[tuple[str, str, str], dict[str, Any]] = {}
        for query_id, doc_id, grade, judge, created_at in rows:
            row = self._row(corpus_id, str(query_id), str(doc_id), judge, _check_gain(grade), _now(), action)
            if created_at is not None:
                row["created_at"] = _naive_utc(created_at)
            wanted[(row["query_id"], row["doc_id"], row["judge"])] = row  # a later duplicate wins
        with self._tx(write=True) as conn:
            if queries:
                self._upsert_queries(conn, corpus_id, {str(k): str(v) for k, v in queries.items()})
            current = {(r.query_id, r.doc_id, r.judge): r.grade for r in self._current_rows(conn, corpus_id)}
            todo = [row for key, row in wanted.items() if key not in current or current[key] != row["grade"]]
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
    ) -> int:
        """Record one method's run of one query; returns the log entry's id."""
        row = self._shadow_row(
            corpus_id, query_text, method, first_stage, depth, latency_ms, model_load_s, available, error, top
        )
        with self._tx(write=True) as conn:
            res = conn.execute(insert(shadow_table), [row])
            if res.inserted_primary_key is None:
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
        """Record every method's result of one compare-page query in one transaction; returns the count."""
        rows = [
            self._shadow_row(
                corpus_id,
                query_text,
                r.method,
                first_stage,
                depth,
                r.latency_ms,
                r.model_load_s,
                r.available,
                str(r.error) if r.error is not None else None,
                [(it.doc_id, it.score) for it in r.items[:top_n]],
            )
            for r in results
        ]
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
    ) -> dict[str, Any]:
        return {
            "corpus_id": _check_id("corpus_id", corpus_id),
            "query_text": str(query_text),
            "method": _check_id("method", method),
            "first_stage": str(first_stage or ""),
            "depth": int(depth),
            "latency_ms": float(latency_ms),
            "model_load_s": float(model_load_s),
            "available": bool(available),
            "error": error,
            "top": json.dumps([[str(d), _json_float(s)] for d, s in top]),
            "created_at": _now(),
        }

    def shadow_log(self, corpus_id: str | None = None, limit: int | None = 1000) -> list[dict]:
        """Newest entries first. ``top`` is a list of ``{"doc_id", "score"}``; times are UTC."""
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
            out.append(entry)
        return out


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
)


def shadow_log_csv(entries: Sequence[Mapping[str, Any]]) -> str:
    """The shadow log as CSV text (``top`` as ``doc:score`` pairs separated by spaces)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(SHADOW_COLUMNS)
    for e in entries:
        top = " ".join(
            f"{t['doc_id']}:{t['score']:.6g}" if t["score"] is not None else f"{t['doc_id']}:"
            for t in e.get("top", [])
        )
        created = e.get("created_at")
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
            ]
        )
    return buf.getvalue()
