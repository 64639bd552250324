"""Reconciliation: unconfirmed SendGrid batches settled from stored delivery events, or put back after the wait."""

from __future__ import annotations

import datetime as dt
import itertools

import pytest
from sqlalchemy import select

from pipeline.audience.directory import sendable_reader_ids
from pipeline.audience.importer import import_audience
from pipeline.delivery.ledger import PlannedBatch, PlannedEntry, SendLedger
from pipeline.delivery.reconcile import (
    CONFIRMED_BY_BATCH,
    HELD,
    PUT_BACK,
    WITNESS_WINDOW,
    confirmed_by,
    reconcile_all,
    reconcile_edition,
)
from pipeline.engagement.sendgrid_events import parse_events
from pipeline.engagement.store import store_events
from pipeline.store.models import LedgerState, Reader, SendLedgerEntry, utcnow
from tests.conftest import SAMPLE_AUDIENCE

TODAY = dt.date(2026, 12, 1)
EDITION = "e1"
_ids = itertools.count()


@pytest.fixture
def readers(db) -> list[int]:
    """The sample audience's sendable readers, planned for edition e1 in one variant."""
    import_audience(db, SAMPLE_AUDIENCE, "sample", today=TODAY)
    reader_ids = sendable_reader_ids(db, 1)
    SendLedger(db, EDITION).record_plan(1, [PlannedEntry(r, "v1", [["s1", "why"]]) for r in reader_ids])
    return reader_ids


def claim(db, first: int, last: int, batch_id: str, transport: str = "sendgrid") -> list[int]:
    """Claim the planned readers with ids first..last as one batch; returns their ids."""
    claimed, _ = SendLedger(db, EDITION).claim(PlannedBatch("v1", first, last, last - first + 1), batch_id, transport)
    return [entry.reader_id for entry in claimed]


def post_events(db, reader_ids: list[int], kind: str = "processed", x_message_id: str = "XMSG1",
                at: dt.datetime | None = None, **extra) -> None:
    """Store SendGrid events of `kind` (at `at`, naive UTC) for these readers of e1 through the webhook's own parser
    and store."""
    with db.session() as session:
        emails = dict(session.execute(select(Reader.id, Reader.email).where(Reader.id.in_(reader_ids))).all())
    timestamp = int(at.replace(tzinfo=dt.UTC).timestamp()) if at else 1_796_000_000
    events = [{"email": emails[r], "timestamp": timestamp, "event": kind, "sg_event_id": f"ev-{next(_ids)}",
               "sg_message_id": f"{x_message_id}.filterdrecv-1.{r}", "edition_id": EDITION, "reader_id": str(r),
               "variant_id": "v1", "holdout": "0", **extra} for r in reader_ids]
    parsed, quarantined = parse_events(events)
    assert not quarantined
    store_events(db, parsed, [], source="test")


def witnesses(db, readers: list[int], since: dt.datetime, before: dt.timedelta | None = dt.timedelta(seconds=-1),
              after: dt.timedelta | None = dt.timedelta(seconds=2)) -> None:
    """Other requests of e1 (readers 5-6 and 7-8) sent and confirmed, with `processed` events that SendGrid
    processed at `since` + `before` and + `after` (None: no such request)."""
    for offset, (first, last), batch in ((before, (5, 6), "w1"), (after, (7, 8), "w2")):
        if offset is None:
            continue
        sent = claim(db, readers[first], readers[last], batch)
        SendLedger(db, EDITION).confirm(batch, f"X{batch}")
        post_events(db, sent, "processed", x_message_id=f"X{batch}", at=since + offset)


def claimed_at(db, batch_id: str) -> dt.datetime:
    return next(b.since for b in SendLedger(db, EDITION).unconfirmed() if b.batch_id == batch_id)


def states(db, reader_ids: list[int]) -> dict[int, tuple[str, str | None, str | None]]:
    """reader id -> (state, message id, reason) in e1's ledger."""
    with db.session() as session:
        rows = session.execute(select(SendLedgerEntry.reader_id, SendLedgerEntry.state, SendLedgerEntry.message_id,
                                      SendLedgerEntry.reason)
                               .where(SendLedgerEntry.edition_id == EDITION, SendLedgerEntry.reader_id.in_(reader_ids)))
        return {r: (s, m, why) for r, s, m, why in rows}


