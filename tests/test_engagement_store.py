"""Storing events: once each, all or nothing, attributed only to the reader they belong to."""

from __future__ import annotations

import sqlite3

import pytest
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from pipeline.engagement.sendgrid_events import parse_events
from pipeline.engagement.store import StoreReport, store_events
from pipeline.store.database import Database
from pipeline.store.models import Audience, EngagementEvent, QuarantinedEvent, Reader, UnappliedEvent, utcnow
from tests.test_engagement_sendgrid_events import sendgrid_event
from tests.tools import postgres_database


def add_reader(db: Database, email: str = "ann@example.com") -> int:
    """Insert one reader (and its audience, once) and return the reader's id."""
    with db.session() as session:
        audience = session.scalar(select(Audience).where(Audience.name == "test"))
        if audience is None:
            audience = Audience(name="test")
            session.add(audience)
            session.flush()
        reader = Reader(audience_id=audience.id, email=email, first_name="Ann")
        session.add(reader)
        session.flush()
        return reader.id


def stored_events(db: Database) -> list[EngagementEvent]:
    """Every stored engagement event, in id order."""
    with db.session() as session:
        return list(session.scalars(select(EngagementEvent).order_by(EngagementEvent.id)))


def count(db: Database, model) -> int:
    """Rows in `model`'s table."""
    with db.session() as session:
        return session.scalar(select(func.count()).select_from(model))


def test_events_are_stored_with_their_attribution(db):
    """Events of a known reader are stored with type, reader, edition, section, variant, holdout and raw."""
    reader_id = add_reader(db)
    url = "https://example.com/a?rf_e=2026-12-07&rf_s=climate-lead"
    events, quarantined = parse_events([
        sendgrid_event("delivered", sg_event_id="e1", reader_id=str(reader_id)),
        sendgrid_event("click", sg_event_id="e2", reader_id=str(reader_id), url=url, holdout="1"),
    ])
    report = store_events(db, events, quarantined, source="test")
    assert report == StoreReport(stored=2, duplicates=0, quarantined=0, unattributed=0)
    delivered, click = stored_events(db)
    assert (delivered.event_type, delivered.reader_id) == ("delivered", reader_id)
    with db.session() as session:  # both wait to be applied
        assert session.scalars(select(UnappliedEvent.event_id).order_by(UnappliedEvent.event_id)).all() == [
            delivered.id, click.id]
    assert (click.event_type, click.reader_id, click.edition_id, click.section_id, click.variant_id, click.holdout) == (
        "click", reader_id, "2026-12-07", "climate-lead", "a1b2c3", True)
    assert click.raw["url"] == url and click.provider_event_id == "e2"


def test_a_batch_stored_twice_is_stored_once(db):
    """Storing the same batch again stores nothing new and counts every event as a duplicate."""
    events, _ = parse_events([sendgrid_event("delivered", sg_event_id=f"e{i}") for i in range(5)])
    assert store_events(db, events, [], source="test").stored == 5
    again = store_events(db, events, [], source="test")
    assert (again.stored, again.duplicates) == (0, 5)
    assert count(db, EngagementEvent) == 5


def test_a_duplicate_within_one_batch_is_stored_once(db):
    """An event repeated inside one batch is stored once and counted once as a duplicate."""
    events, _ = parse_events([sendgrid_event("open", sg_event_id="same"), sendgrid_event("open", sg_event_id="same"),
                              sendgrid_event("open", sg_event_id="other")])
    report = store_events(db, events, [], source="test")
    assert (report.stored, report.duplicates) == (2, 1)
    assert count(db, EngagementEvent) == 2


def test_events_of_unknown_readers_and_editions_are_kept_unattributed(db):
    """An event naming a reader that does not exist, or exists with another address, is stored with no reader."""
    reader_id = add_reader(db, "bob@example.com")
    events, _ = parse_events([
        sendgrid_event("delivered", sg_event_id="ghost", reader_id="999999", edition_id="1999-01-01"),
        sendgrid_event("delivered", sg_event_id="wrong-address", reader_id=str(reader_id), email="eve@example.com"),
        sendgrid_event("delivered", sg_event_id="bob", reader_id=str(reader_id), email="Bob@Example.com"),
    ])
    report = store_events(db, events, [], source="test")
    assert (report.stored, report.unattributed) == (3, 2)
    by_id = {e.provider_event_id: e for e in stored_events(db)}
    assert by_id["ghost"].reader_id is None and by_id["ghost"].edition_id == "1999-01-01"
    assert by_id["ghost"].raw["reader_id"] == "999999"  # the claim is kept for inspection
    assert by_id["wrong-address"].reader_id is None
    assert by_id["bob"].reader_id == reader_id


