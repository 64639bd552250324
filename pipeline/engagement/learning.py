"""Learning from engagement: stored events become exposures, clicks, suppressions and opt-outs.

Each reader and topic has a Beta posterior over "clicks a section of this topic when shown one":

    alpha = prior_alpha + learned_clicks
    beta  = prior_beta  + max(0, learned_exposures - learned_clicks)

The prior's mean grows with the reader's declared weight (BASE_CTR undeclared, or the audience's
rate for the topic when the caller gives it; DECLARED_CTR at weight 1) and is worth
PRIOR_STRENGTH exposures, so a few editions move it and many outweigh it.
Once the audience has a record (`declared_lift`), a declaration adds what declarations add in
that audience instead: readers' clicks on their declared topics beyond other readers' clicks on
the same topics. Where declarations are often wrong, or tastes moved on since sign-up, they
count for less. On the `changing` reader model (30% of declarations wrong, 80% of readers
changing tastes at edition 4; 1,000 readers, seed 1) that took production from 0.827 to 0.867
of the reference learner's CTR over editions 5-8, and drifted readers from 0.778 to 0.845.
Tried and measured worse there and on the shipped models, so not kept: a declared weight that
decays with the topic's exposures (k / (k + exposures): 0.855 on `changing` at k = 1 but 0.892
instead of 0.950 where declarations are right), a right-or-wrong mixture per reader, and a
shorter half-life (14-30 days: within 0.01).
Counts are exponentially time-decayed: a count at time t is worth 0.5 ** ((T - t) / half_life)
at T = learned_at, the newest event ever applied. That sum does not depend on the order events
are folded in, so late events never move learned_at backwards: they are decayed to it instead.

`apply_events` takes unapplied events in batches ordered by id. Each batch is one transaction:
it claims its events (deletes their ids from `unapplied_events`, the queue the database fills
as events are stored), reads only what the batch touches, turns events into
(reader, topic, clicks, exposures, time) contributions in Python, sums each (reader, topic)'s
with the decay above, and has the database fold each sum into its row (one upsert), so a crash
leaves no event half-applied and a rerun changes nothing. On PostgreSQL the next batch's events
are read on a second connection meanwhile (`_ReadAhead`); only the claim makes them a batch's.

A rate here is clicks per section *seen*, at the top of the copy: a delivery nobody read says
nothing about its topics, and a section far down missing a click says less than the first one.
Counting every delivered section as an exposure (as this module once did) spread a reader's
few clicks over the more than half of their messages they never opened, so that a favourite
topic sank with every unread edition and learning never built up.

Rules, per event type:
- open (a person's) or click exposes the reader, once per (edition, reader), to every section of
  their ledger picks: + d ** place exposures per topic of each section (place 0 is the first
  section of the copy). d is the audience's position bias, estimated when a run starts
  (`position_decay`) from clicks on pairs of sections on one topic in the same copy, which
  each run also counts (PositionClicks); POSITION_DECAY until there are any. With a constant
  d of 0.85 against readers whose clicks fell to 0.68 a place, topics put low in last week's
  editorial copy looked a third as good as they were.
- machine_open (Apple MPP prefetch) is never engagement, but it tells that this reader's own
  opens are invisible: the message counts as seen with the audience's human-open share
  (`_human_open_share`), and a later click of theirs makes it a whole exposure.
- delivered exposes nothing (it only resets soft bounces, below).
- click: one click, once per (edition, reader, section), shared equally by the section's topics.
  A click on a section about two topics says the reader wanted one of them, not both: counted
  whole for each, a rare topic that came with a popular one was credited the popular one's
  clicks, and the whole audience was then offered it (in a simulated audience, a topic clicked
  1.5% of the time on its own was rated at 5.8% after one edition, second of twelve).
- unsubscribe and spam_report unsubscribe the reader, hard_bounce cleans them; the first
  suppression stands (reason and time are not overwritten by later ones).
- soft_bounce counts up to soft_bounce_limit, which cleans the reader ('soft_bounces'). A later
  delivered event resets the count to 0: only consecutive soft bounces show a dead address.
- group_unsubscribe / group_resubscribe set or clear opted_out on the ASM group's topic.
- reply (the reader wrote back to their reply address; see `pipeline.engagement.replies`): the
  strongest signal a reader gives. The message counts as seen, and REPLY_CREDIT clicks are
  shared by the topics the reply names (its suggested needs, kept in the event's raw `topics`),
  or, when it names none, by the topics of the sections the reader got, each with one exposure.
- events with no reader, or a reader since deleted, are applied and counted as unattributed.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections import Counter
from collections.abc import Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson
from sqlalchemy import Connection, func, select, text
from sqlalchemy.exc import OperationalError

from pipeline.bulk import cycle_collection_paused
from pipeline.engagement.events import SUPPRESSING, EventType
from pipeline.engagement.suppressions import GROUP_CHOICE, READER_CHANGES, SUPPRESSED_STATUS
from pipeline.errors import ConfigurationError, PipelineError
from pipeline.store.chunks import id_chunks
from pipeline.store.database import Database
from pipeline.store.models import EditionSection, EngagementEvent, PositionClicks, UnappliedEvent, utcnow

def _dumps(rows: list[tuple]) -> str:
    """A batch's rows as one JSON parameter (orjson: many times faster than json here)."""
    return orjson.dumps(rows).decode()


