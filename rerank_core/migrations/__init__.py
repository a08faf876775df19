"""Schema migrations of the label store (Alembic), run by the store itself when it opens a database.

Nobody needs an ``alembic.ini``: :class:`rerank_core.judgements.JudgementStore` calls
:func:`upgrade` on the first open of a database in a process, inside one transaction that holds a
lock (SQLite ``BEGIN IMMEDIATE``, PostgreSQL ``pg_advisory_xact_lock``), so two processes opening
an old store at once never both migrate it. ``python -m rerank_core labels migrate --db URL`` does
the same from the command line.

Revisions (``versions/``):

- ``0001``: the schema of the first release (``queries``, ``judgements``, ``shadow_log``). Stores
  created by that release have no ``alembic_version`` table; when all three tables are there the
  store is stamped ``0001`` and upgraded from there.
- ``0002``: ``judgements.rationale``; ``shadow_log.fallback``, ``precision`` and ``extra`` (JSON:
  usage, score scale); the tables ``guidelines``, ``query_tags`` and ``corpus_aliases``.

A new revision: add a file to ``versions/`` whose ``down_revision`` is the current head, update
:data:`HEAD` and :data:`REVISIONS`, and the table definitions in ``rerank_core/judgements.py``
(a test checks that the migrated database and those definitions agree on both SQLite and
PostgreSQL).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

SCRIPT_LOCATION = Path(__file__).resolve().parent
#: every revision this code knows, oldest first
REVISIONS = ("0001", "0002")
HEAD = REVISIONS[-1]
#: the tables of revision 0001, which a store of the first release holds without a version table
LEGACY_TABLES = ("queries", "judgements", "shadow_log")
VERSION_TABLE = "alembic_version"


def alembic_config(connection: Connection | None = None, url: str | None = None) -> Any:
    """An Alembic ``Config`` for these migrations, running on ``connection`` (or ``url``)."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(SCRIPT_LOCATION))
    if url is not None:
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def current_revision(conn: Connection) -> str | None:
    """The database's revision (None: no version table, or an empty one), without loading Alembic."""
    from sqlalchemy import inspect, text

    if not inspect(conn).has_table(VERSION_TABLE):
        return None
    rows = conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalars().all()
    return rows[0] if len(rows) == 1 else (None if not rows else ",".join(sorted(rows)))


def is_legacy(conn: Connection) -> bool:
    """A store of the first release: the three tables of revision 0001 and no version table."""
    from sqlalchemy import inspect

    names = set(inspect(conn).get_table_names())
    return VERSION_TABLE not in names and all(t in names for t in LEGACY_TABLES)


def upgrade(conn: Connection) -> tuple[str | None, str]:
    """Bring the database on ``conn`` to :data:`HEAD` inside the caller's transaction.

    A store of the first release is stamped ``0001`` first. Returns ``(revision before, after)``;
    before is None for a new database and ``"0001"`` for a store of the first release."""
    from alembic import command

    before = current_revision(conn)
    cfg = alembic_config(conn)
    if before is None and is_legacy(conn):
        command.stamp(cfg, REVISIONS[0])
        before = REVISIONS[0]
    if before != HEAD:
        command.upgrade(cfg, HEAD)
    return before, HEAD
