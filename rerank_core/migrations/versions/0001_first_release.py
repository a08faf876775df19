"""The schema of the first release: queries, judgements (append-only history) and the shadow log.

Stores created by that release have these tables and no ``alembic_version``; the store stamps them
with this revision. Tables that already exist are left alone, so a store where only some of them
were created is completed rather than refused.

Revision ID: 0001
Revises:
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    existing = set(sa.inspect(op.get_bind()).get_table_names())
    if "queries" not in existing:
        op.create_table(
            "queries",
            sa.Column("corpus_id", sa.String(255), primary_key=True),
            sa.Column("query_id", sa.String(255), primary_key=True),
            sa.Column("text", sa.Text(), nullable=False),
            sa.Column("created_at", sa.DateTime(), nullable=False),
        )
    if "judgements" not in existing:
        op.create_table(
            "judgements",
            sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
            sa.Column("corpus_id", sa.String(255), nullable=False),
            sa.Column("query_id", sa.String(255), nullable=False),
            sa.Column("doc_id", sa.String(255), nullable=False),
            sa.Column("judge", sa.String(255), nullable=False),
            sa.Column("grade", sa.Integer(), nullable=True),
            sa.Column("created_at", sa.DateTime(), nullable=False),
            sa.Column("action", sa.String(32), nullable=False),
            sa.Column("active", sa.Boolean(), nullable=False),
            sa.Column("undone_at", sa.DateTime(), nullable=True),
        )
        op.create_index(
            "ix_judgements_pair", "judgements", ["corpus_id", "query_id", "doc_id", "judge", "active"]
        )
        op.create_index("ix_judgements_judge", "judgements", ["corpus_id", "judge", "active", "id"])
    if "shadow_log" not in existing:
        op.create_table(
            "shadow_log",
            sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
            sa.Column("corpus_id", sa.String(255), nullable=False),
            sa.Column("query_text", sa.Text(), nullable=False),
            sa.Column("method", sa.String(255), nullable=False),
            sa.Column("first_stage", sa.String(255), nullable=False),
            sa.Column("depth", sa.Integer(), nullable=False),
            sa.Column("latency_ms", sa.Float(), nullable=False),
            sa.Column("model_load_s", sa.Float(), nullable=False),
            sa.Column("available", sa.Boolean(), nullable=False),
            sa.Column("error", sa.Text(), nullable=True),
            sa.Column("top", sa.Text(), nullable=False),
            sa.Column("created_at", sa.DateTime(), nullable=False),
        )
        op.create_index("ix_shadow_corpus", "shadow_log", ["corpus_id", "id"])


def downgrade() -> None:
    op.drop_table("shadow_log")
    op.drop_table("judgements")
    op.drop_table("queries")
