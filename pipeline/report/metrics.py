"""Computing the engagement report from the database with a few grouped queries per edition.

Counting rules, whatever the events:
- every count is of unique readers: an edition's events are first folded to one row per
  reader with a flag per kind of event, then the flags are summed, so a reader who clicked
  three times, or whose open SendGrid reported twice under two event ids, counts once;
- machine opens (Apple MPP prefetch) are counted apart and never as opens; a click counts as
  a human open, since a person who clicked opened the message;
- events belong to the edition they name (`edition_id`), whenever they arrived: a click a
  month late counts in its own edition, not the one sent last;
- events of readers suppressed since count like any other: they happened;
- a reader's arm (personalised or holdout) is the send ledger's; readers with events but no
  ledger row for the edition count in its totals and in neither arm.
Events with no reader cannot be counted by reader: each edition reports how many there were.

Speed: the fold reads engagement_events by (edition_id, reader_id); with an index on
(edition_id, reader_id, event_type, section_id) it reads that index alone, in order, with no
sort (benchmarks/report.py: 1M events of 100k readers in about 5 s with it, 7-11 s without).
"""

from __future__ import annotations

import datetime as dt
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from sqlalchemy import Connection, case, func, select, text

from pipeline.engagement.events import EventType
from pipeline.errors import PipelineError
from pipeline.report.exposure import sections_and_topics, sent_picks
from pipeline.report.interests import learned_interests
from pipeline.report.model import (
    DEFAULT_BOUNCE_THRESHOLD,
    SPAM_THRESHOLD,
    ArmMetrics,
    EditionMetrics,
    LiftMetrics,
    Report,
)
from pipeline.report.responses import needs_served, pooled_responses, responses
from pipeline.report.stats import estimate_lift, inconclusive, minimum_detectable_lift, rate
from pipeline.store.database import Database
from pipeline.store.models import LedgerState, SendLedgerEntry, utcnow

__all__ = ["build_report", "UnknownEdition", "InvalidThreshold", "METHOD_NOTES"]

METHOD_NOTES = [
    "Counts are unique readers per edition; a reader who clicked three times is one clicker.",
    "Human openers are readers with an open or a click; Apple MPP machine opens are counted apart, never as opens.",
    "Events count in the edition they name, however late they arrived; events of since-suppressed readers count.",
    ("CTR = clickers / delivered; CTOR = clickers / human openers; unsubscribe and spam rates are over delivered;"
     " bounce rate = readers with a hard or soft bounce / sent."),
    ("Arms come from the send ledger's holdout flag; readers with events but no ledger row for the edition"
     " count in its totals only."),
    ("Lift = CTR personalised / CTR holdout - 1; its 95% interval is the delta method on the log of the ratio"
     " (Katz), null when a count is zero. Pooled over editions a reader counts once per edition."),
    ("Beside every lift, the MDE: the smallest relative lift detectable at the arms' sizes with 80% power at a"
     " two-sided 5% level, (1.960 + 0.842) * sqrt(p(1-p)(1/n_p + 1/n_h)) / p with p the pooled rate; when the"
     " interval holds 0 a sentence says the holdout is too small to conclude."),
    ("Response rate = readers who answered the edition's ask or whose reply was attributed to it (once each) / sent;"
     " its lift, interval and MDE are computed as CTR's."),
    ("Needs served: sent readers with a need running on the edition's first send day (a need stated in the ask"
     " counts from its first answer), the share whose copy had a section on it, and their CTR on those sections."),
    ("Section and topic exposure: sent readers whose ledger picks include the section (a topic: any section"
     " carrying it); clickers are unique readers who clicked it."),
    ("Learned interests: reader_interests keeps no history, so they are the current distribution; the per-edition"
     " click share of each topic shows how engagement moved from edition to edition."),
]

# The per-reader flags, each "had at least one such event for the edition".
_FLAGS: dict[str, tuple[EventType, ...]] = {
    "delivered": (EventType.DELIVERED,),
    "dropped": (EventType.DROPPED,),
    "bounced": (EventType.HARD_BOUNCE, EventType.SOFT_BOUNCE),
    "hard_bounces": (EventType.HARD_BOUNCE,),
    "soft_bounces": (EventType.SOFT_BOUNCE,),
    "human_openers": (EventType.OPEN, EventType.CLICK),
    "machine_openers": (EventType.MACHINE_OPEN,),
    "clickers": (EventType.CLICK,),
    "unsubscribes": (EventType.UNSUBSCRIBE,),
    "group_unsubscribes": (EventType.GROUP_UNSUBSCRIBE,),
    "spam_reports": (EventType.SPAM_REPORT,),
}


