"""Reader interests: `opted_at`, when the reader last chose about the topic (a group opt-out or opt-in, the preference centre)

SendGrid does not promise to deliver events in order, and a retried batch can bring an old
`group_resubscribe` after a newer `group_unsubscribe`. Learning applies a group event only if it
is no older than the choice already recorded; without the time it applied the one that came
last, and an old opt-in undid a newer opt-out.

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-03 07:45:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable and without a default: PostgreSQL and SQLite add it without rewriting the table.
    with op.batch_alter_table("reader_interests") as batch_op:
        batch_op.add_column(sa.Column("opted_at", sa.DateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("reader_interests") as batch_op:
        batch_op.drop_column("opted_at")
