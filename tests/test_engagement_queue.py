"""The queue of unapplied events: the database queues every stored event once, learning empties it.

Whatever stores an event (the webhook, a reply, a web unsubscribe, a bulk COPY), the event must
reach learning: an unsubscribe that never left the queue would be a promise broken.
"""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, insert, select, text

from pipeline.audience.privacy import forget_reader
from pipeline.engagement.learning import apply_events
from pipeline.engagement.sendgrid_events import parse_events
from pipeline.engagement.store import store_events
from pipeline.store.database import alembic_config, create_database_engine, upgrade_database
from pipeline.store.models import Audience, EngagementEvent, Reader, UnappliedEvent
from pipeline.web.reader_choices import unsubscribe_reader
from tests.tools import postgres_database

T0 = dt.datetime(2026, 12, 7, 8, 0)


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, db):
    """A migrated database with one audience of two readers, on SQLite, then on PostgreSQL."""
    if request.param == "sqlite":
        yield _seed(db)
    else:
        with postgres_database() as pg:
            yield _seed(pg)


def _seed(db):
    with db.session() as session:
        session.add(Audience(id=1, name="main"))
        session.flush()
        session.add_all([Reader(id=1, audience_id=1, email="ann@example.com", public_id="p-ann"),
                         Reader(id=2, audience_id=1, email="bo@example.com", public_id="p-bo")])
    return db


def _event(n: int, kind: str = "open", reader: int | None = 1, email: str = "ann@example.com") -> dict:
    return {"provider_event_id": f"ev-{n}", "event_type": kind, "email": email, "reader_id": reader,
            "edition_id": "e1", "section_id": None, "occurred_at": T0, "received_at": T0, "raw": {}}


def _queued(db) -> list[int]:
    with db.session() as session:
        return session.scalars(select(UnappliedEvent.event_id).order_by(UnappliedEvent.event_id)).all()


def _event_ids(db) -> list[int]:
    with db.session() as session:
        return session.scalars(select(EngagementEvent.id).order_by(EngagementEvent.id)).all()


def _learn(db):
    return apply_events(db, half_life_days=60.0, soft_bounce_limit=3, topic_groups={}, now=T0 + dt.timedelta(days=1))


def _webhook(n: int, kind: str = "open", reader: int = 1, email: str = "ann@example.com") -> dict:
    return {"email": email, "timestamp": int(T0.timestamp()), "event": kind, "sg_event_id": f"sg-{n}",
            "sg_message_id": f"m{n}", "reader_id": str(reader), "edition_id": "e1"}


def test_every_way_of_storing_an_event_queues_it_once(store):
    """Webhook batches with repeats (inside a batch and across batches), a web unsubscribe and a plain insert each queue exactly the new events."""
    events, bad = parse_events([_webhook(1), _webhook(2, "click"), _webhook(1), _webhook(3, "unsubscribe", 2,
                                                                                        "bo@example.com")])
    assert store_events(store, events, bad, source="test").stored == 3
    again, _ = parse_events([_webhook(2, "click"), _webhook(4, "delivered")])
    assert store_events(store, again, [], source="test").stored == 1  # sg-2 was there already
    assert unsubscribe_reader(store, "p-ann", via="one-click") is True
    with store.session() as session:
        session.execute(insert(EngagementEvent), [_event(10), _event(11, "click")])
    ids = _event_ids(store)
    assert len(ids) == 7 and _queued(store) == ids  # each new event once, no repeat queued
    report = _learn(store)
    assert report.events == 7 and report.by_type["unsubscribe"] == 2 and _queued(store) == []
    with store.session() as session:
        assert {r.id: r.status for r in session.scalars(select(Reader))} == {1: "unsubscribed", 2: "unsubscribed"}
    assert _learn(store).events == 0  # nothing is applied twice


@pytest.fixture
def pg_store():
    """The same database on PostgreSQL only."""
    with postgres_database() as pg:
        yield _seed(pg)


def test_a_postgres_copy_queues_its_rows(pg_store):
    """A bulk COPY into engagement_events (as an operator's backfill would) queues every row it adds."""
    store = pg_store
    with store.engine.begin() as connection:
        cursor = connection.connection.driver_connection.cursor()
        with cursor, cursor.copy("COPY engagement_events (provider_event_id, event_type, email, reader_id, "
                                 "occurred_at, received_at, raw) FROM STDIN") as copy:
            for n in range(5):
                copy.write_row((f"copied-{n}", "unsubscribe" if n == 4 else "delivered", "bo@example.com", 2, T0, T0,
                                "{}"))
    assert _queued(store) == _event_ids(store) and len(_queued(store)) == 5
    assert _learn(store).suppressed == 1 and _queued(store) == []


