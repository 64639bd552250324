"""Unapplied events: a narrow queue of the ids of events not yet applied, filled by the database itself

Replaces the `applied` flag of engagement_events. Claiming an event set that flag, and
PostgreSQL writes a whole new version of a row it updates: a new copy of the wide event (its raw
payload included) and an entry in each of its indexes, for every event ever applied. Now
applying an event deletes one integer row, and the event row is never written again.

A trigger adds every new event's id, whichever code stores it (webhook, reply, web
unsubscribe, a bulk COPY), so no way of storing an event can leave it unapplied. On
PostgreSQL it fires once per statement, over the statement's new rows (a batch of webhook
events costs one INSERT ... SELECT); SQLite has row triggers only, which cost little in process.
Events already in the queue are left as they are (`ON CONFLICT DO NOTHING`): SQLite can reuse
the id of a deleted event.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-02 18:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None

_POSTGRES_FUNCTION = """
CREATE FUNCTION queue_new_events() RETURNS trigger LANGUAGE plpgsql
SET search_path FROM CURRENT AS $$
BEGIN
    INSERT INTO unapplied_events (event_id) SELECT id FROM new_events ON CONFLICT DO NOTHING;
    RETURN NULL;
END
$$
"""
_POSTGRES_TRIGGER = """
CREATE TRIGGER queue_new_events AFTER INSERT ON engagement_events
REFERENCING NEW TABLE AS new_events FOR EACH STATEMENT EXECUTE FUNCTION queue_new_events()
"""
_SQLITE_TRIGGER = """
CREATE TRIGGER queue_new_events AFTER INSERT ON engagement_events
BEGIN
    INSERT INTO unapplied_events (event_id) VALUES (NEW.id) ON CONFLICT DO NOTHING;
END
"""


def upgrade() -> None:
    op.create_table("unapplied_events", sa.Column("event_id", sa.Integer(), primary_key=True, autoincrement=False))
    op.execute("INSERT INTO unapplied_events (event_id) SELECT id FROM engagement_events WHERE NOT applied")
    op.drop_index("ix_engagement_events_unapplied", table_name="engagement_events")
    # SQLite 3.35 and later drop a column in place (no copy of the table; nothing refers to it now).
    op.execute("ALTER TABLE engagement_events DROP COLUMN applied")
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_POSTGRES_FUNCTION)
        op.execute(_POSTGRES_TRIGGER)
    else:
        op.execute(_SQLITE_TRIGGER)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER queue_new_events ON engagement_events")
        op.execute("DROP FUNCTION queue_new_events()")
    else:
        op.execute("DROP TRIGGER queue_new_events")
    op.add_column("engagement_events", sa.Column("applied", sa.Boolean(), nullable=False, server_default=sa.true()))
    op.execute("UPDATE engagement_events SET applied = false WHERE id IN (SELECT event_id FROM unapplied_events)")
    op.create_index("ix_engagement_events_unapplied", "engagement_events", ["id"],
                    sqlite_where=sa.text("applied = 0"), postgresql_where=sa.text("NOT applied"))
    op.drop_table("unapplied_events")