__all__ = ["LearningReport", "apply_events", "topic_posterior", "expected_ctr", "declared_lift",
           "DECLARATIONS",
           "PRIOR_STRENGTH", "BASE_CTR", "DECLARED_CTR", "DEFAULT_BATCH", "DEFAULT_HUMAN_OPEN_SHARE", "REPLY_CREDIT",
           "POSITION_DECAY", "position_decay"]

PRIOR_STRENGTH = 20.0  # the prior is worth this many exposures
BASE_CTR = 0.05  # prior click rate of a topic the reader never declared (or declared at 0), per section seen
# Prior click rate of a topic declared at weight 1: rates are per section seen at the top of a
# read newsletter (see the module docstring), where a reader's favourite is clicked about a quarter of the time.
DECLARED_CTR = 0.25
DEFAULT_BATCH = 20_000
# The population's entry (see `pipeline.audience.directory.population_prior`) with the audience's
# record of declarations: never a topic name, which are slugs.
DECLARATIONS = "\x00declarations"
# The audience's declared lift (`declared_lift`) starts at DECLARED_CTR - BASE_CTR, worth this
# many declared exposures (times their weights) against the audience's own.
DECLARATIONS_STRENGTH = 10.0
# Clicks a reply is worth, shared by the topics it names: writing back costs a reader far more than a click.
REPLY_CREDIT = 2.0
# A section's exposure is worth d to the power of its place in the copy (0 first): readers stop
# reading on the way down, so a section lower down missing a click says less. d is estimated
# from the audience's clicks (`position_decay`); this is where the estimate starts.
POSITION_DECAY = 0.85
_DECAY_STRENGTH = 50.0  # POSITION_DECAY is worth this many pair clicks against the observed ones
# The share of delivered messages a person reads, until the audience's own opens tell
# (`_human_open_share`): what a prefetched (Apple MPP) message counts as an exposure.
DEFAULT_HUMAN_OPEN_SHARE = 0.4
_OPEN_SHARE_STRENGTH = 200.0  # the default is worth this many messages against the observed share
_REMEMBERED = 1_000_000  # seen pairs and clicks a run keeps in memory (about 100 MB) before forgetting
_VARIANTS = 50_000  # distinct picks a run keeps parsed
_LOCK_KEY = 0x52464C4E  # PostgreSQL advisory lock: one applier at a time
_SEEN = (EventType.OPEN.value, EventType.CLICK.value)  # proof a person saw the message
# Events about one (edition, reader) message: deliveries reset soft bounces, the others expose.
_MESSAGE = (EventType.DELIVERED.value, EventType.MACHINE_OPEN.value, *_SEEN, EventType.REPLY.value)
_GROUP = (EventType.GROUP_UNSUBSCRIBE.value, EventType.GROUP_RESUBSCRIBE.value)


class _Signal(Protocol):
    clicks: float
    exposures: float


def topic_posterior(declared_weight: float | None, signal: _Signal | None, *,
                    undeclared_mean: float | None = None, declared_lift: float | None = None
                    ) -> tuple[float, float]:
    """(alpha, beta) of a reader's Beta posterior for a topic, from declared weight and learned counts.

    `undeclared_mean` is the prior click rate of the topic for a reader who declared nothing
    (BASE_CTR when None; the policy passes what the whole audience clicks). A declared weight
    moves the prior mean from there towards DECLARED_CTR (never down: a declaration is never
    worth less than silence), or, given `declared_lift` (what a declaration at weight 1 adds in
    this audience, `declared_lift()`), up by weight x that lift. Decay weighs a late click less
    than the delivery it followed, so clicks may exceed exposures by a little: beta never goes
    below its prior.
    """
    weight = min(1.0, max(0.0, declared_weight or 0.0))
    base = BASE_CTR if undeclared_mean is None else min(1.0, max(0.0, undeclared_mean))
    if declared_lift is None:
        mean = base + (max(DECLARED_CTR, base) - base) * weight
    else:
        mean = min(1.0, base + min(1.0, max(0.0, declared_lift)) * weight)
    clicks = signal.clicks if signal is not None else 0.0
    exposures = signal.exposures if signal is not None else 0.0
    return mean * PRIOR_STRENGTH + clicks, (1.0 - mean) * PRIOR_STRENGTH + max(0.0, exposures - clicks)


def expected_ctr(declared_weight: float | None, signal: _Signal | None, *,
                 undeclared_mean: float | None = None, declared_lift: float | None = None) -> float:
    """The posterior mean click rate, alpha / (alpha + beta)."""
    alpha, beta = topic_posterior(declared_weight, signal, undeclared_mean=undeclared_mean,
                                  declared_lift=declared_lift)
    return alpha / (alpha + beta)


def declared_lift(record: _Signal | None) -> float:
    """What a declaration at weight 1 adds to a topic's click rate in this audience (`population_prior`'s DECLARATIONS).

    The record's clicks are what readers clicked on their declared topics beyond what readers
    who did not declare them clicked; its exposures are the declared exposures times their
    weights. Their ratio, shrunk towards DECLARED_CTR - BASE_CTR by DECLARATIONS_STRENGTH exposures.
    """
    default = DECLARED_CTR - BASE_CTR
    if record is None:
        return default
    found = (record.clicks + default * DECLARATIONS_STRENGTH) / (max(0.0, record.exposures) + DECLARATIONS_STRENGTH)
    return min(1.0, max(0.0, found))


