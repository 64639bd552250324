"""Choosing sections by Thompson sampling over each reader's topic posteriors.

For every topic of the edition a reader gets one draw from their Beta posterior
(`pipeline.engagement.learning.topic_posterior`: the declared weight sets the prior, decayed
clicks and exposures move it); an unexpired need adds NEED_BOOST, so needs still come first. A
section is worth the best draw among its topics, as in the first rule. Sampling rather than
ranking by the mean is what makes the newsletter learn: a topic the reader has rarely been shown
has a wide posterior and sometimes wins, so it gets tried, while a topic they keep ignoring fades.

On top of that, an `exploration` share of the non-pinned places (on average: a reader with 4
places and 0.1 gets one such place 40% of the time) is reserved for topics the reader has never
been shown, never declared and does not need, chosen by a uniform draw per topic, so that a
confident posterior on a few topics never stops the newsletter from finding new ones. A reader
with no declared interest and no history starts from what the whole audience clicks (the
population prior) instead of from nothing.

Draws come from a generator seeded with a stable hash of (edition id, reader's public id, seed):
the same reader gets the same sections in every process, so a resumed send plans what the first
attempt planned. Python's `hash()` is salted per process and is never used for this.

`choose_sections` is the one entry point; its settings name the policy: 'thompson' (the
default), 'editorial' (the same newsletter for everyone: the holdout) or 'rule' (the first
scoring rule, `select_sections`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import random
import weakref
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from pipeline.audience.profile import Profile, TopicSignal
from pipeline.content.edition import Edition, Section
from pipeline.content.selection import (
    NEED_BOOST,
    REASON_FILL,
    REASON_PINNED,
    Pick,
    Selection,
    select_sections,
)
from pipeline.engagement.learning import (
    BASE_CTR,
    PRIOR_STRENGTH,
    expected_ctr,
    topic_posterior,
)
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
    "population_beta",
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
REASON_AGAIN = "another look at {label}"  # sampled high, though neither declared, clicked nor new


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


@dataclass(frozen=True)
class _Walk:
    """An edition as the sampler walks it, built once per edition: topics, and sections by topic."""

    topics: tuple[str, ...]
    labels: tuple[str, ...]
    pinned: tuple[Section, ...]
    # Per topic index, the non-pinned sections on it in editorial order: (position, section, topic indexes).
    by_topic: tuple[tuple[tuple[int, Section, tuple[int, ...]], ...], ...]
    fill: tuple[tuple[int, Section], ...]  # non-pinned sections with no topic, in editorial order


_WALKS: dict[int, tuple[weakref.ref, _Walk]] = {}  # id(edition) -> (edition, walk); editions are unhashable


def _walk(edition: Edition) -> _Walk:
    found = _WALKS.get(id(edition))
    if found is not None and found[0]() is edition:
        return found[1]
    topics: list[str] = []
    for section in edition.sections:
        topics.extend(t for t in section.topics if t not in topics)
    index = {t: i for i, t in enumerate(topics)}
    by_topic: list[list[tuple[int, Section, tuple[int, ...]]]] = [[] for _ in topics]
    for position, section in enumerate(edition.sections):
        if not section.pinned:
            for topic in section.topics:
                by_topic[index[topic]].append((position, section, tuple(index[t] for t in section.topics)))
    walk = _Walk(topics=tuple(topics), labels=tuple(edition.taxonomy.label(t) for t in topics),
                 pinned=tuple(s for s in edition.sections if s.pinned),
                 by_topic=tuple(tuple(sections) for sections in by_topic),
                 fill=tuple((p, s) for p, s in enumerate(edition.sections) if not s.pinned and not s.topics))
    if len(_WALKS) > 64:
        _WALKS.clear()  # a long-lived worker sees a few editions a week: never worth an eviction policy
    _WALKS[id(edition)] = (weakref.ref(edition), walk)
    return walk


def reader_stream(edition_id: str, profile: Profile, seed: int) -> random.Random:
    """The reader's own generator for this edition and seed: the same in every process."""
    key = profile.public_id or str(profile.reader_id)
    digest = hashlib.blake2b(f"{edition_id}\x1f{key}\x1f{seed}".encode(), digest_size=8).digest()
    return random.Random(int.from_bytes(digest, "big"))


def population_beta(population: Mapping[str, TopicSignal]) -> dict[str, tuple[float, float]]:
    """Beta priors from the audience's click rate per topic, worth PRIOR_STRENGTH exposures each.

    The rate is shrunk towards BASE_CTR by the same strength, so a topic few readers were shown
    does not hand a newcomer a wild guess.
    """
    priors = {}
    for topic, signal in population.items():
        exposures = max(0.0, signal.exposures)
        clicks = min(max(0.0, signal.clicks), exposures)
        mean = (clicks + BASE_CTR * PRIOR_STRENGTH) / (exposures + PRIOR_STRENGTH)
        priors[topic] = (mean * PRIOR_STRENGTH, (1.0 - mean) * PRIOR_STRENGTH)
    return priors


_LAST_POPULATION: tuple[object, dict[str, tuple[float, float]]] = (None, {})


def _population_priors(population: Mapping[str, TopicSignal] | None) -> dict[str, tuple[float, float]]:
    global _LAST_POPULATION
    if not population:
        return {}
    last = _LAST_POPULATION
    if last[0] is population:
        return last[1]
    # One population serves a whole send: convert it once, not once per cold-start reader.
    priors = population_beta(population)
    _LAST_POPULATION = (population, priors)
    return priors


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
    (`pipeline.audience.directory.population_prior`), the prior of readers with no history.
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


