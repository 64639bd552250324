"""The store on PostgreSQL: migrations, import, ledger, all through the same code as SQLite."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import text, update

from pipeline.audience.directory import audience_id, load_profiles
from pipeline.audience.importer import import_audience
from pipeline.delivery.ledger import PlannedBatch, PlannedEntry, SendLedger
from pipeline.store.models import Reader
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


def test_import_with_a_bad_row_late_in_the_file_leaves_nothing_on_postgres(pg_db, tmp_path):
    """On PostgreSQL (COPY into staging), a bad row after several staged batches leaves the database as it was."""
    from tests.test_audience_importer import check_bad_row_late_in_a_long_file_imports_nothing

    check_bad_row_late_in_a_long_file_imports_nothing(pg_db, tmp_path)


def test_import_duplicates_across_batches_on_postgres(pg_db, tmp_path):
    """On PostgreSQL the staging index finds a duplicate batches later and names the first line."""
    from tests.test_audience_importer import check_duplicates_across_batches_name_the_first_line

    check_duplicates_across_batches_name_the_first_line(pg_db, tmp_path)


def test_import_checked_by_worker_processes_on_postgres(pg_db, tmp_path):
    """On PostgreSQL, rows checked by two worker processes give the same duplicate, line and readers."""
    from tests.test_audience_importer import check_duplicates_across_batches_name_the_first_line

    check_duplicates_across_batches_name_the_first_line(pg_db, tmp_path, workers=2)


def test_import_in_small_batches_on_postgres(pg_db, tmp_path):
    """On PostgreSQL (COPY a batch at a time) small batches import what one batch imports."""
    from tests.test_audience_importer import check_small_batches_import_what_one_batch_imports

    check_small_batches_import_what_one_batch_imports(pg_db, tmp_path)


def test_reimport_statuses_on_postgres(pg_db, tmp_path):
    """On PostgreSQL the merge gives every status combination what next_status gives."""
    from tests.test_audience_importer import check_reimport_statuses_follow_next_status

    check_reimport_statuses_follow_next_status(pg_db, tmp_path)


def test_two_concurrent_posters_store_each_event_exactly_once_on_postgres(pg_db):
    """Two posters (two engines, as two uvicorn workers) sending overlapping batches at once store each event once."""
    import threading

    from sqlalchemy import func, select

    from pipeline.engagement.sendgrid_events import parse_events
    from pipeline.engagement.store import store_events
    from pipeline.store.database import open_database
    from pipeline.store.models import EngagementEvent
    from tests.test_engagement_sendgrid_events import sendgrid_event
    from tests.test_engagement_store import add_reader

    reader_id = add_reader(pg_db)
    batches = [[sendgrid_event("open", sg_event_id=f"b{b}-{i}", reader_id=str(reader_id)) for i in range(150)]
               for b in range(12)]
    # The second poster sends the same batches in another order, and each batch with a neighbour's half.
    second = [batch[:75] + batches[(n + 1) % len(batches)][75:] for n, batch in enumerate(reversed(batches))]
    start = threading.Barrier(2)
    stored: list[int] = []
    failures: list[BaseException] = []

    def post(plan: list[list[dict]]) -> None:
        worker = open_database(pg_db.url, migrate=False)
        try:
            start.wait()
            for batch in plan:
                events, quarantined = parse_events(batch)
                stored.append(store_events(worker, events, quarantined, source="sendgrid-webhook").stored)
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            failures.append(exc)
        finally:
            worker.dispose()

    posters = [threading.Thread(target=post, args=(plan,)) for plan in (batches, second)]
    for poster in posters:
        poster.start()
    for poster in posters:
        poster.join()
    assert failures == []
    with pg_db.session() as session:
        rows = session.scalar(select(func.count()).select_from(EngagementEvent))
        distinct = session.scalar(select(func.count(func.distinct(EngagementEvent.provider_event_id))))
    assert rows == distinct == 12 * 150
    assert sum(stored) == 12 * 150  # the counts each poster reported add up exactly: nothing counted twice


def test_a_forgotten_reader_is_not_imported_again_on_postgres(pg_db, tmp_path):
    """On PostgreSQL an import skips and counts the rows of people who asked to be forgotten."""
    from pipeline.audience.privacy import forget_reader
    from tests.test_audience_importer import write_csv

    path = write_csv(tmp_path, "ann@example.com,Ann,,,,,,,", "bob@example.com,Bob,,,,,,,")
    import_audience(pg_db, path, "weekly", today=dt.date(2026, 12, 1))
    forget_reader(pg_db, "ann@example.com")
    again = import_audience(pg_db, path, "weekly", today=dt.date(2026, 12, 1))
    assert (again.created, again.updated, again.forgotten) == (0, 1, 1)


def test_a_claim_skips_readers_another_transaction_is_claiming(pg_db):
    """While one process holds a batch's rows locked mid-claim, another claim of the same batch returns at once with
    only the readers left (FOR UPDATE SKIP LOCKED), and a claim never takes more readers than its batch's size."""
    import_audience(pg_db, SAMPLE_AUDIENCE, "sample", today=dt.date(2026, 12, 1))
    aid = audience_id(pg_db, "sample")
    ledger = SendLedger(pg_db, "e1")
    ids = ledger.readers_to_plan(aid)[:20]
    ledger.record_plan(aid, [PlannedEntry(i, "v1", [["s1", "why"]]) for i in ids])
    batch = PlannedBatch("v1", ids[0], ids[-1], 20)
    with pg_db.engine.connect() as first:
        holding = first.begin()
        locked = first.execute(text("SELECT reader_id FROM send_ledger WHERE edition_id = 'e1' ORDER BY reader_id"
                                    " LIMIT 12 FOR UPDATE"), {}).scalars().all()
        assert locked == ids[:12]
        claimed, _ = ledger.claim(batch, "second", "sendgrid")  # would wait for `first` without SKIP LOCKED
        assert [c.reader_id for c in claimed] == ids[12:]
        holding.rollback()
    assert ledger.counts()["sending"] == 8
    rest, _ = ledger.claim(PlannedBatch("v1", ids[0], ids[-1], 5), "third", "sendgrid")
    assert [c.reader_id for c in rest] == ids[:5]  # never more than the batch's size


