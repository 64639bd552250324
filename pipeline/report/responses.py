"""Response rate and needs served: whether readers answer, and whether their needs were met.

Response rate, per edition and arm: sent readers who answered the edition's ask or whose reply
was attributed to it (each reader once), over sent readers. Replies come from the `replies`
table (reader_id, edition_id, received_at, attributed) when the database has it; without it a
response is an answer to the ask. The lift, its interval and the MDE are those of CTR
(pipeline/report/stats.py), with responders in place of clickers and sent in place of delivered.

Needs served, per edition: sent readers with a need running on the day the edition was first
sent, and how many of their copies held a section on one of those topics (EditionSection
topics), and how many of those readers clicked such a section. readerfirst keeps a need's end,
not its start: a need stated in the ask counts from the reader's first answer on that topic, so
an answer to an edition's own ask never counts as a need that edition could have served; an
imported or preference-page need counts for every edition sent before its end.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import defaultdict
from collections.abc import Sequence

from sqlalchemy import Connection, select, text

from pipeline.content.ask import ASK_KIND, ASK_SOURCE
from pipeline.report.exposure import SentPicks, carried_values
from pipeline.report.model import NeedsServed, ResponseArm, ResponseMetrics
from pipeline.report.stats import estimate_lift, inconclusive, minimum_detectable_lift, rate
from pipeline.store.models import EditionSection

try:
    import orjson
    _loads = orjson.loads
except ImportError:  # pragma: no cover
    _loads = json.loads

__all__ = ["REPLIES_TABLE", "responses", "needs_served", "pooled_responses"]

REPLIES_TABLE = "replies"  # stored by Inbound Parse (pipeline/web/inbound.py)

_ANSWERS = "SELECT reader_id, 1 AS answered, 0 AS replied FROM ask_answers WHERE edition_id = :edition"
_REPLIES = (f" UNION ALL SELECT reader_id, 0, 1 FROM {REPLIES_TABLE}"
            " WHERE edition_id = :edition AND attributed AND reader_id IS NOT NULL")
_RESPONDED = """
SELECT l.holdout, COUNT(*), SUM(x.answered), SUM(x.replied)
FROM (SELECT reader_id, MAX(answered) AS answered, MAX(replied) AS replied FROM ({union}) u GROUP BY reader_id) x
JOIN send_ledger l ON l.edition_id = :edition AND l.reader_id = x.reader_id AND l.state = 'sent'
GROUP BY l.holdout
"""
# A need and, for one stated in the ask, when the reader first stated it.
_NEEDS = text("""
SELECT l.reader_id, CAST(l.picks AS TEXT), n.topic, n.source,
       (SELECT MIN(a.answered_at) FROM ask_answers a WHERE a.reader_id = n.reader_id AND a.topic = n.topic)