@dataclass
class LearningReport:
    """What one `apply_events` run did."""

    events: int = 0
    batches: int = 0
    by_type: Counter[str] = field(default_factory=Counter)
    unattributed: int = 0  # no reader_id, or a reader that no longer exists
    exposures: int = 0  # (edition, reader) pairs seen for the first time
    clicks: int = 0  # (edition, reader, section) clicks counted
    repeat_clicks: int = 0  # clicks on a section already counted for that reader and edition
    machine_opens: int = 0  # Apple Mail Privacy Protection prefetches, never engagement
    replies: int = 0  # replies folded in (each credits REPLY_CREDIT clicks)
    suppressed: int = 0  # readers this run suppressed (unsubscribe, spam report, bounces; not those the webhook did)
    opt_outs: int = 0
    opt_ins: int = 0
    unmapped_groups: int = 0  # group events whose ASM group maps to no topic
    topic_updates: int = 0  # (reader, topic) contributions folded into reader_interests
    human_open_share: float = DEFAULT_HUMAN_OPEN_SHARE  # what a prefetched message counted as (see _human_open_share)
    position_decay: float = POSITION_DECAY  # what each place further down multiplied an exposure by (position_decay)

    def summary(self) -> dict[str, int]:
        """Every count as one flat dict (event types as `events_<type>`)."""
        flat = {k: v for k, v in vars(self).items() if k != "by_type"}
        return flat | {f"events_{kind}": n for kind, n in sorted(self.by_type.items())}


class _Contended(PipelineError):
    """Another applier claimed some of this batch first; the batch is rolled back and re-read."""


class _Raw:
    """The batch's DB-API cursor, for the hot reads and writes.

    SQLAlchemy's per-row work (parameters, result rows) cost more than SQLite itself at a
    million events; plain SQL valid on SQLite and PostgreSQL alike keeps the 60 s goal.
    On PostgreSQL a list of ids is one array parameter (`= ANY(...)`) instead of chunks of
    `IN (...)` marks: psycopg spent more time splitting those statements than the server ran them.
    """

    def __init__(self, connection: Connection) -> None:
        dialect = connection.dialect
        self.cursor = connection.connection.cursor()
        self.mark = "?" if dialect.paramstyle == "qmark" else "%s"
        self.arrays = dialect.name == "postgresql"
        stamp = EngagementEvent.__table__.c.occurred_at.type.dialect_impl(dialect)
        self.to_time = stamp.result_processor(dialect, None) or (lambda value: value)
        self.from_time = stamp.bind_processor(dialect) or (lambda value: value)
        if dialect.name == "sqlite":
            # The exact text SQLAlchemy stores, made by C code instead of Python formatting.
            self.from_time = lambda value: value.isoformat(" ", "microseconds")

    def _statements(self, sql: str, params: list | tuple, ids: list | None) -> Iterator[tuple[str, list]]:
        """`sql` (`{m}`: a mark, `IN ({ids})`: the ids) with its parameters, once per chunk of `ids`."""
        if ids is None:
            yield sql.format(m=self.mark), [*params]
        elif self.arrays:
            # The array's text made here: psycopg's list adapter, in Python, took longer than the query.
            yield (sql.replace("IN ({ids})", "= ANY(CAST({m} AS bigint[]))").format(m=self.mark),
                   [*params, "{" + ",".join(map(str, ids)) + "}"])
        else:
            for chunk in id_chunks(ids):
                yield sql.format(m=self.mark, ids=",".join([self.mark] * len(chunk))), [*params, *chunk]

    def fetch(self, sql: str, params: list | tuple, ids: list | None = None) -> list[tuple]:
        """Rows of `sql` (`{m}`: a mark, `IN ({ids})`: the ids), over chunks of `ids`."""
        rows: list[tuple] = []
        for statement, values in self._statements(sql, params, ids):
            self.cursor.execute(statement, values)
            rows.extend(self.cursor.fetchall())
        return rows

    def count(self, sql: str, params: list | tuple, ids: list) -> int:
        """Rows changed by `sql` over every chunk of `ids`."""
        changed = 0
        for statement, values in self._statements(sql, params, ids):
            self.cursor.execute(statement, values)
            changed += self.cursor.rowcount
        return changed


