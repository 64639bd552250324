"""The send ledger: chunks and batches as ranges of reader ids, and claims that respect them."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import update

from pipeline.audience.directory import sendable_reader_ids
from pipeline.audience.importer import import_audience
from pipeline.delivery.ledger import PlannedBatch, PlannedEntry, SendLedger
from pipeline.store.models import LedgerState, Reader, SendLedgerEntry
from tests.conftest import SAMPLE_AUDIENCE

TODAY = dt.date(2026, 12, 1)


@pytest.fixture
def readers(db) -> list[int]:
    import_audience(db, SAMPLE_AUDIENCE, "sample", today=TODAY)
    return sendable_reader_ids(db, 1)


def _plan(ledger: SendLedger, reader_ids: list[int], variant_of) -> None:
    ledger.record_plan(1, [PlannedEntry(r, variant_of(r), [["s1", "why"]]) for r in reader_ids])


def test_plan_chunks_cover_the_readers_to_plan_in_ranges(db, readers):
    """Chunks are id ranges of at most `size` readers that together hold exactly the readers to plan."""
    ledger = SendLedger(db, "e1")
    chunks = ledger.plan_chunks(1, 70)
    assert len(chunks) == -(-len(readers) // 70)
    covered = [r for first, last in chunks for r in ledger.readers_to_plan(1, between=(first, last))]
    assert covered == readers
    assert all(len(ledger.readers_to_plan(1, between=c)) <= 70 for c in chunks)
    limited = ledger.plan_chunks(1, 70, limit=100)
    assert [r for c in limited for r in ledger.readers_to_plan(1, between=c)] == readers[:100]


def check_a_chunk_reads_only_its_range(db, readers: list[int]) -> None:
    """A chunk's readers to plan are the audience's readers to plan within its range: readers sent,
    sending or failed there are left out, whatever the ledger holds outside it."""
    ledger = SendLedger(db, "e1")
    _plan(ledger, readers, lambda r: "va")
    chunk = (readers[100], readers[199])
    done = [readers[99], readers[100], readers[150], readers[199], readers[200]]  # both ends of the range, and beyond
    with db.session() as session:
        session.execute(update(SendLedgerEntry).where(SendLedgerEntry.reader_id.in_(done[:3]))
                        .values(state=LedgerState.SENT))
        session.execute(update(SendLedgerEntry).where(SendLedgerEntry.reader_id == done[3])
                        .values(state=LedgerState.SENDING))
        session.execute(update(SendLedgerEntry).where(SendLedgerEntry.reader_id == done[4])
                        .values(state=LedgerState.FAILED))
    everyone = ledger.readers_to_plan(1)
    found = ledger.readers_to_plan(1, between=chunk)
    assert found == [r for r in everyone if chunk[0] <= r <= chunk[1]]
    assert found == [r for r in readers[100:200] if r not in done] and len(found) == 97


def test_a_chunk_reads_only_its_range(db, readers):
    """The readers to plan of a chunk of ids, with sent readers inside and outside it (SQLite)."""
    check_a_chunk_reads_only_its_range(db, readers)


def test_planned_batches_split_by_variant_and_size(db, readers):
    """Batches follow (variant, reader id) order, hold one variant and at most `size` readers."""
    ledger = SendLedger(db, "e1")
    _plan(ledger, readers, lambda r: "va" if r % 3 else "vb")
    batches = ledger.planned_batches(50)
    assert all(b.readers <= 50 for b in batches) and sum(b.readers for b in batches) == len(readers)
    for variant in ("va", "vb"):
        members = [r for r in readers if ("va" if r % 3 else "vb") == variant]
        mine = [b for b in batches if b.variant_id == variant]
        assert [b.first_reader for b in mine] == members[::50]
        assert mine[-1].last_reader == members[-1]


def test_claim_takes_exactly_the_batch_and_skips_readers_who_left(db, readers):
    """A claim moves the batch's planned readers to sending; one who unsubscribed since is skipped."""
    ledger = SendLedger(db, "e1")
    _plan(ledger, readers, lambda r: "va" if r % 2 else "vb")
    batch = ledger.planned_batches(20)[0]
    members = [r for r in readers if r % 2 == (1 if batch.variant_id == "va" else 0)][:20]
    assert (batch.first_reader, batch.last_reader, batch.readers) == (members[0], members[-1], 20)
    with db.session() as session:
        session.execute(update(Reader).where(Reader.id == members[3]).values(status="unsubscribed"))
    claimed, skipped = ledger.claim(batch, "b1", "outbox")
    assert [c.reader_id for c in claimed] == members[:3] + members[4:] and skipped == 1
    assert ledger.claim(batch, "b2", "outbox") == ([], 0)  # claimed already: nothing twice
    counts = ledger.counts()
    assert counts[LedgerState.SENDING] == 19 and counts[LedgerState.SKIPPED] == 1


def test_claim_never_takes_more_than_the_batch_counted(db, readers):
    """Readers planned into a batch's range after it was formed wait for a later batch."""
    ledger = SendLedger(db, "e1")
    _plan(ledger, readers[::2], lambda r: "va")
    batch = ledger.planned_batches(1000)[0]
    _plan(ledger, readers[1::2], lambda r: "va")  # a late planner fills the gaps of the range
    claimed, _ = ledger.claim(batch, "b1", "outbox")
    assert len(claimed) == batch.readers == len(readers[::2])
    assert [c.reader_id for c in claimed] == sorted(readers)[:batch.readers]
    assert ledger.planned_batches(1000) == [PlannedBatch("va", readers[batch.readers], readers[-1],
                                                         len(readers) - batch.readers)]


def test_batch_statements_use_their_indexes_on_sqlite(db, readers):
    """Confirming a batch looks it up by (batch_id, edition_id), and claiming one reads a range of
    (edition, variant, reader): neither reads the whole edition (which made a 100k send take minutes)."""
    from pipeline.delivery import ledger as module

    ledger = SendLedger(db, "e1")
    _plan(ledger, readers, lambda r: "va")
    params = {"edition": "e1", "batch": "b1", "variant": "va", "first": 1, "last": 9, "size": 5, "now": None,
              "message": "m", "transport": "outbox", "ids": [1, 2]}

    def plan_of(statement) -> str:
        with db.transaction() as connection:
            compiled = statement.compile(connection, compile_kwargs={})
            sql = str(compiled)
            values = compiled.construct_params(params)
            rows = connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}", tuple(values[k] for k in compiled.positiontup))
            return " | ".join(row[-1] for row in rows)

    assert "ix_send_ledger_batch" in plan_of(module._CONFIRM)
    claim = plan_of(module._CLAIM)
    assert "ix_send_ledger_variant" in claim and "reader_id>?" in claim


def test_failed_readers_keep_their_reason_and_are_never_planned_again(db, readers):
    """Readers refused at confirm are failed with the reason, the rest sent, and no later plan includes the failed."""
    ledger = SendLedger(db, "e1")
    _plan(ledger, readers[:5], lambda r: "va")
    claimed, _ = ledger.claim(PlannedBatch("va", readers[0], readers[4], 5), "b1", "sendgrid")
    ledger.confirm("b1", "MSG", refused={readers[1]: "SendGrid refused this reader: Does not contain a valid address."})
    counts = ledger.counts()
    assert (counts[LedgerState.SENT], counts[LedgerState.FAILED]) == (4, 1)
    [failed] = ledger.failed()
    assert failed.reader_id == readers[1] and failed.reason.endswith("Does not contain a valid address.")
    assert readers[1] not in ledger.readers_to_plan(1)
