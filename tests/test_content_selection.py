"""Choosing sections for a reader: pinned first, needs before interests, caps, fill, determinism."""

from __future__ import annotations

import dataclasses
import datetime as dt
import random

import pytest

from pipeline.audience.profile import Profile
from pipeline.content.edition import load_edition
from pipeline.content.selection import (
    REASON_FILL,
    REASON_PINNED,
    Selection,
    select_sections,
    variant_id_of,
)

TODAY = dt.date(2026, 12, 7)


@pytest.fixture
def edition(edition_path):
    """The sample edition: 14 sections, editors-note pinned, 5 per reader, at most 2 per topic."""
    return load_edition(edition_path)


def profile(**fields) -> Profile:
    """A reader profile with the given fields."""
    return Profile(reader_id=1, email="ann@example.com", **fields)


def test_pinned_section_comes_first(edition):
    """The pinned editor's note leads every reader's copy, with the editor's-pick reason."""
    selection = select_sections(edition, profile(interests={"funding": 1.0}), today=TODAY)
    assert selection.picks[0].section_id == "editors-note"
    assert selection.picks[0].reason == REASON_PINNED


def test_selection_has_k_sections(edition):
    """A reader gets sections_per_reader sections by default, or exactly k when given."""
    reader = profile(interests={"climate": 1.0})
    assert len(select_sections(edition, reader, today=TODAY).picks) == 5
    assert len(select_sections(edition, reader, today=TODAY, k=3).picks) == 3
    assert select_sections(edition, reader, today=TODAY, k=1).section_ids == ("editors-note",)
    assert len(select_sections(edition, reader, today=TODAY, k=9).picks) == 9


def test_at_most_m_sections_per_topic(edition):
    """No topic fills more than max_per_topic places, even when the reader follows it strongly."""
    reader = profile(interests={"security": 1.0, "ai": 1.0})
    ids = select_sections(edition, reader, today=TODAY, k=8).section_ids
    # Security sections in editorial order: passkeys-rollout, security-meetup, ai-links (the third).
    assert "passkeys-rollout" in ids and "security-meetup" in ids
    assert "ai-links" not in ids
    counts: dict[str, int] = {}
    for section_id in ids:
        for topic in edition.section(section_id).topics:
            counts[topic] = counts.get(topic, 0) + 1
    assert max(counts.values()) <= edition.max_per_topic


def test_max_per_topic_argument_overrides_the_edition(edition):
    """max_per_topic=1 lets only one climate section through for a climate reader."""
    reader = profile(interests={"climate": 1.0})
    ids = select_sections(edition, reader, today=TODAY, max_per_topic=1).section_ids
    assert [s for s in ids if "climate" in edition.section(s).topics] == ["heat-pumps-offices"]


def test_sections_are_ordered_by_score(edition):
    """Matched sections follow the pinned one from the strongest interest to the weakest."""
    reader = profile(interests={"climate": 0.4, "funding": 1.0, "design": 0.6})
    selection = select_sections(edition, reader, today=TODAY)
    assert selection.section_ids == ("editors-note", "seed-terms", "design-tokens", "heat-pumps-offices",
                                     "climate-links")
    scores = [p.score for p in selection.picks[1:]]
    assert scores == [1.0, 0.6, 0.4, 0.4]


def test_ties_keep_editorial_order(edition):
    """Sections with equal scores appear in the order the editor wrote them."""
    reader = profile(interests={"leadership": 0.8})
    ids = select_sections(edition, reader, today=TODAY).section_ids
    # leadership: first-engineer-hire, async-rituals, founder-burnout (cap 2 keeps the first two).
    assert ids[1:3] == ("first-engineer-hire", "async-rituals")


def test_unexpired_need_outranks_declared_interests(edition):
    """A need that has not expired puts its sections above a fully weighted interest, with a dated reason."""
    reader = profile(interests={"climate": 1.0}, needs={"hiring": dt.date(2026, 12, 31)})
    selection = select_sections(edition, reader, today=TODAY)
    assert selection.section_ids == ("editors-note", "first-engineer-hire", "hiring-clinic",
                                     "heat-pumps-offices", "climate-links")
    reasons = selection.reasons
    assert reasons["first-engineer-hire"] == "you said you need help with Hiring until 2026-12-31"
    assert reasons["hiring-clinic"] == "you said you need help with Hiring until 2026-12-31"
    assert reasons["heat-pumps-offices"] == "you follow Climate"
    assert selection.picks[1].score > selection.picks[3].score


def test_need_ending_today_still_counts(edition):
    """A need whose last day is today still boosts its sections."""
    reader = profile(needs={"funding": TODAY})
    selection = select_sections(edition, reader, today=TODAY)
    assert selection.section_ids[1] == "seed-terms"
    assert selection.reasons["seed-terms"] == f"you said you need help with Funding until {TODAY.isoformat()}"


def test_expired_need_is_ignored(edition):
    """A need that ended before today changes nothing: the reader gets what their interests give."""
    with_expired = profile(interests={"climate": 1.0}, needs={"hiring": dt.date(2026, 12, 6)})
    without = profile(interests={"climate": 1.0})
    chosen = select_sections(edition, with_expired, today=TODAY)
    assert chosen == select_sections(edition, without, today=TODAY)
    assert "need help" not in " ".join(chosen.reasons.values())


def test_interest_reason_names_the_topic_label(edition):
    """A section chosen for a declared interest says which topic, by its label."""
    reader = profile(interests={"remote-work": 0.6})
    selection = select_sections(edition, reader, today=TODAY)
    assert selection.reasons["async-rituals"] == "you follow Remote work"
    assert select_sections(edition, profile(interests={"climate": 1.0}), today=TODAY).reasons[
        "heat-pumps-offices"] == "you follow Climate"