def test_one_readers_event_confirms_the_whole_request(db, readers):
    """A processed event for any reader of an unconfirmed batch marks every reader of it sent, with the request's message id."""
    batch = claim(db, readers[0], readers[9], "b1")
    post_events(db, batch[:1], "processed")
    post_events(db, batch[1:2], "delivered")
    report = reconcile_edition(db, EDITION, after=3600)
    assert (report.confirmed, report.batches_confirmed, report.put_back) == (10, 1, 0)
    found = states(db, batch)
    assert found[batch[0]] == (LedgerState.SENT, "XMSG1", confirmed_by("processed"))
    assert found[batch[1]] == (LedgerState.SENT, "XMSG1", confirmed_by("delivered"))
    assert {found[r] for r in batch[2:]} == {(LedgerState.SENT, "XMSG1", CONFIRMED_BY_BATCH)}
    assert SendLedger(db, EDITION).unconfirmed() == []


@pytest.mark.parametrize("kind, extra", [("dropped", {"reason": "Bounced Address"}),
                                         ("bounce", {"type": "bounce", "reason": "550 no such user"})])
def test_dropped_or_bounced_reader_counts_as_sent_with_the_event_as_evidence(db, readers, kind, extra):
    """A dropped or bounce event still proves SendGrid took the request: sent, with that event recorded as the reason."""
    batch = claim(db, readers[0], readers[2], "b1")
    post_events(db, batch[:1], kind, **extra)
    reconcile_edition(db, EDITION, after=3600)
    recorded = "dropped" if kind == "dropped" else "hard_bounce"
    assert states(db, batch[:1])[batch[0]] == (LedgerState.SENT, "XMSG1", confirmed_by(recorded))


def test_batch_without_events_is_put_back_only_after_the_wait(db, readers):
    """With no event, a batch waits until `after` seconds past its claim, then goes back to planned for the next run
    (the webhook brought events of the edition's requests processed just before and just after it)."""
    batch = claim(db, readers[0], readers[4], "b1")
    witnesses(db, readers, claimed_at(db, "b1"))
    early = reconcile_edition(db, EDITION, after=3600)
    assert (early.waiting, early.batches_waiting, early.put_back) == (5, 1, 0)
    assert {s for s, _, _ in states(db, batch).values()} == {LedgerState.SENDING}
    later = reconcile_edition(db, EDITION, after=3600, now=utcnow() + dt.timedelta(seconds=3601))
    assert (later.put_back, later.batches_put_back) == (5, 1)
    assert set(states(db, batch).values()) == {(LedgerState.PLANNED, None, PUT_BACK)}
    ledger = SendLedger(db, EDITION)
    assert sum(b.readers for b in ledger.planned_batches(1000)) == len(readers) - 4  # the next run sends them


def test_outbox_batches_are_left_for_an_explicit_resend(db, readers):
    """A crashed outbox batch has no events to be settled by: reconciliation never touches it."""
    batch = claim(db, readers[0], readers[4], "b1", transport="outbox")
    report = reconcile_edition(db, EDITION, after=0)
    assert report.put_back == 0 and report.waiting == 0
    assert {s for s, _, _ in states(db, batch).values()} == {LedgerState.SENDING}


def test_unknown_message_ids_are_filled_from_events(db, readers):
    """A sent batch whose 202 had no X-Message-Id gets its id from the events' sg_message_id."""
    batch = claim(db, readers[0], readers[2], "b1")
    SendLedger(db, EDITION).confirm("b1", None)
    assert {m for _, m, _ in states(db, batch).values()} == {None}
    post_events(db, batch, "delivered", x_message_id="XLATE")
    reports = reconcile_all(db, after=3600)
    assert reports[EDITION].message_ids == 3
    assert set(states(db, batch).values()) == {(LedgerState.SENT, "XLATE", None)}
    assert reconcile_all(db, after=3600) == {}  # nothing left to settle


def test_events_of_another_edition_prove_nothing(db, readers):
    """Events for the same readers of another edition neither confirm this edition's batch nor show its webhook
    working: the batch is held."""
    batch = claim(db, readers[0], readers[2], "b1")
    post_events(db, batch, "delivered", edition_id="another-edition", at=utcnow())
    report = reconcile_edition(db, EDITION, after=0)
    assert (report.confirmed, report.put_back, report.held) == (0, 0, 3)


