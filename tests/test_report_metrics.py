"""The engagement report's numbers on a known-answer world (tests/fixtures/report/world.json).

Edition 2026-12-07 (ten readers sent: 1-6 personalised, 7-10 holdout; reader 11 only planned):
delivered 1-9 (reader 1 three times under two ids, one of them repeated), reader 8 soft-bounced
then delivered, reader 10 hard-bounced; human opens 1, 2, 4, 7; machine opens 3, 5, 8; clicks
1 (s-ai three times, s-climate once), 2, 5, 7 and 9 (suppressed since); 9 unsubscribed, 6
reported spam, 4 left a topic group; one delivered event names reader 3 with another address.
Edition 2026-11-30 (readers 1-4, no holdout): delivered 1-4, 2 opened and clicked, 4 only
machine-opened, 3 clicked s-climate on 10 December, after the next edition went out; reader 12,
with no ledger row for it, was delivered it and clicked s-ai.
Edition 2026-11-23: reader 1 sent, nothing else.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from pathlib import Path

import pytest
from sqlalchemy import func, select

from pipeline.engagement.events import EventType, NormalisedEvent
from pipeline.engagement.store import StoreReport, store_events
from pipeline.report import InvalidThreshold, UnknownEdition, build_report, render_json, render_markdown
from pipeline.report.stats import estimate_lift
from pipeline.store.models import (Audience, EditionSection, EngagementEvent, Reader, ReaderInterest,
                                   SendLedgerEntry)
from tests.tools import postgres_database

WORLD = Path(__file__).resolve().parent / "fixtures" / "report" / "world.json"
NOW = dt.datetime(2026, 12, 20, 12, 0)
E0, E1, E2 = "2026-11-23", "2026-11-30", "2026-12-07"


def load_world(db) -> StoreReport:
    """Store the fixture world: readers, sections, ledger and interests directly, events through store_events."""
    world = json.loads(WORLD.read_text())
    with db.session() as session:
        session.add(Audience(id=1, name="main"))
        session.flush()
        for reader in world["readers"]:
            session.add(Reader(id=reader["id"], audience_id=1, email=f"r{reader['id']}@example.com",
                               status=reader.get("status", "subscribed"),
                               suppressed_reason=reader.get("suppressed_reason")))
        session.flush()
        for edition in world["editions"]:
            for position, section in enumerate(world["sections"]):
                session.add(EditionSection(edition_id=edition, section_id=section["id"], position=position,
                                           kind="article", title=section["title"], topics=section["topics"]))
        for group in world["ledger"]:
            sent_at = dt.datetime.fromisoformat(world["editions"][group["edition"]]["sent_at"])
            for reader_id in group["readers"]:
                session.add(SendLedgerEntry(
                    edition_id=group["edition"], reader_id=reader_id, audience_id=1, variant_id="v",
                    picks=[[sid, f"why {sid}"] for sid in group["picks"]], holdout=group["holdout"],
                    state=group["state"], planned_at=sent_at,
                    sent_at=sent_at if group["state"] == "sent" else None))
        for row in world["interests"]:
            session.add(ReaderInterest(reader_id=row["reader"], topic=row["topic"], declared_weight=row["declared"],
                                       learned_clicks=row["clicks"], learned_exposures=row["exposures"],
                                       opted_out=row.get("opted_out", False)))
    events = [NormalisedEvent(provider_event_id=e["id"], event_type=EventType(e["type"]),
                              email=e.get("email", f"r{e['reader']}@example.com"),
                              occurred_at=dt.datetime.fromisoformat(e["at"]), reader_id=e["reader"],
                              edition_id=e["edition"], section_id=e.get("section"), raw=e)
              for e in world["events"]]
    return store_events(db, events, [], source="test", received_at=NOW)


@pytest.fixture
def world(db):
    """The fixture world stored in the test's SQLite database."""
    load_world(db)
    return db


@pytest.fixture
def report(world):
    """The report of every edition of the world."""
    return build_report(world, now=NOW)


def _edition(report, edition_id):
    (found,) = [e for e in report.editions if e.edition_id == edition_id]
    return found


def test_fixture_is_stored_once_per_provider_event_id(db):
    """The two repeated provider ids are stored once each and the stranger's event is kept without a reader."""
    stored = load_world(db)
    assert (stored.stored, stored.duplicates, stored.unattributed) == (45, 2, 1)
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(EngagementEvent)) == 45


