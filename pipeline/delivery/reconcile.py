"""Reconciliation: settling batches left `sending` from SendGrid's own account of them.

A batch whose request may have reached SendGrid (a timeout, a connection dropped after the
request was written, a crash between claim and confirm) is left `sending`: resending it blindly
could give its readers two copies, since SendGrid has no idempotency key. But SendGrid posts
`processed` for every personalization it accepted within minutes, then `delivered`, `deferred`,
`bounce` or `dropped`, each carrying our custom_args (edition, reader), and the webhook stores
them in `engagement_events`. So, per unconfirmed SendGrid batch (an outbox batch left by a crash
has no events to be settled by and waits for `--resend-unconfirmed`):

- any such event for one of its readers proves the request was accepted, and a request is
  accepted whole: every reader of the batch becomes `sent`, with the event as evidence in
  `reason` (a `dropped` or `bounce` is still `sent`: the send happened, and what became of it
  is the engagement data's to tell; a hard bounce suppresses the reader there);
- no event at all, `after` seconds past the claim (READERFIRST_RECONCILE_AFTER, 1 h by
  default, far beyond the minutes SendGrid takes to post `processed`), while the webhook did
  bring events for the edition's other requests that SendGrid processed on both sides of this
  one: one within WITNESS_WINDOW (10 minutes) before the claim's second and one within
  WITNESS_WINDOW after it (SendGrid's times are whole seconds: the claim's own is neither side).
  The first shows that the webhook was set up and working when this request's events were due,
  the second that it kept working after them: the request was not accepted, and the batch goes
  back to `planned`, so the next run sends it;
- no event, the wait over, and no such pair of witnesses: silence proves nothing. The webhook
  may not have been set up then (SendGrid never posts those events later), may have been down
  (SendGrid retries a failed post for a day), or may not be subscribed to delivery events. The
  batch is held (`sending`, reason HELD): sent when its events come, put back once witnesses
  do, or resent by hand (`send --resend-unconfirmed`) after a look at SendGrid's activity.
  Putting it back on silence alone mailed every reader of an accepted request twice whenever the
  webhook was not working; taking any later event as the witness did the same once the webhook
  was fixed and the rest of the edition sent. A lost answer in the middle of a send has
  neighbours on both sides; a crash before the first request, or on the last one, is held;
- otherwise it waits for the next reconciliation.

It also fills in the message id of sent readers whose 202 carried no `X-Message-Id`, from
the events' `sg_message_id` (which starts with it).
"""

from __future__ import annotations

import bisect
import datetime as dt
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import bindparam, or_, select, update

from pipeline.delivery.ledger import HELD
from pipeline.engagement.events import EventType
from pipeline.store.chunks import id_chunks
from pipeline.store.database import Database
from pipeline.store.models import EngagementEvent, LedgerState, SendLedgerEntry, utcnow

__all__ = ["ReconcileReport", "reconcile_edition", "reconcile_all", "EVIDENCE", "CONFIRMED_BY_BATCH",
           "PUT_BACK", "HELD", "WITNESS_WINDOW", "confirmed_by"]

# The events SendGrid posts about a personalization it accepted, whatever became of it after.
EVIDENCE = (EventType.PROCESSED, EventType.DELIVERED, EventType.DEFERRED, EventType.DROPPED,
            EventType.HARD_BOUNCE, EventType.SOFT_BOUNCE)
# A reader's own evidence, strongest first: what it is confirmed by when it has several.
_PREFERENCE = {kind.value: rank for rank, kind in enumerate(
    (EventType.DELIVERED, EventType.HARD_BOUNCE, EventType.SOFT_BOUNCE, EventType.DROPPED, EventType.DEFERRED,
     EventType.PROCESSED))}
CONFIRMED_BY_BATCH = "reconciled: sent (SendGrid reported events for other readers of the same request)"
PUT_BACK = "reconciled: no SendGrid event for its request; put back to be sent again"
# How far from a claim another request's delivery event still shows that the webhook was working
# when this one's were due: a send hands its batches over seconds apart.
WITNESS_WINDOW = dt.timedelta(minutes=10)

