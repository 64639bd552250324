"""Learning from stored engagement events: exposures, clicks, decay, suppressions and opt-outs."""

from __future__ import annotations

import datetime as dt
import itertools

import pytest
from hypothesis import given, settings, strategies as st
from sqlalchemy import func, insert, select, text

from pipeline.audience.profile import TopicSignal
from pipeline.engagement.learning import (BASE_CTR, DECLARED_CTR, DEFAULT_HUMAN_OPEN_SHARE, POSITION_DECAY, PRIOR_STRENGTH, apply_events,
                                          declared_lift, expected_ctr, position_decay, topic_posterior)
from pipeline.errors import ConfigurationError
from pipeline.store.models import (Audience, EditionSection, EngagementEvent, Reader, ReaderInterest,
                                   SendLedgerEntry, UnappliedEvent)
from tests.tools import postgres_database

T0 = dt.datetime(2026, 12, 7, 8, 0)
NOW = dt.datetime(2027, 6, 1)
HALF_LIFE = 60.0
GROUPS = {"1201": "climate"}
_ids = itertools.count(1)
# The picks are intro (place 0, no topic), climate (place 1) and ai+data (place 2).
CLIMATE, AI = POSITION_DECAY, POSITION_DECAY ** 2


def seed(db):
    """Three readers; editions e1 and e2 with four sections; readers 1 and 2 were sent intro, climate and ai+data."""
    with db.session() as session:
        session.add(Audience(id=1, name="main"))
        session.flush()
        for rid in (1, 2, 3):
            session.add(Reader(id=rid, audience_id=1, email=f"r{rid}@example.com"))
        session.flush()
        for position, (sid, topics) in enumerate([("s-climate", ["climate"]), ("s-ai", ["ai", "data"]),
                                                  ("s-security", ["security"]), ("s-intro", [])]):
            for edition in ("e1", "e2"):
                session.add(EditionSection(edition_id=edition, section_id=sid, position=position, kind="story",
                                           title=sid, topics=topics, pinned=sid == "s-intro"))
        for edition in ("e1", "e2"):
            for rid in (1, 2):
                session.add(SendLedgerEntry(edition_id=edition, reader_id=rid, audience_id=1, variant_id="v",
                                            picks=[["s-intro", "pinned"], ["s-climate", "you follow climate"],
                                                   ["s-ai", "you follow ai"]], state="sent"))
        session.add(ReaderInterest(reader_id=1, topic="ai", declared_weight=0.8, learned_clicks=0.0,
                                   learned_exposures=0.0))
    return db


@pytest.fixture
def world(db):
    """The seeded SQLite database."""
    return seed(db)


@pytest.fixture
def pg_world():
    """The same world in a fresh schema of the test PostgreSQL database (READERFIRST_TEST_POSTGRES_URL)."""
    with postgres_database() as db:
        yield seed(db)


def add(db, kind: str, reader: int | None = 1, *, edition: str | None = "e1", section: str | None = None,
        at: dt.datetime = T0, raw: dict | None = None) -> None:
    """Store one event as the ingest step would (the database queues it to be applied)."""
    with db.session() as session:
        session.execute(insert(EngagementEvent), [{
            "provider_event_id": f"ev-{next(_ids)}", "event_type": kind, "email": f"r{reader}@example.com",
            "reader_id": reader, "edition_id": edition, "section_id": section, "occurred_at": at,
            "received_at": at, "raw": raw or {}}])


def learn(db, **overrides):
    """apply_events with the test settings."""
    options = dict(half_life_days=HALF_LIFE, soft_bounce_limit=3, topic_groups=GROUPS, now=NOW) | overrides
    return apply_events(db, **options)


def interests(db, reader: int = 1) -> dict[str, tuple]:
    """topic -> (clicks, exposures, learned_at, opted_out) of one reader."""
    with db.session() as session:
        rows = session.scalars(select(ReaderInterest).where(ReaderInterest.reader_id == reader)).all()
        return {r.topic: (round(r.learned_clicks, 9), round(r.learned_exposures, 9), r.learned_at, r.opted_out)
                for r in rows}


def reader(db, rid: int) -> Reader:
    """The stored reader `rid`."""
    with db.session() as session:
        return session.get(Reader, rid)


def snapshot(db) -> tuple:
    """Every row learning writes, for before/after comparisons."""
    with db.session() as session:
        return tuple(sorted(map(tuple, session.execute(text(f"SELECT * FROM {table}")).all()), key=repr)
                     for table in ("reader_interests", "readers", "engagement_events", "unapplied_events"))


