"""Send ledger indexes: by batch, and none on state (claims go through the primary key)

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25 18:20:00
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_send_ledger_batch", "send_ledger", ["batch_id"])
    # SQLite chose this index over the primary key for claims, scanning every planned row.
    op.drop_index("ix_send_ledger_state", table_name="send_ledger")


def downgrade() -> None:
    op.create_index("ix_send_ledger_state", "send_ledger", ["edition_id", "state", "variant_id"])
    op.drop_index("ix_send_ledger_batch", table_name="send_ledger")