def test_editions_come_oldest_first_with_their_first_send(report):
    """Every edition with a sent ledger row is reported, oldest first, with its first send time."""
    assert [(e.edition_id, e.first_sent_at) for e in report.editions] == [
        (E0, dt.datetime(2026, 11, 23, 7)), (E1, dt.datetime(2026, 11, 30, 7)), (E2, dt.datetime(2026, 12, 7, 7))]


def test_edition_counts_are_unique_readers(report):
    """Sent, delivered, bounces, opens, clicks, unsubscribes and complaints of 2026-12-07 are unique readers."""
    e = _edition(report, E2)
    assert (e.sent, e.delivered, e.dropped, e.bounced, e.hard_bounces, e.soft_bounces) == (10, 9, 0, 2, 1, 1)
    assert (e.human_openers, e.machine_openers, e.clickers) == (6, 3, 5)
    assert (e.unsubscribes, e.group_unsubscribes, e.spam_reports, e.unattributed_events) == (1, 1, 1, 1)


def test_edition_rates_and_flags(report):
    """CTR, CTOR, unsubscribe, spam and bounce rates use their documented denominators; both flags are raised."""
    e = _edition(report, E2)
    assert e.ctr == pytest.approx(5 / 9) and e.ctor == pytest.approx(5 / 6)
    assert e.unsubscribe_rate == pytest.approx(1 / 9) and e.spam_rate == pytest.approx(1 / 9)
    assert e.bounce_rate == pytest.approx(2 / 10)
    assert e.spam_flag and e.bounce_flag


def test_machine_opens_are_never_human_opens(report):
    """Reader 3 (machine opens only) is no human opener; reader 5 (machine open and a click) is one."""
    e1 = _edition(report, E1)
    # 2026-11-30: reader 2 opened, readers 3 and 12 only clicked, reader 4 only machine-opened.
    assert (e1.human_openers, e1.machine_openers, e1.clickers) == (3, 1, 3)
    assert e1.ctor == pytest.approx(1.0)


def test_late_click_counts_in_its_own_edition(report):
    """Reader 3's click on 2026-11-30's s-climate, made after 2026-12-07 went out, counts in 2026-11-30."""
    e1 = _edition(report, E1)
    assert (e1.sent, e1.delivered, e1.clickers, e1.ctr) == (4, 5, 3, 0.6)
    (climate,) = [s for s in report.sections_of(E1) if s.section_id == "s-climate"]
    assert (climate.exposed, climate.clickers) == (4, 1)
    (later,) = [s for s in report.sections_of(E2) if s.section_id == "s-climate"]
    assert later.clickers == 3  # readers 1, 2 and 7: reader 3's late click is not 2026-12-07's


def test_suppressed_readers_events_count(report):
    """Reader 9, unsubscribed since, counts as delivered, clicker and unsubscriber; reader 10 as a hard bounce."""
    (security,) = [s for s in report.sections_of(E2) if s.section_id == "s-security"]
    assert security.clickers == 2  # readers 5 and 9
    (holdout,) = [m.holdout for m in report.lift if m.edition_id == E2]
    assert (holdout.sent, holdout.delivered, holdout.clickers) == (4, 3, 2)


def test_an_edition_with_no_events_has_null_rates(report):
    """2026-11-23 was sent but nothing came back: counts are 0 and rates null, never 0 or an error."""
    e0 = _edition(report, E0)
    assert (e0.sent, e0.delivered, e0.clickers) == (1, 0, 0)
    assert (e0.ctr, e0.ctor, e0.unsubscribe_rate, e0.spam_rate) == (None, None, None, None)
    assert e0.bounce_rate == 0.0 and not e0.bounce_flag and not e0.spam_flag


def test_sections_exposed_clickers_and_ctr(report):
    """Each section of 2026-12-07: readers whose sent picks include it, and unique clickers (three clicks are one)."""
    found = {s.section_id: (s.position, s.exposed, s.clickers, s.ctr) for s in report.sections_of(E2)}
    assert found == {"intro": (0, 10, 0, 0.0), "s-climate": (1, 7, 3, 3 / 7), "s-ai": (2, 6, 1, 1 / 6),
                     "s-security": (3, 7, 2, 2 / 7)}
    assert [s.section_id for s in report.sections_of(E2)] == ["intro", "s-climate", "s-ai", "s-security"]


def test_topics_exposed_clickers_and_click_share(report):
    """Each topic of 2026-12-07 counts readers picked any of its sections; click shares sum to one."""
    found = {t.topic: (t.exposed, t.clickers, t.ctr, t.click_share) for t in report.topics_of(E2)}
    assert found == {"ai": (6, 1, 1 / 6, 1 / 7), "climate": (7, 3, 3 / 7, 3 / 7), "data": (6, 1, 1 / 6, 1 / 7),
                     "security": (7, 2, 2 / 7, 2 / 7)}
    assert math.isclose(sum(t.click_share for t in report.topics_of(E2)), 1.0)


