"""Layout rules: lead first after pinned, sponsors capped and never first, no two neighbours of one kind."""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.audience.profile import Profile
from pipeline.content.arrangement import arrange_copy, cap_sponsors, order_sections
from pipeline.content.edition import Edition, Section, load_edition
from pipeline.content.policy import POLICIES
from pipeline.content.selection import REASON_FILL, Pick, Selection
from pipeline.delivery.planning import choose_for_reader, plan_settings
from pipeline.errors import InvalidEdition

TODAY = dt.date(2026, 12, 7)
# (kind, role) pairs as the shipped schemas declare them.
KINDS = [("lead", "lead"), ("article", "section"), ("links", "section"), ("event", "section"),
         ("quote", "section"), ("sponsor", "sponsor")]


def section(index: int, kind: str, role: str, pinned: bool = False, topics: tuple[str, ...] = ()) -> Section:
    """A section of `kind` with a unique id."""
    return Section(id=f"s{index}-{kind}", kind=kind, title=f"Section {index}", topics=topics, pinned=pinned, role=role)


def adjacent_pairs(sections) -> int:
    """How many neighbouring sections share a kind."""
    return sum(a.kind == b.kind for a, b in zip(sections, sections[1:]))


def keeps_hard_rules(original, ordered) -> bool:
    """Pinned first in their order, the first lead next (unless one is pinned), no sponsor opening the copy."""
    pinned = [s for s in original if s.pinned]
    if ordered[:len(pinned)] != pinned:
        return False
    leads = [s for s in original if s.role == "lead" and not s.pinned]
    if leads and not any(s.role == "lead" for s in pinned) and ordered[len(pinned)] != leads[0]:
        return False
    if ordered and ordered[0].role == "sponsor" and any(s.role != "sponsor" for s in original):
        return False
    return True


def best_possible(original) -> int:
    """The fewest neighbouring pairs of one kind any order keeping the hard rules has (brute force)."""
    return min(adjacent_pairs(list(order)) for order in itertools.permutations(original)
               if keeps_hard_rules(original, list(order)))


@st.composite
def copies(draw, max_size: int = 6):
    """A reader's copy: up to `max_size` sections of random kinds, some pinned (never a sponsor, see below)."""
    picked = draw(st.lists(st.sampled_from(KINDS), min_size=1, max_size=max_size))
    pinned = draw(st.lists(st.booleans(), min_size=len(picked), max_size=len(picked)))
    sections = [section(i, kind, role, pinned=flag and role != "sponsor")
                for i, ((kind, role), flag) in enumerate(zip(picked, pinned))]
    # Pinned sections come first in any selection: the policies put them there.
    return [s for s in sections if s.pinned] + [s for s in sections if not s.pinned]


@settings(max_examples=300, deadline=None)
@given(copies())
def test_order_keeps_the_hard_rules_and_avoids_neighbours_whenever_an_order_can(original):
    """For random copies, the order keeps the hard rules, and has neighbours of one kind only when every order has."""
    ordered = order_sections(original)
    assert sorted(s.id for s in ordered) == sorted(s.id for s in original)
    assert keeps_hard_rules(original, ordered)
    if best_possible(original) == 0:
        assert adjacent_pairs(ordered) == 0, [s.kind for s in ordered]


@settings(max_examples=300, deadline=None)
@given(copies())
def test_a_copy_that_already_follows_the_rules_keeps_its_order(original):
    """Stable: when the selection's order keeps every rule, the arrangement changes nothing."""
    if keeps_hard_rules(original, original) and adjacent_pairs(original) == 0:
        assert order_sections(original) == original


def test_lead_moves_to_the_top_of_the_picks_behind_pinned_sections():
    """A lead ranked third comes right after the pinned section, the others keep their order."""
    pinned = section(0, "letter", "section", pinned=True)
    a, b, lead = section(1, "article", "section"), section(2, "links", "section"), section(3, "lead", "lead")
    assert order_sections([pinned, a, b, lead]) == [pinned, lead, a, b]
    assert order_sections([a, b, lead]) == [lead, a, b]


def test_sponsor_is_never_first_even_when_pinned():
    """A pinned sponsor gives the opening place to the first other section."""
    sponsor = section(0, "sponsor", "sponsor", pinned=True)
    a, b = section(1, "article", "section"), section(2, "links", "section")
    assert order_sections([sponsor, a, b])[0] == a
    assert order_sections([section(3, "sponsor", "sponsor"), a, b])[0] == a


def test_same_kinds_are_interleaved():
    """Three articles and two link lists alternate instead of bunching."""
    arts = [section(i, "article", "section") for i in range(3)]
    links = [section(i + 3, "links", "section") for i in range(2)]
    ordered = order_sections([*arts, *links])
    assert [s.kind for s in ordered] == ["article", "links", "article", "links", "article"]
    assert [s.id for s in ordered if s.kind == "article"] == [s.id for s in arts]  # stable within a kind


# -- sponsors, through the edition ------------------------------------------------------------

@pytest.fixture
def sample(edition_path) -> Edition:
    """The sample edition (one sponsor, one lead, a pinned letter)."""
    return load_edition(edition_path)


def with_second_sponsor(edition: Edition, max_sponsor: int = 1) -> Edition:
    """The sample with a second sponsor on the first one's topics, and `max_sponsor`."""
    first = next(s for s in edition.sections if s.role == "sponsor")
    second = dataclasses.replace(first, id="sponsor-two", title="Another sponsor")
    return dataclasses.replace(edition, sections=(*edition.sections, second), max_sponsor=max_sponsor)


