"""Tables of readerfirst.

Readers belong to an audience. What a reader declared (interests, needs) sits beside
what readerfirst learned (the Beta posterior of each topic), so that a re-import can
update the one and never erase the other.
"""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

__all__ = [
    "Base",
    "Audience",
    "Reader",
    "ReaderInterest",
    "ReaderNeed",
    "SendLedgerEntry",
    "LedgerState",
    "EngagementEvent",
    "EditionSection",
    "QuarantinedEvent",
    "PositionClicks",
    "ForgottenAddress",
    "Reply",
    "AskAnswer",
    "utcnow",
]


def utcnow() -> dt.datetime:
    """Now, in UTC, without tzinfo (the form every table stores)."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def _public_id() -> str:
    return uuid.uuid4().hex


class Base(DeclarativeBase):
    """Declarative base of every table."""


class Audience(Base):
    """A named list of readers (one newsletter's subscribers)."""

    __tablename__ = "audiences"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class Reader(Base):
    """One recipient and their suppression state."""

    __tablename__ = "readers"
    # (audience_id, id): a send plans an audience's readers as ranges of ids, in id order.
    __table_args__ = (UniqueConstraint("audience_id", "email", name="uq_readers_audience_email"),
                      Index("ix_readers_audience", "audience_id", "id"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    audience_id: Mapped[int] = mapped_column(ForeignKey("audiences.id", ondelete="CASCADE"))
    # Opaque id used in tokens and links, so that no sequential id is ever exposed.
    public_id: Mapped[str] = mapped_column(String(32), unique=True, default=_public_id)
    email: Mapped[str] = mapped_column(String(320))
    first_name: Mapped[str] = mapped_column(String(200), default="")
    last_name: Mapped[str] = mapped_column(String(200), default="")
    timezone: Mapped[str] = mapped_column(String(64), default="")
    status: Mapped[str] = mapped_column(String(20), default="subscribed")
    tags: Mapped[list[str]] = mapped_column(JSON, default=list)
    suppressed_reason: Mapped[str | None] = mapped_column(String(64), nullable=True)
    soft_bounces: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    suppressed_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)

    interests: Mapped[list[ReaderInterest]] = relationship(cascade="all, delete-orphan")
    needs: Mapped[list[ReaderNeed]] = relationship(cascade="all, delete-orphan")


class ReaderInterest(Base):
    """A reader's relation to one topic: declared weight and learned exposure/click posterior."""

    __tablename__ = "reader_interests"

    reader_id: Mapped[int] = mapped_column(
        ForeignKey("readers.id", ondelete="CASCADE"), primary_key=True
    )
    topic: Mapped[str] = mapped_column(String(64), primary_key=True)
    declared_weight: Mapped[float | None] = mapped_column(Float, nullable=True)
    learned_clicks: Mapped[float] = mapped_column(Float, default=0.0)
    learned_exposures: Mapped[float] = mapped_column(Float, default=0.0)
    learned_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    opted_out: Mapped[bool] = mapped_column(Boolean, default=False)
    # When the reader last chose about the topic (a group event's time, or the preference centre's):
    # an older choice that arrives later changes nothing (migration 0021).
    opted_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)


class PositionClicks(Base):
    """Clicks on two sections of the same topic in one reader's copy, by how many places apart they were.

    `earlier` counts clicks on the upper section of such a pair, `later` on the lower one: the
    same reader, the same topic and the same reading, so `later / earlier` is the position
    bias over `gap` places (see `pipeline.engagement.learning.position_decay`).
    """

    __tablename__ = "position_clicks"

    gap: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    earlier: Mapped[float] = mapped_column(Float, default=0.0)
    later: Mapped[float] = mapped_column(Float, default=0.0)


class ReaderNeed(Base):
    """Something a reader needs help with soon; ignored once `until` has passed."""

    __tablename__ = "reader_needs"

    reader_id: Mapped[int] = mapped_column(
        ForeignKey("readers.id", ondelete="CASCADE"), primary_key=True
    )
    topic: Mapped[str] = mapped_column(String(64), primary_key=True)
    until: Mapped[dt.date] = mapped_column(Date)
    source: Mapped[str] = mapped_column(String(20), default="import")
    # The reader's own words for the need, when they gave some (the ask's free-text box): personal data.
    words: Mapped[str | None] = mapped_column(Text, nullable=True)


class LedgerState:
    """States of a send-ledger entry, in the order they happen."""

    PLANNED = "planned"  # sections chosen, nothing sent
    SENDING = "sending"  # handed to the transport, not yet confirmed
    SENT = "sent"  # the transport confirmed it
    SKIPPED = "skipped"  # suppressed or unsubscribed when its turn came
    FAILED = "failed"  # the provider (or our own address check) refused this reader: never sent, `reason` says why

    ALL = (PLANNED, SENDING, SENT, SKIPPED, FAILED)


class SendLedgerEntry(Base):
    """What one reader got from one edition, and how far its sending went."""

    __tablename__ = "send_ledger"
    # No index on state: SQLite would prefer it to the primary key for a claim's
    # `reader_id IN (...) AND state = 'planned'` and scan every planned row of the edition.
    # A batch is claimed as a range of this index: (edition, variant, first..last reader).
    __table_args__ = (Index("ix_send_ledger_batch", "batch_id", "edition_id"),
                      Index("ix_send_ledger_variant", "edition_id", "variant_id", "reader_id"))

    edition_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    reader_id: Mapped[int] = mapped_column(
        ForeignKey("readers.id", ondelete="CASCADE"), primary_key=True
    )
    audience_id: Mapped[int] = mapped_column(ForeignKey("audiences.id", ondelete="CASCADE"))
    variant_id: Mapped[str] = mapped_column(String(32))
    # [[section_id, reason], ...] in the order the reader sees them.
    picks: Mapped[list[list[str]]] = mapped_column(JSON)
    holdout: Mapped[bool] = mapped_column(Boolean, default=False)
    state: Mapped[str] = mapped_column(String(12), default=LedgerState.PLANNED)
    batch_id: Mapped[str | None] = mapped_column(String(120), nullable=True)
    message_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    transport: Mapped[str | None] = mapped_column(String(40), nullable=True)
    planned_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    sending_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    sent_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    # Why the entry is where it is when that was not the ordinary claim-and-confirm: SendGrid's
    # message for a refused reader, or what reconciliation decided (see pipeline/delivery/reconcile.py).
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)


