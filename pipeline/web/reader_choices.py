"""What a reader decides on the web pages: unsubscribing, and the topics and needs they declare.

Plain functions over the database, without HTTP, so that the rules are tested on their own:
an unsubscribe takes effect at once and is recorded as an engagement event; a preference save
rewrites only what the reader declared and never what readerfirst learned.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from sqlalchemy import delete, func, select, update

from pipeline.engagement.events import EventType
from pipeline.store.database import Database
from pipeline.store.models import EngagementEvent, Reader, ReaderInterest, ReaderNeed, utcnow
from pipeline.store.upsert import insert_ignore_rows, upsert_rows

__all__ = [
    "NEED_SOURCE",
    "ReaderView",
    "Preferences",
    "find_reader",
    "unsubscribe_reader",
    "load_preferences",
    "save_preferences",
    "web_event_prefix",
]

NEED_SOURCE = "preference_centre"
UNSUBSCRIBED = "unsubscribed"
_DECLARED = 1.0  # the weight of a topic a reader ticks


@dataclass(frozen=True)
class ReaderView:
    """The few reader fields the pages need."""

    id: int
    public_id: str
    email: str
    first_name: str
    status: str

    @property
    def unsubscribed(self) -> bool:
        """True once the reader unsubscribed."""
        return self.status == UNSUBSCRIBED


@dataclass(frozen=True)
class Preferences:
    """What a reader declared: topics with a positive weight, and needs stated on the preference page."""

    topics: dict[str, float]
    needs: dict[str, dt.date]  # active needs from the preference page, topic -> until


def find_reader(db: Database, public_id: str) -> ReaderView | None:
    """The reader with `public_id`, or None."""
    with db.session() as session:
        row = session.execute(select(Reader.id, Reader.public_id, Reader.email, Reader.first_name, Reader.status)
                              .where(Reader.public_id == public_id)).first()
    return ReaderView(*row) if row is not None else None


def web_event_prefix(public_id: str) -> str:
    """The provider_event_id prefix of unsubscribes made on our own pages by `public_id`."""
    return f"web-u-{public_id}-"


def unsubscribe_reader(db: Database, public_id: str, *, via: str, now: dt.datetime | None = None) -> bool | None:
    """Unsubscribe the reader at once; True if they were subscribed, False if already not, None if unknown.

    The first unsubscribe records an `unsubscribe` engagement event (`web-u-<public id>-<n>`,
    n counting this reader's web unsubscribes), so a repeated POST records nothing twice.
    A reader already suppressed for another reason (a bounce) keeps that reason.
    """
    now = now or utcnow()
    with db.session() as session:
        # The UPDATE comes first so the transaction holds the write lock before it reads:
        # two simultaneous one-click POSTs then cannot both see the reader subscribed.
        changed = session.execute(
            update(Reader)
            .where(Reader.public_id == public_id, Reader.status != UNSUBSCRIBED)
            .values(status=UNSUBSCRIBED, updated_at=now,
                    suppressed_reason=func.coalesce(Reader.suppressed_reason, "unsubscribe"),
                    suppressed_at=func.coalesce(Reader.suppressed_at, now))
            .execution_options(synchronize_session=False)
        ).rowcount
        row = session.execute(select(Reader.id, Reader.email).where(Reader.public_id == public_id)).first()
        if row is None:
            return None
        if not changed:
            return False
        prefix = web_event_prefix(public_id)
        column = EngagementEvent.provider_event_id
        # A range over the unique index (not LIKE, which SQLite would scan) counts earlier ones.
        earlier = session.scalar(select(func.count()).where(column >= prefix, column < prefix + "~")) or 0
        insert_ignore_rows(session.connection(), EngagementEvent.__table__, [{
            "provider_event_id": f"{prefix}{earlier + 1}",
            "event_type": EventType.UNSUBSCRIBE.value,
            "reason": via,
            "email": row.email,
            "reader_id": row.id,
            "edition_id": None,
            "section_id": None,
            "variant_id": None,
            "holdout": None,
            "occurred_at": now,
            "received_at": now,
            # Left for the apply step like any other event (the database queues it: UnappliedEvent):
            # suppression is idempotent, and whatever else apply does with unsubscribes sees this one too.
            "raw": {"source": "web", "via": via, "public_id": public_id},
        }], ["provider_event_id"])
    return True


def load_preferences(db: Database, reader_id: int, today: dt.date) -> Preferences:
    """The reader's declared topics and every need still running on `today` (from an import or this page)."""
    with db.session() as session:
        topics = {topic: weight for topic, weight, opted_out in session.execute(
            select(ReaderInterest.topic, ReaderInterest.declared_weight, ReaderInterest.opted_out)
            .where(ReaderInterest.reader_id == reader_id))
            if weight is not None and weight > 0 and not opted_out}
        needs = dict(session.execute(
            select(ReaderNeed.topic, ReaderNeed.until)
            .where(ReaderNeed.reader_id == reader_id, ReaderNeed.until >= today)
            .order_by(ReaderNeed.until, ReaderNeed.topic)).all())
    return Preferences(topics=topics, needs=needs)


def save_preferences(db: Database, reader_id: int, *, offered: Collection[str], checked: Collection[str],
                     needs: Sequence[tuple[str, dt.date]], shown_needs: Collection[str] = (),
                     now: dt.datetime | None = None) -> None:
    """Declare `checked` of the `offered` topics, undeclare the rest, and replace the page's needs.

    A topic that stays ticked keeps its declared weight (an import may have set one other than
    1.0); a newly ticked one gets 1.0 and is no longer opted out, since the reader asked for it.
    Learned columns are never written. The needs the page showed (`shown_needs`, an import's
    among them) are replaced by `needs`, so the reader can remove any need they see; an
    imported need the page did not show is left alone.
    """
    now = now or utcnow()  # when the reader chose: a group event from before it changes nothing (opted_at)
    checked = set(checked) & set(offered)
    unchecked = sorted(set(offered) - checked)
    with db.session() as session:
        connection = session.connection()
        if unchecked:
            connection.execute(update(ReaderInterest)
                               .where(ReaderInterest.reader_id == reader_id, ReaderInterest.topic.in_(unchecked))
                               .values(declared_weight=None))
        current = {topic: (weight, opted_out) for topic, weight, opted_out in connection.execute(
            select(ReaderInterest.topic, ReaderInterest.declared_weight, ReaderInterest.opted_out)
            .where(ReaderInterest.reader_id == reader_id, ReaderInterest.topic.in_(sorted(checked))))}
        ticked = [{"reader_id": reader_id, "topic": topic, "declared_weight": _DECLARED, "opted_out": False,
                   "opted_at": now, "learned_clicks": 0.0, "learned_exposures": 0.0}
                  for topic in sorted(checked)
                  if topic not in current or not (current[topic][0] or 0) > 0 or current[topic][1]]
        # On conflict only the declared columns change: the learned posterior stays as it was.
        upsert_rows(connection, ReaderInterest.__table__, ticked, ["reader_id", "topic"],
                    ["declared_weight", "opted_out", "opted_at"])
        connection.execute(delete(ReaderNeed).where(ReaderNeed.reader_id == reader_id,
                                                    (ReaderNeed.source == NEED_SOURCE)
                                                    | ReaderNeed.topic.in_(sorted(shown_needs))))
        upsert_rows(connection, ReaderNeed.__table__,
                    [{"reader_id": reader_id, "topic": topic, "until": until, "source": NEED_SOURCE}
                     for topic, until in needs],
                    ["reader_id", "topic"], ["until", "source"])