_SENDGRID = "sendgrid"  # only SendGrid posts events to settle a batch by; the outbox's wait for --resend-unconfirmed
_T = SendLedgerEntry.__table__
_E = EngagementEvent.__table__
_SETTLE = (update(_T).where(_T.c.edition_id == bindparam("edition"), _T.c.reader_id == bindparam("rid"),
                            _T.c.state == LedgerState.SENDING, _T.c.batch_id == bindparam("batch"))
           .values(state=LedgerState.SENT, message_id=bindparam("mid"), sent_at=bindparam("now"),
                   reason=bindparam("why")))
_OF_SENDING_BATCH = update(_T).where(_T.c.edition_id == bindparam("edition"), _T.c.batch_id == bindparam("batch"),
                                     _T.c.state == LedgerState.SENDING)
_PUT_BACK = _OF_SENDING_BATCH.values(state=LedgerState.PLANNED, batch_id=None, sending_at=None, reason=PUT_BACK)
_HOLD = _OF_SENDING_BATCH.values(reason=HELD)
_FILL_ID = (update(_T).where(_T.c.edition_id == bindparam("edition"), _T.c.reader_id == bindparam("rid"),
                             _T.c.state == LedgerState.SENT, _T.c.message_id.is_(None))
            .values(message_id=bindparam("mid")))


def confirmed_by(event_type: str) -> str:
    """The ledger reason of a reader confirmed sent by its own SendGrid event of `event_type`."""
    return f"reconciled: sent (SendGrid reported {event_type})"


@dataclass
class ReconcileReport:
    """What one reconciliation decided, in readers (and batches)."""

    confirmed: int = 0  # marked sent from SendGrid's events
    put_back: int = 0  # no event within the wait, though other requests' events came: planned again
    waiting: int = 0  # unconfirmed, still within the wait
    held: int = 0  # no event within the wait, and no witnesses on both sides of it: kept unconfirmed
    message_ids: int = 0  # sent readers whose unknown message id was filled in
    batches_confirmed: int = 0
    batches_put_back: int = 0
    batches_waiting: int = 0
    batches_held: int = 0

    def add(self, other: ReconcileReport) -> None:
        """Fold another report into this one."""
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def summary(self) -> dict[str, int]:
        """The report as a flat dict, for flow summaries and artifacts."""
        return {f"reconciled_{name}": getattr(self, name) for name in self.__dataclass_fields__}


def _message_id(raw: object) -> str | None:
    """The request's X-Message-Id: the part of an event's sg_message_id before the first dot."""
    value = raw.get("sg_message_id") if isinstance(raw, dict) else None
    if not isinstance(value, str) or not value:
        return None
    return value.split(".", 1)[0][:200] or None


def _evidence(connection, edition_id: str, reader_ids: Iterable[int]) -> dict[int, tuple[str, str | None]]:
    """reader id -> (its strongest event type, the message id it names) for readers with any evidence."""
    found: dict[int, tuple[str, str | None]] = {}
    kinds = [kind.value for kind in EVIDENCE]
    for part in id_chunks(list(reader_ids)):
        rows = connection.execute(select(_E.c.reader_id, _E.c.event_type, _E.c.raw)
                                  .where(_E.c.edition_id == edition_id, _E.c.reader_id.in_(part),
                                         _E.c.event_type.in_(kinds)))
        for reader_id, event_type, raw in rows:
            known = found.get(reader_id)
            message_id = _message_id(raw)
            if known is None or _PREFERENCE[event_type] < _PREFERENCE[known[0]]:
                found[reader_id] = (event_type, message_id or (known[1] if known else None))
            elif known[1] is None and message_id:
                found[reader_id] = (known[0], message_id)
    return found


def _witnesses(connection, edition_id: str, first: dt.datetime, last: dt.datetime) -> list[dt.datetime]:
    """The distinct times (sorted) of the edition's delivery events from `first` to `last`: when SendGrid processed
    its requests."""
    kinds = [kind.value for kind in EVIDENCE]
    return list(connection.scalars(select(_E.c.occurred_at).distinct()
                                   .where(_E.c.edition_id == edition_id, _E.c.event_type.in_(kinds),
                                          _E.c.occurred_at >= first, _E.c.occurred_at <= last)
                                   .order_by(_E.c.occurred_at)))


def _witnessed(times: list[dt.datetime], since: dt.datetime) -> bool:
    """Whether `times` hold a witness on each side of a request handed over at `since` (see the module docstring).

    SendGrid's timestamps are whole seconds, so an event of the claim's own second may be from
    either side of it: it counts as neither. Before is up to the second before the claim's, after
    from the second after it.
    """
    second = since.replace(microsecond=0)
    before = bisect.bisect_left(times, second - WITNESS_WINDOW)
    after = bisect.bisect_right(times, second)
    return (before < len(times) and times[before] < second
            and after < len(times) and times[after] <= second + WITNESS_WINDOW)


