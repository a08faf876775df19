"""A label store exactly as the first release wrote it, for the migration tests.

The table definitions are a frozen copy of that release's ``rerank_core/judgements.py`` (its
``metadata.create_all`` made the schema; it had no ``alembic_version`` table), and the rows are
written with the values that release's code wrote: naive UTC times, a 32-hex action per click or
import, undone rows with ``active`` off and ``undone_at`` set, the shadow log's top as JSON pairs.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta

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
    create_engine,
    insert,
)

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
    Column("action", String(32), nullable=False),
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
    Column("top", Text, nullable=False, default="[]"),
    Column("created_at", DateTime, nullable=False),
    Index("ix_shadow_corpus", "corpus_id", "id"),
)

T0 = datetime(2026, 10, 1, 9, 30, 0)  # naive UTC, as the first release stored times

QUERIES = [
    {
        "corpus_id": "Sample [chunks: 200 words]",
        "query_id": "q-3f1a2b3c4d5e",
        "text": "what is lift",
        "created_at": T0,
    },
    {
        "corpus_id": "cranfield",
        "query_id": "1",
        "text": "what similarity laws must be obeyed",
        "created_at": T0,
    },
]

JUDGEMENTS = [
    # a hand label, re-graded, then the re-grade undone
    dict(corpus_id="Sample [chunks: 200 words]", query_id="q-3f1a2b3c4d5e", doc_id="d1#0", judge="default",
         grade=2, created_at=T0 + timedelta(seconds=1), action="a" * 32, active=True, undone_at=None),
    dict(corpus_id="Sample [chunks: 200 words]", query_id="q-3f1a2b3c4d5e", doc_id="d1#0", judge="default",
         grade=3, created_at=T0 + timedelta(seconds=2), action="b" * 32, active=False,
         undone_at=T0 + timedelta(seconds=3)),
    # a skip by another judge
    dict(corpus_id="Sample [chunks: 200 words]", query_id="q-3f1a2b3c4d5e", doc_id="d2#1", judge="alice",
         grade=None, created_at=T0 + timedelta(seconds=4), action="c" * 32, active=True, undone_at=None),
    # one import: two rows sharing an action, Cranfield's grade 4 kept
    dict(corpus_id="cranfield", query_id="1", doc_id="184", judge="import", grade=4,
         created_at=T0 + timedelta(seconds=5), action="d" * 32, active=True, undone_at=None),
    dict(corpus_id="cranfield", query_id="1", doc_id="29", judge="import", grade=-1,
         created_at=T0 + timedelta(seconds=5), action="d" * 32, active=True, undone_at=None),
]  # fmt: skip

SHADOW = [
    dict(corpus_id="Sample [chunks: 200 words]", query_text="what is lift", method="bm25", first_stage="bm25",
         depth=50, latency_ms=2.5, model_load_s=0.0, available=True, error=None,
         top=json.dumps([["d1#0", 7.25], ["d2#1", None]]), created_at=T0 + timedelta(seconds=6)),
    dict(corpus_id="Sample [chunks: 200 words]", query_text="what is lift", method="cohere", first_stage="bm25",
         depth=50, latency_ms=0.0, model_load_s=0.0, available=False, error="no key Fix: set it", top="[]",
         created_at=T0 + timedelta(seconds=6)),
]  # fmt: skip


def write_legacy_store(url: str) -> None:
    """Create the first release's schema at ``url`` and write the rows above, as it did."""
    engine = create_engine(url)
    try:
        if engine.dialect.name == "sqlite":
            with engine.connect() as conn:
                conn.exec_driver_sql("PRAGMA journal_mode=WAL")
        metadata.create_all(engine)
        with engine.begin() as conn:
            conn.execute(insert(queries_table), QUERIES)
            for row in JUDGEMENTS:  # one statement per click, as the app wrote them
                conn.execute(insert(judgements_table), [row])
            conn.execute(insert(shadow_table), SHADOW)
    finally:
        engine.dispose()