def _flag_sql(kinds: tuple[EventType, ...]) -> str:
    listed = ", ".join(f"'{kind.value}'" for kind in kinds)
    return f"MAX(CASE WHEN event_type IN ({listed}) THEN 1 ELSE 0 END)"


# Each kind of event a bit: on PostgreSQL a reader's events fold to one mask (bit_or of one CASE
# per event) instead of eleven MAX(CASE ...), a third less time at a million events per edition.
# SQLite has no bit_or and keeps the flags.
_BITS = {kind.value: 1 << place
         for place, kind in enumerate(dict.fromkeys(kind for kinds in _FLAGS.values() for kind in kinds))}
_MASK = "CASE event_type " + " ".join(f"WHEN '{kind}' THEN {bit}" for kind, bit in _BITS.items()) + " ELSE 0 END"
_PER_READER = {
    "sqlite": f"""
    SELECT reader_id, {", ".join(f"{_flag_sql(kinds)} AS {name}" for name, kinds in _FLAGS.items())}
    FROM engagement_events
    WHERE edition_id = :edition AND reader_id IS NOT NULL
    GROUP BY reader_id""",
    "postgresql": f"""
    SELECT reader_id, {", ".join(f"CASE WHEN mask & {sum(_BITS[k.value] for k in kinds)} <> 0 THEN 1 ELSE 0 END"
                                 f" AS {name}" for name, kinds in _FLAGS.items())}
    FROM (SELECT reader_id, bit_or({_MASK}) AS mask FROM engagement_events
          WHERE edition_id = :edition AND reader_id IS NOT NULL GROUP BY reader_id) masks""",
}

# One edition at a time: the outer sums then need no GROUP BY, so nothing is sorted.
_FOLD = {dialect: text(f"""
SELECT {", ".join(f"SUM(r.{name})" for name in _FLAGS)},
       SUM(CASE WHEN l.holdout THEN r.delivered ELSE 0 END),
       SUM(CASE WHEN l.holdout THEN r.clickers ELSE 0 END),
       SUM(CASE WHEN l.reader_id IS NULL THEN r.delivered ELSE 0 END),
       SUM(CASE WHEN l.reader_id IS NULL THEN r.clickers ELSE 0 END)
FROM ({per_reader}
) r
LEFT JOIN send_ledger l ON l.edition_id = :edition AND l.reader_id = r.reader_id
""") for dialect, per_reader in _PER_READER.items()}

_UNATTRIBUTED = text("SELECT edition_id, COUNT(*) FROM engagement_events WHERE reader_id IS NULL"
                     " AND edition_id IS NOT NULL GROUP BY edition_id")


class UnknownEdition(PipelineError, LookupError):
    """An edition asked for by id that the send ledger has never sent."""


class InvalidThreshold(PipelineError, ValueError):
    """A rate threshold outside 0..1."""


@dataclass
class _Sent:
    """What the send ledger says of one edition."""

    first_sent_at: dt.datetime
    sent: int
    holdout: int


@dataclass
class _Folded:
    """An edition's per-reader flags summed, with the arms' delivered and clickers."""

    flags: dict[str, int]
    holdout_delivered: int
    holdout_clickers: int
    armless_delivered: int  # readers with no ledger row: in the totals, in neither arm
    armless_clickers: int


def _sent_editions(connection: Connection) -> dict[str, _Sent]:
    """Every edition with a sent ledger row: first send, readers sent, readers sent in the holdout."""
    ledger = SendLedgerEntry
    # Grouped by edition alone, SQLite walks the primary key in order instead of sorting the ledger.
    rows = connection.execute(
        select(ledger.edition_id, func.min(func.coalesce(ledger.sent_at, ledger.planned_at)), func.count(),
               func.sum(case((ledger.holdout, 1), else_=0)))
        .where(ledger.state == LedgerState.SENT).group_by(ledger.edition_id))
    return {edition_id: _Sent(at, sent, int(holdout or 0)) for edition_id, at, sent, holdout in rows}