def test_silence_without_a_working_webhook_holds_the_batch(db, readers):
    """No event for the batch and no witnesses: the webhook may not have been working, so the batch is held (still
    sending), never put back to be sent twice; witnesses on both sides later put it back."""
    batch = claim(db, readers[0], readers[4], "b1")
    later = utcnow() + dt.timedelta(seconds=3601)
    for _ in range(2):  # every later reconciliation keeps it
        report = reconcile_edition(db, EDITION, after=3600, now=later)
        assert (report.held, report.batches_held, report.put_back, report.waiting) == (5, 1, 0, 0)
        assert set(states(db, batch).values()) == {(LedgerState.SENDING, None, HELD)}
        assert report.summary()["reconciled_held"] == 5
    witnesses(db, readers, claimed_at(db, "b1"))  # their events came late (SendGrid's retries): ours never did
    report = reconcile_edition(db, EDITION, after=3600, now=later)
    assert (report.held, report.put_back) == (0, 5)
    assert set(states(db, batch).values()) == {(LedgerState.PLANNED, None, PUT_BACK)}


def test_held_batch_is_confirmed_when_its_own_events_come(db, readers):
    """A held batch whose events arrive late (the webhook fixed) is sent, with the event as evidence."""
    batch = claim(db, readers[0], readers[2], "b1")
    assert reconcile_edition(db, EDITION, after=0).held == 3
    post_events(db, batch[:1], "delivered", at=utcnow())
    report = reconcile_edition(db, EDITION, after=0)
    assert (report.confirmed, report.held) == (3, 0)
    assert states(db, batch)[batch[1]] == (LedgerState.SENT, "XMSG1", CONFIRMED_BY_BATCH)


def test_a_webhook_set_up_after_the_request_proves_nothing(db, readers):
    """Requests sent once the webhook was fixed have events after the claim, and none from before it: SendGrid never
    posts events to a webhook that was not set up, so the batch stays held (put back, it was mailed twice)."""
    batch = claim(db, readers[0], readers[2], "b1")
    witnesses(db, readers, claimed_at(db, "b1"), before=None, after=dt.timedelta(seconds=30))
    report = reconcile_edition(db, EDITION, after=0)
    assert (report.held, report.put_back) == (3, 0)
    assert {s for s, _, _ in states(db, batch).values()} == {LedgerState.SENDING}


@pytest.mark.parametrize("before, after", [(dt.timedelta(seconds=-1), None), (dt.timedelta(0), dt.timedelta(seconds=2))])
def test_a_webhook_down_after_the_request_proves_nothing(db, readers, before, after):
    """Events from before the claim only: the webhook may have gone down before this request's events were posted
    (SendGrid retries them for a day), so the batch stays held; one from the claim's own second may be from after
    the claim and shows nothing of the time before it."""
    batch = claim(db, readers[0], readers[2], "b1")
    witnesses(db, readers, claimed_at(db, "b1"), before=before, after=after)
    report = reconcile_edition(db, EDITION, after=0)
    assert (report.held, report.put_back) == (3, 0)
    assert set(states(db, batch).values()) == {(LedgerState.SENDING, None, HELD)}


@pytest.mark.parametrize("before, after", [
    (-(WITNESS_WINDOW + dt.timedelta(seconds=2)), dt.timedelta(seconds=2)),
    (dt.timedelta(seconds=-1), WITNESS_WINDOW + dt.timedelta(seconds=2)),
    (dt.timedelta(seconds=-1), dt.timedelta(seconds=-1) + dt.timedelta(microseconds=500_000))])
def test_witnesses_outside_the_window_prove_nothing(db, readers, before, after):
    """A witness too long before or after the claim, or none after its second, does not show the webhook working when
    this request's events were due: held."""
    batch = claim(db, readers[0], readers[2], "b1")
    witnesses(db, readers, claimed_at(db, "b1"), before=before, after=after)
    report = reconcile_edition(db, EDITION, after=0, now=claimed_at(db, "b1") + 2 * WITNESS_WINDOW)
    assert (report.held, report.put_back) == (3, 0)
    assert {s for s, _, _ in states(db, batch).values()} == {LedgerState.SENDING}


def test_a_released_or_reclaimed_batch_is_no_longer_held(db, readers):
    """HELD is said of one claim: `--resend-unconfirmed` releases it and the new claim is not held; sent, its
    readers carry no HELD reason."""
    claim(db, readers[0], readers[2], "b1")
    assert reconcile_edition(db, EDITION, after=0).held == 3
    ledger = SendLedger(db, EDITION)
    assert [b.reason for b in ledger.unconfirmed()] == [HELD]
    assert ledger.release("b1") == 3
    batch = claim(db, readers[0], readers[2], "b2")
    assert [(b.batch_id, b.reason) for b in ledger.unconfirmed()] == [("b2", None)]
    ledger.confirm("b2", "XMSG2")
    assert set(states(db, batch).values()) == {(LedgerState.SENT, "XMSG2", None)}