def test_a_delivery_alone_exposes_nothing(world):
    """A delivered message nobody was seen reading teaches nothing about its topics."""
    add(world, "delivered")
    report = learn(world)
    assert {t: v[:2] for t, v in interests(world).items()} == {"ai": (0, 0)}  # the declared row only
    assert report.exposures == 0 and report.events == 1


def test_an_open_exposes_every_topic_of_the_picks_weighted_by_place(world):
    """A person's open adds an exposure per topic of each picked section, POSITION_DECAY ** place, and no click."""
    add(world, "delivered")
    add(world, "open")
    report = learn(world)
    assert interests(world) == {"climate": (0, round(CLIMATE, 9), T0, False), "ai": (0, round(AI, 9), T0, False),
                                "data": (0, round(AI, 9), T0, False)}
    assert report.exposures == 1 and report.events == 2


def test_open_or_click_exposes_once(world):
    """The first open exposes the reader once; later opens, clicks' messages and deliveries add nothing."""
    add(world, "open")
    add(world, "open", at=T0 + dt.timedelta(hours=1))
    learn(world)
    add(world, "delivered")
    add(world, "click", section="s-climate")
    report = learn(world)
    assert interests(world)["climate"][:2] == (1, round(CLIMATE, 9)) and interests(world)["ai"][:2] == (0, round(AI, 9))
    assert report.exposures == 0


def test_click_is_shared_by_its_sections_topics_once(world):
    """A click is one click shared equally by its section's topics, once per edition, reader and section."""
    add(world, "delivered")
    add(world, "click", section="s-ai")
    add(world, "click", section="s-ai")
    first = learn(world)
    add(world, "click", section="s-ai")
    second = learn(world)
    learned = interests(world)
    assert learned["ai"][:2] == (0.5, round(AI, 9)) and learned["data"][:2] == (0.5, round(AI, 9))
    assert learned["climate"][:2] == (0, round(CLIMATE, 9))
    assert (first.clicks, first.repeat_clicks, second.clicks, second.repeat_clicks) == (1, 1, 0, 1)


def test_click_on_a_section_never_shown_counts_as_seen(world):
    """A click on a section missing from the reader's picks also counts as its exposure (clicks <= exposures)."""
    add(world, "click", reader=3, section="s-security")
    learn(world)
    assert interests(world, 3) == {"security": (1, 1, T0, False)}


def test_sections_seen_and_not_clicked_lower_their_topics(world):
    """Exposures without clicks lower a topic's expected click rate; a click raises it above the prior."""
    add(world, "delivered")
    add(world, "click", section="s-ai")
    learn(world)
    learned = {topic: TopicSignal(c, e) for topic, (c, e, _, _) in interests(world).items()}
    assert expected_ctr(None, learned["climate"]) < expected_ctr(None, None)
    assert expected_ctr(None, learned["data"]) > expected_ctr(None, None)


def test_posterior_prior_comes_from_declared_weight():
    """alpha = prior_alpha + clicks, beta = prior_beta + exposures - clicks; a higher weight gives a higher prior."""
    prior_alpha, prior_beta = topic_posterior(None, None)
    assert prior_alpha + prior_beta == pytest.approx(PRIOR_STRENGTH)
    assert prior_alpha / PRIOR_STRENGTH == pytest.approx(BASE_CTR)
    assert topic_posterior(None, TopicSignal(2.0, 5.0)) == pytest.approx((prior_alpha + 2, prior_beta + 3))
    assert expected_ctr(1.0, None) > expected_ctr(0.5, None) > expected_ctr(0.0, None) == expected_ctr(None, None)
    assert topic_posterior(None, TopicSignal(1.0, 0.7))[1] == pytest.approx(prior_beta)  # never below the prior


def test_undeclared_prior_can_come_from_the_audience():
    """An audience rate sets the undeclared prior mean; a declaration raises it to DECLARED_CTR, never lowers it."""
    assert expected_ctr(None, None, undeclared_mean=0.05) == pytest.approx(0.05)
    assert sum(topic_posterior(None, None, undeclared_mean=0.05)) == pytest.approx(PRIOR_STRENGTH)
    assert expected_ctr(1.0, None, undeclared_mean=0.05) == pytest.approx(DECLARED_CTR)
    assert expected_ctr(0.5, None, undeclared_mean=0.05) == pytest.approx((0.05 + DECLARED_CTR) / 2)
    assert expected_ctr(1.0, None, undeclared_mean=0.3) == pytest.approx(0.3)
    assert topic_posterior(None, TopicSignal(1.0, 4.0), undeclared_mean=0.05) == pytest.approx(
        (0.05 * PRIOR_STRENGTH + 1, 0.95 * PRIOR_STRENGTH + 3))


