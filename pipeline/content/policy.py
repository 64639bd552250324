"""Choosing sections from each reader's chance of a favourite per topic, with exploration by that chance.

Every topic of the edition gets the reader's chance that it is one of their favourites
(`pipeline.content.taste`): a prior from what the whole audience clicks on it (or from a
declaration, raised to DECLARATION_TRUST x weight), moved by the reader's own decayed clicks
and exposures. A topic is worth its expected click rate; an unexpired need adds NEED_BOOST,
so needs come first. A section is worth the value of its best topic (a little more for a
section on several topics while the reader's favourite is uncertain), sections of equal
value come in the editor's order, as in the first rule: `pipeline.content.ranking` orders them.

The copy is greedy on those values (the reference learner in `benchmarks/learning_ceiling.py`
is greedy too), and the `exploration` share of the non-pinned places (on average: a reader with
4 places and 0.1 gets one such place 40% of the time) goes to topics the copy lacks, drawn in
proportion to their chance. Shown topics are drawn too: after a change of taste the new
favourite has usually been shown once already, and the policy that only explored topics never
shown kept drifted readers at 0.44-0.55 of the oracle for 12 editions. Places the values
already give to topics new to the reader count towards that share: a newcomer's whole copy
is new to them. So:

- with no signal at all (no population, nothing declared or clicked) the copy is the editor's;
- the population prior ranks the topics of readers who told us nothing once it can tell the
  topics apart, exposures without clicks lower a topic, declared interests and clicks lift it,
  and evidence overrules a declaration.

Exploration draws come from a generator seeded with a stable hash
of (edition id, reader's public id, seed): the same reader gets the same sections in every
process, so a resumed send plans what the first attempt planned. Python's `hash()` is salted
per process and is never used for this.

`choose_sections` is the one entry point; its settings name the policy: 'thompson' (the
default), 'editorial' (the same newsletter for everyone: the holdout) or 'rule' (the first
scoring rule, `select_sections`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import random
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from pipeline.audience.profile import Profile, TopicSignal
from pipeline.content.edition import Edition, Section
from pipeline.content.ranking import EditionWalk, edition_walk, ranked_sections
from pipeline.content.selection import (
    NEED_BOOST,
    REASON_FILL,
    REASON_PINNED,
    Pick,
    Selection,
    select_sections,
)
from pipeline.content.taste import AudienceTastes, audience_tastes, favourite_chance
from pipeline.engagement.learning import BASE_CTR, PRIOR_STRENGTH, expected_ctr
from pipeline.errors import ConfigurationError

__all__ = [
    "DEFAULT_EXPLORATION",
    "EDITORIAL",
    "POLICIES",
    "REASON_AGAIN",
    "REASON_EDITORIAL",
    "REASON_EXPLORE",
    "REASON_FOLLOW",
    "REASON_LEARNED",
    "REASON_NEED",
    "REASON_POPULAR",
    "RULE",
    "THOMPSON",
    "PolicySettings",
    "choose_sections",
    "editorial_sections",
    "population_means",
    "reader_stream",
]

THOMPSON, EDITORIAL, RULE = "thompson", "editorial", "rule"
POLICIES = (THOMPSON, EDITORIAL, RULE)
DEFAULT_EXPLORATION = 0.1

REASON_EDITORIAL = "this week's editor's selection"
REASON_POPULAR = "popular with readers like you"
# Templates: formatted only for the sections picked, never for the candidates left out.
REASON_NEED = "you said you need help with {label} until {until}"
REASON_LEARNED = "you often read {label}"
REASON_FOLLOW = "you follow {label}"
REASON_EXPLORE = "something new to try: {label}"
REASON_AGAIN = "another look at {label}"  # ranked high, though neither declared, new, popular nor often clicked


@dataclass(frozen=True)
class PolicySettings:
    """Which policy chooses, how much it explores, and optional overrides of the edition's k and m."""

    name: str = THOMPSON
    exploration: float = DEFAULT_EXPLORATION
    k: int | None = None
    max_per_topic: int | None = None

    def __post_init__(self) -> None:
        if self.name not in POLICIES:
            raise ConfigurationError(f"policy={self.name!r}: use one of {', '.join(POLICIES)}")
        share = self.exploration
        if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0.0 <= share <= 1.0:
            raise ConfigurationError(f"exploration={self.exploration!r}: must be a share from 0 to 1")