_UNKNOWN = topic_posterior(None, None)  # undeclared, never shown: most topics of most readers


def _thompson(edition: Edition, profile: Profile, today: dt.date, seed: int, settings: PolicySettings,
              population: Mapping[str, TopicSignal] | None) -> Selection:
    walk = _walk(edition)
    k = edition.sections_per_reader if settings.k is None else settings.k
    cap = edition.max_per_topic if settings.max_per_topic is None else settings.max_per_topic
    opted, interests, learned = profile.opted_out, profile.interests, profile.learned
    needs = profile.current_needs(today) if profile.needs else {}
    cold = not learned and not any(w > 0 for w in interests.values())
    priors = _population_priors(population) if cold else {}
    rng = reader_stream(edition.id, profile, seed)
    betavariate = rng.betavariate

    # One draw per topic, not per section: sections sharing a topic share its draw.
    draws: list[float | None] = []
    for topic in walk.topics:
        if topic in opted:
            draws.append(None)
            continue
        signal, weight = learned.get(topic), interests.get(topic)
        if topic in priors:
            alpha, beta = priors[topic]
        elif signal is None and not weight:
            alpha, beta = _UNKNOWN
        else:
            alpha, beta = topic_posterior(weight, signal)
        value = betavariate(alpha, beta)
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
    ranked = _ranked(walk, draws)
    _exploit(draft, ranked, places - explore)
    if explore:
        _explore(draft, walk, profile, needs, rng, explore)
    _exploit(draft, ranked, places)  # places exploration could not fill

    for section, score, which in draft.chosen:
        picks.append(Pick(section.id, score, _reason(walk, which, profile, needs, cold, priors)))
    for section, score, which in draft.explored:
        picks.append(Pick(section.id, score, REASON_EXPLORE.format(label=walk.labels[which])))
    return Selection(tuple(picks))


def _ranked(walk: _Walk, draws: list[float | None]) -> Iterator[tuple[int, Section, tuple[int, ...], float, int]]:
    """Candidates from the best-drawn topic down, each topic's sections in editorial order, then fill.

    A section is worth its best topic's draw, and it is met first under that topic, so this is
    the order of sorting every section by (score, position) without scoring the sections that
    are never reached (most of a large edition). Meeting a section again later changes nothing:
    it was taken, or refused, for good (per-topic counts only grow).
    """
    order = sorted((i for i, d in enumerate(draws) if d is not None), key=draws.__getitem__, reverse=True)
    for i in order:
        score = draws[i]
        for position, section, indexes in walk.by_topic[i]:
            yield position, section, indexes, score, i  # type: ignore[misc]
    for position, section in walk.fill:
        yield position, section, (), 0.0, -1


def _exploit(draft: _Draft, ranked: Iterator[tuple[int, Section, tuple[int, ...], float, int]], until: int) -> None:
    """Take the best-ranked sections until the copy has `until` places (or candidates run out)."""
    chosen = draft.chosen
    while draft.size() < until:
        found = next(ranked, None)
        if found is None:
            return
        position, section, indexes, score, which = found
        draft.take(chosen, position, section, indexes, score, which)


def _explore(draft: _Draft, walk: _Walk, profile: Profile, needs: Mapping[str, dt.date], rng: random.Random,
             places: int) -> None:
    """Give up to `places` places to topics new to the reader, one section each, by a uniform draw per topic.

    New means never shown, not declared, not needed and not already in this copy: the place
    is there to learn something, and the posterior already serves what the reader asked for.
    Uniform rather than by posterior, because for a topic never shown the posterior is the
    prior alone, which would keep offering the same few.
    """
    learned, interests, per_topic, draws = profile.learned, profile.interests, draft.per_topic, draft.draws
    priority: dict[int, float] = {}
    for i, topic in enumerate(walk.topics):
        if draws[i] is None or interests.get(topic) or topic in needs or per_topic.get(topic):
            continue
        signal = learned.get(topic)
        if signal is None or signal.exposures <= 0:
            priority[i] = rng.random()
    goal = len(draft.explored) + places
    for i in sorted(priority, key=priority.__getitem__, reverse=True):
        if len(draft.explored) >= goal:
            return
        for position, section, indexes in walk.by_topic[i]:
            if draft.take(draft.explored, position, section, indexes, draws[i], i):  # type: ignore[arg-type]
                break


def _reason(walk: _Walk, which: int, profile: Profile, needs: Mapping[str, dt.date], cold: bool,
            priors: Mapping[str, tuple[float, float]]) -> str:
    """Why a sampled section is in the reader's copy, from the topic that gave its score."""
    if which < 0:
        return REASON_FILL
    topic, label = walk.topics[which], walk.labels[which]
    if topic in needs:
        return REASON_NEED.format(label=label, until=needs[topic].isoformat())
    if cold:
        # Only claim popularity when the audience actually showed it.
        return REASON_POPULAR if topic in priors else REASON_EXPLORE.format(label=label)
    weight = profile.interests.get(topic)
    signal = profile.learned.get(topic)
    if signal is not None and signal.clicks >= 1.0 and expected_ctr(weight, signal) > expected_ctr(weight, None):
        return REASON_LEARNED.format(label=label)
    if weight:
        return REASON_FOLLOW.format(label=label)
    if signal is None or signal.exposures <= 0:
        return REASON_EXPLORE.format(label=label)
    return REASON_AGAIN.format(label=label)
