"""Finding readers and loading their profiles from the database, a chunk at a time."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import ARRAY, BigInteger, any_, bindparam, cast, func, literal_column, select

from pipeline.audience.addresses import lookup_address
from pipeline.audience.profile import Profile, TopicSignal
from pipeline.engagement.learning import BASE_CTR, DECLARATIONS, PRIOR_STRENGTH
from pipeline.errors import PipelineError, UnknownReader
from pipeline.store.chunks import id_chunks
from pipeline.store.database import Database
from pipeline.store.models import Audience, Reader, ReaderInterest, ReaderNeed

__all__ = ["UnknownAudience", "audience_id", "opted_out_readers", "sendable_reader_ids", "load_profiles",
           "find_reader_id", "sendable", "population_prior", "declaration_record"]


class UnknownAudience(PipelineError, LookupError):
    """No audience of that name has been imported."""


def sendable():
    """The SQL condition for readers who may be sent to: subscribed and not suppressed."""
    return (Reader.status == "subscribed") & Reader.suppressed_reason.is_(None)


def audience_id(db: Database, name: str) -> int:
    """The id of audience `name`; raises UnknownAudience listing the ones that exist."""
    with db.session() as session:
        found = session.scalar(select(Audience.id).where(Audience.name == name))
        if found is None:
            names = session.scalars(select(Audience.name).order_by(Audience.name)).all()
            known = ", ".join(names) if names else "none yet: run `readerfirst audience import`"
            raise UnknownAudience(f"no audience named {name!r} (audiences: {known})")
        return found


def find_reader_id(db: Database, audience: int, email: str) -> int:
    """The id of the reader with `email` in `audience` (any case; its domain in Unicode or IDNA form)."""
    with db.session() as session:
        found = session.scalar(select(Reader.id).where(Reader.audience_id == audience,
                                                       Reader.email == lookup_address(email)))
    if found is None:
        # The address is not repeated: error text never carries reader data.
        raise UnknownReader("no reader with that address in this audience; check the spelling, or import them")
    return found


def sendable_reader_ids(db: Database, audience: int) -> list[int]:
    """Ids of every reader of `audience` who may be sent to, in id order."""
    with db.session() as session:
        return list(session.scalars(select(Reader.id).where(Reader.audience_id == audience, sendable())
                                    .order_by(Reader.id)))


_IDS = bindparam("ids", expanding=True)
# PostgreSQL takes a whole chunk of ids as one text parameter it splits itself: one query of
# thousands of placeholders cost psycopg more to parse than the server took to answer it.
_PG_IDS = any_(cast(func.string_to_array(bindparam("ids"), ","), ARRAY(BigInteger)))
# Built once: a send loads profiles a chunk at a time, and an IN list of literal values per
# query cost more to build than SQLite took to answer it.
_READERS = select(Reader.id, Reader.email, Reader.public_id, Reader.first_name, Reader.last_name, Reader.timezone,
                  Reader.status)
_INTERESTS = select(ReaderInterest.reader_id, ReaderInterest.topic, ReaderInterest.declared_weight,
                    ReaderInterest.learned_clicks, ReaderInterest.learned_exposures, ReaderInterest.opted_out)
_NEEDS = select(ReaderNeed.reader_id, ReaderNeed.topic, ReaderNeed.until, ReaderNeed.words)
# (readers, interests, needs) for each way of passing ids: a list per IN, or PostgreSQL's text of ids.
_BY_LIST = (_READERS.where(Reader.id.in_(_IDS)), _INTERESTS.where(ReaderInterest.reader_id.in_(_IDS)),
            _NEEDS.where(ReaderNeed.reader_id.in_(_IDS)))
_BY_TEXT = (_READERS.where(Reader.id == _PG_IDS), _INTERESTS.where(ReaderInterest.reader_id == _PG_IDS),
            _NEEDS.where(ReaderNeed.reader_id == _PG_IDS))


def load_profiles(db: Database, reader_ids: Sequence[int]) -> list[Profile]:
    """Profiles of `reader_ids` (in that order), with interests, needs and learned signals."""
    if not reader_ids:
        return []
    readers: dict[int, tuple] = {}
    interests: dict[int, dict[str, float]] = {}
    learned: dict[int, dict[str, TopicSignal]] = {}
    opted_out: dict[int, set[str]] = {}
    needs: dict[int, dict] = {}
    words: dict[int, dict[str, str]] = {}
    with db.transaction() as connection:
        if connection.dialect.name == "postgresql":
            queries, chunks = _BY_TEXT, [{"ids": ",".join(map(str, reader_ids))}]
        else:
            queries, chunks = _BY_LIST, [{"ids": list(chunk)} for chunk in id_chunks(reader_ids)]
        readers_query, interests_query, needs_query = queries
        for ids in chunks:
            readers.update((row[0], tuple(row)) for row in connection.execute(readers_query, ids).all())
            # Plain rows, not ORM objects: this runs for every reader of every send.
            for reader_id, topic, declared, clicks, exposures, out in connection.execute(interests_query, ids).all():
                if declared is not None:
                    interests.setdefault(reader_id, {})[topic] = declared
                if exposures or clicks:
                    learned.setdefault(reader_id, {})[topic] = TopicSignal(clicks, exposures)
                if out:
                    opted_out.setdefault(reader_id, set()).add(topic)
            for reader_id, topic, until, said in connection.execute(needs_query, ids).all():
                needs.setdefault(reader_id, {})[topic] = until
                if said:
                    words.setdefault(reader_id, {})[topic] = said
    # Positional: _READERS selects Profile's first fields in their order (a profile per reader of a send).
    return [Profile(*r, interests.get(rid, {}), needs.get(rid, {}), learned.get(rid, {}),
                    frozenset(opted_out[rid]) if rid in opted_out else frozenset(), words.get(rid, {}))
            for rid in reader_ids if (r := readers.get(rid)) is not None]


def opted_out_readers(db: Database, reader_ids: Sequence[int], topics: set[str] | frozenset[str]) -> set[int]:
    """Of `reader_ids`, those who opted out of any of `topics` (an ASM group, or the preference centre)."""
    i = ReaderInterest
    found: set[int] = set()
    if not topics:
        return found
    with db.session() as session:
        for part in id_chunks(list(reader_ids)):
            found.update(session.scalars(select(i.reader_id).distinct().where(
                i.reader_id.in_(part), i.opted_out.is_(True), i.topic.in_(sorted(topics)))))
    return found


def population_prior(db: Database, audience: int) -> dict[str, TopicSignal]:
    """Per topic, the learned clicks and exposures summed over every reader of `audience`; and the declarations' record.

    What the audience as a whole clicks: the starting point of readers with no history and no
    declared interests. Readers who left still count, since what they clicked was real. Each
    row's counts are decayed to its own learned_at, so the sum mixes moments a little; as a
    prior that is close enough, and it costs one query per send instead of a decay per row.

    Under `DECLARATIONS` (when any declared topic was shown): how well the audience's declarations
    predict clicks (`declaration_record`), read by `pipeline.engagement.learning.declaration_accuracy`.
    """
    i = ReaderInterest
    # Literal SQL, no bound values: PostgreSQL only matches the select's expression to the group's
    # when they are the same text.
    declared = i.declared_weight > literal_column("0")
    query = (select(i.topic, declared, func.sum(i.learned_clicks), func.sum(i.learned_exposures),
                    func.sum(i.declared_weight * i.learned_exposures))
             .join(Reader, Reader.id == i.reader_id).where(Reader.audience_id == audience)
             .group_by(i.topic, declared).order_by(i.topic))
    totals: dict[str, list[float]] = {}
    by_declared: dict[str, tuple[float, float, float]] = {}
    undeclared: dict[str, tuple[float, float]] = {}
    with db.session() as session:
        for topic, said, clicks, exposures, weighted in session.execute(query):
            clicks, exposures = float(clicks or 0.0), float(exposures or 0.0)
            total = totals.setdefault(topic, [0.0, 0.0])
            total[0] += clicks
            total[1] += exposures
            if said:
                by_declared[topic] = (clicks, exposures, float(weighted or 0.0))
            else:  # no weight and weight 0 are two groups
                before = undeclared.get(topic, (0.0, 0.0))
                undeclared[topic] = (before[0] + clicks, before[1] + exposures)
    found = {topic: TopicSignal(clicks, exposures) for topic, (clicks, exposures) in totals.items() if exposures}
    record = declaration_record(by_declared, undeclared)
    if record is not None:
        found[DECLARATIONS] = record
    return found


def declaration_record(declared: dict[str, tuple[float, float, float]], undeclared: dict[str, tuple[float, float]]
                       ) -> TopicSignal | None:
    """The clicks readers gave their declared topics beyond the undeclared rate, and what right declarations predict.

    `declared`: per topic, (clicks, exposures, exposures x declared weight) over readers who
    declared it; `undeclared`: (clicks, exposures) over the others. A right declaration of weight
    w predicts a rate of base + (DECLARED_CTR - base) x w (`topic_posterior`), a wrong one the
    base: the share of the predicted excess that came is how often declarations are right.
    """
    excess = predicted = 0.0
    for topic, (clicks, exposures, weighted) in declared.items():
        others = undeclared.get(topic, (0.0, 0.0))
        base = (others[0] + BASE_CTR * PRIOR_STRENGTH) / (others[1] + PRIOR_STRENGTH)
        excess += clicks - exposures * base
        predicted += weighted
    return TopicSignal(excess, predicted) if predicted > 0 else None
