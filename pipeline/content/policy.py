"""Choosing sections over each reader's topic posteriors: a Bayesian bandit, follower-or-not once clicked.

Every topic of the edition has a Beta posterior for the reader
(`pipeline.engagement.learning.topic_posterior`): its prior mean is what the whole audience
clicks on the topic (the population prior; BASE_CTR before the audience has clicked anything),
raised by a declared interest (towards DECLARED_CTR, or by the audience's declared lift once
the population carries its record: `pipeline.engagement.learning.declared_lift`); decayed
clicks and exposures move it. An
unexpired need adds NEED_BOOST, so needs still come first. A section is worth the value of its
best topic (a little more for a section on several topics while the reader's favourite is
uncertain), sections of equal value come in the editor's order, as in the first rule:
`pipeline.content.ranking` orders them.

A topic the reader clicked is scored differently (`follower_rate`): the reader either follows
it, and clicks FOLLOWER_CTR of its sections they see, or not, and clicks PASSER_CTR; before
any signal the two are weighed so that the reader is worth what the Beta prior says (the
audience's rate, raised by a declaration), and each click and each exposure without one
weighs them by its likelihood. On the Beta posterior, worth PRIOR_STRENGTH exposures at the
audience's rate (say 0.05), one click lifted a topic to 0.095, level with the audience's
favourites, so the one topic a silent reader had shown they read competed with the popular
ones; as follower-or-not, one click makes it 0.14 (0.087 at an audience rate of 0.03, 0.17 at
0.08), and it falls back to the audience's rate after about a dozen exposures without another
click (the Beta posterior: 0.067 after ten). A declared topic the reader stopped clicking
gives way the same way: the declaration only sets where the weighing starts. Against the
reference learner over editions 5-8 (`benchmarks/learner_goals.py`, 1,000 readers, every
model; seeds 1 / 2): mean 0.899 / 0.919 -> 0.922 / 0.944, lowest 0.871 / 0.892 -> 0.896 /
0.907, and drifted readers on `changing` 0.864 / 0.859 -> 0.916 / 0.930: a reader whose taste
moved clicks the new favourite once and is served it. Scored this way for topics the reader
did not declare only: mean 0.913 / 0.939. Scoring shown-but-unclicked topics the same way too
(so that they make room faster) cost broad its lift (an edition's interval at -0.050 to
-0.031): without a click a topic keeps its Beta posterior's mean. Rates of 0.15-0.3 for a
follower and 0.01-0.04 for the others all measured within 0.01 of each other in the mean; 0.2
and 0.02 were the best of them.

Before, a clicked topic was drawn from its Beta posterior with both parameters multiplied by
16 (Thompson sampling with a sharpened posterior, as Chapelle and Li found works better in
practice): unsharpened, a topic clicked once fell below the audience's favourite about a third
of the time. Follower-or-not values need no draw, and did better. Every other topic is worth
its posterior mean: drawing for never-clicked topics too would be textbook Thompson sampling,
but their priors are wide enough that a reader with no history got a random newsletter
instead of the editor's. Drawing for topics shown and not clicked (so that they are retried)
measured worse too: against the reference learner (1,000 readers, seed 1) focused fell from
0.921 to 0.794 with plain draws and 0.849 with draws sharpened 4 times, niche-topics from
0.870 to 0.703 and 0.804; letting exploration retry topics shown less than 1.5 times and
never clicked gave 0.812 instead of 0.827 on the `changing` model. So:

- with no signal at all (no population, nothing declared or clicked) the copy is the editor's;
- the population prior ranks the topics of readers who told us nothing, exposures without
  clicks lower a topic, declared interests lift it and a click makes it the reader's own;
- trying topics the reader has never been shown is the job of the `exploration` share of the
  non-pinned places (on average: a reader with 4 places and 0.1 gets one such place 40% of the
  time), chosen by a uniform draw per topic, so that a confident posterior on a few topics never
  stops the newsletter from finding new ones. Places the posterior already gives to topics new
  to the reader count towards that share: a newcomer's whole copy is new to them.

Exploration's draws come from a generator seeded with a stable hash
of (edition id, reader's public id, seed): the same reader gets the same sections in every
process, so a resumed send plans what the first attempt planned. Python's `hash()` is salted
per process and is never used for this.

`choose_sections` is the one entry point; its settings name the policy: 'thompson' (the
default, named when its clicked topics were drawn; the name stays for the settings that use
it), 'editorial' (the same newsletter for everyone: the holdout) or 'rule' (the first scoring
rule, `select_sections`).
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
from pipeline.content.wording import need_reason
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
    DECLARATIONS,
    PRIOR_STRENGTH,
    declared_lift,
    expected_ctr,
    topic_posterior,
)
from pipeline.errors import ConfigurationError

__all__ = [
    "DEFAULT_EXPLORATION",
    "EDITORIAL",
    "FOLLOWER_CTR",
    "PASSER_CTR",
    "LEAST_SHOWN_SHARE",
    "POLICIES",
    "POPULATION_STRENGTH",
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
    "follower_rate",
    "population_means",
    "reader_stream",
]

THOMPSON, EDITORIAL, RULE = "thompson", "editorial", "rule"
POLICIES = (THOMPSON, EDITORIAL, RULE)
DEFAULT_EXPLORATION = 0.1
# What the audience's pooled rate is worth, in exposures, against its rate on one topic (`population_means`).
POPULATION_STRENGTH = 200.0
# The share of the audience's topics, fewest exposures first, whose pooled rate caps what a topic
# barely shown is worth (`population_means`).
LEAST_SHOWN_SHARE = 0.25
# A topic the reader clicked: a follower's click rate and anyone else's (`follower_rate`).
FOLLOWER_CTR = 0.2
PASSER_CTR = 0.02
_CLICK_ODDS = math.log(PASSER_CTR) - math.log(FOLLOWER_CTR)  # log-likelihood ratio (other : follower) per click
_MISS_ODDS = math.log1p(-PASSER_CTR) - math.log1p(-FOLLOWER_CTR)  # ... per exposure without a click

REASON_EDITORIAL = "this week's editor's selection"
REASON_POPULAR = "popular with readers like you"
# Templates: formatted only for the sections picked, never for the candidates left out.
REASON_NEED = "you said you need help with {label} until {until}"  # need_reason quotes the reader's words instead
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


def follower_rate(mean: float, signal: TopicSignal) -> float:
    """The expected click rate of a topic a reader clicked, as follower or not.

    A follower clicks FOLLOWER_CTR of the topic's sections they see, anyone else PASSER_CTR.
    `mean` (the prior's: the audience's rate for the topic, raised by a declaration) sets the
    prior share of followers, so that a reader with no signal is worth `mean`; the reader's
    clicks and exposures (decayed, maybe fractional) then weigh follower against not by their
    binomial likelihoods. The rate stays between PASSER_CTR and FOLLOWER_CTR: on a topic the
    audience clicks less than PASSER_CTR, a reader's click makes it worth PASSER_CTR or a little
    more; a prior at FOLLOWER_CTR or above (a declaration at weight 1 before the audience has a
    record of its declarations: DECLARED_CTR) holds the reader for a follower until some forty
    exposures without a click, where the Beta posterior was down to 0.1 by then. (Taking the
    others' rate as half the audience's there instead cost the audience that clicks least,
    generated-2 of `learner_goals.py`, 0.897 -> 0.870 of the reference learner.)
    """
    share = min(0.999, max(0.001, (mean - PASSER_CTR) / (FOLLOWER_CTR - PASSER_CTR)))
    clicks = max(0.0, signal.clicks)
    misses = max(0.0, signal.exposures - clicks)
    log_odds = clicks * _CLICK_ODDS + misses * _MISS_ODDS + math.log((1.0 - share) / share)
    follower = 1.0 / (1.0 + math.exp(min(50.0, max(-50.0, log_odds))))
    return follower * FOLLOWER_CTR + (1.0 - follower) * PASSER_CTR


_AVERAGE = "\x00average"  # key of the mean of the topics' click rates in the means
_POOLED = "\x00pooled"  # key of what a topic the audience was never shown is worth (see population_means)


def population_means(population: Mapping[str, TopicSignal]) -> dict[str, float]:
    """The audience's click rate per topic, shrunk towards the lowest of BASE_CTR, its pooled and least-shown rates.

    The pooled rate is every click over every exposure (itself shrunk towards BASE_CTR); the
    least-shown topics' rate is the pooled rate of the LEAST_SHOWN_SHARE of topics with the
    fewest exposures (shrunk towards the former by PRIOR_STRENGTH exposures). A topic the
    audience has barely been shown is worth about that target. Shrunk towards BASE_CTR
    alone, in an audience that clicks less than BASE_CTR, such topics outranked every topic
    readers had been shown and clicked, and copies swapped the popular topics for untried ones
    (in a simulated audience clicking 8% of first-placed favourites, personalised readers fell
    to 0.67 of the editorial newsletter's clicks at edition 2). Above BASE_CTR the target stays
    BASE_CTR: a topic barely shown is one the editor did not favour, not an average one. Also
    holds, under private keys, that target and the mean over topics (above which a reason may
    say 'popular').

    The target is worth POPULATION_STRENGTH exposures: a topic the audience has seen a few
    hundred times keeps most of its own rate, and one seen a few dozen times (often by its
    devotees only) does not outrank what the audience reads. It was once worth the exposures of
    an average topic (a thousand and more after a few editions of a few thousand readers), which
    flattened the audience's rates: on the generated-2 model (1,000 readers, seed 2) rates of
    1.5% to 6.5% became 2.9% to 5.5%, a section on two topics nobody much reads, credited as two
    chances (`pipeline.content.ranking`), outranked the audience's third favourite, and readers
    with no signal of their own got it. Against the reference learner over editions 5-8
    (`benchmarks/learner_goals.py`, 1,000 readers) that went from 0.837 to 0.886 there.
    Worth PRIOR_STRENGTH (20) exposures instead, generated-2 reached 0.936, but niche-topics
    (seed 1) had an edition whose lift interval was entirely below 0 (-0.31 to -0.20): after an
    edition or two a niche topic shown to its devotees outranked the popular ones for
    newcomers. Counting only readers who did not declare the topic (with 20) kept niche-topics'
    lift but fell to 0.841 of the reference there.

    The least-shown topics' rate: the editor puts popular topics first and the policy shows
    readers what they click, so the topics the audience saw least are mostly those it likes
    least, and a topic barely shown is more like them than like the average exposure. In an
    audience that clicks little (below BASE_CTR) the pooled rate, dominated by the favourites'
    exposures, made every barely-shown topic look like an average one. Against the reference
    learner over editions 5-8 (1,000 readers) generated-2 went from 0.866 / 0.886 (seeds 1 / 2)
    to 0.894 / 0.945, with the quarter of the topics; 0.875 / 0.928 with the half (at 2,000
    readers: 0.934 / 0.929 to 0.941 / 0.940, mean over every model 0.915 to 0.916,
    `benchmarks/README.md`). Audiences whose least-shown topics are clicked at least as much
    as the pooled rate (or BASE_CTR) are unchanged. Found by accident: an entry for the
    audience (not a topic) counted as a topic with no clicks lowered the pooled rate, and
    generated-2 rose.
    """
    counts = {}
    total_clicks = total_exposures = 0.0
    for topic, signal in population.items():
        if topic == DECLARATIONS:
            continue  # the declarations' record, not a topic
        exposures = max(0.0, signal.exposures)
        clicks = min(max(0.0, signal.clicks), exposures)
        counts[topic] = (clicks, exposures)
        total_clicks += clicks
        total_exposures += exposures
    if not counts:
        return {}
    pooled = min(BASE_CTR, (total_clicks + BASE_CTR * PRIOR_STRENGTH) / (total_exposures + PRIOR_STRENGTH))
    # What the audience's least-shown topics earned, when that is less: the editor's order and the
    # policy show what readers like most, so a topic barely shown is more like those than an average one.
    least = sorted(counts.values(), key=lambda pair: pair[1])[:max(1, int(len(counts) * LEAST_SHOWN_SHARE))]
    pooled = min(pooled, (sum(clicks for clicks, _ in least) + pooled * PRIOR_STRENGTH)
                 / (sum(exposures for _, exposures in least) + PRIOR_STRENGTH))
    means = {topic: (clicks + pooled * POPULATION_STRENGTH) / (exposures + POPULATION_STRENGTH)
             for topic, (clicks, exposures) in counts.items()}
    means[_AVERAGE] = sum(means.values()) / len(means)
    means[_POOLED] = pooled
    return means


_NO_PRIORS: tuple[dict[str, float], dict[str, tuple[float, float]]] = ({}, {})
_LAST_POPULATION: tuple[object, tuple[dict[str, float], dict[str, tuple[float, float]]]] = (None, _NO_PRIORS)


def _population_priors(population: Mapping[str, TopicSignal] | None
                       ) -> tuple[dict[str, float], dict[str, tuple[float, float]]]:
    global _LAST_POPULATION
    if not population:
        return _NO_PRIORS
    last = _LAST_POPULATION
    if last[0] is population:
        return last[1]
    # One population serves a whole send: convert it once, not once per reader. Each topic's
    # Beta prior is worth PRIOR_STRENGTH exposures; the one under _POOLED is for topics never shown.
    means = population_means(population)
    priors = {key: topic_posterior(None, None, undeclared_mean=mean) for key, mean in means.items() if key != _AVERAGE}
    found = (means, priors)
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


_UNKNOWN = topic_posterior(None, None)  # undeclared, never shown, no audience figure


def _thompson(edition: Edition, profile: Profile, today: dt.date, seed: int, settings: PolicySettings,
              population: Mapping[str, TopicSignal] | None) -> Selection:
    walk = edition_walk(edition)
    k = edition.sections_per_reader if settings.k is None else settings.k
    cap = edition.max_per_topic if settings.max_per_topic is None else settings.max_per_topic
    opted, interests, learned = profile.opted_out, profile.interests, profile.learned
    needs = profile.current_needs(today) if profile.needs else {}
    means, priors = _population_priors(population)
    # What a declaration is worth in this audience, from how its readers clicked what they declared:
    # where declarations are often wrong or out of date, they count for less.
    lift = declared_lift(population.get(DECLARATIONS)) if population else None
    pooled = means.get(_POOLED)
    unshown = priors.get(_POOLED, _UNKNOWN)
    rng = reader_stream(edition.id, profile, seed)

    draws: list[float | None] = []
    for topic in walk.topics:
        if topic in opted:
            draws.append(None)
            continue
        signal, weight = learned.get(topic), interests.get(topic)
        # A clicked topic is valued follower-or-not from its prior (see the module docstring).
        clicked = signal is not None and signal.clicks > 0
        if not weight and (signal is None or clicked):
            alpha, beta = priors.get(topic, unshown)  # the audience's prior, converted once per send
        else:
            alpha, beta = topic_posterior(weight, None if clicked else signal,
                                          undeclared_mean=means.get(topic, pooled), declared_lift=lift)
        value = alpha / (alpha + beta)
        if clicked:
            value = follower_rate(value, signal)  # type: ignore[arg-type]
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
    ranked = ranked_sections(walk, draws, chances=bool(means))
    _exploit(draft, ranked, places - explore)
    if explore:
        # Places the posterior already gave to topics new to the reader count as explored: a
        # reader with no history (all topics new) is not handed random topics on top.
        explore -= sum(1 for _, _, which in draft.chosen if which >= 0 and _is_new(walk.topics[which], profile, needs))
    if explore > 0:
        _explore(draft, walk, profile, needs, rng, explore)
    _exploit(draft, ranked, places)  # places exploration could not fill

    for section, score, which in draft.chosen:
        picks.append(Pick(section.id, score, _reason(walk, which, profile, needs, means)))
    for section, score, which in draft.explored:
        picks.append(Pick(section.id, score, REASON_EXPLORE.format(label=walk.labels[which])))
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


def _reason(walk: EditionWalk, which: int, profile: Profile, needs: Mapping[str, dt.date],
            means: Mapping[str, float]) -> str:
    """Why a ranked section is in the reader's copy, from the topic that gave its score."""
    if which < 0:
        return REASON_FILL
    topic, label = walk.topics[which], walk.labels[which]
    if topic in needs:
        return need_reason(label, needs[topic], profile.need_words.get(topic))
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
