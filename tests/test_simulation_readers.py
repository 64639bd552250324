"""The response model of simulated readers: position bias, machine opens, drift, unsubscribes, the oracle."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from pipeline.engagement.events import EventType
from pipeline.engagement.sendgrid_events import parse_events
from pipeline.simulation.engagement import response_events, section_links_in_html
from pipeline.simulation.models import Drift, Engagement, Propensity, load_reader_model
from pipeline.simulation.readers import Candidate, Response, ShownSection, SimulatedAudience

MODELS = Path(__file__).resolve().parent.parent / "audiences" / "reader-models"
EMAILS = [f"reader{i}@example.com" for i in range(3000)]


@pytest.fixture
def focused():
    """The shipped focused model."""
    return load_reader_model(MODELS / "focused.yaml")


def favourite(audience: SimulatedAudience, email: str, edition: int = 1) -> str:
    """The reader's favourite hidden topic at `edition`."""
    prefs = audience.reader(email).preferences(edition)
    return max(prefs, key=prefs.get)


def test_click_chance_falls_with_position_by_the_decay(focused):
    """The same section placed four places lower is clicked decay**4 times as often."""
    audience = SimulatedAudience(focused, seed=1)
    email = EMAILS[0]
    topic = (favourite(audience, email),)
    top, low = audience.click_chances(email, 1, [ShownSection("a", topic, 0), ShownSection("b", topic, 4)])
    assert top == pytest.approx(focused.engagement.click_rate)
    assert low == pytest.approx(top * focused.engagement.position_decay ** 4)


def test_simulated_clicks_show_position_bias(focused):
    """Over many readers, a favourite-topic section first gets clearly more clicks than the same last."""
    audience = SimulatedAudience(focused, seed=2)
    first = last = 0
    for email in EMAILS:
        topic = (favourite(audience, email),)
        shown = [ShownSection("first", topic, 0), *(ShownSection(f"x{i}", (), i) for i in range(1, 4)),
                 ShownSection("last", topic, 4)]
        clicks = audience.respond(email, 1, shown).clicks
        first += "first" in clicks
        last += "last" in clicks
    assert first > 1.3 * last > 0


def test_sections_the_reader_does_not_care_about_are_rarely_clicked(focused):
    """A section on the reader's least liked topic gets a small fraction of the favourite's click chance."""
    audience = SimulatedAudience(focused, seed=1)
    ratios = []
    for email in EMAILS[:500]:
        prefs = audience.reader(email).preferences(1)
        worst, best = min(prefs, key=prefs.get), max(prefs, key=prefs.get)
        low, high = audience.click_chances(email, 1, [ShownSection("w", (worst,), 0), ShownSection("b", (best,), 0)])
        ratios.append(low / high)
    assert sum(ratios) / len(ratios) < 0.05


def test_machine_opens_never_click(focused):
    """Apple MPP readers who did not read the newsletter have a machine open and no clicks."""
    model = dataclasses.replace(focused, engagement=Engagement(open_rate=0.3, click_rate=1.0, position_decay=1.0,
                                                                 machine_open_share=1.0))
    audience = SimulatedAudience(model, seed=5)
    unread = read = 0
    for email in EMAILS[:1000]:
        shown = [ShownSection("s", (favourite(audience, email),), 0)]
        response = audience.respond(email, 1, shown)
        assert response.machine_open
        if response.opened:
            read += 1
            assert response.clicks == ("s",)  # click_rate 1 on the favourite: a reader always clicks
        else:
            unread += 1
            assert response.clicks == ()
    assert unread > 500 and read > 200


def test_a_machine_open_is_reported_as_such_and_never_as_a_click():
    """The events of a prefetch-only response are one open with sg_machine_open, read as MACHINE_OPEN."""
    base = {"email": "a@example.com", "sg_message_id": "m1", "edition_id": "e1", "reader_id": "1"}
    events = response_events(Response(opened=False, machine_open=True, clicks=(), unsubscribed=False, spam_report=False),
                             base=base, section_urls={}, delivered_at=1_800_000_000)
    parsed, quarantined = parse_events(events)
    assert not quarantined
    assert [e.event_type for e in parsed] == [EventType.MACHINE_OPEN]


def test_response_events_are_what_the_webhook_reader_understands():
    """Open, clicks with their tagged URL, and an unsubscribe parse to our events, section ids included."""
    url = "https://news.example.com/a?rf_e=e1&rf_s=sec-a"
    base = {"email": "a@example.com", "sg_message_id": "m1", "edition_id": "e1", "reader_id": "7", "holdout": "0"}
    response = Response(opened=True, machine_open=False, clicks=("sec-a",), unsubscribed=True, spam_report=False)
    parsed, quarantined = parse_events(response_events(response, base=base, section_urls={"sec-a": url},
                                                       delivered_at=1_800_000_000))
    assert not quarantined
    assert [(e.event_type, e.section_id) for e in parsed] == [
        (EventType.OPEN, None), (EventType.CLICK, "sec-a"), (EventType.UNSUBSCRIBE, None)]
    assert all(e.reader_id == 7 and e.holdout is False for e in parsed)
    assert len({e.provider_event_id for e in parsed}) == 3


def test_section_links_are_read_from_html_in_reading_order():
    """The first rf_s link of each section is found, in document order, with entities decoded."""
    html = ('<a href="https://x.example.com/p?rf_e=e&amp;rf_s=two">img</a><a href="https://x.example.com/u">u</a>'
            '<a href="https://x.example.com/p?rf_e=e&amp;rf_s=two&amp;again=1">t</a>'
            '<a href="https://x.example.com/q?rf_e=e&amp;rf_s=one">q</a>')
    links = section_links_in_html(html)
    assert list(links) == ["two", "one"]
    assert links["two"] == "https://x.example.com/p?rf_e=e&rf_s=two"


