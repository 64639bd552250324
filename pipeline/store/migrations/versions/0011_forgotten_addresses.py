"""Forgotten addresses: digests of people who asked to be forgotten, so no import brings them back

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02 03:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "forgotten_addresses",
        sa.Column("digest", sa.String(64), primary_key=True),
        sa.Column("forgotten_at", sa.DateTime(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("forgotten_addresses")
