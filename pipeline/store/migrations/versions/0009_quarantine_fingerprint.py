"""Quarantined events deduplicated: a fingerprint (SHA-256 of source and raw) with a unique index

Existing rows get their fingerprint here, and repeats of one (source, raw) are folded into the
first kept (the lowest id), as the store now does on every insert.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 02:30:00
"""

from __future__ import annotations

import hashlib

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

_quarantine = sa.table("quarantined_events", sa.column("id", sa.Integer), sa.column("source", sa.String),
                       sa.column("raw", sa.Text), sa.column("fingerprint", sa.String))


def upgrade() -> None:
    with op.batch_alter_table("quarantined_events") as batch_op:
        batch_op.add_column(sa.Column("fingerprint", sa.String(length=64), nullable=True))
    connection = op.get_bind()
    seen: set[str] = set()
    repeats: list[int] = []
    rows = connection.execute(sa.select(_quarantine.c.id, _quarantine.c.source, _quarantine.c.raw)
                              .order_by(_quarantine.c.id)).all()
    for row_id, source, raw in rows:
        fingerprint = hashlib.sha256(f"{source}\n{raw}".encode("utf-8", "backslashreplace")).hexdigest()
        if fingerprint in seen:
            repeats.append(row_id)
            continue
        seen.add(fingerprint)
        connection.execute(_quarantine.update().where(_quarantine.c.id == row_id).values(fingerprint=fingerprint))
    for start in range(0, len(repeats), 500):
        connection.execute(_quarantine.delete().where(_quarantine.c.id.in_(repeats[start:start + 500])))
    with op.batch_alter_table("quarantined_events") as batch_op:
        batch_op.alter_column("fingerprint", existing_type=sa.String(length=64), nullable=False)
        batch_op.create_index("uq_quarantined_events_fingerprint", ["fingerprint"], unique=True)


def downgrade() -> None:
    with op.batch_alter_table("quarantined_events") as batch_op:
        batch_op.drop_index("uq_quarantined_events_fingerprint")
        batch_op.drop_column("fingerprint")