class _Learner:
    """One run: settings, the report, and what the run remembers between its batches."""

    def __init__(self, db: Database, half_life_days: float, soft_bounce_limit: int,
                 topic_groups: Mapping[str, str], now: dt.datetime, batch_size: int) -> None:
        self.db, self.limit, self.groups, self.now, self.batch = db, soft_bounce_limit, topic_groups, now, batch_size
        self.half_life = float(half_life_days)
        self.report = LearningReport()
        self.topics: dict[str, dict[str, tuple[str, ...]]] = {}  # edition -> section -> topics
        # (edition, picks as stored) -> (sections, one topic per section and topic): variants repeat a lot.
        self.variants: dict[tuple[str, Any], tuple[tuple[str, ...], tuple[tuple[str, float], ...]]] = {}
        self.human_open_share = DEFAULT_HUMAN_OPEN_SHARE
        self.decay = POSITION_DECAY
        self.forget()

    def forget(self, keep: frozenset[str] = frozenset()) -> None:
        """Drop the applied history of the messages met so far, but those of the editions in `keep`
        (what is dropped is read again when met)."""
        if keep:
            self.exposed = {pair: surely for pair, surely in self.exposed.items() if pair[0] in keep}
            self.clicked = {click for click in self.clicked if click[0] in keep}
            return
        # (edition, reader) -> how surely the message was seen: 1 (opened or clicked), human_open_share,
        # or 0: one entry for every message whose applied history is loaded (and only those).
        self.exposed: dict[tuple[str, int], float] = {}
        self.clicked: set[tuple[str, int, str]] = set()

    def remembered(self) -> int:
        """How many messages and clicks the run keeps in memory (bounded by _REMEMBERED)."""
        return len(self.exposed) + len(self.clicked)

    def run(self) -> LearningReport:
        with self.db.engine.connect() as connection:
            self.human_open_share = _human_open_share(connection)
            self.decay = position_decay(connection)
            ahead = _ReadAhead(self.db, self.batch) if connection.dialect.name == "postgresql" else None
        self.report.human_open_share = round(self.human_open_share, 4)
        self.report.position_decay = round(self.decay, 4)
        cursor = 0
        with ahead or nullcontext(), cycle_collection_paused():
            while True:
                try:
                    with self.db.engine.begin() as connection:
                        last = self._batch(connection, cursor, ahead)
                except _Contended:
                    self.forget()
                    continue
                except BaseException:
                    self.forget()  # this batch's changes to the history were rolled back
                    raise
                if last is None:
                    return self.report
                cursor = last

    def _batch(self, connection: Connection, cursor: int, ahead: _ReadAhead | None) -> int | None:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})
        elif connection.dialect.name == "sqlite":
            connection.exec_driver_sql("PRAGMA cache_size=-65536")  # 128 MB: the upserts hit pages all over
            _ensure_power(connection)
        raw = _Raw(connection)
        try:
            queued = ahead.take(cursor) if ahead is not None else None
            if queued is None:
                queued = _queued(raw, cursor, self.batch)
            if queued and ahead is not None:
                ahead.start(queued[-1][0])  # the next batch is read while this one is folded and written
            return self._fold_batch(connection, raw, cursor, queued)
        finally:
            raw.cursor.close()

    def _fold_batch(self, connection: Connection, raw: _Raw, cursor: int, queued: list[tuple]) -> int | None:
        if not queued:
            return None
        ids = [e[0] for e in queued]
        # Claiming first takes SQLite's write lock; a shortfall means a concurrent applier won.
        claimed = raw.count("DELETE FROM unapplied_events WHERE event_id IN ({ids})", (), ids)
        if claimed != len(ids):
            raise _Contended(f"{len(ids) - claimed} events of this batch were applied by another run")
        if cursor and raw.fetch("SELECT count(*) FROM engagement_events e WHERE e.id > {m} AND e.id < {m} "
                                "AND NOT EXISTS (SELECT 1 FROM unapplied_events q WHERE q.event_id = e.id)",
                                (cursor, ids[0]))[0][0]:
            self.forget()  # events in between were applied (by another run, or before): what we remember may be stale
        events = [e for e in queued if e[1] is not None]
        if self.remembered() > _REMEMBERED:
            # Events come in the order they were stored: the editions of this batch are those
            # coming up next. The messages of the others go first, and everything if that is not enough.
            self.forget(keep=frozenset(e[3] for e in events if e[3]))
            if self.remembered() > _REMEMBERED * 3 // 4:
                self.forget()
        if len(self.variants) > _VARIANTS:
            self.variants.clear()
        if events:
            _BatchWork(self, connection, raw, events).apply()
        self.report.events += len(events)
        self.report.batches += 1
        return ids[-1]


def _queued(raw: _Raw, cursor: int, batch: int) -> list[tuple]:
    """The queue's next ids after `cursor` with their events (none for an event deleted since: `reader forget`)."""
    return raw.fetch("SELECT q.event_id, e.event_type, e.reader_id, e.edition_id, e.section_id, e.occurred_at "
                     "FROM unapplied_events q LEFT JOIN engagement_events e ON e.id = q.event_id "
                     "WHERE q.event_id > {m} ORDER BY q.event_id LIMIT {m}", (cursor, batch))


class _ReadAhead:
    """The queue's next batch, read on a connection of its own while the current batch is folded and written.

    On PostgreSQL a run was one core's work at a time: the server idled while Python folded a
    batch, and Python waited while the server read the next one. What is read ahead is only a
    suggestion: the batch that takes it still claims its events in its own transaction, and a
    claim that falls short (another run, or `reader forget`, came in between) is contended as before.
    """

    def __init__(self, db: Database, batch: int) -> None:
        self.db, self.batch = db, batch
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="readerfirst-read-ahead")
        self.pending: tuple[int, Future[list[tuple]]] | None = None

    def __enter__(self) -> _ReadAhead:
        return self

    def __exit__(self, *exc: object) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)

    def start(self, cursor: int) -> None:
        """Begin reading the batch after `cursor`."""
        self.pending = (cursor, self.pool.submit(self._read, cursor))

    def take(self, cursor: int) -> list[tuple] | None:
        """The batch after `cursor` if it was read ahead (None: read it now)."""
        pending, self.pending = self.pending, None
        if pending is None:
            return None
        after, future = pending
        rows = future.result()  # its error, if any, is this batch's
        return rows if after == cursor else None

    def _read(self, cursor: int) -> list[tuple]:
        with self.db.engine.connect() as connection:
            raw = _Raw(connection)
            try:
                return _queued(raw, cursor, self.batch)
            finally:
                raw.cursor.close()