def reconcile_edition(db: Database, edition_id: str, *, after: float, now: dt.datetime | None = None) -> ReconcileReport:
    """Settle the edition's unconfirmed batches from stored SendGrid events (see the module docstring)."""
    now = now or utcnow()
    report = ReconcileReport()
    times: list[dt.datetime] | None = None  # read once, when a batch's wait is over
    with db.session() as session:
        rows = session.execute(select(_T.c.batch_id, _T.c.reader_id, _T.c.sending_at)
                               .where(_T.c.edition_id == edition_id, _T.c.state == LedgerState.SENDING,
                                      _T.c.transport == _SENDGRID)
                               .order_by(_T.c.batch_id, _T.c.reader_id)).all()
    batches: dict[str | None, list[int]] = defaultdict(list)
    claimed_at: dict[str | None, dt.datetime] = {}
    for batch_id, reader_id, sending_at in rows:
        batches[batch_id].append(reader_id)
        if sending_at is not None and (batch_id not in claimed_at or sending_at < claimed_at[batch_id]):
            claimed_at[batch_id] = sending_at
    for batch_id, readers in batches.items():
        with db.write_transaction() as connection:
            evidence = _evidence(connection, edition_id, readers)
            if evidence:
                # One accepted request, one X-Message-Id: readers without events of their own share it.
                shared = Counter(mid for _, mid in evidence.values() if mid).most_common(1)
                batch_message = shared[0][0] if shared else None
                connection.execute(_SETTLE, [
                    {"edition": edition_id, "batch": batch_id, "rid": reader, "now": now,
                     "mid": (evidence[reader][1] or batch_message) if reader in evidence else batch_message,
                     "why": confirmed_by(evidence[reader][0]) if reader in evidence else CONFIRMED_BY_BATCH}
                    for reader in readers])
                report.confirmed += len(readers)
                report.batches_confirmed += 1
                continue
            since = claimed_at.get(batch_id)
            if since is None or (now - since).total_seconds() >= after:
                if since is not None:
                    if times is None:
                        times = _witnesses(connection, edition_id,
                                           min(claimed_at.values()).replace(microsecond=0) - WITNESS_WINDOW,
                                           max(claimed_at.values()) + WITNESS_WINDOW)
                    if not _witnessed(times, since):
                        report.held += connection.execute(_HOLD, {"edition": edition_id, "batch": batch_id}).rowcount
                        report.batches_held += 1
                        continue
                report.put_back += connection.execute(_PUT_BACK, {"edition": edition_id, "batch": batch_id}).rowcount
                report.batches_put_back += 1
            else:
                report.waiting += len(readers)
                report.batches_waiting += 1
    report.message_ids = _fill_message_ids(db, edition_id)
    return report


def _fill_message_ids(db: Database, edition_id: str) -> int:
    """Give sent readers whose message id is unknown the one their events name; returns how many."""
    with db.session() as session:
        unknown = list(session.scalars(select(_T.c.reader_id).where(
            _T.c.edition_id == edition_id, _T.c.state == LedgerState.SENT, _T.c.message_id.is_(None),
            _T.c.transport == _SENDGRID)))
    if not unknown:
        return 0
    with db.write_transaction() as connection:
        named = {reader: mid for reader, (_, mid) in _evidence(connection, edition_id, unknown).items() if mid}
        if named:
            connection.execute(_FILL_ID, [{"edition": edition_id, "rid": r, "mid": m} for r, m in named.items()])
    return len(named)


def reconcile_all(db: Database, *, after: float, now: dt.datetime | None = None) -> dict[str, ReconcileReport]:
    """Reconcile every edition with unconfirmed batches or unknown SendGrid message ids."""
    with db.session() as session:
        editions = list(session.scalars(select(_T.c.edition_id).distinct().where(or_(
            (_T.c.state == LedgerState.SENDING) & (_T.c.transport == _SENDGRID),
            (_T.c.state == LedgerState.SENT) & _T.c.message_id.is_(None) & (_T.c.transport == _SENDGRID)))))
    return {edition: reconcile_edition(db, edition, after=after, now=now) for edition in sorted(editions)}