def test_best_topic_gives_the_reason(edition):
    """A section with several topics is scored and explained by the reader's strongest one."""
    reader = profile(interests={"ai": 0.4, "data": 0.9})
    selection = select_sections(edition, reader, today=TODAY)
    pick = next(p for p in selection.picks if p.section_id == "ai-evals")
    assert (pick.score, pick.reason) == (0.9, "you follow Data")


def test_few_interests_are_filled_in_editorial_order(edition):
    """A reader with one narrow interest still gets a full copy, topped up in editorial order."""
    selection = select_sections(edition, profile(interests={"funding": 1.0}), today=TODAY)
    assert selection.section_ids == ("editors-note", "seed-terms", "heat-pumps-offices", "first-engineer-hire",
                                     "ai-evals")
    assert [p.reason for p in selection.picks[2:]] == [REASON_FILL] * 3
    assert [p.score for p in selection.picks[2:]] == [0.0] * 3


def test_reader_without_interests_gets_the_editorial_order(edition):
    """A reader who declared nothing gets the pinned section and then the first sections as the editor ordered them."""
    selection = select_sections(edition, profile(), today=TODAY)
    assert selection.section_ids == tuple(s.id for s in edition.sections[:5])


def test_fill_respects_the_topic_cap(edition):
    """Sections added to fill places still respect max_per_topic."""
    reader = profile(interests={"climate": 1.0})
    ids = select_sections(edition, reader, today=TODAY, k=14).section_ids
    assert sum("climate" in edition.section(s).topics for s in ids) == 2


def test_opted_out_topics_are_excluded(edition):
    """Sections on a topic the reader opted out of never appear, not even to fill places."""
    reader = profile(interests={"climate": 1.0, "hiring": 0.5}, opted_out=frozenset({"climate", "leadership"}))
    ids = select_sections(edition, reader, today=TODAY, k=14).section_ids
    for section_id in ids:
        assert not {"climate", "leadership"} & set(edition.section(section_id).topics), section_id
    assert "hiring-clinic" in ids


def test_opted_out_topic_excludes_even_a_pinned_section(edition):
    """A pinned section on a topic the reader opted out of is left out."""
    sections = tuple(dataclasses.replace(s, pinned=True) if s.id == "seed-terms" else s for s in edition.sections)
    pinned_funding = dataclasses.replace(edition, sections=sections)
    assert select_sections(pinned_funding, profile(), today=TODAY).section_ids[:2] == ("editors-note", "seed-terms")
    ids = select_sections(pinned_funding, profile(opted_out=frozenset({"funding"})), today=TODAY).section_ids
    assert "seed-terms" not in ids


def test_selection_is_deterministic(edition):
    """The same edition, profile and day give the same Selection and variant id, whatever the dict order."""
    one = profile(interests={"ai": 0.8, "design": 0.8, "security": 0.4}, needs={"hiring": dt.date(2027, 1, 1)})
    other = profile(interests={"security": 0.4, "design": 0.8, "ai": 0.8}, needs={"hiring": dt.date(2027, 1, 1)})
    first = select_sections(edition, one, today=TODAY)
    assert select_sections(edition, one, today=TODAY) == first
    assert select_sections(edition, other, today=TODAY) == first
    assert select_sections(edition, other, today=TODAY).variant_id == first.variant_id


def test_variant_id_is_stable_and_order_sensitive():
    """The variant id is a fixed function of the ordered section ids, the same in every process."""
    ids = ("editors-note", "heat-pumps-offices", "climate-links")
    # A pinned value: a resumed send in a new process must find the same variants in the ledger.
    assert variant_id_of(ids) == variant_id_of(list(ids)) == "9cebbdaaa0015956"
    assert variant_id_of(("editors-note", "climate-links", "heat-pumps-offices")) != variant_id_of(ids)
    selection = Selection(())
    assert selection.variant_id == variant_id_of(())


def test_selection_invariants_hold_for_many_random_readers(edition):
    """For many random readers: pinned first, no repeats, caps kept, scores non-increasing, opt-outs honoured."""
    rng = random.Random(20261207)
    topics = list(edition.taxonomy.labels)
    for _ in range(300):
        interests = {t: rng.choice((0.2, 0.4, 0.6, 0.8, 1.0)) for t in rng.sample(topics, rng.randint(0, 5))}
        needs = {t: TODAY + dt.timedelta(days=rng.randint(-10, 40)) for t in rng.sample(topics, rng.randint(0, 2))}
        opted_out = frozenset(rng.sample(topics, rng.randint(0, 2)))
        reader = profile(interests=interests, needs=needs, opted_out=opted_out)
        k = rng.randint(1, 9)
        selection = select_sections(edition, reader, today=TODAY, k=k)
        ids = selection.section_ids
        eligible = [s for s in edition.sections if not opted_out & set(s.topics)]
        assert len(ids) == len(set(ids))
        assert ids[0] == "editors-note"
        assert 1 <= len(ids) <= min(k, len(eligible))
        counts: dict[str, int] = {}
        for section_id in ids:
            assert not opted_out & set(edition.section(section_id).topics)
            for topic in edition.section(section_id).topics:
                counts[topic] = counts.get(topic, 0) + 1
        assert all(c <= edition.max_per_topic for c in counts.values())
        scores = [p.score for p in selection.picks[1:]]
        assert scores == sorted(scores, reverse=True)
        for pick in selection.picks[1:]:
            if pick.reason.startswith("you said you need help with"):
                until = pick.reason.rsplit(" ", 1)[1]
                assert dt.date.fromisoformat(until) >= TODAY