class _BatchWork:
    """One batch of events folded in memory, then written."""

    def __init__(self, run: _Learner, connection: Connection, raw: _Raw, events: list[tuple]) -> None:
        self.run, self.connection, self.raw, self.report = run, connection, raw, run.report
        # (id, event_type, reader_id, edition_id, section_id, occurred_at), as the batch query reads them
        self.events = [(*event[:5], raw.to_time(event[5])) for event in events]
        # id -> [status this batch suppresses them to (None: it does not), suppressed_reason, suppressed_at,
        # soft_bounces, dirty]: the status itself is decided against the row when written (READER_CHANGES)
        self.readers: dict[int, list[Any]] = {}
        self.learned: list[tuple] = []  # (reader, topic, clicks, exposures, time): the database folds them
        self.opt: dict[tuple[int, str], tuple[bool, dt.datetime]] = {}  # -> (opted out, when), the newest choice
        # -> (sections, (topic, weight of its place) per topic of each section)
        self.picks: dict[tuple[str, int], tuple[tuple[str, ...], tuple[tuple[str, float], ...]]] = {}
        self.pairs: dict[int, list[float]] = {}  # gap -> [clicks on the upper, on the lower section] (PositionClicks)
        self.reply_topics: dict[int, tuple[str, ...]] = {}  # reply event id -> the topics it names

    def apply(self) -> None:
        self._load_readers(sorted({e[2] for e in self.events if e[2] is not None}))
        seen = [e for e in self.events if e[1] in _MESSAGE and e[3] and e[2] in self.readers]
        self._load_topics({e[3] for e in seen})
        # A delivery reads no history (it only resets soft bounces): the messages that were seen do.
        self._load_history({(e[3], e[2]) for e in seen if e[1] != EventType.DELIVERED} - self.run.exposed.keys(),
                           {e[0] for e in self.events})
        # Picks of pairs not yet surely seen, and of clicked pairs (was the section shown?).
        exposed = self.run.exposed
        self._load_picks({(e[3], e[2]) for e in seen if e[1] != EventType.DELIVERED
                          and (e[1] in (EventType.CLICK, EventType.REPLY) or exposed.get((e[3], e[2]), 0.0) < 1.0)})
        groups = self._group_topics([e[0] for e in self.events if e[1] in _GROUP])
        self.reply_topics = self._reply_topics([e[0] for e in self.events if e[1] == EventType.REPLY])
        for event in self.events:
            self._fold(event, groups)
        self._write()

    def _fold(self, event: tuple, groups: dict[int, str | None]) -> None:
        event_id, kind, rid, edition, section, occurred = event
        self.report.by_type[kind] += 1
        reader = self.readers.get(rid) if rid is not None else None
        if reader is None:
            self.report.unattributed += 1
        elif kind == EventType.DELIVERED:
            if reader[3]:
                # A message got through: earlier soft bounces were passing trouble, not a dead address.
                reader[3], reader[4] = 0, True
        elif kind == EventType.REPLY:
            self._reply(event_id, edition, rid, min(occurred, self.run.now))
        elif kind in _SEEN or kind == EventType.MACHINE_OPEN:
            if kind == EventType.MACHINE_OPEN:
                self.report.machine_opens += 1
            if edition:
                stamp = min(occurred, self.run.now)
                # A prefetch shows only that the reader's opens are invisible: they read as often as the audience.
                self._expose(edition, rid, stamp, self.run.human_open_share if kind == EventType.MACHINE_OPEN else 1.0)
                if kind == EventType.CLICK and section:
                    self._click(edition, rid, section, stamp)
        elif kind in SUPPRESSING:
            self._suppress(reader, SUPPRESSED_STATUS[EventType(kind)], kind, occurred)
        elif kind == EventType.SOFT_BOUNCE:
            reader[3], reader[4] = reader[3] + 1, True
            if reader[3] >= self.run.limit:
                self._suppress(reader, "cleaned", "soft_bounces", occurred)
        elif kind in _GROUP:
            topic = groups.get(event_id)
            if topic is None:
                self.report.unmapped_groups += 1
                return
            out = kind == EventType.GROUP_UNSUBSCRIBE
            known = self.opt.get((rid, topic))
            if known is None or occurred >= known[1]:  # events come in the order they were stored, not made
                self.opt[(rid, topic)] = (out, occurred)
            self.report.opt_outs += out
            self.report.opt_ins += not out

    def _expose(self, edition: str, rid: int, stamp: Any, surely: float) -> None:
        """Expose the reader's picks as far as `surely` (1: seen) exceeds what earlier events counted."""
        key = (edition, rid)
        before = self.run.exposed.get(key, 0.0)
        if surely <= before:
            return
        self.run.exposed[key] = surely
        if not before:
            self.report.exposures += 1
        shown = self.picks.get(key)
        if shown is not None:
            more = surely - before
            self.learned.extend([(rid, topic, 0.0, more * weight, stamp) for topic, weight in shown[1]])

    def _click(self, edition: str, rid: int, section: str, stamp: Any) -> None:
        key = (edition, rid, section)
        if key in self.run.clicked:
            self.report.repeat_clicks += 1
            return
        self.run.clicked.add(key)
        self.report.clicks += 1
        # A click on a section the ledger does not show (forwarded mail, no ledger row) proves it
        # was seen: count the exposure too, so that clicks never outnumber exposures.
        shown = self.picks.get((edition, rid))
        exposure = 0.0 if shown is not None and section in shown[0] else 1.0
        if not exposure:
            self._pair_click(edition, shown[0], section)  # type: ignore[index]
        # A section on several topics was clicked for one of them, and which is unknown: each gets
        # an equal share of the click (each was seen, so each gets the whole exposure).
        topics = self.run.topics.get(edition, {}).get(section, ())
        credit = 1.0 / len(topics) if topics else 1.0
        self.learned.extend([(rid, topic, credit, exposure, stamp) for topic in topics])

    def _reply(self, event_id: int, edition: str | None, rid: int, stamp: Any) -> None:
        """Fold one reply: the message was seen; its topics (or the copy's) share REPLY_CREDIT clicks."""
        self.report.replies += 1
        if edition:
            self._expose(edition, rid, stamp, 1.0)
        topics = self.reply_topics.get(event_id) or ()
        if not topics and edition:
            shown = self.picks.get((edition, rid))
            topics = tuple(dict.fromkeys(topic for topic, _ in shown[1])) if shown is not None else ()
        if topics:
            credit = REPLY_CREDIT / len(topics)
            self.learned.extend([(rid, topic, credit, 1.0, stamp) for topic in topics])

    def _pair_click(self, edition: str, sections: tuple[str, ...], clicked: str) -> None:
        """Count a click on a one-topic section against every other section of the copy on that topic alone."""
        topics = self.run.topics.get(edition, {})
        mine = topics.get(clicked, ())
        if len(mine) != 1:
            return  # a section on several topics may have been clicked for another one
        place = sections.index(clicked)
        for other, section in enumerate(sections):
            if other != place and topics.get(section, ()) == mine:
                self.pairs.setdefault(abs(other - place), [0.0, 0.0])[place > other] += 1.0

    def _suppress(self, reader: list[Any], status: str, reason: str, moment: dt.datetime) -> None:
        if reader[1] is not None:
            return  # the first suppression stands; later ones change nothing
        reader[0], reader[1], reader[2], reader[4] = status, reason, moment, True
        self.report.suppressed += 1

    # -- reads ---------------------------------------------------------------------------
    def _load_readers(self, reader_ids: list[int]) -> None:
        for rid, reason, at, bounces in self.raw.fetch(
                "SELECT id, suppressed_reason, suppressed_at, soft_bounces FROM readers WHERE id IN ({ids})",
                (), reader_ids):
            self.readers[rid] = [None, reason, self.raw.to_time(at) if at is not None else None, bounces, False]

    def _load_history(self, pairs: set[tuple[str, int]], batch_ids: set[int]) -> None:
        """Which of these (edition, reader) messages earlier batches and runs saw, and which of their sections were clicked.

        Only the batch's own messages, through the report index (edition, reader, type): reading
        every event of each reader instead, of every edition, read about five times the rows,
        from all over the table (at 10M events, 7 pages read per event applied).
        """
        exposed, share = self.run.exposed, self.run.human_open_share
        for edition, rids in _by_edition(pairs):
            rows = self.raw.fetch("SELECT e.id, e.reader_id, e.event_type, e.section_id FROM engagement_events e "
                                  "WHERE e.edition_id = {m} AND e.event_type IN ({m}, {m}, {m}) "
                                  "AND e.reader_id IN ({ids}) "
                                  "AND NOT EXISTS (SELECT 1 FROM unapplied_events q WHERE q.event_id = e.id)",
                                  (edition, EventType.MACHINE_OPEN.value, *_SEEN), rids)
            for event_id, rid, kind, section in rows:
                if event_id in batch_ids:
                    continue  # claimed by this batch a moment ago, not yet counted
                key = (edition, rid)
                exposed[key] = max(exposed.get(key, 0.0), share if kind == EventType.MACHINE_OPEN else 1.0)
                if kind == EventType.CLICK and section:
                    self.run.clicked.add((edition, rid, section))
        for pair in pairs:
            exposed.setdefault(pair, 0.0)  # loaded, and not seen so far

    def _load_picks(self, pairs: set[tuple[str, int]]) -> None:
        variants = self.run.variants
        for edition, rids in _by_edition(pairs):
            # As text: the variant cache keys on it, and a driver that parses JSON would parse every row.
            for rid, picks in self.raw.fetch("SELECT reader_id, CAST(picks AS TEXT) FROM send_ledger "
                                             "WHERE edition_id = {m} AND reader_id IN ({ids})",
                                             (edition,), rids):
                key = (edition, picks if isinstance(picks, str) else json.dumps(picks))
                shown = variants.get(key)
                if shown is None:
                    shown = variants[key] = self._variant(edition, picks)
                self.picks[(edition, rid)] = shown

    def _variant(self, edition: str, picks: Any) -> tuple[tuple[str, ...], tuple[tuple[str, float], ...]]:
        sections = [pick[0] for pick in (json.loads(picks) if isinstance(picks, str) else picks or ())]
        topics = self.run.topics.get(edition, {})
        # One exposure per topic of each section (two sections on a topic are two chances to
        # click), worth less further down: fewer readers get that far.
        decay = self.run.decay
        return tuple(sections), tuple((topic, decay ** place) for place, section in enumerate(sections)
                                      for topic in topics.get(section, ()))

    def _load_topics(self, editions: set[str]) -> None:
        s = EditionSection.__table__.c
        for edition in sorted(editions - self.run.topics.keys()):
            self.run.topics[edition] = {section: tuple(topics or ()) for section, topics in self.connection.execute(
                select(s.section_id, s.topics).where(s.edition_id == edition))}

    def _group_topics(self, ids: list[int]) -> dict[int, str | None]:
        e = EngagementEvent.__table__.c
        found: dict[int, str | None] = {}
        for chunk in id_chunks(ids):
            for event_id, raw in self.connection.execute(select(e.id, e.raw).where(e.id.in_(chunk))):
                group = raw.get("asm_group_id") if isinstance(raw, dict) else None
                found[event_id] = self.run.groups.get(str(group)) if group is not None else None
        return found

    def _reply_topics(self, ids: list[int]) -> dict[int, tuple[str, ...]]:
        e = EngagementEvent.__table__.c
        found: dict[int, tuple[str, ...]] = {}
        for chunk in id_chunks(ids):
            for event_id, raw in self.connection.execute(select(e.id, e.raw).where(e.id.in_(chunk))):
                topics = raw.get("topics") if isinstance(raw, dict) else None
                if isinstance(topics, list):
                    found[event_id] = tuple(t for t in topics if isinstance(t, str) and t)[:2]
        return found

    # -- writes --------------------------------------------------------------------------
    def _write(self) -> None:
        rows = [(*key, clicks, exposures, self.raw.from_time(moment))
                for key, (clicks, exposures, moment) in sorted(_combined(self.learned, self.run.half_life).items())]
        _fold_learned(self.raw, self.connection.dialect.name, rows, self.run.half_life)  # sorted: rows share pages
        self.report.topic_updates += len(self.learned)
        if self.pairs:
            mark = self.raw.mark
            self.raw.cursor.executemany(
                f"INSERT INTO position_clicks (gap, earlier, later) VALUES ({mark}, {mark}, {mark}) "
                "ON CONFLICT (gap) DO UPDATE SET earlier = position_clicks.earlier + excluded.earlier, "
                "later = position_clicks.later + excluded.later",
                [(gap, earlier, later) for gap, (earlier, later) in sorted(self.pairs.items())])
        if self.opt:
            self.connection.execute(GROUP_CHOICE, [{"reader": r, "topic": t, "out": out, "at": at}
                                                    for (r, t), (out, at) in sorted(self.opt.items())])
        readers = [{"b_id": rid, "suppresses": s[0] is not None, "status": s[0], "suppressed_reason": s[1],
                    "suppressed_at": s[2], "soft_bounces": s[3]} for rid, s in self.readers.items() if s[4]]
        if readers:
            self.connection.execute(READER_CHANGES, readers)