def test_a_declaration_adds_the_audiences_declared_lift():
    """Given the audience's lift, a declaration raises the prior mean by weight x lift, not towards DECLARED_CTR."""
    assert expected_ctr(1.0, None, undeclared_mean=0.05, declared_lift=0.02) == pytest.approx(0.07)
    assert expected_ctr(0.5, None, undeclared_mean=0.05, declared_lift=0.02) == pytest.approx(0.06)
    assert expected_ctr(1.0, None, undeclared_mean=0.05, declared_lift=0.0) == pytest.approx(0.05)
    assert expected_ctr(1.0, None, undeclared_mean=0.05, declared_lift=None) == pytest.approx(DECLARED_CTR)


def test_declared_lift_comes_from_the_audiences_record():
    """With no record the lift is DECLARED_CTR - BASE_CTR; a long record decides it; it is never below 0."""
    assert declared_lift(None) == pytest.approx(DECLARED_CTR - BASE_CTR)
    assert declared_lift(TopicSignal(10.0, 1_000.0)) == pytest.approx(0.01, abs=0.003)
    assert declared_lift(TopicSignal(-50.0, 1_000.0)) == 0.0
    assert declared_lift(TopicSignal(1.0, 2.0)) > 0.1  # two exposures barely move the default


def test_a_declared_topic_never_clicked_loses_to_a_clicked_undeclared_one():
    """Where declarations add little, a declared topic missed 30 times ranks below one clicked once in two."""
    lift = declared_lift(TopicSignal(20.0, 1_000.0))
    ignored = expected_ctr(1.0, TopicSignal(0.0, 30.0), undeclared_mean=0.05, declared_lift=lift)
    clicked = expected_ctr(None, TopicSignal(1.0, 2.0), undeclared_mean=0.05, declared_lift=lift)
    assert ignored < clicked
    # With the default lift the same declaration still outranks it: the audience's record is what overrules it.
    assert expected_ctr(1.0, TopicSignal(0.0, 30.0), undeclared_mean=0.05) > clicked


_COUNT = st.floats(min_value=-1e12, max_value=1e12, allow_nan=False)


@settings(max_examples=200, deadline=None)
@given(st.floats(min_value=-10, max_value=10, allow_nan=False), _COUNT, _COUNT, _COUNT, _COUNT,
       st.floats(min_value=-1, max_value=2, allow_nan=False))
def test_any_record_gives_a_proper_posterior(weight, record_clicks, record_exposures, clicks, exposures, mean):
    """Whatever the stored counts, the lift is in [0, 1] and the posterior has positive, finite parameters."""
    lift = declared_lift(TopicSignal(record_clicks, record_exposures))
    assert 0.0 <= lift <= 1.0
    alpha, beta = topic_posterior(weight, TopicSignal(max(0.0, clicks), max(0.0, exposures)), undeclared_mean=mean,
                                  declared_lift=lift)
    assert alpha >= 0 and beta >= 0 and alpha + beta > 0
    assert alpha < float("inf") and beta < float("inf")


def test_a_machine_open_exposes_as_much_as_the_audience_reads(world):
    """An Apple MPP prefetch exposes the picks at the audience's human-open share; a later click makes it whole."""
    add(world, "machine_open", reader=2)
    add(world, "delivered", reader=2)
    add(world, "delivered")
    add(world, "open")
    report = learn(world)
    share = report.human_open_share
    assert 0.4 < share < 0.5  # one open of one visible message, against the default's 200
    expected = {"climate": share * CLIMATE, "ai": share * AI, "data": share * AI}
    assert {t: v[1] for t, v in interests(world, 2).items()} == pytest.approx(expected, rel=1e-3)
    assert report.machine_opens == 1 and report.exposures == 2
    add(world, "machine_open", reader=2, at=T0 + dt.timedelta(hours=1))
    add(world, "click", reader=2, section="s-security")
    learn(world)
    learned = interests(world, 2)
    # Whole up to the share each run estimated (this run has no deliveries: the default).
    assert learned["climate"][1] == pytest.approx(CLIMATE, abs=0.01) and learned["security"][:2] == (1, 1)


def test_the_human_open_share_counts_opened_messages_among_those_not_prefetched(world):
    """Opened (edition, reader) messages over delivered ones without a machine open, shrunk to the default."""
    for rid, edition in ((1, "e1"), (2, "e1"), (1, "e2"), (2, "e2")):
        add(world, "delivered", reader=rid, edition=edition)
    add(world, "machine_open", reader=2, edition="e2")
    add(world, "open", reader=1)
    add(world, "open", reader=1, at=T0 + dt.timedelta(hours=2))  # the same message opened again
    report = learn(world)
    strength = 200.0
    assert report.human_open_share == round((1 + DEFAULT_HUMAN_OPEN_SHARE * strength) / (3 + strength), 4)