def reader_stream(edition_id: str, profile: Profile, seed: int) -> random.Random:
    """The reader's own generator for this edition and seed: the same in every process."""
    key = profile.public_id or str(profile.reader_id)
    digest = hashlib.blake2b(f"{edition_id}\x1f{key}\x1f{seed}".encode(), digest_size=8).digest()
    return random.Random(int.from_bytes(digest, "big"))


_AVERAGE = "\x00average"  # key of the mean of the topics' click rates in the means
_POOLED = "\x00pooled"  # key of what a topic the audience was never shown is worth (see population_means)


def population_means(population: Mapping[str, TopicSignal]) -> dict[str, float]:
    """The audience's click rate per topic, shrunk towards the lower of BASE_CTR and the audience's pooled rate.

    The pooled rate is every click over every exposure (itself shrunk towards BASE_CTR). A topic
    the audience has barely been shown is worth about that target. Shrunk towards BASE_CTR
    alone, in an audience that clicks less than BASE_CTR, such topics outranked every topic
    readers had been shown and clicked, and copies swapped the popular topics for untried ones
    (in a simulated audience clicking 8% of first-placed favourites, personalised readers fell
    to 0.67 of the editorial newsletter's clicks at edition 2). Above BASE_CTR the target stays
    BASE_CTR: a topic barely shown is one the editor did not favour, not an average one. Also
    holds, under private keys, that target and the mean over topics (above which a reason may
    say 'popular').
    """
    counts = {}
    total_clicks = total_exposures = 0.0
    for topic, signal in population.items():
        exposures = max(0.0, signal.exposures)
        clicks = min(max(0.0, signal.clicks), exposures)
        counts[topic] = (clicks, exposures)
        total_clicks += clicks
        total_exposures += exposures
    if not counts:
        return {}
    pooled = min(BASE_CTR, (total_clicks + BASE_CTR * PRIOR_STRENGTH) / (total_exposures + PRIOR_STRENGTH))
    # Worth as many exposures as a topic gets on average: a topic shown to few readers (often
    # only its devotees, or only with a popular co-topic) is not trusted over one shown to many.
    strength = max(PRIOR_STRENGTH, total_exposures / len(counts))
    means = {topic: (clicks + pooled * strength) / (exposures + strength) for topic, (clicks, exposures) in counts.items()}
    means[_AVERAGE] = sum(means.values()) / len(means)
    means[_POOLED] = pooled
    return means


_NO_TASTES = audience_tastes({}, None, 0.0)
_LAST_POPULATION: tuple[object, tuple[dict[str, float], AudienceTastes]] = (None, ({}, _NO_TASTES))


def _population_priors(population: Mapping[str, TopicSignal] | None) -> tuple[dict[str, float], AudienceTastes]:
    global _LAST_POPULATION
    if not population:
        return {}, _NO_TASTES
    last = _LAST_POPULATION
    if last[0] is population:
        return last[1]
    # One population serves a whole send: convert it once, not once per reader.
    means = population_means(population)
    exposures = sum(max(0.0, signal.exposures) for signal in population.values())
    found = (means, audience_tastes(means, means.get(_POOLED), exposures / len(population)))
    _LAST_POPULATION = (population, found)
    return found


def editorial_sections(edition: Edition, profile: Profile | None = None, *, k: int | None = None,
                       max_per_topic: int | None = None) -> Selection:
    """The editor's newsletter: pinned first, then file order, k sections, at most m per topic.

    Everyone gets the same copy, except that a reader's topic opt-outs are still honoured:
    an opt-out is a promise, and breaking it would cost more than a purer comparison gains.
    """
    k = edition.sections_per_reader if k is None else k
    cap = edition.max_per_topic if max_per_topic is None else max_per_topic
    opted = profile.opted_out if profile is not None else frozenset()
    per_topic: dict[str, int] = {}
    picks: list[Pick] = []
    for pinned in (True, False):
        for section in edition.sections:
            if len(picks) >= k:
                return Selection(tuple(picks))
            if section.pinned is not pinned or opted.intersection(section.topics):
                continue
            if not pinned and any(per_topic.get(t, 0) >= cap for t in section.topics):
                continue
            picks.append(Pick(section.id, math.inf if pinned else 0.0, REASON_PINNED if pinned else REASON_EDITORIAL))
            for t in section.topics:
                per_topic[t] = per_topic.get(t, 0) + 1
    return Selection(tuple(picks))