def test_sponsors_over_the_cap_give_their_place_to_an_editorial_section(sample):
    """With two sponsors picked and a cap of one, the second is replaced by the next fitting section."""
    edition = with_second_sponsor(sample)
    picks = [Pick("editors-note", float("inf"), "pinned"), Pick("sponsor-audit-kit", 1.0, "x"),
             Pick("sponsor-two", 1.0, "x"), Pick("ai-evals", 1.0, "x")]
    capped = cap_sponsors(edition, picks)
    assert [p.section_id for p in capped][:3] == ["editors-note", "sponsor-audit-kit", "ai-evals"]
    assert len(capped) == 4 and capped[-1].reason == REASON_FILL
    assert capped[-1].section_id not in {"sponsor-two", "sponsor-audit-kit"}
    none = cap_sponsors(dataclasses.replace(edition, max_sponsor=0), picks)
    assert not {p.section_id for p in none} & {"sponsor-audit-kit", "sponsor-two"}


def test_the_same_picks_in_another_edition_are_ordered_by_that_editions_sections(sample):
    """Orders are worked out once per set of sections: an edition whose sections share ids but not kinds
    gets its own order, never one remembered from the first."""
    ids = [s.id for s in sample.sections if not s.pinned and s.role == "section"][:2]
    first = arrange_copy(sample, Selection(tuple(Pick(i, 1.0, "x") for i in ids)))
    assert [p.section_id for p in first.picks] == ids  # no lead among them: the order is kept
    # The same ids, the second now the edition's lead: it must come first.
    led = dataclasses.replace(sample, sections=tuple(
        dataclasses.replace(s, kind="lead", role="lead") if s.id == ids[1] else
        dataclasses.replace(s, role="section") if s.role == "lead" else s for s in sample.sections))
    again = arrange_copy(led, Selection(tuple(Pick(i, 1.0, "x") for i in ids)))
    assert [p.section_id for p in again.picks] == [ids[1], ids[0]]


def test_a_copy_of_only_sponsors_is_empty(sample):
    """A reader whose copy would be nothing but a sponsor gets no sections rather than an advertisement."""
    assert arrange_copy(sample, Selection((Pick("sponsor-audit-kit", 1.0, "x"),))).picks == ()


def test_max_sponsor_is_read_and_checked(edition_dir, edition_path):
    """`max_sponsor` is an edition field from 0 to 30; a wrong value is refused at its line."""
    text = edition_path.read_text(encoding="utf-8")
    good = edition_dir / "good.yaml"
    good.write_text(text.replace("max_sponsor: 1", "max_sponsor: 0"), encoding="utf-8")
    assert load_edition(good).max_sponsor == 0
    bad = edition_dir / "bad.yaml"
    bad.write_text(text.replace("max_sponsor: 1", "max_sponsor: many"), encoding="utf-8")
    with pytest.raises(InvalidEdition, match=r"bad.yaml:\d+: max_sponsor=many: must be a whole number from 0 to 30"):
        load_edition(bad)


# -- every policy, random readers --------------------------------------------------------------

@st.composite
def readers(draw, topics: list[str]):
    """A reader with random interests, needs and opt-outs over the edition's topics."""
    interests = draw(st.dictionaries(st.sampled_from(topics), st.sampled_from([0.3, 0.6, 1.0]), max_size=4))
    needs = draw(st.dictionaries(st.sampled_from(topics), st.just(TODAY + dt.timedelta(days=30)), max_size=2))
    opted = draw(st.frozensets(st.sampled_from(topics), max_size=3))
    return Profile(reader_id=draw(st.integers(1, 10_000)), email="r@example.com", interests=interests,
                   needs=needs, opted_out=opted)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_every_policy_gives_copies_that_follow_the_layout_rules(sample, data):
    """For random readers, editions (two sponsors, cap 0-2), every policy and the holdout, each copy follows every rule."""
    edition = with_second_sponsor(sample, data.draw(st.integers(0, 2)))
    edition = dataclasses.replace(edition, sections_per_reader=data.draw(st.integers(1, 8)))
    profile = data.draw(readers(list(edition.taxonomy.labels)))
    policy = data.draw(st.sampled_from(POLICIES))
    settings_ = plan_settings(policy=policy, seed=data.draw(st.integers(0, 3)), exploration=0.1,
                              holdout_share=data.draw(st.sampled_from([0.0, 1.0])))
    selection, _ = choose_for_reader(edition, profile, today=TODAY, settings=settings_)
    copy = [edition.section(s) for s in selection.section_ids]
    assert len(set(selection.section_ids)) == len(copy) <= edition.sections_per_reader
    assert sum(s.role == "sponsor" for s in copy) <= edition.max_sponsor
    if copy:
        assert copy[0].role != "sponsor"
        assert keeps_hard_rules(copy, copy)
    if len(copy) <= 7 and best_possible(copy) == 0:
        assert adjacent_pairs(copy) == 0, [s.kind for s in copy]
    assert not any(profile.opted_out.intersection(s.topics) for s in copy)


def test_holdout_copy_follows_the_rules_too(sample):
    """The editorial (holdout) copy puts the lead right after the pinned letter."""
    selection, holdout = choose_for_reader(sample, Profile(reader_id=1, email="a@example.com"), today=TODAY,
                                           settings=plan_settings(holdout_share=1.0))
    assert holdout
    assert selection.section_ids[:2] == ("editors-note", "heat-pumps-offices")
