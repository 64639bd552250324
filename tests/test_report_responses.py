"""Response rate (answers to the ask and replies) and needs served, on a world whose answers are known."""

from __future__ import annotations

import datetime as dt
import math

import pytest

from pipeline.report import build_report
from pipeline.report.stats import LiftEstimate, inconclusive, minimum_detectable_lift
from pipeline.store.models import (AskAnswer, Audience, EditionSection, EngagementEvent, Reader, ReaderNeed, Reply,
                                   SendLedgerEntry)
from tests.tools import postgres_database

E = "2026-12-07"
SENT = dt.datetime(2026, 12, 7, 7)
NOW = dt.datetime(2026, 12, 20)
PICKS = {1: ["a1", "ask"], 2: ["a1", "ask"], 3: ["a1", "ask"], 4: ["a1"], 5: ["a2", "ask"], 6: ["a2", "ask"],
         7: ["a2", "ask"], 8: ["a2"], 9: ["a2"], 10: ["a2"]}
HOLDOUT = {7, 8, 9, 10}


def load_answers(db, *, replies: bool = True) -> None:
    """Ten readers of one edition (four in the holdout), answers to its ask, replies, needs and a click."""
    with db.session() as session:
        session.add(Audience(id=1, name="main"))
        session.flush()
        session.add_all(Reader(id=r, audience_id=1, email=f"r{r}@example.com") for r in PICKS)
        session.flush()
        session.add_all([EditionSection(edition_id=E, section_id="a1", position=0, kind="article", title="Hiring",
                                        topics=["hiring"]),
                         EditionSection(edition_id=E, section_id="a2", position=1, kind="article", title="Climate",
                                        topics=["climate"]),
                         EditionSection(edition_id=E, section_id="ask", position=2, kind="ask", title="Ask",
                                        topics=[])])
        session.add_all(SendLedgerEntry(edition_id=E, reader_id=r, audience_id=1, variant_id="v",
                                        picks=[[s, "why"] for s in picks], holdout=r in HOLDOUT, state="sent",
                                        planned_at=SENT, sent_at=SENT) for r, picks in PICKS.items())
        after, before = SENT + dt.timedelta(hours=3), SENT - dt.timedelta(days=20)
        session.add_all([AskAnswer(reader_id=1, edition_id=E, topic="hiring", until=dt.date(2027, 1, 20), answered_at=after),
                         AskAnswer(reader_id=2, edition_id=E, topic="data", until=dt.date(2027, 1, 20), answered_at=after),
                         AskAnswer(reader_id=7, edition_id=E, topic="climate", until=dt.date(2027, 1, 20), answered_at=after),
                         # Reader 2 stated the same need in an earlier edition: it was running when E went out.
                         AskAnswer(reader_id=2, edition_id="2026-11-16", topic="data", until=dt.date(2027, 1, 20),
                                   answered_at=before)])
        session.add_all([ReaderNeed(reader_id=1, topic="hiring", until=dt.date(2027, 1, 20), source="ask"),
                         ReaderNeed(reader_id=2, topic="data", until=dt.date(2027, 1, 20), source="ask"),
                         ReaderNeed(reader_id=4, topic="hiring", until=dt.date(2027, 1, 1), source="import"),
                         ReaderNeed(reader_id=5, topic="hiring", until=dt.date(2027, 1, 1), source="import"),
                         ReaderNeed(reader_id=6, topic="climate", until=dt.date(2026, 12, 1), source="import"),
                         ReaderNeed(reader_id=8, topic="climate", until=dt.date(2027, 1, 1),
                                    source="preference_centre")])
        session.add(EngagementEvent(provider_event_id="c1", event_type="click", email="r4@example.com", reader_id=4,
                                    edition_id=E, section_id="a1", occurred_at=SENT, received_at=SENT, raw={}))
        if replies:
            session.add_all([Reply(reader_id=1, edition_id=E, received_at=SENT, attributed=True, message_id="m1"),
                             Reply(reader_id=3, edition_id=E, received_at=SENT, attributed=True, message_id="m2"),
                             Reply(reader_id=None, edition_id=E, received_at=SENT, attributed=False, message_id="m3"),
                             Reply(reader_id=9, edition_id="another-edition", received_at=SENT, attributed=True,
                                   message_id="m4")])