def test_hard_bounce_spam_report_and_unsubscribe_suppress_at_once(world):
    """Unsubscribe and spam report unsubscribe the reader, a hard bounce cleans them, each at the event's time."""
    add(world, "unsubscribe", reader=1, at=T0 + dt.timedelta(minutes=1))
    add(world, "spam_report", reader=2, at=T0 + dt.timedelta(minutes=2))
    add(world, "hard_bounce", reader=3, at=T0 + dt.timedelta(minutes=3))
    report = learn(world)
    found = [(r.status, r.suppressed_reason, r.suppressed_at) for r in (reader(world, i) for i in (1, 2, 3))]
    assert found == [("unsubscribed", "unsubscribe", T0 + dt.timedelta(minutes=1)),
                     ("unsubscribed", "spam_report", T0 + dt.timedelta(minutes=2)),
                     ("cleaned", "hard_bounce", T0 + dt.timedelta(minutes=3))]
    assert report.suppressed == 3


def test_group_unsubscribe_opts_out_of_its_topic_and_resubscribe_clears_it(world):
    """A group unsubscribe opts the reader out of the group's topic (making the row); a resubscribe clears it."""
    add(world, "group_unsubscribe", reader=2, edition=None, raw={"asm_group_id": 1201})
    add(world, "group_unsubscribe", reader=2, edition=None, raw={"asm_group_id": 9999})
    report = learn(world)
    assert interests(world, 2) == {"climate": (0, 0, None, True)}
    assert report.opt_outs == 1 and report.unmapped_groups == 1
    add(world, "group_resubscribe", reader=2, edition=None, raw={"asm_group_id": "1201"})
    learn(world)
    assert interests(world, 2) == {"climate": (0, 0, None, False)}


def test_soft_bounces_reaching_the_limit_clean_the_reader(world):
    """The third soft bounce in a row cleans the reader with reason soft_bounces."""
    for minute in range(3):
        add(world, "soft_bounce", at=T0 + dt.timedelta(minutes=minute))
    learn(world)
    found = reader(world, 1)
    assert (found.status, found.suppressed_reason, found.soft_bounces) == ("cleaned", "soft_bounces", 3)
    assert found.suppressed_at == T0 + dt.timedelta(minutes=2)


def _while_the_batch_runs(monkeypatch, change) -> None:
    """Run `change` (another connection's committed write) after the batch has read its readers, before it writes."""
    from pipeline.engagement import learning

    write = learning._BatchWork._write
    done: list[object] = []

    def write_after_the_change(self):
        if not done:
            done.append(change())
        write(self)

    monkeypatch.setattr(learning._BatchWork, "_write", write_after_the_change)


def test_a_web_unsubscribe_while_a_batch_runs_is_never_written_over(pg_world, monkeypatch):
    """A reader who unsubscribes on the web while a batch that resets their soft bounces runs stays unsubscribed.

    The batch reads its readers without a lock (PostgreSQL lets the web's UPDATE through); it
    once wrote back the status it had read, and the one-click unsubscribe was undone.
    """
    from pipeline.web.reader_choices import unsubscribe_reader

    with pg_world.session() as session:
        found = session.get(Reader, 1)
        found.soft_bounces = 1
        public_id = found.public_id
    add(pg_world, "delivered")  # resets the soft bounces: the batch writes reader 1
    _while_the_batch_runs(monkeypatch, lambda: unsubscribe_reader(pg_world, public_id, via="one-click"))
    learn(pg_world)
    found = reader(pg_world, 1)
    assert (found.status, found.suppressed_reason, found.soft_bounces) == ("unsubscribed", "unsubscribe", 0)


def test_a_suppression_made_while_a_batch_runs_stands_before_the_batchs_own(pg_world, monkeypatch):
    """The first suppression stands also when it was made by someone else after the batch read the reader."""
    from sqlalchemy import update

    def clean_reader_1():
        with pg_world.session() as session:
            session.execute(update(Reader).where(Reader.id == 1).values(
                status="unsubscribed", suppressed_reason="unsubscribe", suppressed_at=T0 - dt.timedelta(hours=1)))

    add(pg_world, "hard_bounce")
    add(pg_world, "soft_bounce", reader=2)
    _while_the_batch_runs(monkeypatch, clean_reader_1)
    report = learn(pg_world)
    first, second = reader(pg_world, 1), reader(pg_world, 2)
    assert (first.status, first.suppressed_reason, first.suppressed_at) == (
        "unsubscribed", "unsubscribe", T0 - dt.timedelta(hours=1))
    assert (second.status, second.suppressed_reason, second.soft_bounces) == ("subscribed", None, 1)
    assert report.events == 2