def test_drift_changes_preferences_at_the_given_edition(focused):
    """Drifting readers keep their tastes until drift.at_edition and have new ones from then on."""
    model = dataclasses.replace(focused, drift=Drift(share=0.3, at_edition=4))
    audience = SimulatedAudience(model, seed=1)
    readers = [audience.reader(e) for e in EMAILS[:1000]]
    drifting = [r for r in readers if r.preferences_after is not None]
    assert 0.25 < len(drifting) / len(readers) < 0.35
    for reader in drifting:
        assert reader.preferences(3) == reader.preferences(1) == reader.preferences_before
        assert reader.preferences(4) == reader.preferences(9) == reader.preferences_after != reader.preferences_before
        assert not reader.drifted(3) and reader.drifted(4)
    for reader in readers:
        if reader.preferences_after is None:
            assert reader.preferences(10) == reader.preferences_before
    # Behaviour follows: a reader whose favourite changed clicks their old favourite less from edition 4.
    reader = next(r for r in drifting if favourite(audience, r.email, 3) != favourite(audience, r.email, 4))
    shown = [ShownSection("s", (favourite(audience, reader.email, 3),), 0)]
    assert audience.click_chances(reader.email, 3, shown)[0] > audience.click_chances(reader.email, 4, shown)[0]


def test_a_poorly_serving_newsletter_drives_unsubscribes_up(focused):
    """Expected and simulated unsubscribes are higher with nothing of interest than with the favourite first."""
    model = dataclasses.replace(focused, unsubscribe=Propensity(0.01, 0.2))
    audience = SimulatedAudience(model, seed=3)
    good = poor = 0
    expected_good = expected_poor = 0.0
    for email in EMAILS:
        prefs = audience.reader(email).preferences(1)
        best, worst = max(prefs, key=prefs.get), min(prefs, key=prefs.get)
        serves, fails = [ShownSection("b", (best,), 0)], [ShownSection("w", (worst,), 0)]
        good += audience.respond(email, 1, serves).unsubscribed
        poor += audience.respond(email, 1, fails).unsubscribed
        expected_good += audience.expect(email, 1, serves).unsubscribe
        expected_poor += audience.expect(email, 1, fails).unsubscribe
    assert poor > 5 * good
    assert expected_poor > 5 * expected_good
    assert poor == pytest.approx(expected_poor, rel=0.15)


def test_expected_clicks_are_the_mean_of_simulated_clicks(focused):
    """Over many readers, the sum of simulated clicks is close to the sum of expected clicks."""
    audience = SimulatedAudience(focused, seed=4)
    topics = list(focused.topics)
    shown = [ShownSection(f"s{i}", (topics[i],), i) for i in range(5)]
    simulated = sum(len(audience.respond(e, 2, shown).clicks) for e in EMAILS)
    expected = sum(audience.expect(e, 2, shown).clicks for e in EMAILS)
    assert simulated == pytest.approx(expected, rel=0.08)


def test_responses_are_deterministic_per_seed_address_and_edition(focused):
    """Two audiences with the same seed respond alike; another edition draws anew."""
    topics = list(focused.topics)
    shown = [ShownSection(f"s{i}", (topics[i],), i) for i in range(5)]
    one, two = SimulatedAudience(focused, seed=9), SimulatedAudience(focused, seed=9)
    assert [one.respond(e, 1, shown) for e in EMAILS[:300]] == [two.respond(e, 1, shown) for e in EMAILS[:300]]
    assert [one.respond(e, 1, shown) for e in EMAILS[:300]] != [one.respond(e, 2, shown) for e in EMAILS[:300]]


def test_the_oracle_respects_the_edition_rules_and_beats_any_other_copy(focused):
    """The oracle takes k sections, at most m per topic, pinned first, and expects at least the editorial clicks."""
    audience = SimulatedAudience(focused, seed=1)
    topics = list(focused.topics)
    candidates = [Candidate("pin", (), pinned=True)] + [Candidate(f"c{i}", (topics[i % len(topics)],))
                                                        for i in range(30)]
    editorial = [ShownSection(c.section_id, c.topics, i) for i, c in enumerate(candidates[:5])]
    for email in EMAILS[:200]:
        chosen = audience.oracle(email, 1, candidates, k=5, max_per_topic=2)
        assert len(chosen) == 5 and chosen[0].section_id == "pin"
        assert [s.position for s in chosen] == list(range(5))
        for topic in topics:
            assert sum(topic in s.topics for s in chosen) <= 2
        assert audience.expect(email, 1, chosen).clicks >= audience.expect(email, 1, editorial).clicks - 1e-12


def test_a_need_raises_clicks_on_its_topic_while_it_lasts():
    """A reader with a need clicks its topic at `strength` x click_rate while it lasts, and as before afterwards."""
    model = load_reader_model(MODELS / "changing.yaml")
    audience = SimulatedAudience(model, seed=1)
    email = next(e for e in EMAILS if audience.reader(e).need is not None
                 and audience.reader(e).affinities(model.needs.lasts + 1).get(audience.reader(e).need, 0) < 0.5)
    reader = audience.reader(email)
    section = [ShownSection("a", (reader.need,), 0)]
    during = audience.click_chances(email, model.needs.lasts, section)[0]
    after = audience.click_chances(email, model.needs.lasts + 1, section)[0]
    assert during == pytest.approx(min(1.0, model.engagement.click_rate * model.needs.strength))
    assert after < during / 2
    assert reader.need_active(model.needs.lasts) and not reader.need_active(model.needs.lasts + 1)
    share = sum(audience.reader(e).need is not None for e in EMAILS) / len(EMAILS)
    assert abs(share - model.needs.share) < 0.04