@pytest.fixture
def answered(db):
    """The world in the test's SQLite database, with the replies table."""
    load_answers(db)
    return db


def test_response_rate_counts_answers_and_replies_once_per_reader_by_arm(answered):
    """Answers and attributed replies of the edition, each reader once, over sent readers of each arm."""
    report = build_report(answered, now=NOW)
    [edition, pooled] = report.responses
    p, h = edition.personalised, edition.holdout
    assert (p.sent, p.asked, p.answered, p.replied, p.responded, p.response_rate) == (6, 5, 2, 2, 3, 0.5)
    assert (h.sent, h.asked, h.answered, h.replied, h.responded, h.response_rate) == (4, 1, 1, 0, 1, 0.25)
    assert edition.lift == pytest.approx(1.0)
    se = math.sqrt(1 / 3 - 1 / 6 + 1 / 1 - 1 / 4)
    assert (edition.lift_low, edition.lift_high) == pytest.approx((2 * math.exp(-1.959964 * se) - 1,
                                                                   2 * math.exp(1.959964 * se) - 1), rel=1e-5)
    assert pooled.edition_id == "all" and pooled.personalised.responded == 3


def test_without_replies_a_response_is_an_answer_to_the_ask(db):
    """With no replies stored, answers to the ask alone count."""
    load_answers(db, replies=False)
    [edition, _] = build_report(db, now=NOW).responses
    assert (edition.personalised.responded, edition.personalised.replied, edition.holdout.responded) == (2, 0, 1)


def test_the_mde_and_the_sentence_when_the_holdout_is_too_small(answered):
    """Beside the lift: the MDE at 80% power (pooled rate 0.4, 6 vs 4 readers) and the plain sentence."""
    [edition, _] = build_report(answered, now=NOW).responses
    expected = (1.959964 + 0.841621) * math.sqrt(0.4 * 0.6 * (1 / 6 + 1 / 4)) / 0.4
    assert edition.mde == pytest.approx(expected, rel=1e-5)
    assert edition.verdict == ("The holdout (4 readers) is too small to detect less than a +221% change; "
                               "this edition cannot show whether personalisation helped.")


def test_needs_served_counts_needs_running_at_the_send_and_the_copies_that_served_them(answered):
    """Needs running on the send day (not one stated in this edition's own ask), served by a section, clicked."""
    [served] = build_report(answered, now=NOW).needs_served
    # Readers 2 (data, stated before), 4 and 5 (hiring, imported) and 8 (climate, preference page): 1's need was
    # stated in this edition's ask, 6's had run out. 4 got a hiring section and clicked it; 8 got climate.
    assert (served.readers_with_need, served.served, served.share_served) == (4, 2, 0.5)
    assert (served.clicked, served.ctr_on_need) == (1, 0.5)


def add_clicks(db, clicks: list[tuple[int, str]]) -> None:
    """Clicks of edition E by (reader, section)."""
    with db.session() as session:
        session.add_all(EngagementEvent(provider_event_id=f"click-{r}-{s}-{n}", event_type="click",
                                        email=f"r{r}@example.com", reader_id=r, edition_id=E, section_id=s,
                                        occurred_at=SENT, received_at=SENT, raw={}) for n, (r, s) in enumerate(clicks))


# Clicks that must not count: 5's copy did not serve their hiring need (a1 reached them some other way, a2 is
# off it), 8's copy served climate but "ask" is not on it, 1's need was stated in this edition's own ask, 6's
# had run out, 3 has none; and 4's second click on a1 is the same reader.
NOT_ON_A_SERVED_NEED = [(5, "a1"), (5, "a2"), (8, "ask"), (1, "a1"), (6, "a2"), (3, "a1"), (4, "a1")]