@pytest.mark.parametrize("order", ["stored in order", "stored out of order"])
def test_the_newest_group_choice_stands_whatever_order_the_events_come_in(world, order):
    """A group opt-in made before an opt-out never undoes it, in one batch or across runs; and the other way round.

    SendGrid does not deliver events in order (a retried batch brings old ones late). Learning
    applied the event stored last, so an old opt-in arriving after a newer opt-out undid it.
    """
    later = T0 + dt.timedelta(minutes=10)
    events = [("group_resubscribe", 2, T0), ("group_unsubscribe", 2, later),  # reader 2: out, at the end
              ("group_unsubscribe", 3, T0), ("group_resubscribe", 3, later)]  # reader 3: in, at the end
    if order == "stored out of order":
        events = [events[1], events[0], events[3], events[2]]
    for kind, rid, at in events[:2]:
        add(world, kind, reader=rid, edition=None, at=at, raw={"asm_group_id": 1201})
    learn(world)  # reader 2's two events in one run, reader 3's in the next
    for kind, rid, at in events[2:]:
        add(world, kind, reader=rid, edition=None, at=at, raw={"asm_group_id": 1201})
    learn(world)
    assert interests(world, 2)["climate"][3] is True
    assert interests(world, 3)["climate"][3] is False
    # Across runs too: an opt-in from before reader 2's opt-out, arriving now, changes nothing.
    add(world, "group_resubscribe", reader=2, edition=None, at=T0 + dt.timedelta(minutes=5), raw={"asm_group_id": 1201})
    learn(world)
    assert interests(world, 2)["climate"][3] is True


def test_a_group_event_older_than_the_readers_preference_centre_choice_changes_nothing(world):
    """The preference centre records when the reader chose: a group opt-out made before it, arriving later, is refused."""
    from pipeline.web.reader_choices import save_preferences

    save_preferences(world, 2, offered=["climate"], checked=["climate"], needs=[], now=T0 + dt.timedelta(hours=1))
    add(world, "group_unsubscribe", reader=2, edition=None, at=T0, raw={"asm_group_id": 1201})
    learn(world)
    assert interests(world, 2)["climate"][3] is False
    add(world, "group_unsubscribe", reader=2, edition=None, at=T0 + dt.timedelta(hours=2), raw={"asm_group_id": 1201})
    learn(world)
    assert interests(world, 2)["climate"][3] is True


def test_delivery_resets_the_soft_bounce_count(world):
    """A delivered event after soft bounces resets the count, so bounces must be consecutive to clean."""
    add(world, "soft_bounce")
    add(world, "soft_bounce")
    add(world, "delivered")
    add(world, "soft_bounce", edition="e2")
    learn(world)
    found = reader(world, 1)
    assert (found.status, found.suppressed_reason, found.soft_bounces) == ("subscribed", None, 1)


def test_unknown_readers_are_applied_and_counted_as_unattributed(world):
    """Events with no reader, or a reader that does not exist, are marked applied and counted, changing nothing."""
    add(world, "click", reader=None, section="s-ai")
    add(world, "unsubscribe", reader=404)
    report = learn(world)
    with world.session() as session:
        assert session.scalar(select(func.count()).select_from(EngagementEvent)) == 2
        assert session.scalars(select(UnappliedEvent.event_id)).all() == []
    assert report.unattributed == 2 and interests(world) == {"ai": (0, 0, None, False)}


def test_applying_twice_changes_nothing(world):
    """A second apply of the same events finds nothing to do and leaves every row as it was."""
    add(world, "delivered")
    add(world, "click", section="s-ai")
    add(world, "soft_bounce", reader=2)
    add(world, "group_unsubscribe", reader=2, edition=None, raw={"asm_group_id": 1201})
    learn(world)
    before = snapshot(world)
    report = learn(world)
    assert snapshot(world) == before and report.events == 0


def test_batches_learn_what_one_pass_learns(world):
    """Applying one event per batch gives the same rows as one batch for all."""
    def feed():
        add(world, "open", reader=2)
        add(world, "delivered", reader=2)
        add(world, "click", reader=2, section="s-ai")
        add(world, "click", reader=2, section="s-ai", at=T0 + dt.timedelta(days=30))
        add(world, "delivered", reader=2, edition="e2", at=T0 + dt.timedelta(days=7))
        add(world, "click", reader=2, edition="e2", section="s-climate", at=T0 + dt.timedelta(days=8))

    feed()
    learn(world, batch_size=1000)
    together = interests(world, 2)
    with world.session() as session:
        session.execute(text("DELETE FROM reader_interests WHERE reader_id = 2"))
        session.execute(text("DELETE FROM engagement_events"))
    feed()
    report = learn(world, batch_size=1)
    assert interests(world, 2) == together and report.batches == 6