def _failed_readers(connection: Connection) -> dict[str, int]:
    """Readers refused per edition (ledger state 'failed'): never sent, so in no rate."""
    ledger = SendLedgerEntry
    return dict(connection.execute(select(ledger.edition_id, func.count()).where(ledger.state == LedgerState.FAILED)
                                   .group_by(ledger.edition_id)).all())


def _choose(editions: dict[str, _Sent], edition: str | None, since: dt.date | None) -> list[str]:
    if edition is not None and edition not in editions:
        known = ", ".join(sorted(editions, key=lambda e: editions[e].first_sent_at)) or "none yet"
        raise UnknownEdition(f"--edition {edition}: the send ledger has sent no message of this edition"
                             f" (editions sent: {known})")
    chosen = [e for e in editions if (edition is None or e == edition)
              and (since is None or editions[e].first_sent_at.date() >= since)]
    return sorted(chosen, key=lambda e: (editions[e].first_sent_at, e))


def _fold(connection: Connection, edition_id: str) -> _Folded:
    *sums, holdout_delivered, holdout_clickers, armless_delivered, armless_clickers = \
        connection.execute(_FOLD.get(connection.dialect.name, _FOLD["sqlite"]), {"edition": edition_id}).one()
    return _Folded({name: int(value or 0) for name, value in zip(_FLAGS, sums)}, int(holdout_delivered or 0),
                   int(holdout_clickers or 0), int(armless_delivered or 0), int(armless_clickers or 0))


def _edition_metrics(edition_id: str, sent: _Sent, folded: _Folded, unattributed: int,
                     bounce_threshold: float, failed: int = 0) -> EditionMetrics:
    flags = folded.flags
    delivered, clickers = flags["delivered"], flags["clickers"]
    spam_rate = rate(flags["spam_reports"], delivered)
    bounce_rate = rate(flags["bounced"], sent.sent)
    return EditionMetrics(
        edition_id=edition_id, first_sent_at=sent.first_sent_at, sent=sent.sent, failed=failed, **flags,
        unattributed_events=unattributed, ctr=rate(clickers, delivered), ctor=rate(clickers, flags["human_openers"]),
        unsubscribe_rate=rate(flags["unsubscribes"], delivered), spam_rate=spam_rate, bounce_rate=bounce_rate,
        spam_flag=spam_rate is not None and spam_rate > SPAM_THRESHOLD,
        bounce_flag=bounce_rate is not None and bounce_rate > bounce_threshold)


def _arms(sent: _Sent, folded: _Folded) -> tuple[ArmMetrics, ArmMetrics]:
    holdout = ArmMetrics("holdout", sent.holdout, folded.holdout_delivered, folded.holdout_clickers,
                         rate(folded.holdout_clickers, folded.holdout_delivered))
    delivered = folded.flags["delivered"] - folded.holdout_delivered - folded.armless_delivered
    clickers = folded.flags["clickers"] - folded.holdout_clickers - folded.armless_clickers
    return ArmMetrics("personalised", sent.sent - sent.holdout, delivered, clickers, rate(clickers, delivered)), holdout


def _lift(edition_id: str, personalised: ArmMetrics, holdout: ArmMetrics) -> LiftMetrics:
    estimate = estimate_lift(personalised.clickers, personalised.delivered, holdout.clickers, holdout.delivered)
    mde = minimum_detectable_lift(personalised.clickers, personalised.delivered, holdout.clickers, holdout.delivered)
    scope = "these editions together" if edition_id == "all" else "this edition"
    return LiftMetrics(edition_id=edition_id, personalised=personalised, holdout=holdout, lift=estimate.lift,
                       lift_low=estimate.low, lift_high=estimate.high, note=estimate.note, mde=mde,
                       verdict=inconclusive(estimate, holdout.delivered, mde, scope=scope))


def _pooled(arms: list[tuple[ArmMetrics, ArmMetrics]]) -> LiftMetrics:
    def total(side: int, name: str) -> ArmMetrics:
        sent = sum(pair[side].sent for pair in arms)
        delivered = sum(pair[side].delivered for pair in arms)
        clickers = sum(pair[side].clickers for pair in arms)
        return ArmMetrics(name, sent, delivered, clickers, rate(clickers, delivered))

    return _lift("all", total(0, "personalised"), total(1, "holdout"))