def test_needs_served_counts_only_clicks_of_served_readers_on_the_sections_that_served_them(answered):
    """A click counts for needs served only from a reader whose copy served a need, on a section of that copy on it."""
    with answered.session() as session:  # a3 is on 8's need, and serves reader 11's: not in 8's copy
        session.add(EditionSection(edition_id=E, section_id="a3", position=3, kind="article", title="Climate again",
                                   topics=["climate"]))
        session.add(Reader(id=11, audience_id=1, email="r11@example.com"))
        session.flush()
        session.add_all([SendLedgerEntry(edition_id=E, reader_id=11, audience_id=1, variant_id="v",
                                         picks=[["a3", "why"]], holdout=False, state="sent", planned_at=SENT,
                                         sent_at=SENT),
                         ReaderNeed(reader_id=11, topic="climate", until=dt.date(2027, 1, 1), source="import")])
    add_clicks(answered, [*NOT_ON_A_SERVED_NEED, (8, "a3")])
    [served] = build_report(answered, now=NOW).needs_served
    assert (served.served, served.clicked, served.ctr_on_need) == (3, 1, pytest.approx(1 / 3))
    add_clicks(answered, [(8, "a2"), (11, "a3")])
    [served] = build_report(answered, now=NOW).needs_served
    assert (served.served, served.clicked, served.ctr_on_need) == (3, 3, 1.0)


def test_click_lift_carries_its_mde_and_sentence(answered):
    """The CTR lift of every edition also gets an MDE and, with no holdout clicks, the 'nothing to compare' sentence."""
    [lift, _] = build_report(answered, now=NOW).lift
    assert lift.mde is None  # nobody was delivered (no delivered events): no size is enough
    assert lift.verdict == ("The holdout (0 readers) gives nothing to compare yet; this edition cannot show whether"
                            " personalisation helped.")


@pytest.mark.parametrize("counts, expected", [
    ((100, 1000, 10, 100), (1.959964 + 0.841621) * math.sqrt(110 / 1100 * (990 / 1100) * (1 / 1000 + 1 / 100)) / 0.1),
    ((0, 100, 0, 100), None),
    ((100, 100, 10, 10), None),
    ((5, 0, 1, 10), None),
])
def test_minimum_detectable_lift_follows_the_documented_formula(counts, expected):
    """MDE = (z_0.975 + z_0.8) sqrt(p(1-p)(1/n_p + 1/n_h)) / p, None when nothing varies or an arm is empty."""
    found = minimum_detectable_lift(*counts)
    assert found == (pytest.approx(expected, rel=1e-5) if expected is not None else None)


def test_a_conclusive_interval_gets_no_sentence():
    """An interval that excludes 0 concludes; one that holds 0, or is missing, gets the sentence."""
    assert inconclusive(LiftEstimate(0.3, 0.1, 0.5), 27, 0.4) is None
    assert inconclusive(LiftEstimate(-0.3, -0.5, -0.1), 27, 0.4) is None
    assert inconclusive(LiftEstimate(0.3, -0.1, 0.5), 27, 0.41).startswith(
        "The holdout (27 readers) is too small to detect less than a +41% change")
    assert "gives nothing to compare" in inconclusive(LiftEstimate(None, None, None), 1, None)


def test_postgresql_gives_the_same_responses_and_needs_served(answered):
    """On PostgreSQL (booleans, timestamps as such) the same world gives the same figures."""
    with postgres_database() as pg:
        load_answers(pg)
        for world in (pg, answered):
            add_clicks(world, NOT_ON_A_SERVED_NEED)
        on_pg, on_sqlite = build_report(pg, now=NOW).as_dict(), build_report(answered, now=NOW).as_dict()
    assert on_pg["responses"] == on_sqlite["responses"] and on_pg["needs_served"] == on_sqlite["needs_served"]