def test_two_clicks_a_half_life_apart(world):
    """A click one half-life older than the newest counts half; learned_at is the newest event's time."""
    later = T0 + dt.timedelta(days=HALF_LIFE)
    add(world, "delivered", reader=2)
    add(world, "click", reader=2, section="s-climate")
    add(world, "delivered", reader=2, edition="e2", at=later)
    add(world, "click", reader=2, edition="e2", section="s-climate", at=later)
    learn(world)
    assert interests(world, 2)["climate"] == (1.5, round(1.5 * CLIMATE, 9), later, False)


def test_late_events_are_decayed_to_learned_at(world):
    """An event older than learned_at is weighed down to it and never moves learned_at back."""
    later = T0 + dt.timedelta(days=HALF_LIFE)
    add(world, "delivered", reader=2, edition="e2", at=later)
    add(world, "click", reader=2, edition="e2", section="s-climate", at=later)
    learn(world)
    add(world, "delivered", reader=2)
    add(world, "click", reader=2, section="s-climate")
    learn(world)
    assert interests(world, 2)["climate"] == (1.5, round(1.5 * CLIMATE, 9), later, False)


def test_future_event_times_are_capped_at_now(world):
    """An event stamped after `now` (clock skew) is learned at `now`, never later."""
    add(world, "open", at=NOW + dt.timedelta(days=3))
    learn(world)
    assert interests(world)["climate"][2] == NOW


def test_a_failing_batch_leaves_its_events_unapplied(world):
    """When a batch fails, its events stay unapplied and nothing it learned is written; earlier batches stay."""
    add(world, "open", reader=1)
    add(world, "open", reader=1, edition="e2")
    add(world, "unsubscribe", reader=2)
    add(world, "open", reader=2)
    with world.session() as session:
        session.execute(text("CREATE TRIGGER refuse BEFORE UPDATE OF status ON readers WHEN NEW.id = 2 "
                             "BEGIN SELECT RAISE(ABORT, 'disk on fire'); END"))
    with pytest.raises(Exception, match="disk on fire"):
        learn(world, batch_size=2)
    with world.session() as session:
        ids = session.scalars(select(EngagementEvent.id).order_by(EngagementEvent.id)).all()
        assert session.scalars(select(UnappliedEvent.event_id).order_by(UnappliedEvent.event_id)).all() == ids[2:]
        session.execute(text("DROP TRIGGER refuse"))
    assert interests(world, 2) == {} and reader(world, 2).status == "subscribed"
    assert interests(world)["climate"][:2] == (0, round(2 * CLIMATE, 9))
    learn(world, batch_size=2)
    assert reader(world, 2).status == "unsubscribed" and interests(world, 2)["climate"][:2] == (0, round(CLIMATE, 9))


def test_a_run_pauses_the_cycle_collector_and_restores_it_even_when_a_batch_fails(world, monkeypatch):
    """The collector is off while batches are folded (it took a third of the applier's CPU walking
    acyclic data), and back on after the run, also after a failed one; left off if it was off."""
    import gc

    from pipeline.engagement import learning

    seen: list[bool] = []
    apply = learning._BatchWork.apply

    def noting(work):
        seen.append(gc.isenabled())
        if len(seen) == 2:
            raise RuntimeError("disk on fire")
        apply(work)

    monkeypatch.setattr(learning._BatchWork, "apply", noting)
    add(world, "open", reader=1)
    add(world, "open", reader=2)
    assert gc.isenabled()
    with pytest.raises(RuntimeError, match="disk on fire"):
        learn(world, batch_size=1)
    assert seen == [False, False] and gc.isenabled()
    gc.disable()
    try:
        learn(world)
        assert not gc.isenabled()
    finally:
        gc.enable()
    assert seen == [False, False, False] and reader(world, 2).status == "subscribed"


def pair_world(db):
    """Reader 3 was sent climate, ai+data and a second climate section two places below the first."""
    with db.session() as session:
        session.add(EditionSection(edition_id="e1", section_id="s-climate-2", position=4, kind="story",
                                   title="s-climate-2", topics=["climate"], pinned=False))
        session.add(SendLedgerEntry(edition_id="e1", reader_id=3, audience_id=1, variant_id="w", state="sent",
                                    picks=[["s-climate", "r"], ["s-ai", "r"], ["s-climate-2", "r"]]))
    return db


def pair_clicks(db) -> list[tuple]:
    with db.engine.connect() as connection:
        return [tuple(row) for row in connection.execute(text(
            "SELECT gap, earlier, later FROM position_clicks ORDER BY gap"))]


