"""The ask: readers' answers to "what do you need in the next 30-60 days?", and their own words beside a need

Revision ID: 0018
Revises: 0011
Create Date: 2026-12-02 05:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ask_answers",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("reader_id", sa.Integer(), sa.ForeignKey("readers.id", ondelete="CASCADE"), nullable=False),
        sa.Column("edition_id", sa.String(100), nullable=False),
        sa.Column("topic", sa.String(64), nullable=False),
        sa.Column("words", sa.Text(), nullable=True),
        sa.Column("until", sa.Date(), nullable=False),
        sa.Column("answered_at", sa.DateTime(), nullable=False),
        sa.UniqueConstraint("reader_id", "edition_id", "topic", name="uq_ask_answers_reader_edition_topic"),
    )
    # The report counts answers per edition.
    op.create_index("ix_ask_answers_edition", "ask_answers", ["edition_id", "reader_id"])
    with op.batch_alter_table("reader_needs") as batch:
        batch.add_column(sa.Column("words", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("reader_needs") as batch:
        batch.drop_column("words")
    op.drop_index("ix_ask_answers_edition", table_name="ask_answers")
    op.drop_table("ask_answers")