# On PostgreSQL the report's connections group hundreds of thousands of rows per statement: with
# the default 4 MB of work memory their hashes spilled to disk, JIT compiled each statement anew
# (0.1 s a time) to save less than that, and the default random_page_cost (4, for spinning disks)
# made an edition's ledger rows cost more through the primary key than a scan of every edition's.
# All three are set for the report's transactions only (SET LOCAL). Measured at 10M events and
# 3.8M ledger rows: 42% less CPU with the clickers counted in the database (benchmarks/README.md).
_ANALYTIC_SETTINGS = ("SET LOCAL work_mem = '64MB'", "SET LOCAL jit = off", "SET LOCAL random_page_cost = 1.1")


def _analytic(connection: Connection) -> None:
    """Give the report's transaction on `connection` the _ANALYTIC_SETTINGS (PostgreSQL; nothing on SQLite)."""
    if connection.dialect.name == "postgresql":
        for setting in _ANALYTIC_SETTINGS:
            connection.exec_driver_sql(setting)


def _fold_editions(db: Database, editions: list[str]) -> dict[str, _Folded]:
    """Every edition's fold, on a connection of its own (on PostgreSQL, beside the rest of the report)."""
    with db.engine.connect() as connection:
        _analytic(connection)
        return {e: _fold(connection, e) for e in editions}


def build_report(db: Database, *, edition: str | None = None, since: dt.date | None = None,
                 bounce_threshold: float = DEFAULT_BOUNCE_THRESHOLD, now: dt.datetime | None = None) -> Report:
    """The engagement report of every sent edition, or of one (`edition`), or of those first sent on/after `since`.

    Raises UnknownEdition when `edition` was never sent, InvalidThreshold for a bounce threshold outside 0..1.
    """
    if not 0.0 <= bounce_threshold <= 1.0:
        raise InvalidThreshold(f"bounce threshold {bounce_threshold!r} is not a fraction between 0 and 1"
                               " (2% is 0.02)")
    # Several statements, no snapshot across them: an event stored meanwhile may show in one
    # count and not yet in another; the next report has it everywhere.
    # On PostgreSQL the folds (a third of the work, all in the database) run on a second connection
    # while this one groups the ledgers and counts clickers: the two keep two cores busy.
    with db.engine.connect() as connection, ThreadPoolExecutor(1, thread_name_prefix="report-fold") as beside:
        _analytic(connection)
        sent = _sent_editions(connection)
        editions = _choose(sent, edition, since)
        if connection.dialect.name == "postgresql":
            folding = beside.submit(_fold_editions, db, editions)
        else:  # SQLite: one connection, one statement at a time
            folding = None
            folded = {e: _fold(connection, e) for e in editions}
        chosen = set(editions)
        unattributed = {e: n for e, n in connection.execute(_UNATTRIBUTED) if e in chosen}
        failed = _failed_readers(connection)
        sections, topics, answered = [], [], []
        for e in editions:  # one edition's picks in memory at a time, read once for exposure and responses
            picks = {e: sent_picks(connection, e)}
            found_sections, found_topics = sections_and_topics(connection, [e], picks)
            sections += found_sections
            topics += found_topics
            answered.append(responses(connection, e, picks[e]))
        interests = learned_interests(connection)
        served = [needs_served(connection, e, sent[e].first_sent_at) for e in editions]
        if folding is not None:
            folded = folding.result()

    metrics = [_edition_metrics(e, sent[e], folded[e], unattributed.get(e, 0), bounce_threshold, failed.get(e, 0))
               for e in editions]
    arms = [_arms(sent[e], folded[e]) for e in editions]
    lifts = [_lift(e, *pair) for e, pair in zip(editions, arms)]
    if editions:
        lifts.append(_pooled(arms))

    notes = list(METHOD_NOTES)
    lost = sum(unattributed.values())
    if lost:
        notes.append(f"{lost} event{'s' if lost > 1 else ''} named an edition but no known reader (deleted, or an"
                     " address that did not match): counted in unattributed_events only.")
    if not editions:
        notes.append("No edition matches: nothing has been sent" + (f" since {since.isoformat()}." if since else "."))
    return Report(generated_at=now or utcnow(), edition_filter=edition, since=since,
                  bounce_threshold=bounce_threshold, editions=metrics, sections=sections, topics=topics,
                  lift=lifts, interests=interests, notes=notes,
                  responses=answered + ([pooled_responses(answered)] if editions else []), needs_served=served)
