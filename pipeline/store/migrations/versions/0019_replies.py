"""Replies: mail readers sent to their per-reader Reply-To address, as SendGrid's Inbound Parse posted it

Revision ID: 0019
Revises: 0011
Create Date: 2026-12-02 05:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "replies",
        sa.Column("id", sa.Integer(), primary_key=True),
        # No foreign key: a forgotten reader's replies are deleted by `reader forget`, and an
        # unattributed reply has no reader at all.
        sa.Column("reader_id", sa.Integer(), nullable=True),
        sa.Column("edition_id", sa.String(100), nullable=True),
        sa.Column("received_at", sa.DateTime(), nullable=False),
        sa.Column("attributed", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("from_address", sa.String(320), nullable=False, server_default=""),
        sa.Column("to_address", sa.String(320), nullable=False, server_default=""),
        sa.Column("subject", sa.Text(), nullable=False, server_default=""),
        sa.Column("text", sa.Text(), nullable=False, server_default=""),
        sa.Column("raw_size", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("suggested_topics", sa.JSON(), nullable=False),
        sa.Column("confirmed_topic", sa.String(64), nullable=True),
        sa.Column("answered_at", sa.DateTime(), nullable=True),
        sa.Column("message_id", sa.String(255), nullable=False),
    )
    op.create_index("uq_replies_message_id", "replies", ["message_id"], unique=True)
    op.create_index("ix_replies_edition", "replies", ["edition_id", "reader_id"])
    op.create_index("ix_replies_reader", "replies", ["reader_id"])


def downgrade() -> None:
    op.drop_index("ix_replies_reader", table_name="replies")
    op.drop_index("ix_replies_edition", table_name="replies")
    op.drop_index("uq_replies_message_id", table_name="replies")
    op.drop_table("replies")
