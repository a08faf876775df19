"""Rationales, shadow-log fallback/precision/extra, guidelines, query tags and corpus aliases.

- ``judgements.rationale``: why a judge (an LLM or a person) gave the grade;
- ``shadow_log.fallback`` (the order shown was a fallback), ``precision`` (the numeric path the
  scores came from) and ``extra`` (JSON: usage a service reported, the score scale, ...);
- ``guidelines``: one judging guideline per corpus;
- ``query_tags``: tags per query (a column of the query file);
- ``corpus_aliases``: every corpus id moved to a new one (identity migrations).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("judgements", sa.Column("rationale", sa.Text(), nullable=True))
    op.add_column(
        "shadow_log", sa.Column("fallback", sa.Boolean(), nullable=False, server_default=sa.false())
    )
    op.add_column("shadow_log", sa.Column("precision", sa.String(64), nullable=True))
    op.add_column("shadow_log", sa.Column("extra", sa.Text(), nullable=True))
    op.create_table(
        "guidelines",
        sa.Column("corpus_id", sa.String(255), primary_key=True),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.Column("updated_by", sa.String(255), nullable=True),
    )
    op.create_table(
        "query_tags",
        sa.Column("corpus_id", sa.String(255), primary_key=True),
        sa.Column("query_id", sa.String(255), primary_key=True),
        sa.Column("tag", sa.String(255), primary_key=True),
    )
    op.create_table(
        "corpus_aliases",
        sa.Column("old_id", sa.String(255), primary_key=True),
        sa.Column("new_id", sa.String(255), nullable=False),
        sa.Column("migrated_at", sa.DateTime(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("corpus_aliases")
    op.drop_table("query_tags")
    op.drop_table("guidelines")
    with op.batch_alter_table("shadow_log") as batch:
        batch.drop_column("extra")
        batch.drop_column("precision")
        batch.drop_column("fallback")
    with op.batch_alter_table("judgements") as batch:
        batch.drop_column("rationale")