def position_decay(connection: Connection) -> float:
    """How much less likely a reader is to click a section one place further down, from the audience's clicks.

    When a reader's copy has two sections on the same single topic, both are read by the same
    reader in the same sitting and are worth the same to them: only their places differ. So
    over many such pairs, clicks on the lower section / clicks on the upper = d ** gap
    (`PositionClicks`, counted by `apply_events`). d solves sum(later) = sum(earlier x d ** gap),
    with POSITION_DECAY worth _DECAY_STRENGTH clicks at a gap of one; between 0.2 and 1.
    Comparing different topics at different places instead would mistake what readers like
    for where it was put: the policy puts what a reader likes first.
    """
    rows = connection.execute(select(PositionClicks.gap, PositionClicks.earlier, PositionClicks.later)
                              .where(PositionClicks.gap > 0)).all()
    # The prior is _DECAY_STRENGTH clicks on pairs one place apart, later ones POSITION_DECAY of them.
    later = _DECAY_STRENGTH * POSITION_DECAY + sum(row.later for row in rows)

    def excess(d: float) -> float:  # falls as d grows
        return later - _DECAY_STRENGTH * d - sum(row.earlier * d ** row.gap for row in rows)

    low, high = 0.2, 1.0
    if excess(high) >= 0:
        return high
    if excess(low) <= 0:
        return low
    for _ in range(40):
        middle = (low + high) / 2
        low, high = (middle, high) if excess(middle) > 0 else (low, middle)
    return (low + high) / 2


