"""Position clicks: clicks on same-topic pairs of sections, by gap, for estimating position bias

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-26 09:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "position_clicks",
        sa.Column("gap", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("earlier", sa.Float(), nullable=False, server_default="0"),
        sa.Column("later", sa.Float(), nullable=False, server_default="0"),
    )


def downgrade() -> None:
    op.drop_table("position_clicks")