def choose_sections(edition: Edition, profile: Profile, *, today: dt.date, seed: int = 0,
                    policy_settings: PolicySettings | None = None,
                    population: Mapping[str, TopicSignal] | None = None) -> Selection:
    """Choose the reader's sections with the policy `policy_settings` names, each with its reason.

    Deterministic for (edition, reader, seed, today, profile, population): a resumed send picks
    the same sections. `population` is the audience's per-topic clicks and exposures
    (`pipeline.audience.directory.population_prior`): the prior mean of every topic a reader
    has not declared.
    """
    settings = policy_settings or PolicySettings()
    if settings.name == EDITORIAL:
        return editorial_sections(edition, profile, k=settings.k, max_per_topic=settings.max_per_topic)
    if settings.name == RULE:
        return select_sections(edition, profile, today=today, k=settings.k, max_per_topic=settings.max_per_topic)
    return _thompson(edition, profile, today, seed, settings, population)


class _Draft:
    """One reader's copy while it is being filled: places taken and sections per topic."""

    __slots__ = ("cap", "chosen", "draws", "explored", "per_topic", "screen", "taken")

    def __init__(self, cap: int, per_topic: dict[str, int], draws: list[float | None], screen: bool) -> None:
        self.cap, self.per_topic, self.draws, self.screen = cap, per_topic, draws, screen
        self.taken: set[int] = set()
        self.chosen: list[tuple[Section, float, int]] = []  # (section, score, topic index behind it or -1)
        self.explored: list[tuple[Section, float, int]] = []

    def size(self) -> int:
        """Places filled so far, besides the pinned ones."""
        return len(self.chosen) + len(self.explored)

    def take(self, into: list[tuple[Section, float, int]], position: int, section: Section,
             indexes: tuple[int, ...], score: float, which: int) -> bool:
        """Add the section unless it is taken, on an opted-out topic, or over the per-topic cap."""
        if position in self.taken:
            return False
        if self.screen and any(self.draws[i] is None for i in indexes):
            return False
        per_topic, cap = self.per_topic, self.cap
        for t in section.topics:
            if per_topic.get(t, 0) >= cap:
                return False
        self.taken.add(position)
        into.append((section, score, which))
        for t in section.topics:
            per_topic[t] = per_topic.get(t, 0) + 1
        return True


def _thompson(edition: Edition, profile: Profile, today: dt.date, seed: int, settings: PolicySettings,
              population: Mapping[str, TopicSignal] | None) -> Selection:
    walk = edition_walk(edition)
    k = edition.sections_per_reader if settings.k is None else settings.k
    cap = edition.max_per_topic if settings.max_per_topic is None else settings.max_per_topic
    opted, interests, learned = profile.opted_out, profile.interests, profile.learned
    needs = profile.current_needs(today) if profile.needs else {}
    means, tastes = _population_priors(population)
    rng = reader_stream(edition.id, profile, seed)

    draws: list[float | None] = []
    chances: list[float] = []
    clicked = False
    for topic in walk.topics:
        if topic in opted:
            draws.append(None)
            chances.append(0.0)
            continue
        signal = learned.get(topic)
        chance = favourite_chance(tastes, tastes.prior(topic, interests.get(topic)), signal)
        clicked = clicked or (signal is not None and signal.clicks > 0)
        chances.append(chance)
        value = tastes.worth(chance)
        draws.append(value + NEED_BOOST if topic in needs else value)

    picks: list[Pick] = []
    per_topic: dict[str, int] = {}
    for section in walk.pinned:
        if len(picks) < k and not opted.intersection(section.topics):
            picks.append(Pick(section.id, math.inf, REASON_PINNED))
            for t in section.topics:
                per_topic[t] = per_topic.get(t, 0) + 1
    places = k - len(picks)
    if places <= 0:
        return Selection(tuple(picks))

    draft = _Draft(cap, per_topic, draws, bool(opted))
    share = places * settings.exploration
    explore = int(share) + (rng.random() < share - int(share)) if share else 0
    ranked = ranked_sections(walk, draws, chances=bool(means) and not clicked)
    _exploit(draft, ranked, places - explore)
    if explore:
        # Places the posterior already gave to topics new to the reader count as explored: a
        # reader with no history (all topics new) is not handed random topics on top.
        explore -= sum(1 for _, _, which in draft.chosen if which >= 0 and _is_new(walk.topics[which], profile, needs))
    if explore > 0:
        _explore(draft, walk, profile, needs, rng, explore, chances)
    _exploit(draft, ranked, places)  # places exploration could not fill

    for section, score, which in draft.chosen:
        picks.append(Pick(section.id, score, _reason(walk, which, profile, needs, means)))
    for section, score, which in draft.explored:
        again = not _is_new(walk.topics[which], profile, needs)
        picks.append(Pick(section.id, score, (REASON_AGAIN if again else REASON_EXPLORE).format(label=walk.labels[which])))
    return Selection(tuple(picks))


