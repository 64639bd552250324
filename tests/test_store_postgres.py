"""The store on PostgreSQL: migrations, import, ledger, all through the same code as SQLite."""

from __future__ import annotations

import datetime as dt
import os
import uuid

import pytest
from sqlalchemy import text

from pipeline.audience.directory import audience_id, load_profiles
from pipeline.audience.importer import import_audience
from pipeline.delivery.ledger import PlannedEntry, SendLedger
from pipeline.store.database import open_database
from tests.conftest import SAMPLE_AUDIENCE
from tests.tools import missing


@pytest.fixture
def pg_db():
    """A fresh schema in the test PostgreSQL database (READERFIRST_TEST_POSTGRES_URL)."""
    url = os.environ.get("READERFIRST_TEST_POSTGRES_URL")
    if not url:
        missing("PostgreSQL (READERFIRST_TEST_POSTGRES_URL)")
    schema = f"t_{uuid.uuid4().hex[:10]}"
    admin = open_database(url, migrate=False)
    with admin.engine.begin() as connection:
        connection.execute(text(f"CREATE SCHEMA {schema}"))
    scoped = f"{url}{'&' if '?' in url else '?'}options=-csearch_path%3D{schema}"
    db = open_database(scoped)
    yield db
    db.dispose()
    with admin.engine.begin() as connection:
        connection.execute(text(f"DROP SCHEMA {schema} CASCADE"))
    admin.dispose()


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
    claimed, skipped = ledger.claim(ids[:10], "b1", "outbox")
    assert len(claimed) == 10 and skipped == 0
    ledger.confirm("b1", "m1")
    assert ledger.counts()["sent"] == 10
    assert len(ledger.readers_to_plan(aid)) == len(ids) - 10