def test_personalised_against_holdout_with_interval(report):
    """2026-12-07: personalised CTR 3/6, holdout 2/3, lift -25% with its log-ratio delta-method interval."""
    (m,) = [m for m in report.lift if m.edition_id == E2]
    assert (m.personalised.sent, m.personalised.delivered, m.personalised.clickers) == (6, 6, 3)
    assert m.personalised.ctr == 0.5 and m.holdout.ctr == pytest.approx(2 / 3)
    assert m.lift == pytest.approx(-0.25)
    # se = sqrt(1/3 - 1/6 + 1/2 - 1/3) = sqrt(1/3); exp(ln 0.75 -/+ 1.96 se) - 1
    assert m.lift_low == pytest.approx(-0.758109, abs=1e-6) and m.lift_high == pytest.approx(1.325427, abs=1e-6)
    assert m.note is None


def test_lift_is_null_with_a_reason_when_a_count_is_zero(report):
    """Without holdout readers, or with no holdout click, lift is null and the note says why."""
    (m,) = [m for m in report.lift if m.edition_id == E1]
    assert (m.lift, m.lift_low, m.lift_high) == (None, None, None)
    assert "no delivered readers in the holdout arm" in m.note
    no_holdout_click = estimate_lift(3, 6, 0, 5)
    assert no_holdout_click.lift is None and "ratio is undefined" in no_holdout_click.note
    no_click = estimate_lift(0, 6, 2, 5)
    assert no_click.lift == -1.0 and no_click.low is None and "interval is undefined" in no_click.note


def test_reader_without_a_ledger_row_counts_in_totals_and_in_neither_arm(report):
    """Reader 12 (no ledger row for 2026-11-30) is delivered and a clicker of the edition, and of no arm."""
    e1 = _edition(report, E1)
    (m,) = [m for m in report.lift if m.edition_id == E1]
    assert (e1.delivered, e1.clickers) == (5, 3)
    assert (m.personalised.sent, m.personalised.delivered, m.personalised.clickers) == (4, 4, 2)
    assert (m.holdout.sent, m.holdout.delivered, m.holdout.clickers) == (0, 0, 0)
    (ai,) = [t for t in report.topics_of(E1) if t.topic == "ai"]
    assert (ai.exposed, ai.clickers, ai.click_share) == (4, 2, 2 / 5)  # readers 2 and 12; climate has reader 3


def test_pooled_lift_sums_the_arms_of_every_edition(report):
    """The 'all' row adds both arms over the editions: 5 of 10 personalised against 2 of 3 holdout."""
    pooled = report.lift[-1]
    assert pooled.edition_id == "all"
    assert (pooled.personalised.sent, pooled.personalised.delivered, pooled.personalised.clickers) == (11, 10, 5)
    assert (pooled.holdout.delivered, pooled.holdout.clickers) == (3, 2) and pooled.lift == pytest.approx(-0.25)


def test_trends_are_per_edition_series(report):
    """Trends list CTR, CTOR and unsubscribe rate per edition, oldest first."""
    trends = report.trends()
    assert trends["editions"] == [E0, E1, E2]
    assert trends["ctr"] == [None, 0.6, pytest.approx(5 / 9)]
    assert trends["ctor"] == [None, 1.0, pytest.approx(5 / 6)]
    assert trends["unsubscribe_rate"] == [None, 0.0, pytest.approx(1 / 9)]


def test_learned_interests_are_the_current_distribution(report):
    """Per topic: readers, declared, opted out, exposed, mean and pooled learned CTR (capped at 1), buckets."""
    found = {i.topic: i for i in report.interests}
    ai, climate = found["ai"], found["climate"]
    assert (ai.readers, ai.declared, ai.opted_out, ai.exposed) == (3, 1, 0, 2)
    assert ai.mean_learned_ctr == pytest.approx(0.25) and ai.pooled_learned_ctr == pytest.approx(1 / 6)
    assert ai.buckets == [1, 0, 0, 0, 1]
    assert (climate.readers, climate.declared, climate.opted_out, climate.exposed) == (2, 0, 1, 1)
    assert climate.mean_learned_ctr == 1.0 and climate.pooled_learned_ctr == 1.0 and climate.buckets == [0, 0, 0, 0, 1]
    assert any("no history" in note for note in report.notes)