def test_a_batch_that_fails_to_store_queues_nothing(store):
    """A store that fails after its insert (here: a statement the database refuses) leaves neither events nor queue entries."""
    with pytest.raises(Exception, match="no_such_table"):  # noqa: PT011 - the driver's own error
        with store.session() as session:
            session.execute(insert(EngagementEvent), [_event(1), _event(2)])
            session.execute(text("SELECT * FROM no_such_table"))
    assert _event_ids(store) == [] and _queued(store) == []


def test_forgetting_a_reader_takes_their_events_out_of_the_queue(store):
    """A forgotten reader's waiting events leave the queue with them; on SQLite the next event may reuse an id and is queued all the same."""
    with store.session() as session:
        session.execute(insert(EngagementEvent), [_event(1, reader=2, email="bo@example.com"), _event(2)])
    bo_event, ann_event = _event_ids(store)
    forget_reader(store, "ann@example.com")
    assert _event_ids(store) == _queued(store) == [bo_event]
    with store.session() as session:  # SQLite gives the largest id + 1: ann's old id
        session.execute(insert(EngagementEvent), [_event(3, "unsubscribe", 2, "bo@example.com")])
    assert _queued(store) == _event_ids(store) and len(_queued(store)) == 2
    report = _learn(store)
    assert (report.events, report.suppressed, _queued(store)) == (2, 1, [])


def test_a_queue_entry_whose_event_is_gone_is_cleared(store):
    """An entry left for an event deleted by hand is taken off the queue by the next run, and counts as no event."""
    with store.session() as session:
        session.execute(insert(EngagementEvent), [_event(1), _event(2, "click")])
        session.execute(text("DELETE FROM engagement_events WHERE provider_event_id = 'ev-1'"))
    assert len(_queued(store)) == 2
    report = _learn(store)
    assert (report.events, report.by_type["click"], _queued(store)) == (1, 1, [])


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
def test_migration_0020_queues_what_was_unapplied_and_goes_back(dialect, home):
    """Upgrading moves the unapplied flags into the queue and starts the trigger; downgrading puts the flags back."""
    from alembic import command

    if dialect == "sqlite":
        url, cleanup = f"sqlite:///{home / 'old.db'}", None
    else:
        context = postgres_database()
        url = str(context.__enter__().url)  # a fresh schema, migrated: taken back to 0019 below
        cleanup = context
    engine = create_database_engine(url)
    config = alembic_config(url)
    try:
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            if cleanup is not None:
                command.downgrade(config, "0019")
            else:
                command.upgrade(config, "0019")
            for n, applied in enumerate([True, False, True, False]):
                connection.execute(text(
                    "INSERT INTO engagement_events (provider_event_id, event_type, email, occurred_at, received_at, "
                    "applied, raw) VALUES (:id, 'open', 'a@example.com', :t, :t, :applied, '{}')"),
                    {"id": f"old-{n}", "t": T0, "applied": applied})
            old = connection.execute(text("SELECT id, applied FROM engagement_events ORDER BY id")).all()
        upgrade_database(engine, url)
        with engine.begin() as connection:
            assert connection.execute(text("SELECT event_id FROM unapplied_events ORDER BY event_id")).scalars().all() \
                == [i for i, applied in old if not applied]
            connection.execute(text("INSERT INTO engagement_events (provider_event_id, event_type, email, "
                                    "occurred_at, received_at, raw) VALUES ('new', 'open', 'a@example.com', :t, :t, '{}')"),
                               {"t": T0})
            new = connection.execute(text("SELECT id FROM engagement_events WHERE provider_event_id = 'new'")).scalar()
            assert connection.execute(text("SELECT count(*) FROM unapplied_events WHERE event_id = :i"),
                                      {"i": new}).scalar() == 1
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.downgrade(config, "0019")
            assert connection.execute(text("SELECT id, applied FROM engagement_events ORDER BY id")).all() == [
                *old, (new, False)]
            # And the trigger went with the queue: an insert at 0019 works as it did.
            connection.execute(text("INSERT INTO engagement_events (provider_event_id, event_type, email, occurred_at, "
                                    "received_at, applied, raw) VALUES ('later', 'open', 'a@example.com', :t, :t, "
                                    ":f, '{}')"), {"t": T0, "f": False})
    finally:
        engine.dispose()
        if cleanup is not None:
            cleanup.__exit__(None, None, None)