class EditionSection(Base):
    """A section of an edition as it was sent: what learning and reports need to know of it."""

    __tablename__ = "edition_sections"

    edition_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    section_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    position: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(20))
    title: Mapped[str] = mapped_column(Text)
    topics: Mapped[list[str]] = mapped_column(JSON, default=list)
    pinned: Mapped[bool] = mapped_column(Boolean, default=False)


class QuarantinedEvent(Base):
    """An engagement event that could not be read, kept with the reason instead of being dropped."""

    __tablename__ = "quarantined_events"
    # Kept once per (source, raw): SendGrid resends a whole batch, malformed events included.
    __table_args__ = (Index("uq_quarantined_events_fingerprint", "fingerprint", unique=True),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    received_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    source: Mapped[str] = mapped_column(String(40))
    reason: Mapped[str] = mapped_column(Text)
    raw: Mapped[str] = mapped_column(Text)
    # SHA-256 (hex) of source + "\n" + raw: see pipeline.engagement.store.quarantine_row.
    fingerprint: Mapped[str] = mapped_column(String(64))


class EngagementEvent(Base):
    """One normalised engagement event (delivered, open, click, bounce...), raw event kept."""

    __tablename__ = "engagement_events"
    __table_args__ = (
        # The report folds events to one row per (edition, reader, type, section).
        Index("ix_engagement_events_report", "edition_id", "reader_id", "event_type", "section_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    provider_event_id: Mapped[str] = mapped_column(String(100), unique=True)
    event_type: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    email: Mapped[str] = mapped_column(String(320))
    reader_id: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)
    edition_id: Mapped[str | None] = mapped_column(String(100), nullable=True)
    section_id: Mapped[str | None] = mapped_column(String(100), nullable=True)
    variant_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    holdout: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    occurred_at: Mapped[dt.datetime] = mapped_column(DateTime)
    received_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    raw: Mapped[dict] = mapped_column(JSON)


class UnappliedEvent(Base):
    """The id of an engagement event that learning has not applied yet.

    The database adds one for every event stored (a trigger: migration 0020), and
    `apply_events` deletes it in the transaction that applies the event. A narrow row of its own,
    so that applying an event never rewrites the event.
    """

    __tablename__ = "unapplied_events"

    event_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)


class ForgottenAddress(Base):
    """A person who asked to be forgotten: only a digest of their address, so no import brings them back."""

    __tablename__ = "forgotten_addresses"

    digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    forgotten_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class Reply(Base):
    """A reader's reply to an edition, as SendGrid's Inbound Parse posted it: quoted text stripped.

    `attributed` is true only when the reply address carried a genuine token: a reply to a
    forged or altered address keeps `reader_id` and `edition_id` empty. `message_id` (the
    Message-ID header, or a digest of the post when there is none) makes a resent post a no-op.
    """

    __tablename__ = "replies"
    __table_args__ = (Index("uq_replies_message_id", "message_id", unique=True),
                      Index("ix_replies_edition", "edition_id", "reader_id"),
                      Index("ix_replies_reader", "reader_id"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    reader_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    edition_id: Mapped[str | None] = mapped_column(String(100), nullable=True)
    received_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    attributed: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    from_address: Mapped[str] = mapped_column(String(320), default="", server_default="")
    to_address: Mapped[str] = mapped_column(String(320), default="", server_default="")
    subject: Mapped[str] = mapped_column(Text, default="", server_default="")
    text: Mapped[str] = mapped_column(Text, default="", server_default="")
    raw_size: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    suggested_topics: Mapped[list[str]] = mapped_column(JSON, default=list)
    confirmed_topic: Mapped[str | None] = mapped_column(String(64), nullable=True)
    answered_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    message_id: Mapped[str] = mapped_column(String(255))


class AskAnswer(Base):
    """One answer to the ask in one edition: the need a reader stated, in their words, and until when.

    Whether a reader was asked is in the send ledger (their picks hold the ask section); an
    answer is kept here once per (reader, edition, topic), so the report counts answers per edition.
    """

    __tablename__ = "ask_answers"
    __table_args__ = (UniqueConstraint("reader_id", "edition_id", "topic", name="uq_ask_answers_reader_edition_topic"),
                      Index("ix_ask_answers_edition", "edition_id", "reader_id"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    reader_id: Mapped[int] = mapped_column(ForeignKey("readers.id", ondelete="CASCADE"))
    edition_id: Mapped[str] = mapped_column(String(100))
    topic: Mapped[str] = mapped_column(String(64))
    words: Mapped[str | None] = mapped_column(Text, nullable=True)
    until: Mapped[dt.date] = mapped_column(Date)
    answered_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