FROM send_ledger l JOIN reader_needs n ON n.reader_id = l.reader_id
WHERE l.edition_id = :edition AND l.state = 'sent' AND n.until >= :day
""")
# The clicks that may count: on a section that served someone, by a reader with a need running on
# the send day on one of that section's topics (`carried` lists (section, topic) of those
# sections). At millions of readers the edition's clicks are millions of (reader, section) pairs;
# this sends back only those of readers with a need the section is on, each then checked against
# the reader's own copy in Python (a superset of the clicks that count, never fewer).
_NEED_CLICKS = """
WITH carried(section_id, topic) AS (VALUES {carried})
SELECT DISTINCT e.reader_id, e.section_id FROM engagement_events e
JOIN carried ON carried.section_id = e.section_id
JOIN reader_needs n ON n.reader_id = e.reader_id AND n.topic = carried.topic AND n.until >= :day
WHERE e.edition_id = :edition AND e.event_type = 'click' AND e.reader_id IS NOT NULL
"""


def _sections(connection: Connection, edition_id: str) -> dict[str, tuple[str, list[str]]]:
    """section id -> (kind, topics) as the edition was sent."""
    rows = connection.execute(select(EditionSection.section_id, EditionSection.kind, EditionSection.topics)
                              .where(EditionSection.edition_id == edition_id))
    return {section_id: (kind, list(topics or [])) for section_id, kind, topics in rows}


def _asked(picks: SentPicks, ask_ids: set[str]) -> dict[bool, tuple[int, int]]:
    """Per arm (holdout flag): (sent readers, of them asked)."""
    found: dict[bool, tuple[int, int]] = {False: (0, 0), True: (0, 0)}
    # Readers with the same picks are counted together, and each distinct picks text parsed once.
    for holdout, picks_text, readers in picks:
        sent, asked = found[bool(holdout)]
        carried = bool(ask_ids) and any(pick[0] in ask_ids for pick in _loads(picks_text))
        found[bool(holdout)] = (sent + readers, asked + (readers if carried else 0))
    return found


def _responded(connection: Connection, edition_id: str) -> dict[bool, tuple[int, int, int]]:
    """Per arm: (readers who responded, who answered the ask, who replied)."""
    union = _ANSWERS + _REPLIES
    found = {False: (0, 0, 0), True: (0, 0, 0)}
    for holdout, responded, answered, replied in connection.execute(text(_RESPONDED.format(union=union)),
                                                                    {"edition": edition_id}):
        found[bool(holdout)] = (int(responded), int(answered or 0), int(replied or 0))
    return found


def _metrics(edition_id: str, personalised: ResponseArm, holdout: ResponseArm, scope: str) -> ResponseMetrics:
    estimate = estimate_lift(personalised.responded, personalised.sent, holdout.responded, holdout.sent)
    mde = minimum_detectable_lift(personalised.responded, personalised.sent, holdout.responded, holdout.sent)
    return ResponseMetrics(edition_id=edition_id, personalised=personalised, holdout=holdout, lift=estimate.lift,
                           lift_low=estimate.low, lift_high=estimate.high,
                           note=estimate.note.replace("clicked", "responded") if estimate.note else None, mde=mde,
                           verdict=inconclusive(estimate, holdout.sent, mde, scope=scope))


def responses(connection: Connection, edition_id: str, picks: SentPicks) -> ResponseMetrics:
    """Answers to the ask and replies of one edition, personalised vs holdout (`picks`: its `sent_picks`)."""
    ask_ids = {s for s, (kind, _) in _sections(connection, edition_id).items() if kind == ASK_KIND}
    asked, responded = _asked(picks, ask_ids), _responded(connection, edition_id)
    arms = []
    for holdout, name in ((False, "personalised"), (True, "holdout")):
        sent, carried = asked[holdout]
        total, answered, replied = responded[holdout]
        arms.append(ResponseArm(name, sent, carried, answered, replied, total, rate(total, sent)))
    return _metrics(edition_id, arms[0], arms[1], "this edition")


def pooled_responses(per_edition: Sequence[ResponseMetrics]) -> ResponseMetrics:
    """Every edition's arms summed (a reader counts once per edition)."""
    def total(name: str) -> ResponseArm:
        arms = [getattr(m, name) for m in per_edition]
        sent, responded = sum(a.sent for a in arms), sum(a.responded for a in arms)
        return ResponseArm(name, sent, sum(a.asked for a in arms), sum(a.answered for a in arms),
                           sum(a.replied for a in arms), responded, rate(responded, sent))

    return _metrics("all", total("personalised"), total("holdout"), "these editions together")


def needs_served(connection: Connection, edition_id: str, first_sent_at: dt.datetime) -> NeedsServed:
    """Readers with a need running when the edition was sent, and whether their copy served it."""
    sections = _sections(connection, edition_id)
    needs: defaultdict[int, set[str]] = defaultdict(set)
    picks_of: dict[int, str] = {}
    for reader_id, picks, topic, source, first_answer in connection.execute(
            _NEEDS, {"edition": edition_id, "day": first_sent_at.date()}):
        if source == ASK_SOURCE and first_answer is not None and _moment(first_answer) >= first_sent_at:
            continue  # stated after this edition went out (in its own ask, or later)
        needs[reader_id].add(topic)
        picks_of[reader_id] = picks
    parsed: dict[str, list[str]] = {}
    serving: dict[int, set[str]] = {}  # reader -> sections of their copy on one of their needs
    for reader_id, topics in needs.items():
        text_ = picks_of[reader_id]
        if text_ not in parsed:
            parsed[text_] = [pick[0] for pick in _loads(text_)]
        on_need = {s for s in parsed[text_] if topics.intersection(sections.get(s, ("", []))[1])}
        if on_need:
            serving[reader_id] = on_need
    clicked = _clicked_on_need(connection, edition_id, first_sent_at.date(), serving, sections) if serving else set()
    return NeedsServed(edition_id=edition_id, readers_with_need=len(needs), served=len(serving),
                       share_served=rate(len(serving), len(needs)), clicked=len(clicked),
                       ctr_on_need=rate(len(clicked), len(serving)))


def _clicked_on_need(connection: Connection, edition_id: str, day: dt.date, serving: dict[int, set[str]],
                     sections: dict[str, tuple[str, list[str]]]) -> set[int]:
    """Readers in `serving` who clicked a section of their copy on one of their needs."""
    values, params = carried_values((section_id, topic)
                                    for section_id in sorted({s for on_need in serving.values() for s in on_need})
                                    for topic in dict.fromkeys(sections[section_id][1]))
    params |= {"edition": edition_id, "day": day}
    found = connection.execute(text(_NEED_CLICKS.format(carried=values)), params)
    return {reader_id for reader_id, section_id in found if section_id in serving.get(reader_id, ())}


def _moment(value: object) -> dt.datetime:
    # SQLite returns a scalar subquery's timestamp as text, PostgreSQL as a datetime.
    return value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(str(value))