def test_a_claim_skips_readers_gone_since_planning_and_keeps_to_its_variant_on_postgres(pg_db):
    """On PostgreSQL (one statement) a claim marks readers unsubscribed or suppressed since planning skipped,
    claims the rest of its variant's range in reader order, and leaves other variants' readers planned."""
    import_audience(pg_db, SAMPLE_AUDIENCE, "sample", today=dt.date(2026, 12, 1))
    aid = audience_id(pg_db, "sample")
    ledger = SendLedger(pg_db, "e1")
    ids = ledger.readers_to_plan(aid)[:12]
    ledger.record_plan(aid, [PlannedEntry(i, "v2" if i in ids[6:8] else "v1", [["s1", "why"]], holdout=i == ids[0])
                             for i in ids])
    with pg_db.session() as session:
        session.execute(update(Reader).where(Reader.id == ids[2]).values(status="unsubscribed"))
        session.execute(update(Reader).where(Reader.id == ids[4]).values(suppressed_reason="bounce"))
    claimed, skipped = ledger.claim(PlannedBatch("v1", ids[0], ids[-1], 10), "b1", "sendgrid")
    expected = [i for i in ids if i not in (ids[2], ids[4], ids[6], ids[7])]
    assert [c.reader_id for c in claimed] == expected and skipped == 2
    assert claimed[0].holdout and not claimed[1].holdout and claimed[0].picks == [["s1", "why"]]
    assert ledger.counts() == {**ledger.counts(), "sending": 8, "skipped": 2, "planned": 2}
    again, skipped = ledger.claim(PlannedBatch("v1", ids[0], ids[-1], 10), "b2", "sendgrid")
    assert (again, skipped) == ([], 0)


def test_profiles_load_the_same_on_postgres_as_on_sqlite(pg_db, db):
    """PostgreSQL's one-parameter id list gives every reader the profile SQLite's IN lists give, in order."""
    import dataclasses

    found = {}
    for name, store in (("postgres", pg_db), ("sqlite", db)):
        import_audience(store, SAMPLE_AUDIENCE, "sample", today=dt.date(2026, 12, 1))
        ids = SendLedger(store, "e1").readers_to_plan(audience_id(store, "sample"))
        ids = ids[::-1][:350] + ids[:3]  # not in id order: profiles come back in the order asked
        found[name] = [dataclasses.replace(p, public_id="", reader_id=0) for p in load_profiles(store, ids)]
        assert [p.reader_id for p in load_profiles(store, ids[:5])] == ids[:5]
    assert len(found["postgres"]) == 353 and found["postgres"] == found["sqlite"]
    assert sum(bool(p.interests) for p in found["postgres"]) > 100 and any(p.needs for p in found["postgres"])