def test_since_keeps_editions_first_sent_on_or_after_the_date(world):
    """--since 2026-11-30 keeps 2026-11-30 and 2026-12-07; the pooled lift covers only them."""
    report = build_report(world, since=dt.date(2026, 11, 30), now=NOW)
    assert [e.edition_id for e in report.editions] == [E1, E2]
    assert report.lift[-1].personalised.sent == 10
    assert build_report(world, since=dt.date(2027, 1, 1), now=NOW).editions == []


def test_one_edition_by_id(world):
    """--edition reports that edition alone, with its sections and topics only."""
    report = build_report(world, edition=E1, now=NOW)
    assert [e.edition_id for e in report.editions] == [E1]
    assert {s.edition_id for s in report.sections} == {E1} and {t.edition_id for t in report.topics} == {E1}


def test_unknown_edition_names_the_editions_sent(world):
    """An edition never sent is an error that lists the editions that were."""
    with pytest.raises(UnknownEdition, match=r"2026-12-14.*2026-11-23, 2026-11-30, 2026-12-07"):
        build_report(world, edition="2026-12-14")


def test_bounce_threshold_is_a_parameter(world):
    """With a 25% threshold the 20% bounce rate of 2026-12-07 is no longer flagged; 250% is refused."""
    assert not _edition(build_report(world, bounce_threshold=0.25), E2).bounce_flag
    with pytest.raises(InvalidThreshold, match="0.02"):
        build_report(world, bounce_threshold=2.5)


def test_empty_database_gives_an_empty_report(db):
    """Nothing sent: no editions, no lift rows, and a note saying so."""
    report = build_report(db, now=NOW)
    assert (report.editions, report.lift, report.sections) == ([], [], [])
    assert report.notes[-1] == "No edition matches: nothing has been sent."
    assert "nothing has been sent" in render_markdown(report)


def test_json_carries_every_number_with_nulls(report):
    """The JSON form has the editions, lift, trends and interests, with null for undefined rates."""
    data = json.loads(render_json(report))
    assert data["editions"][0]["ctr"] is None and data["editions"][2]["clickers"] == 5
    assert data["lift"][1]["lift"] is None and data["lift"][2]["lift"] == pytest.approx(-0.25)
    assert data["trends"]["ctr"][1] == 0.6 and data["generated_at"] == "2026-12-20T12:00:00"
    assert data["learned_ctr_buckets"] == [0.05, 0.1, 0.2, 0.5, 1.0]


def test_markdown_shows_the_numbers_and_flags(report):
    """The Markdown report shows formatted rates, the flags, escaped titles and the method notes."""
    text = render_markdown(report)
    assert "| 2026-12-07 | 2026-12-07 | 10 | 9 | 1 | 1 | **20.00% ⚠** |" in text
    assert "55.56%" in text and "83.33%" in text and "**11.11% ⚠**" in text
    assert "Heat pumps \\| offices" in text and "Evaluating &lt;AI&gt; features" in text
    assert "-25.0%" in text and "[-75.8%, +132.5%]" in text
    assert "delta method" in text


@pytest.fixture
def pg_world():
    """The same world in a fresh schema of the test PostgreSQL database (READERFIRST_TEST_POSTGRES_URL)."""
    with postgres_database() as db:
        load_world(db)
        yield db


def test_postgresql_gives_the_same_report(pg_world, world):
    """On PostgreSQL the report of the world is the very report SQLite gives."""
    assert build_report(pg_world, now=NOW).as_dict() == build_report(world, now=NOW).as_dict()
    assert [e.edition_id for e in build_report(pg_world, since=dt.date(2026, 11, 30)).editions] == [E1, E2]


def test_failed_readers_are_counted_apart_from_sent(db):
    """Readers the send refused (ledger state failed) are counted per edition as failed, never as sent."""
    from pipeline.audience.directory import sendable_reader_ids
    from pipeline.audience.importer import import_audience
    from pipeline.delivery.ledger import PlannedBatch, PlannedEntry, SendLedger
    from tests.conftest import SAMPLE_AUDIENCE

    import_audience(db, SAMPLE_AUDIENCE, "sample", today=dt.date(2026, 12, 1))
    readers = sendable_reader_ids(db, 1)[:5]
    ledger = SendLedger(db, "e-failed")
    ledger.record_plan(1, [PlannedEntry(r, "v1", [["s1", "why"]]) for r in readers])
    ledger.claim(PlannedBatch("v1", readers[0], readers[-1], 5), "b1", "sendgrid")
    ledger.confirm("b1", "MSG", refused={readers[0]: "bad address", readers[3]: "bad address"})
    [edition] = build_report(db, edition="e-failed").editions
    assert (edition.sent, edition.failed) == (3, 2)
    row = next(line for line in render_markdown(build_report(db, edition="e-failed")).splitlines()
               if line.startswith("| e-failed |"))  # the editions table comes first
    assert row.endswith("| 2 |")  # its last column: failed (never sent)


