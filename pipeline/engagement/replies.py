"""Replies: stored once with their reader and edition, listed for the editor, turned into needs.

`store_reply` keeps one received mail: the reader and edition come only from a genuine reply
token among its recipients (`pipeline.audience.reply_address`), never from the sender's
address, which anyone can write; a reply with no genuine token is kept unattributed. The text
is kept without its quotes and signature, with the needs it suggests. An attributed reply also
becomes a `reply` engagement event (learning counts it as the strongest signal), in the same
transaction. A Message-ID seen before changes nothing: SendGrid retries a post it did not see
acknowledged.

`confirm_reply` records the suggested (or another) need for the reply's reader, with the
source "reply"; `mark_answered` notes that the editor wrote back.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass

from sqlalchemy import Connection, select, update

from pipeline.audience.reply_address import ReplyToken, edition_digest, read_reply_address
from pipeline.content.topics import Taxonomy
from pipeline.engagement.events import EventType
from pipeline.engagement.inbound_parse import InboundMessage
from pipeline.engagement.reply_text import strip_quoted, suggest_topics
from pipeline.errors import PipelineError
from pipeline.store.database import Database
from pipeline.store.models import EngagementEvent, Reader, ReaderNeed, Reply, SendLedgerEntry, utcnow
from pipeline.store.upsert import insert_ignore_rows, upsert_rows

__all__ = ["NEED_DAYS", "InvalidNeed", "ReplyNotFound", "ReplyRow", "StoredReply", "confirm_reply", "list_replies",
           "mark_answered", "reply_event_id", "store_reply"]

NEED_DAYS = (30, 45, 60)  # how long a need confirmed from a reply lasts: the ask's "next 30-60 days"


class ReplyNotFound(PipelineError, LookupError):
    """No reply with that id (or it cannot be confirmed: it names no reader)."""


class InvalidNeed(PipelineError, ValueError):
    """A need to confirm from a reply with a topic the taxonomy does not have, or a length not offered."""


@dataclass(frozen=True)
class StoredReply:
    """What storing one received mail did."""

    reply_id: int | None
    duplicate: bool
    attributed: bool
    suggested: tuple[str, ...] = ()


@dataclass(frozen=True)
class ReplyRow:
    """One reply as the editor sees it."""

    id: int
    received_at: dt.datetime
    edition_id: str | None
    attributed: bool
    from_address: str
    subject: str
    text: str
    suggested_topics: list[str]
    confirmed_topic: str | None
    answered_at: dt.datetime | None
    reader_id: int | None = None  # never printed: the editor sees the address

    def as_json(self) -> dict:
        """The row as JSON-ready data (for `readerfirst replies --json`)."""
        return {"id": self.id, "received_at": self.received_at.isoformat(), "edition": self.edition_id,
                "attributed": self.attributed, "from": self.from_address, "subject": self.subject,
                "text": self.text, "suggested_topics": list(self.suggested_topics),
                "confirmed_topic": self.confirmed_topic,
                "answered_at": self.answered_at.isoformat() if self.answered_at else None}


def reply_event_id(message_id: str) -> str:
    """The engagement event id of a reply: one per Message-ID, so a resent post adds no second event."""
    return "reply-" + hashlib.sha256(message_id.encode("utf-8", "replace")).hexdigest()[:48]


def _token(message: InboundMessage, secret: bytes, domain: str | None) -> ReplyToken | None:
    for address in message.recipients:
        found = read_reply_address(secret, address, domain)
        if found is not None:
            return found
    return None


def _attribution(connection: Connection, token: ReplyToken | None) -> tuple[int | None, str | None, str]:
    """(reader id, edition id, reader's address) named by a genuine token, else (None, None, "")."""
    if token is None:
        return None, None, ""
    found = connection.execute(select(Reader.id, Reader.email).where(Reader.public_id == token.public_id)).first()
    if found is None:
        return None, None, ""  # a genuine token of a reader since forgotten: nobody to attach it to
    editions = connection.execute(select(SendLedgerEntry.edition_id)
                                  .where(SendLedgerEntry.reader_id == found.id)).scalars()
    edition = next((e for e in editions if edition_digest(e) == token.edition_digest), None)
    return found.id, edition, found.email


def store_reply(db: Database, message: InboundMessage, *, secret: bytes, reply_domain: str | None,
                taxonomy: Taxonomy, now: dt.datetime | None = None) -> StoredReply:
    """Store one received mail in one transaction (see the module docstring); raises the database's errors."""
    now = now or utcnow()
    text = strip_quoted(message.text)
    # The subject is left out: a reply's is "Re: " and the edition's own, which names our topics, not theirs.
    suggested = suggest_topics(text, taxonomy)
    with db.session() as session:
        connection = session.connection()
        seen = connection.execute(select(Reply.id).where(Reply.message_id == message.message_id)).scalar()
        if seen is not None:
            return StoredReply(seen, duplicate=True, attributed=False)
        reader_id, edition_id, email = _attribution(connection, _token(message, secret, reply_domain))
        attributed = reader_id is not None
        insert_ignore_rows(connection, Reply.__table__, [{
            "reader_id": reader_id, "edition_id": edition_id, "received_at": now, "attributed": attributed,
            "from_address": message.from_address, "to_address": message.recipients[0] if message.recipients else "",
            "subject": message.subject, "text": text, "raw_size": message.raw_size, "suggested_topics": suggested,
            "confirmed_topic": None, "answered_at": None, "message_id": message.message_id}], ["message_id"])
        reply_id = connection.execute(select(Reply.id).where(Reply.message_id == message.message_id)).scalar_one()
        if attributed:
            insert_ignore_rows(connection, EngagementEvent.__table__, [{
                "provider_event_id": reply_event_id(message.message_id), "event_type": EventType.REPLY.value,
                "reason": None, "email": email, "reader_id": reader_id, "edition_id": edition_id,
                "section_id": None, "variant_id": None, "holdout": None, "occurred_at": now, "received_at": now,
                "raw": {"reply_id": reply_id, "topics": suggested}}], ["provider_event_id"])
    return StoredReply(reply_id, duplicate=False, attributed=attributed, suggested=tuple(suggested))


def list_replies(db: Database, *, edition: str | None = None, topic: str | None = None,
                 unanswered: bool = False, limit: int | None = None) -> list[ReplyRow]:
    """Replies, newest first; `topic` matches a suggested or confirmed topic."""
    query = select(Reply).order_by(Reply.received_at.desc(), Reply.id.desc())
    if edition is not None:
        query = query.where(Reply.edition_id == edition)
    if unanswered:
        query = query.where(Reply.answered_at.is_(None))
    with db.session() as session:
        rows = [ReplyRow(r.id, r.received_at, r.edition_id, r.attributed, r.from_address, r.subject, r.text,
                         list(r.suggested_topics or []), r.confirmed_topic, r.answered_at, r.reader_id)
                for r in session.scalars(query)]
    if topic is not None:  # JSON containment differs between SQLite and PostgreSQL: filtered here
        rows = [r for r in rows if topic in r.suggested_topics or r.confirmed_topic == topic]
    return rows[:limit] if limit is not None else rows


def confirm_reply(db: Database, reply_id: int, topic: str, *, days: int, taxonomy: Taxonomy,
                  today: dt.date | None = None) -> dt.date:
    """Record `topic` as a need of the reply's reader for `days` days (source "reply"); returns its end."""
    if days not in NEED_DAYS:
        raise InvalidNeed(f"--days={days}: a need lasts 30, 45 or 60 days")
    if topic not in taxonomy:
        raise InvalidNeed(f"topic={topic!r}: {taxonomy.unknown_reason(topic)}")
    today = today or dt.datetime.now(dt.UTC).date()
    until = today + dt.timedelta(days=days)
    with db.session() as session:
        reply = session.get(Reply, reply_id)
        if reply is None:
            raise ReplyNotFound(f"reply {reply_id}: no such reply (see `readerfirst replies`)")
        if reply.reader_id is None or session.get(Reader, reply.reader_id) is None:
            raise ReplyNotFound(f"reply {reply_id}: unattributed (its reply address named no reader), "
                                "so there is nobody to record the need for")
        row = {"reader_id": reply.reader_id, "topic": topic, "until": until, "source": "reply"}
        words = "words" in ReaderNeed.__table__.c  # the reader's own words, where the table keeps them
        if words:
            row["words"] = reply.text[:500]
        upsert_rows(session.connection(), ReaderNeed.__table__, [row], ["reader_id", "topic"],
                    ["until", "source", *(["words"] if words else [])])
        reply.confirmed_topic = topic
    return until


def mark_answered(db: Database, reply_id: int, *, now: dt.datetime | None = None) -> None:
    """Note that the editor answered reply `reply_id`."""
    with db.session() as session:
        changed = session.execute(update(Reply).where(Reply.id == reply_id)
                                  .values(answered_at=now or utcnow())).rowcount
        if not changed:
            raise ReplyNotFound(f"reply {reply_id}: no such reply (see `readerfirst replies`)")