def _human_open_share(connection: Connection) -> float:
    """The share of delivered messages people open, from the events waiting to be applied.

    Counted over messages without a machine open (Apple MPP hides its readers' own opens), as
    distinct (edition, reader) pairs; shrunk towards DEFAULT_HUMAN_OPEN_SHARE so that a run of
    a few events does not swing it. Opens arriving a run after their delivery even out over runs.
    """
    e = EngagementEvent.__table__.c
    kinds = (EventType.DELIVERED.value, EventType.OPEN.value, EventType.MACHINE_OPEN.value)
    waiting = select(UnappliedEvent.event_id)
    pairs = (select(e.event_type, e.edition_id, e.reader_id).distinct()
             .where(e.id.in_(waiting), e.event_type.in_(kinds), e.edition_id.is_not(None), e.reader_id.is_not(None))
             .subquery())
    counts = dict(connection.execute(select(pairs.c.event_type, func.count()).group_by(pairs.c.event_type)).all())
    visible = max(0, counts.get(kinds[0], 0) - counts.get(kinds[2], 0))
    opened = min(counts.get(kinds[1], 0), visible)
    share = (opened + DEFAULT_HUMAN_OPEN_SHARE * _OPEN_SHARE_STRENGTH) / (visible + _OPEN_SHARE_STRENGTH)
    return min(1.0, max(0.05, share))


def _by_edition(pairs: set[tuple[str, int]]) -> list[tuple[str, list[int]]]:
    """(edition, reader) pairs as (edition, its reader ids in order), editions in order."""
    readers: dict[str, list[int]] = {}
    for edition, rid in pairs:
        readers.setdefault(edition, []).append(rid)
    return [(edition, sorted(rids)) for edition, rids in sorted(readers.items())]


