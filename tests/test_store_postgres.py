"""The store on PostgreSQL: migrations, import, ledger, all through the same code as SQLite."""

from __future__ import annotations

import datetime as dt

import pytest

from pipeline.audience.directory import audience_id, load_profiles
from pipeline.audience.importer import import_audience
from pipeline.delivery.ledger import PlannedBatch, PlannedEntry, SendLedger
from tests.conftest import SAMPLE_AUDIENCE
from tests.tools import postgres_database


@pytest.fixture
def pg_db():
    """A fresh schema in the test PostgreSQL database."""
    with postgres_database() as db:
        yield db


def test_migrations_import_and_ledger_on_postgres(pg_db):
    """Migrations apply, the sample audience imports and re-imports, and the ledger claims and confirms."""
    assert pg_db.dialect == "postgresql"
    first = import_audience(pg_db, SAMPLE_AUDIENCE, "sample", today=dt.date(2026, 12, 1))
    again = import_audience(pg_db, SAMPLE_AUDIENCE, "sample", today=dt.date(2026, 12, 1))
    assert first.created == 400 and again.updated == 400 and again.created == 0
    aid = audience_id(pg_db, "sample")
    ledger = SendLedger(pg_db, "e1")
    ids = ledger.readers_to_plan(aid)
    profiles = load_profiles(pg_db, ids[:10])
    assert [p.reader_id for p in profiles] == ids[:10]
    ledger.record_plan(aid, [PlannedEntry(i, "v1", [["s1", "why"]]) for i in ids[:10]])
    (batch,) = ledger.planned_batches(1000)
    assert batch == PlannedBatch("v1", ids[0], ids[9], 10)
    claimed, skipped = ledger.claim(batch, "b1", "outbox")
    assert [c.reader_id for c in claimed] == ids[:10] and skipped == 0
    ledger.confirm("b1", "m1")
    assert ledger.counts()["sent"] == 10
    assert len(ledger.readers_to_plan(aid)) == len(ids) - 10


def test_a_claim_skips_readers_another_transaction_is_claiming(pg_db):
    """While one process holds a batch's rows locked mid-claim, another claim of the same batch returns at once with
    only the readers left (FOR UPDATE SKIP LOCKED), and a claim never takes more readers than its batch's size."""
    from pipeline.delivery.ledger import _LOCK_PLANNED

    import_audience(pg_db, SAMPLE_AUDIENCE, "sample", today=dt.date(2026, 12, 1))
    aid = audience_id(pg_db, "sample")
    ledger = SendLedger(pg_db, "e1")
    ids = ledger.readers_to_plan(aid)[:20]
    ledger.record_plan(aid, [PlannedEntry(i, "v1", [["s1", "why"]]) for i in ids])
    batch = PlannedBatch("v1", ids[0], ids[-1], 20)
    with pg_db.engine.connect() as first:
        holding = first.begin()
        locked = first.execute(_LOCK_PLANNED, {"edition": "e1", "variant": "v1", "first": ids[0], "last": ids[-1],
                                               "size": 12}).scalars().all()
        assert locked == ids[:12]
        claimed, _ = ledger.claim(batch, "second", "sendgrid")  # would wait for `first` without SKIP LOCKED
        assert [c.reader_id for c in claimed] == ids[12:]
        holding.rollback()
    assert ledger.counts()["sending"] == 8
    rest, _ = ledger.claim(PlannedBatch("v1", ids[0], ids[-1], 5), "third", "sendgrid")
    assert [c.reader_id for c in rest] == ids[:5]  # never more than the batch's size