def test_clicks_on_two_sections_of_one_topic_estimate_the_position_decay(world):
    """Only a pair of one-topic sections on the same topic in one copy counts; the next run weighs exposures by the estimate."""
    pair_world(world)
    add(world, "click", 3, section="s-climate-2")  # the lower of a climate pair two places apart
    add(world, "click", 3, section="s-ai")  # on two topics: might have been for either, no pair
    add(world, "click", 1, section="s-climate")  # reader 1's copy has one climate section: no pair
    first = learn(world)
    assert pair_clicks(world) == [(2, 0.0, 1.0)]
    assert first.position_decay == POSITION_DECAY  # nothing was known when the run began
    add(world, "click", 3, section="s-climate")  # now the upper one
    learn(world)
    assert pair_clicks(world) == [(2, 1.0, 1.0)]
    # Readers clicking the section one place down half as often as the one above: d = 0.5.
    with world.engine.begin() as connection:
        connection.execute(text("INSERT INTO position_clicks (gap, earlier, later) VALUES (1, 20000, 10000)"))
    add(world, "open", 2, edition="e2")
    third = learn(world)
    assert third.position_decay == pytest.approx(0.5, abs=0.01)
    clicks, exposures = interests(world, 2)["climate"][:2]
    assert clicks == 0 and exposures == pytest.approx(third.position_decay, abs=1e-3)  # climate was at place 1


def test_position_decay_solves_later_clicks_against_earlier_ones(db):
    """d with sum(later) = sum(earlier x d ** gap), the prior worth a few clicks, clamped to 0.2-1."""
    def estimate(rows):
        with db.engine.begin() as connection:
            connection.execute(text("DELETE FROM position_clicks"))
            for gap, earlier, later in rows:
                connection.execute(text("INSERT INTO position_clicks (gap, earlier, later) VALUES (:g, :e, :l)"),
                                   {"g": gap, "e": earlier, "l": later})
            return position_decay(connection)

    assert estimate([]) == pytest.approx(POSITION_DECAY)
    assert estimate([(1, 5000, 3000), (2, 4000, 0.36 * 4000), (3, 1000, 0.216 * 1000)]) == pytest.approx(0.6, abs=0.005)
    assert estimate([(1, 10, 9)]) == pytest.approx(0.86, abs=0.01)  # a few clicks barely move the prior
    assert estimate([(1, 1000, 1500)]) == 1.0 and estimate([(1, 10000, 1)]) == 0.2


def test_bad_settings_are_refused(world):
    """A half-life of zero is a configuration error that names the setting."""
    with pytest.raises(ConfigurationError, match="READERFIRST_HALF_LIFE_DAYS"):
        learn(world, half_life_days=0)


def test_learning_on_postgres(pg_world):
    """On PostgreSQL the same events give the same decayed counts, suppressions and opt-outs as on SQLite."""
    later = T0 + dt.timedelta(days=HALF_LIFE)
    add(pg_world, "delivered", reader=2, edition="e2", at=later)
    add(pg_world, "click", reader=2, edition="e2", section="s-climate", at=later)
    add(pg_world, "unsubscribe", reader=3)
    add(pg_world, "group_unsubscribe", reader=1, edition=None, raw={"asm_group_id": 1201})
    first = learn(pg_world, batch_size=3)
    add(pg_world, "delivered", reader=2)
    add(pg_world, "click", reader=2, section="s-climate")
    add(pg_world, "click", reader=2, section="s-climate")
    second = learn(pg_world)
    assert interests(pg_world, 2)["climate"] == (1.5, round(1.5 * CLIMATE, 9), later, False)
    assert interests(pg_world)["climate"] == (0, 0, None, True)
    assert reader(pg_world, 3).status == "unsubscribed"
    assert (first.events, first.batches, second.events, second.repeat_clicks) == (4, 2, 3, 1)
    pair_world(pg_world)
    add(pg_world, "click", 3, section="s-climate-2")
    add(pg_world, "click", 3, section="s-climate")
    learn(pg_world, batch_size=1)  # two batches: the second adds to the row the first made
    assert pair_clicks(pg_world) == [(2, 1.0, 1.0)]


