"""A reader's rights over their data: everything held about them, and forgetting them.

`export_reader` gathers every row that concerns one address, in every audience: the profile,
declared and learned interests, needs (with the reader's own words), answers to the ask, what each edition sent them and why, their
engagement events with the raw provider payloads, and their replies (attributed to them, or
sent from their address). `forget_reader` erases all of it and keeps
one thing only: a SHA-256 digest of the address, so that a later import of an old list can
never bring them back as a subscriber. The digest is not keyed, so it keeps working whatever
happens to READERFIRST_SECRET; it reveals an address only to someone who already has it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, delete, func, or_, select

from pipeline.audience.addresses import display_address, lookup_address
from pipeline.errors import UnknownReader
from pipeline.store.chunks import ANY_OF_LINES, as_lines, id_chunks
from pipeline.store.database import Database
from pipeline.store.models import (
    AskAnswer,
    Audience,
    EngagementEvent,
    ForgottenAddress,
    QuarantinedEvent,
    Reader,
    ReaderInterest,
    ReaderNeed,
    Reply,
    SendLedgerEntry,
    UnappliedEvent,
    utcnow,
)
from pipeline.store.upsert import insert_ignore_rows

__all__ = ["ForgetReport", "address_digest", "export_reader", "forget_reader", "forgotten_among"]


def address_digest(stored_email: str) -> str:
    """The digest kept for a forgotten address (of its stored, ASCII lower-case form)."""
    return hashlib.sha256(f"readerfirst-forgotten:{stored_email}".encode()).hexdigest()


def _when(value: dt.datetime | dt.date | None) -> str | None:
    return value.isoformat() if value is not None else None


def _readers(session, email: str) -> tuple[list[Reader], str, list[int]]:
    """The readers with `email` in every audience, the address as stored, and their ids; UnknownReader if none."""
    readers = list(session.scalars(select(Reader).where(Reader.email == lookup_address(email)).order_by(Reader.id)))
    if not readers:
        raise UnknownReader("no reader with that address in any audience")
    return readers, readers[0].email, [reader.id for reader in readers]


def _replies_of(ids: list[int], stored_email: str):
    """Replies attributed to these readers, or sent from their address (a reply to a forged address too)."""
    return or_(Reply.reader_id.in_(ids), func.lower(Reply.from_address) == stored_email)


def export_reader(db: Database, email: str) -> dict:
    """Everything readerfirst holds about `email`, in every audience, as JSON-ready data.

    Raises UnknownReader when no audience has that address.
    """
    with db.session() as session:
        readers, stored, ids = _readers(session, email)
        audiences = dict(session.execute(select(Audience.id, Audience.name)
                                         .where(Audience.id.in_({r.audience_id for r in readers}))).all())
        interests = session.scalars(select(ReaderInterest).where(ReaderInterest.reader_id.in_(ids))).all()
        needs = session.scalars(select(ReaderNeed).where(ReaderNeed.reader_id.in_(ids))).all()
        asked = session.scalars(select(AskAnswer).where(AskAnswer.reader_id.in_(ids))
                                .order_by(AskAnswer.answered_at, AskAnswer.id)).all()
        sends = session.scalars(select(SendLedgerEntry).where(SendLedgerEntry.reader_id.in_(ids))
                                .order_by(SendLedgerEntry.edition_id)).all()
        events = session.scalars(select(EngagementEvent)
                                 .where(or_(EngagementEvent.reader_id.in_(ids), EngagementEvent.email == stored))
                                 .order_by(EngagementEvent.occurred_at, EngagementEvent.id)).all()
        replies = session.scalars(select(Reply).where(_replies_of(ids, stored)).order_by(Reply.id)).all()
        return {
            "email": display_address(stored),
            "email_as_sent": stored,
            "exported_at": _when(utcnow()),
            "readers": [{
                "audience": audiences.get(reader.audience_id),
                "first_name": reader.first_name, "last_name": reader.last_name, "timezone": reader.timezone,
                "status": reader.status, "suppressed_reason": reader.suppressed_reason,
                "suppressed_at": _when(reader.suppressed_at), "tags": list(reader.tags or []),
                "created_at": _when(reader.created_at), "updated_at": _when(reader.updated_at),
                "interests": [{"topic": i.topic, "declared_weight": i.declared_weight, "opted_out": i.opted_out,
                               "learned_clicks": round(i.learned_clicks, 4),
                               "learned_exposures": round(i.learned_exposures, 4)}
                              for i in interests if i.reader_id == reader.id],
                "needs": [{"topic": n.topic, "until": _when(n.until), "source": n.source, "words": n.words}
                          for n in needs if n.reader_id == reader.id],
                "ask_answers": [{"edition": a.edition_id, "topic": a.topic, "words": a.words, "until": _when(a.until),
                                 "answered_at": _when(a.answered_at)} for a in asked if a.reader_id == reader.id],
                "editions": [{"edition": s.edition_id, "state": s.state, "sections": s.picks,
                              "sent_at": _when(s.sent_at)} for s in sends if s.reader_id == reader.id],
            } for reader in readers],
            "events": [{"type": e.event_type, "occurred_at": _when(e.occurred_at), "edition": e.edition_id,
                        "section": e.section_id, "reason": e.reason, "raw": e.raw} for e in events],
            "replies": [{"received_at": _when(r.received_at), "edition": r.edition_id, "from": r.from_address,
                         "subject": r.subject, "text": r.text, "suggested_topics": r.suggested_topics,
                         "confirmed_topic": r.confirmed_topic, "answered_at": _when(r.answered_at)}
                        for r in replies],
        }


@dataclass
class ForgetReport:
    """What forgetting one address erased."""

    readers: int = 0
    events: int = 0
    quarantined: int = 0
    replies: int = 0


def forget_reader(db: Database, email: str) -> ForgetReport:
    """Erase every row about `email` in one transaction, keeping only the digest that blocks re-import.

    Raises UnknownReader when no audience has that address (and then keeps nothing either).
    """
    report = ForgetReport()
    with db.session() as session:
        readers, stored, ids = _readers(session, email)
        connection = session.connection()
        theirs = or_(EngagementEvent.reader_id.in_(ids), EngagementEvent.email == stored)
        # Their events waiting to be applied leave the queue too (SQLite may give a later event the same id).
        connection.execute(delete(UnappliedEvent).where(
            UnappliedEvent.event_id.in_(select(EngagementEvent.id).where(theirs))))
        report.events = connection.execute(delete(EngagementEvent).where(theirs)).rowcount
        # Events that could not be read keep their raw text: any that names the address goes too.
        report.quarantined = connection.execute(delete(QuarantinedEvent).where(
            QuarantinedEvent.raw.contains(stored))).rowcount
        report.replies = connection.execute(delete(Reply).where(_replies_of(ids, stored))).rowcount
        for table in (SendLedgerEntry, ReaderInterest, ReaderNeed, AskAnswer):
            connection.execute(delete(table).where(table.reader_id.in_(ids)))
        report.readers = connection.execute(delete(Reader).where(Reader.id.in_(ids))).rowcount
        insert_ignore_rows(connection, ForgottenAddress.__table__,
                           [{"digest": address_digest(stored), "forgotten_at": utcnow()}], ["digest"])
    return report


def forgotten_among(connection: Connection, stored_emails: Sequence[str]) -> set[str]:
    """Those of `stored_emails` that belong to people who asked to be forgotten."""
    by_digest = {address_digest(email): email for email in stored_emails}
    if by_digest and connection.dialect.name == "postgresql":
        # One parameter: an import asks this of every batch of thousands of addresses.
        rows = connection.exec_driver_sql(f"SELECT digest FROM forgotten_addresses WHERE digest = {ANY_OF_LINES}",
                                          (as_lines(list(by_digest)),))
        return {by_digest[digest] for digest, in rows}
    found: set[str] = set()
    for part in id_chunks(list(by_digest)):
        found.update(by_digest[d] for d in connection.execute(
            select(ForgottenAddress.digest).where(ForgottenAddress.digest.in_(part))).scalars())
    return found
