"""A reader's chance of a favourite topic: declarations overruled by evidence, one click that counts, the audience prior."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.audience.profile import Profile, TopicSignal
from pipeline.content.edition import load_edition
from pipeline.content.policy import PolicySettings, choose_sections, editorial_sections, population_means
from pipeline.content.taste import DECLARATION_TRUST, audience_tastes, favourite_chance

TODAY = dt.date(2026, 12, 7)
GREEDY = PolicySettings(exploration=0.0)


@pytest.fixture
def edition(edition_path):
    """The sample edition: 14 sections over 10 topics, editors-note pinned, 5 per reader, at most 2 per topic."""
    return load_edition(edition_path)


def reader(**fields) -> Profile:
    """A reader profile with the given fields."""
    return Profile(reader_id=1, email="r1@example.com", public_id="1" * 32, **fields)


def tastes_of(population: dict[str, TopicSignal]):
    """The audience tastes the policy derives from `population`."""
    means = population_means(population)
    return audience_tastes(means, means["\x00pooled"], sum(s.exposures for s in population.values()) / len(population))


def test_a_declaration_the_reader_ignores_is_overruled_by_the_topic_they_click(edition):
    """Declared Design shown 6 times without a click gives way to undeclared Funding clicked once in 2 exposures."""
    stale = reader(interests={"design": 1.0}, learned={"design": TopicSignal(0.0, 6.0), "funding": TopicSignal(1.0, 2.0)})
    copy = choose_sections(edition, stale, today=TODAY, seed=0, policy_settings=GREEDY)
    assert edition.by_id[copy.section_ids[1]].topics[0] == "funding"
    fresh = reader(interests={"design": 1.0})
    assert "design" in edition.by_id[choose_sections(edition, fresh, today=TODAY, seed=0,
                                                     policy_settings=GREEDY).section_ids[1]].topics


def test_one_click_makes_a_topic_likely_a_favourite_and_misses_wear_a_declaration_down():
    """A click on a 10% topic lifts it past 50%; each exposure without a click lowers a declared topic's chance."""
    tastes = tastes_of({t: TopicSignal(60.0, 1000.0) for t in ("a", "b", "c", "d")})
    assert favourite_chance(tastes, 0.1, TopicSignal(1.0, 1.0)) > 0.5
    chances = [favourite_chance(tastes, DECLARATION_TRUST, TopicSignal(0.0, n)) for n in range(0, 12, 2)]
    assert all(a > b for a, b in zip(chances, chances[1:])) and chances[-1] < 0.4


def test_an_audience_prior_on_little_data_leaves_the_editors_order(edition):
    """With 30 exposures per topic the audience's rates cannot be told apart: a newcomer gets the editor's copy."""
    topics = list(edition.taxonomy.labels)
    thin = {t: TopicSignal(float(i % 3), 30.0) for i, t in enumerate(topics)}
    thick = {t: TopicSignal(float(i % 3) * 1000, 30_000.0) for i, t in enumerate(topics)}
    newcomer = reader()
    assert choose_sections(edition, newcomer, today=TODAY, seed=0, population=thin,
                           policy_settings=GREEDY).section_ids == editorial_sections(edition).section_ids
    assert choose_sections(edition, newcomer, today=TODAY, seed=0, population=thick,
                           policy_settings=GREEDY).section_ids != editorial_sections(edition).section_ids


@given(clicks=st.floats(-1e9, 1e9, allow_nan=False), exposures=st.floats(-1e9, 1e9, allow_nan=False),
       prior=st.floats(0.01, 0.8))
def test_any_signal_gives_a_chance_between_0_and_1(clicks, exposures, prior):
    """Counts of any size or sign (a corrupt row, a decayed sum) never give a chance outside (0, 1) or an error."""
    tastes = tastes_of({"a": TopicSignal(5.0, 100.0), "b": TopicSignal(1.0, 100.0)})
    chance = favourite_chance(tastes, prior, TopicSignal(clicks, exposures))
    assert 0.0 < chance < 1.0