def test_a_batch_read_ahead_is_claimed_anew_when_its_reader_was_forgotten_meanwhile(pg_world, monkeypatch):
    """On PostgreSQL the next batch is read while one is applied. A reader forgotten in between
    (their events and queue entries deleted) makes the claim of what was read ahead fall short:
    the batch is read again, nothing of theirs is learned, and the others learn what they would."""
    from pipeline.audience.privacy import forget_reader
    from pipeline.engagement import learning

    add(pg_world, "open", reader=1)
    add(pg_world, "delivered", reader=1)
    add(pg_world, "click", reader=2, section="s-climate")  # the batch read ahead: reader 2's click
    add(pg_world, "open", reader=1, edition="e2")
    forgotten, shortfalls = [], []
    read = learning._ReadAhead._read

    def read_then_forget(self, cursor):
        rows = read(self, cursor)
        if not forgotten and any(row[2] == 2 for row in rows):
            forgotten.append(forget_reader(pg_world, "r2@example.com").events)
        return rows

    class Counted(learning._Contended):
        def __init__(self, message):
            shortfalls.append(message)
            super().__init__(message)

    monkeypatch.setattr(learning._ReadAhead, "_read", read_then_forget)
    monkeypatch.setattr(learning, "_Contended", Counted)
    report = learn(pg_world, batch_size=2)
    assert forgotten == [1] and len(shortfalls) == 1  # read ahead with reader 2's click, then claimed anew
    assert report.events == 3 and report.by_type["click"] == 0
    assert interests(pg_world)["climate"][:2] == (0, round(2 * CLIMATE, 9))
    with pg_world.session() as session:
        assert session.scalars(select(ReaderInterest).where(ReaderInterest.reader_id == 2)).all() == []
        assert session.scalars(select(UnappliedEvent)).all() == []


def _folded_interests(db) -> list[tuple]:
    """Every reader_interests row, unrounded: what a fold wrote, to the last bit."""
    with db.session() as session:
        return sorted(session.execute(select(ReaderInterest.reader_id, ReaderInterest.topic,
                                             ReaderInterest.learned_clicks, ReaderInterest.learned_exposures,
                                             ReaderInterest.learned_at)).all())


def _many_contributions(db) -> None:
    """Events giving readers 1 and 2 several contributions per topic, their times out of order."""
    for rid in (1, 2):
        add(db, "open", rid, edition="e2", at=T0 + dt.timedelta(days=9))
        add(db, "click", rid, edition="e2", section="s-ai", at=T0 + dt.timedelta(days=9, hours=1))
        add(db, "click", rid, edition="e2", section="s-climate", at=T0 + dt.timedelta(days=9, hours=2))
        add(db, "machine_open", rid, edition="e1", at=T0 + dt.timedelta(days=1))  # older than what came before
        add(db, "click", rid, edition="e1", section="s-climate", at=T0 + dt.timedelta(days=2))
        add(db, "click", rid, edition="e1", section="s-ai", at=T0 + dt.timedelta(days=12))


def test_postgres_folds_a_batch_exactly_as_event_by_event(world):
    """On PostgreSQL one batch summing several contributions per (reader, topic) writes the very values one event per batch does, and SQLite's."""
    _many_contributions(world)
    learn(world)
    with postgres_database() as whole, postgres_database() as single:
        for db in (whole, single):
            seed(db)
            _many_contributions(db)
        assert learn(whole).batches == 1 and learn(single, batch_size=1).batches == 12
        assert _folded_interests(whole) == _folded_interests(single)
        assert len(_folded_interests(whole)) == 6  # readers 1 and 2 x climate, ai and data
        for mine, theirs in zip(_folded_interests(whole), _folded_interests(world)):
            assert mine[:2] == theirs[:2] and mine[4] == theirs[4]
            assert mine[2:4] == pytest.approx(theirs[2:4], rel=1e-9)  # julianday() rounds ages a little


@pytest.mark.parametrize("room", [3, 6, 9, 11])
def test_forgetting_history_midway_changes_nothing_learned(world, tmp_path, monkeypatch, room):
    """A run that must forget what it remembers every batch or so (other editions first, then all) learns exactly what one that never forgets learns."""
    from pipeline.engagement import learning
    from pipeline.store.database import open_database

    def events(db):
        _many_contributions(db)  # six batches of two
        for section in ("s-ai", "s-climate"):  # repeats of e2 alone: e1's history is forgotten first
            add(db, "click", 2, edition="e2", section=section, at=T0 + dt.timedelta(days=13))
        add(db, "open", 1, edition="e1", at=T0 + dt.timedelta(days=14))  # seen already, by a machine open
        add(db, "click", 1, edition="e1", section="s-climate", at=T0 + dt.timedelta(days=14))  # a repeat

    events(world)
    remembering = learn(world, batch_size=2)
    other = seed(open_database(f"sqlite:///{tmp_path / 'forgetful.db'}"))
    events(other)
    monkeypatch.setattr(learning, "_REMEMBERED", room)
    forgetting = learn(other, batch_size=2)
    assert _folded_interests(other) == _folded_interests(world) and len(_folded_interests(world)) == 6
    assert forgetting.summary() == remembering.summary() and remembering.repeat_clicks == 3
    other.dispose()