def test_a_replanned_chunk_changes_only_entries_not_yet_claimed_on_postgres(pg_db):
    """On PostgreSQL (COPY and one merge) a second plan refreshes planned entries and leaves claimed ones alone."""
    import_audience(pg_db, SAMPLE_AUDIENCE, "sample", today=dt.date(2026, 12, 1))
    aid = audience_id(pg_db, "sample")
    ledger = SendLedger(pg_db, "e1")
    ids = ledger.readers_to_plan(aid)[:20]
    ledger.record_plan(aid, [PlannedEntry(i, "v1", [["s1", "first"]], i == ids[0]) for i in ids])
    claimed, _ = ledger.claim(PlannedBatch("v1", ids[0], ids[9], 10), "b1", "outbox")
    assert len(claimed) == 10
    ledger.record_plan(aid, [PlannedEntry(i, "v2", [["s2", "second"]]) for i in ids])
    entries = {e.reader_id: e for e in ledger.entries(ids)}
    assert [entries[i].variant_id for i in ids] == ["v1"] * 10 + ["v2"] * 10
    assert entries[ids[0]] == PlannedEntry(ids[0], "v1", [["s1", "first"]], True)
    assert entries[ids[15]] == PlannedEntry(ids[15], "v2", [["s2", "second"]], False)
    assert ledger.planned_batches(1000) == [PlannedBatch("v2", ids[10], ids[19], 10)]


def test_a_chunk_reads_only_its_range_on_postgres(pg_db):
    """On PostgreSQL, a chunk's readers to plan leave out readers sent within its range and no others."""
    from pipeline.audience.directory import sendable_reader_ids
    from tests.test_delivery_ledger import check_a_chunk_reads_only_its_range

    import_audience(pg_db, SAMPLE_AUDIENCE, "sample", today=dt.date(2026, 12, 1))
    check_a_chunk_reads_only_its_range(pg_db, sendable_reader_ids(pg_db, audience_id(pg_db, "sample")))


def test_a_chunk_reads_only_its_range_of_the_ledger_on_postgres(pg_db):
    """Planning a chunk reads the ledger's entries in the chunk's range, not every entry of the
    edition: with statistics taken before the send filled the ledger (as in a send), PostgreSQL
    merged each chunk with the whole edition, and planning a send grew with its audience's square."""
    from sqlalchemy import event

    import_audience(pg_db, SAMPLE_AUDIENCE, "sample", today=dt.date(2026, 12, 1))
    aid = audience_id(pg_db, "sample")
    with pg_db.transaction() as connection:
        connection.exec_driver_sql("ANALYZE")  # the ledger is empty: as a send's statistics are at its start
    ledger = SendLedger(pg_db, "e1")
    ids = ledger.readers_to_plan(aid)
    ledger.record_plan(aid, [PlannedEntry(i, "v1", [["s1", "why"]]) for i in ids[:300]])  # the chunks before
    statements = []

    def keep(conn, cursor, statement, parameters, context, executemany):  # noqa: ARG001
        statements.append((statement, parameters))

    event.listen(pg_db.engine, "before_cursor_execute", keep)
    try:
        assert ledger.readers_to_plan(aid, between=(ids[300], ids[-1])) == ids[300:]
    finally:
        event.remove(pg_db.engine, "before_cursor_execute", keep)
    (statement, parameters), = [s for s in statements if "send_ledger" in s[0]]
    with pg_db.transaction() as connection:
        # 400 readers fit in a few pages, which PostgreSQL reads whole: as at scale, it must use an index.
        connection.exec_driver_sql("SET LOCAL enable_seqscan TO off")
        cursor = connection.connection.driver_connection.cursor()
        cursor.execute(f"EXPLAIN (ANALYZE, FORMAT JSON) {statement}", parameters)
        plan = cursor.fetchone()[0][0]["Plan"]

    def ledger_rows_read(node: dict) -> float:
        own = 0.0
        if node.get("Relation Name") == "send_ledger":
            own = (node["Actual Rows"] + node.get("Rows Removed by Filter", 0)) * node["Actual Loops"]
        return own + sum(ledger_rows_read(child) for child in node.get("Plans", []))

    assert ledger_rows_read(plan) <= len(ids) - 300, plan  # at most the range's own entries (here none)
