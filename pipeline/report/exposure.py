"""Sections and topics of each edition: readers exposed (from the ledger's picks) and unique clickers.

Exposure is what the send ledger says each sent reader was given: a section is exposed to a
reader whose picks include it, a topic to a reader given at least one section carrying it
(EditionSection.topics). Clickers are unique readers with a click on the section (any click
on the section counts, even one the picks do not show, e.g. from a forwarded copy).

Readers with the same picks are counted together: picks are read as text, counted, and each
distinct text is parsed once (about 100k ledger rows a second would go to JSON parsing otherwise).
That count (`sent_picks`, per arm) is read once per edition and shared with the response rate:
grouping an edition's ledger is most of the report's time at millions of readers.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence

from sqlalchemy import Connection, select, text

from pipeline.report.model import SectionMetrics, TopicMetrics
from pipeline.report.stats import rate
from pipeline.store.models import EditionSection

try:
    import orjson  # installed with Prefect; parses picks several times faster than json
    _loads = orjson.loads
except ImportError:  # pragma: no cover
    _loads = json.loads

__all__ = ["carried_values", "sections_and_topics", "sent_picks", "SentPicks"]

# Grouped in the database: an edition of millions of readers sends back one row per arm and distinct picks.
_PICKS = text("SELECT holdout, CAST(picks AS TEXT), count(*) FROM send_ledger WHERE edition_id = :edition"
              " AND state = 'sent' GROUP BY holdout, CAST(picks AS TEXT)")
SentPicks = Sequence[tuple[bool, str, int]]  # (holdout, picks as JSON text, readers sent them)
# Unique clickers per section, and per topic (a reader clicking two sections of a topic counts once),
# counted in the database: an edition of millions of readers has millions of (reader, section)
# pairs, which cost more to send to Python and gather in sets than to count. The pairs are read
# in the order of ix_engagement_events_report (edition, reader, type, section): on PostgreSQL
# they come straight off the index. `carried` lists (section, topic) of the edition's sections.
_CLICK_PAIRS = """
WITH pairs AS (SELECT DISTINCT reader_id, section_id FROM engagement_events
               WHERE edition_id = :edition AND reader_id IS NOT NULL AND event_type = 'click'
                     AND section_id IS NOT NULL){carried}
SELECT 0, section_id, COUNT(*) FROM pairs GROUP BY section_id"""
_TOPIC_CLICKERS = """
UNION ALL
SELECT 1, carried.topic, COUNT(DISTINCT pairs.reader_id) FROM pairs
JOIN carried ON carried.section_id = pairs.section_id GROUP BY carried.topic"""


def sent_picks(connection: Connection, edition_id: str) -> SentPicks:
    """Readers sent each distinct picks of one edition, per arm: (holdout, picks as JSON text, readers)."""
    return [(bool(holdout), picks, readers)
            for holdout, picks, readers in connection.execute(_PICKS, {"edition": edition_id})]


def _exposed(picks: SentPicks, topics_of: dict[str, list[str]]) -> tuple[Counter[str], Counter[str]]:
    """Readers exposed per section and per topic of one edition."""
    sections: Counter[str] = Counter()
    topics: Counter[str] = Counter()
    readers_of: Counter[str] = Counter()
    for _, text_, readers in picks:
        readers_of[text_] += readers  # both arms: exposure counts every sent reader
    # The Python loop below runs once per distinct picks.
    for text_, readers in readers_of.items():
        section_ids = list(dict.fromkeys(pick[0] for pick in _loads(text_)))
        for section_id in section_ids:
            sections[section_id] += readers
        for topic in {t for section_id in section_ids for t in topics_of.get(section_id, ())}:
            topics[topic] += readers
    return sections, topics


def carried_values(pairs: Iterable[tuple[str, str]]) -> tuple[str, dict[str, object]]:
    """(section, topic) pairs as the rows of a `carried` VALUES list, `(:s0, :t0), ...`, and their parameters."""
    rows: list[str] = []
    params: dict[str, object] = {}
    for n, (section_id, topic) in enumerate(pairs):
        params[f"s{n}"], params[f"t{n}"] = section_id, topic
        rows.append(f"(:s{n}, :t{n})")
    return ", ".join(rows), params


def _clickers(connection: Connection, edition_id: str,
              topics_of: dict[str, list[str]]) -> tuple[Counter[str], Counter[str]]:
    """Unique clickers of one edition per section and per topic (through the sections carrying it)."""
    values, params = carried_values((section_id, topic) for section_id, topics in sorted(topics_of.items())
                                    for topic in dict.fromkeys(topics))
    params["edition"] = edition_id
    sql = _CLICK_PAIRS.format(carried="")
    if values:
        sql = _CLICK_PAIRS.format(carried=f",\ncarried(section_id, topic) AS (VALUES {values})") + _TOPIC_CLICKERS
    sections: Counter[str] = Counter()
    topics: Counter[str] = Counter()
    for is_topic, name, readers in connection.execute(text(sql), params):
        (topics if is_topic else sections)[name] += int(readers)
    return sections, topics


def _edition(connection: Connection, edition_id: str, described: dict[str, tuple[str, int, list[str]]],
             picks: SentPicks) -> tuple[list[SectionMetrics], list[TopicMetrics]]:
    topics_of = {section_id: topics for section_id, (_, _, topics) in described.items()}
    exposed_sections, exposed_topics = _exposed(picks, topics_of)
    section_clickers, topic_clickers = _clickers(connection, edition_id, topics_of)

    # Sections picked or clicked that the edition never recorded still show, after the known ones.
    unknown = (set(exposed_sections) | set(section_clickers)) - set(described)
    order = sorted(described, key=lambda s: (described[s][1], s)) + sorted(unknown)
    sections = []
    for section_id in order:
        title, position, topics = described.get(section_id, (section_id, -1, []))
        exposed, clickers = exposed_sections[section_id], section_clickers[section_id]
        sections.append(SectionMetrics(edition_id=edition_id, section_id=section_id, title=title, position=position,
                                       topics=topics, exposed=exposed, clickers=clickers, ctr=rate(clickers, exposed)))

    names = sorted({t for topics in topics_of.values() for t in topics} | set(exposed_topics) | set(topic_clickers))
    all_clicks = sum(topic_clickers.values())
    topics_found = []
    for topic in names:
        exposed, clickers = exposed_topics[topic], topic_clickers[topic]
        topics_found.append(TopicMetrics(edition_id=edition_id, topic=topic, exposed=exposed, clickers=clickers,
                                         ctr=rate(clickers, exposed), click_share=rate(clickers, all_clicks)))
    return sections, topics_found


def sections_and_topics(connection: Connection, editions: list[str],
                        picks: Mapping[str, SentPicks]) -> tuple[list[SectionMetrics], list[TopicMetrics]]:
    """Per edition (in the order given), its sections in edition order, then its topics by name.

    `picks` holds each edition's `sent_picks`.
    """
    described: defaultdict[str, dict[str, tuple[str, int, list[str]]]] = defaultdict(dict)
    if editions:
        rows = connection.execute(select(EditionSection.edition_id, EditionSection.section_id, EditionSection.title,
                                         EditionSection.position, EditionSection.topics)
                                  .where(EditionSection.edition_id.in_(editions)))
        for edition_id, section_id, title, position, topics in rows:
            described[edition_id][section_id] = (title, position, list(topics or []))
    sections: list[SectionMetrics] = []
    topics: list[TopicMetrics] = []
    for edition_id in editions:
        found_sections, found_topics = _edition(connection, edition_id, described[edition_id], picks[edition_id])
        sections += found_sections
        topics += found_topics
    return sections, topics
