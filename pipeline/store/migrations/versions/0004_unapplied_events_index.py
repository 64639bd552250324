"""Partial index on engagement events not yet applied, so learning never scans applied ones

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25 18:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_engagement_events_unapplied", "engagement_events", ["id"],
                    sqlite_where=sa.text("applied = 0"), postgresql_where=sa.text("NOT applied"))


def downgrade() -> None:
    op.drop_index("ix_engagement_events_unapplied", table_name="engagement_events")
