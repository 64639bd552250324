"""Index engagement events the way the report reads them (replaces the edition-only index)

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25 19:05:00
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_engagement_events_report", "engagement_events",
                    ["edition_id", "reader_id", "event_type", "section_id"])
    # The new index starts with edition_id, so the old one only cost writes.
    op.drop_index("ix_engagement_events_edition_id", table_name="engagement_events")


def downgrade() -> None:
    op.create_index("ix_engagement_events_edition_id", "engagement_events", ["edition_id"])
    op.drop_index("ix_engagement_events_report", table_name="engagement_events")
