"""Index the send ledger by (edition, variant, reader), batches by (batch, edition), readers by (audience, id)

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26 07:00:00
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Batches are read in this order and claimed as ranges of it, so that neither a batch nor the
    # list of batches ever has to carry every reader id of a send.
    op.create_index("ix_send_ledger_variant", "send_ledger", ["edition_id", "variant_id", "reader_id"])
    # Confirming a batch looks it up by (batch_id, edition_id): with batch_id alone in its index,
    # SQLite's planner preferred the edition prefix of the index above and read the whole edition
    # for every confirmation.
    op.drop_index("ix_send_ledger_batch", table_name="send_ledger")
    op.create_index("ix_send_ledger_batch", "send_ledger", ["batch_id", "edition_id"])
    # A send plans an audience's readers a range of ids at a time: without this index SQLite
    # read the whole audience (by its (audience, email) index) for every chunk.
    op.create_index("ix_readers_audience", "readers", ["audience_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_readers_audience", table_name="readers")
    op.drop_index("ix_send_ledger_batch", table_name="send_ledger")
    op.create_index("ix_send_ledger_batch", "send_ledger", ["batch_id"])
    op.drop_index("ix_send_ledger_variant", table_name="send_ledger")