def _combined(learned: list[tuple], half_life_days: float) -> dict[tuple[int, str], list]:
    """The batch's (reader, topic, clicks, exposures, time) contributions, one per (reader, topic):
    -> [clicks, exposures, newest time], each count decayed to that time as the fold would.

    The fold's sum does not depend on the order contributions come in, so a batch's own are
    summed here first: one row to write per (reader, topic) instead of one per contribution
    (about two thirds as many at 300k events), each folded into its row by a single statement.
    """
    def kept(age: dt.timedelta) -> float:  # what a count is worth `age` later (the fold's power(0.5, days / half-life))
        return 0.5 ** (age.total_seconds() / 86400.0 / half_life_days)

    combined: dict[tuple[int, str], list] = {}
    for reader_id, topic, clicks, exposures, moment in learned:
        found = combined.get((reader_id, topic))
        if found is None:
            combined[(reader_id, topic)] = [clicks, exposures, moment]
            continue
        if moment > found[2]:  # the sum so far is decayed to the newer time
            keep = kept(moment - found[2])
            found[0], found[1], found[2] = found[0] * keep, found[1] * keep, moment
        elif moment < found[2]:  # this contribution is
            keep = kept(found[2] - moment)
            clicks, exposures = clicks * keep, exposures * keep
        found[0] += clicks
        found[1] += exposures
    return combined


def _fold_sql(dialect: str, rows: str, half_life_days: float) -> str:
    """The upsert that folds each of `rows` into its row, decaying the older side to the newer time.

    Doing it in the database spares reading every row back: that read cost more than the writes.
    """
    if dialect == "sqlite":
        age = "(julianday(excluded.learned_at) - julianday(reader_interests.learned_at))"
    else:
        age = ("(CAST(EXTRACT(EPOCH FROM (excluded.learned_at - reader_interests.learned_at)) AS DOUBLE PRECISION)"
               " / 86400.0)")
    half = f"CAST({half_life_days!r} AS DOUBLE PRECISION)"

    def fold(column: str) -> str:
        old, new = f"reader_interests.{column}", f"excluded.{column}"
        return (f"CASE WHEN reader_interests.learned_at IS NULL THEN {old} + {new} "
                f"WHEN {age} >= 0 THEN {old} * power(0.5, {age} / {half}) + {new} "
                f"ELSE {old} + {new} * power(0.5, -{age} / {half}) END")

    return ("INSERT INTO reader_interests (reader_id, topic, learned_clicks, learned_exposures, learned_at, opted_out) "
            f"{rows} ON CONFLICT (reader_id, topic) DO UPDATE SET "
            f"learned_clicks = {fold('learned_clicks')}, learned_exposures = {fold('learned_exposures')}, "
            f"learned_at = CASE WHEN reader_interests.learned_at IS NULL OR {age} > 0 "
            "THEN excluded.learned_at ELSE reader_interests.learned_at END")


# A batch's rows as one JSON array of [reader, topic, clicks, exposures, time] (orjson
# writes it in C; psycopg's list adapter took longer than the statement). Floats are written in
# their shortest exact form and read back to the same double.
_ROWS = ("SELECT CAST(c->>0 AS integer), c->>1, CAST(c->>2 AS double precision), CAST(c->>3 AS double precision), "
         "CAST(c->>4 AS timestamp), false FROM json_array_elements(CAST(%s AS json)) AS c")


def _fold_learned(raw: _Raw, dialect: str, learned: list[tuple], half_life_days: float) -> None:
    """Fold (reader, topic, clicks, exposures, time) rows, one per (reader, topic) (`_combined`), into reader_interests.

    SQLite folds them one by one (executemany is cheap in-process). On PostgreSQL a statement
    per row cost more than the rest of a run: all go in one statement (which could not fold two
    rows into the same one: hence one per (reader, topic)).
    """
    if not raw.arrays:
        raw.cursor.executemany(_fold_sql(dialect, f"VALUES ({', '.join([raw.mark] * 6)})", half_life_days),
                               [(*row, False) for row in learned])
    elif learned:
        raw.cursor.execute(_fold_sql(dialect, _ROWS, half_life_days), [_dumps(learned)])


def _ensure_power(connection: Connection) -> None:
    """Give SQLite builds without the math functions a power() of their own."""
    try:
        connection.exec_driver_sql("SELECT power(0.5, 1.0)")
    except OperationalError:
        connection.connection.driver_connection.create_function("power", 2, math.pow, deterministic=True)


def apply_events(db: Database, *, half_life_days: float, soft_bounce_limit: int, topic_groups: Mapping[str, str],
                 now: dt.datetime | None = None, batch_size: int = DEFAULT_BATCH) -> LearningReport:
    """Apply every stored event not yet applied to readers and their topics; returns what it did.

    `now` (naive UTC, default: the current time) caps event times, so that a provider's clock
    skew never pushes learned_at into the future. Run one applier at a time: a second one is
    detected per batch and never double-counts an event, but it only slows both down.
    """
    if half_life_days <= 0:
        raise ConfigurationError(f"READERFIRST_HALF_LIFE_DAYS={half_life_days!r}: must be more than 0")
    if soft_bounce_limit < 1:
        raise ConfigurationError(f"READERFIRST_SOFT_BOUNCE_LIMIT={soft_bounce_limit!r}: must be at least 1")
    if batch_size < 1:
        raise ConfigurationError(f"batch_size={batch_size!r}: must be at least 1")
    learner = _Learner(db, half_life_days, soft_bounce_limit, dict(topic_groups), now or utcnow(), batch_size)
    return learner.run()
