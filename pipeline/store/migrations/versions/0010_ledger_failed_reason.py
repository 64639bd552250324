"""Send ledger: a `reason` per entry, for readers SendGrid refused (state `failed`) and reconciliation's decisions

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02 02:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The new state `failed` needs no schema change: `state` is a free String(12) column.
    with op.batch_alter_table("send_ledger") as batch_op:
        batch_op.add_column(sa.Column("reason", sa.Text(), nullable=True))


def downgrade() -> None:
    # A failed reader was never sent: back to planned, the only state the old code can resend from.
    op.execute("UPDATE send_ledger SET state = 'planned', batch_id = NULL WHERE state = 'failed'")
    with op.batch_alter_table("send_ledger") as batch_op:
        batch_op.drop_column("reason")