def test_the_same_picks_in_both_arms_expose_every_reader_and_split_the_response_arms(db):
    """Readers of both arms sent identical picks all count as exposed, and each arm's sent count keeps its own readers."""
    sent_at = dt.datetime(2026, 12, 7, 7, 0)
    with db.session() as session:
        session.add(Audience(id=1, name="main"))
        session.flush()
        for rid in (1, 2, 3):
            session.add(Reader(id=rid, audience_id=1, email=f"r{rid}@example.com"))
        session.flush()
        for position, (sid, topics) in enumerate([("intro", []), ("s-climate", ["climate"])]):
            session.add(EditionSection(edition_id=E2, section_id=sid, position=position, kind="article",
                                       title=sid, topics=topics))
        for rid, holdout in ((1, False), (2, True), (3, True)):
            session.add(SendLedgerEntry(edition_id=E2, reader_id=rid, audience_id=1, variant_id="v",
                                        picks=[["intro", "why"], ["s-climate", "why"]], holdout=holdout,
                                        state="sent", planned_at=sent_at, sent_at=sent_at))
    report = build_report(db, now=NOW)
    assert {s.section_id: s.exposed for s in report.sections_of(E2)} == {"intro": 3, "s-climate": 3}
    assert {t.topic: t.exposed for t in report.topics_of(E2)} == {"climate": 3}
    [responses, _pooled] = report.responses
    assert (responses.personalised.sent, responses.holdout.sent) == (1, 2)


@pytest.mark.parametrize("store", ["world", "pg_world"])
def test_a_reader_clicking_two_sections_of_a_topic_is_one_clicker_of_it(store, request):
    """Topic clickers are unique readers: two sections carrying `ai`, clicked by one reader, count one."""
    db = request.getfixturevalue(store)
    with db.session() as session:
        session.add(EditionSection(edition_id=E2, section_id="s-ml", position=9, kind="article", title="ML",
                                   topics=["ai", "ai"]))  # a topic listed twice is still one topic
    clicks = [NormalisedEvent(provider_event_id=f"ml-{reader}", event_type=EventType.CLICK,
                              email=f"r{reader}@example.com", occurred_at=dt.datetime(2026, 12, 8), reader_id=reader,
                              edition_id=E2, section_id="s-ml", raw={}) for reader in (1, 2)]
    store_events(db, clicks, [], source="test", received_at=NOW)
    report = build_report(db, now=NOW)
    topics = {t.topic: t.clickers for t in report.topics_of(E2)}
    sections = {s.section_id: s.clickers for s in report.sections_of(E2)}
    # Reader 1 clicked s-ai and s-ml (both ai), reader 2 s-ml: two ai clickers, not three.
    assert (sections["s-ml"], sections["s-ai"], topics["ai"], topics["data"]) == (2, 1, 2, 1)
    assert math.isclose(sum(t.click_share for t in report.topics_of(E2)), 1.0)


def test_every_report_name_is_what_its_module_defines_whatever_is_imported_first():
    """`pipeline.report` loads its modules on first use; in a fresh interpreter, asking for one name
    of a module (`edition_rows`) before another named like the module (`render_markdown`) still
    gives the function, not the submodule (the engagement-report flow imports them in that order)."""
    import subprocess
    import sys

    from pipeline import report

    script = ("import types, pipeline.report as r\n"
              "from pipeline.report import {first}\n"
              "from pipeline.report import {then}\n"
              "assert not isinstance({then}, types.ModuleType), {then}\n"
              "assert {then} is getattr(__import__('pipeline.report.' + r._MODULES['{then}'], fromlist=['x']), '{then}')\n")
    names = sorted(report._MODULES)
    orders = [(first, then) for first in names for then in names if first != then
              and report._MODULES[first] == report._MODULES[then]]
    assert ("edition_rows", "render_markdown") in orders
    for first, then in orders:
        done = subprocess.run([sys.executable, "-c", script.format(first=first, then=then)],
                              capture_output=True, text=True)
        assert done.returncode == 0, (first, then, done.stderr[-500:])