def _is_new(topic: str, profile: Profile, needs: Mapping[str, dt.date]) -> bool:
    """Whether the topic is new to the reader: never shown, not declared, not needed."""
    if profile.interests.get(topic) or topic in needs:
        return False
    signal = profile.learned.get(topic)
    return signal is None or signal.exposures <= 0


def _exploit(draft: _Draft, ranked: Iterator[tuple[int, Section, tuple[int, ...], float, int]], until: int) -> None:
    """Take the best-ranked sections until the copy has `until` places (or candidates run out)."""
    chosen = draft.chosen
    while draft.size() < until:
        found = next(ranked, None)
        if found is None:
            return
        position, section, indexes, score, which = found
        draft.take(chosen, position, section, indexes, score, which)


def _explore(draft: _Draft, walk: EditionWalk, profile: Profile, needs: Mapping[str, dt.date], rng: random.Random,
             places: int, chances: list[float]) -> None:
    """Give up to `places` places to topics the copy lacks, one section each, drawn by their chance of being a favourite.

    Any topic not declared, not needed and not already in this copy may be drawn, shown before
    or not: after a change of taste the new favourite has usually been shown once already,
    and a rule that only tried topics never shown stopped trying it. A draw weighted by the
    chance (Efraimidis-Spirakis keys) rather than the best chance first, so that the same
    few do not take every place: a topic shown often and never clicked has a small chance
    and is rarely drawn; one shown once, long ago, keeps most of its prior chance.
    """
    interests, per_topic, draws = profile.interests, draft.per_topic, draft.draws
    priority: dict[int, float] = {}
    for i, topic in enumerate(walk.topics):
        if draws[i] is None or interests.get(topic) or topic in needs or per_topic.get(topic):
            continue
        priority[i] = rng.random() ** (1.0 / max(chances[i], 1e-9))
    goal = len(draft.explored) + places
    for i in sorted(priority, key=priority.__getitem__, reverse=True):
        if len(draft.explored) >= goal:
            return
        for position, section, indexes in walk.by_topic[i]:
            if draft.take(draft.explored, position, section, indexes, draws[i], i):  # type: ignore[arg-type]
                break


def _reason(walk: EditionWalk, which: int, profile: Profile, needs: Mapping[str, dt.date],
            means: Mapping[str, float]) -> str:
    """Why a ranked section is in the reader's copy, from the topic that gave its score."""
    if which < 0:
        return REASON_FILL
    topic, label = walk.topics[which], walk.labels[which]
    if topic in needs:
        return REASON_NEED.format(label=label, until=needs[topic].isoformat())
    weight = profile.interests.get(topic)
    signal = profile.learned.get(topic)
    mean = means.get(topic)
    prior = means.get(topic, means.get(_POOLED))
    if signal is not None and signal.clicks >= 1.0 and (
            expected_ctr(weight, signal, undeclared_mean=prior) > expected_ctr(weight, None, undeclared_mean=prior)):
        return REASON_LEARNED.format(label=label)
    if weight:
        return REASON_FOLLOW.format(label=label)
    # Only claim popularity when the audience actually showed it: clicked above the topics' average.
    if mean is not None and mean >= means.get(_AVERAGE, math.inf):
        return REASON_POPULAR
    if signal is None or signal.exposures <= 0:
        return REASON_EXPLORE.format(label=label) if profile.learned else REASON_EDITORIAL
    return REASON_AGAIN.format(label=label)
