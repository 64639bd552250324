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