def test_malformed_events_are_quarantined_with_reason_and_source(db):
    """Quarantined events are kept as text with their reason and source beside the stored ones."""
    events, quarantined = parse_events([sendgrid_event(sg_event_id="fine"), sendgrid_event(event="teleported")])
    report = store_events(db, events, quarantined, source="sendgrid-webhook")
    assert (report.stored, report.quarantined) == (1, 1)
    with db.session() as session:
        [row] = session.scalars(select(QuarantinedEvent))
    assert row.source == "sendgrid-webhook" and "unknown event 'teleported'" in row.reason
    assert '"teleported"' in row.raw


def test_a_batch_that_fails_halfway_leaves_nothing(db):
    """When the database refuses part of a batch (here the quarantine insert), none of the batch is stored."""
    with db.engine.begin() as connection:
        connection.execute(text("CREATE TRIGGER refuse BEFORE INSERT ON quarantined_events "
                                "BEGIN SELECT RAISE(ABORT, 'quarantine refused'); END"))
    events, quarantined = parse_events([sendgrid_event(sg_event_id="a"), sendgrid_event(event="teleported")])
    with pytest.raises(SQLAlchemyError, match="quarantine refused"):
        store_events(db, events, quarantined, source="test")
    assert count(db, EngagementEvent) == 0


def test_a_locked_database_raises_and_stores_nothing(db, home):
    """When another connection holds the write lock past the busy timeout, storing raises and stores nothing."""
    path = home / "readerfirst.db"
    impatient = Database(url=f"sqlite:///{path}", engine=create_engine(f"sqlite:///{path}", connect_args={"timeout": 0.2}))
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        events, _ = parse_events([sendgrid_event(sg_event_id="locked")])
        with pytest.raises(OperationalError, match="locked"):
            store_events(impatient, events, [], source="test")
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
        impatient.dispose()
    assert count(db, EngagementEvent) == 0
    assert store_events(db, events, [], source="test").stored == 1


def test_events_are_stored_once_on_postgres():
    """On PostgreSQL the same batch twice is stored once, with exact counts and attribution."""
    with postgres_database() as pg:
        reader_id = add_reader(pg)
        events, quarantined = parse_events([sendgrid_event("open", sg_event_id=f"p{i}", reader_id=str(reader_id))
                                            for i in range(3)] + [sendgrid_event(event="teleported")])
        first = store_events(pg, events + events[:1], quarantined, source="test")
        again = store_events(pg, events, quarantined, source="test")
        assert (first.stored, first.duplicates, first.quarantined) == (3, 1, 1)
        assert (again.stored, again.duplicates) == (0, 3)
        assert {e.reader_id for e in stored_events(pg)} == {reader_id}
        assert count(pg, QuarantinedEvent) == 1  # the malformed event, sent twice, kept once


def test_a_malformed_event_resent_is_quarantined_once(db):
    """A batch resent with its malformed events keeps each of them once per source, however often it comes."""
    batch = [sendgrid_event(sg_event_id="fine"), sendgrid_event(event="teleported"), sendgrid_event(reader_id="ann"),
             sendgrid_event(event="teleported")]
    for _ in range(3):
        events, quarantined = parse_events(batch)
        assert store_events(db, events, quarantined, source="sendgrid-webhook").quarantined == 3
    assert count(db, QuarantinedEvent) == 2
    store_events(db, [], quarantined, source="sendgrid-file")
    assert count(db, QuarantinedEvent) == 4


def test_migration_0009_fingerprints_and_folds_existing_quarantine(home):
    """Upgrading a database quarantined before 0009 gives every row its fingerprint and keeps one row per (source, raw)."""
    from alembic import command

    from pipeline.engagement.store import quarantine_row
    from pipeline.store.database import alembic_config, create_database_engine, upgrade_database

    url = f"sqlite:///{home / 'old.db'}"
    engine = create_database_engine(url)
    config = alembic_config(url)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0007")
        for raw in ["a", "b", "a", "a"]:
            connection.execute(text("INSERT INTO quarantined_events (received_at, source, reason, raw) "
                                    "VALUES ('2026-12-01 00:00:00', 'sendgrid-webhook', 'why', :raw)"), {"raw": raw})
    upgrade_database(engine, url)
    with engine.connect() as connection:
        rows = connection.execute(text("SELECT id, raw, fingerprint FROM quarantined_events ORDER BY id")).all()
    assert [(row.id, row.raw) for row in rows] == [(1, "a"), (2, "b")]
    assert rows[0].fingerprint == quarantine_row("a", "why", "sendgrid-webhook", utcnow())["fingerprint"]
    database = Database(url=url, engine=engine)
    store_events(database, [], [("a", "again")], source="sendgrid-webhook")
    assert count(database, QuarantinedEvent) == 2
    engine.dispose()
