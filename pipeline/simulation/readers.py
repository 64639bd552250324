"""Simulated readers: hidden preferences per reader, and how a reader responds to the newsletter they got.

Hidden preferences are a Dirichlet draw over the model's topics (alpha_t = concentration x
number of topics x popularity share of t), made from a random stream keyed on (seed, e-mail
address) alone. So the same reader has the same tastes wherever they are simulated: in the
evaluation loop and inside the SendGrid emulator, in any order, in any process.

Response model, for a newsletter of sections in reading order (position 0 first):
- affinity of a section = max over its topics of p_t / max(p): 1 for the reader's favourite
  topic, near 0 for topics they ignore, 0 for a section without topics;
- the reader reads the newsletter with probability `open_rate`; Apple Mail Privacy Protection
  readers (`machine_open_share` of them) also prefetch every delivered message (a machine open);
- once read, each section is clicked independently with probability
  click_rate x affinity x position_decay ** position: a machine open alone never clicks;
- once read, served = the best affinity in the newsletter; the reader reports spam with
  probability complaint.base + (complaint.poorly_served - complaint.base) x (1 - served), and
  otherwise unsubscribes with the same formula over `unsubscribe`;
- from `drift.at_edition` on, `drift.share` of the readers have a second, independent draw;
- a reader with a need (`needs.share` of them, one topic drawn by popularity) has an affinity of
  at least `needs.strength` for that topic from edition 1 to `needs.lasts` (clicks capped at 1);
- `declared.wrong_share` of the readers who declare name topics that are not their favourites.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from pipeline.simulation.models import Propensity, ReaderModel

__all__ = [
    "Candidate",
    "Expectation",
    "Response",
    "ShownSection",
    "SimulatedAudience",
    "SimulatedReader",
    "fill_newsletter",
    "reader_stream",
]

_CACHE_LIMIT = 200_000  # readers kept in memory per audience


def reader_stream(seed: int, email: str, purpose: str) -> random.Random:
    """A random stream that depends only on (seed, address, purpose): the same everywhere."""
    digest = hashlib.blake2b(f"{seed}\x1f{email.strip().lower()}\x1f{purpose}".encode(), digest_size=8).digest()
    return random.Random(int.from_bytes(digest, "big"))


@dataclass(frozen=True)
class ShownSection:
    """A section as the reader saw it: its id, topics and place in the newsletter (0 = first)."""

    section_id: str
    topics: tuple[str, ...]
    position: int


@dataclass(frozen=True)
class Candidate:
    """A candidate section of an edition, as the oracle chooses among them."""

    section_id: str
    topics: tuple[str, ...]
    pinned: bool = False


@dataclass(frozen=True)
class Response:
    """What one reader did with one newsletter."""

    opened: bool  # a person read it (for an Apple MPP reader the provider cannot see it)
    machine_open: bool  # Apple MPP prefetched it: never engagement
    clicks: tuple[str, ...]  # section ids clicked, in reading order
    unsubscribed: bool
    spam_report: bool


@dataclass(frozen=True)
class Expectation:
    """Expected outcomes of one newsletter for one reader (no randomness)."""

    clicks: float  # expected distinct sections clicked
    unsubscribe: float  # probability the reader unsubscribes (without reporting spam)
    complaint: float  # probability the reader reports spam


@dataclass(frozen=True)
class SimulatedReader:
    """One reader's hidden truth: preferences before and after drift, their mail client, their sign-up answers."""

    email: str
    preferences_before: dict[str, float]
    preferences_after: dict[str, float] | None  # None: this reader never drifts
    machine_opener: bool
    declared: dict[str, float]  # topic -> weight said at sign-up (empty: declared nothing)
    drift_edition: int | None = None
    need: str | None = None  # the topic the reader needs help with, from edition 1 ...
    need_last: int = 0  # ... to this edition (0: no need)
    need_strength: float = 0.0  # their affinity for it while it lasts is at least this

    def __post_init__(self) -> None:
        # Affinities are read for every section of every newsletter: compute them once per reader.
        for name, prefs in (("_before", self.preferences_before), ("_after", self.preferences_after)):
            top = max(prefs.values()) if prefs else 0.0
            object.__setattr__(self, name, {t: share / top for t, share in prefs.items()} if top > 0 else {})

    def preferences(self, edition: int) -> dict[str, float]:
        """Hidden preferences (shares summing to 1) at `edition` (1-based)."""
        if self.preferences_after is not None and self.drift_edition is not None and edition >= self.drift_edition:
            return self.preferences_after
        return self.preferences_before

    def affinities(self, edition: int) -> dict[str, float]:
        """Topic -> p_t / max(p) at `edition`: 1 for the favourite topic, raised on an active need."""
        found = self._after if self.drifted(edition) else self._before  # type: ignore[attr-defined]
        if self.need_active(edition):
            return {**found, self.need: max(found.get(self.need, 0.0), self.need_strength)}  # type: ignore[dict-item]
        return found

    def need_active(self, edition: int) -> bool:
        """Whether the reader's need lasts at `edition`."""
        return self.need is not None and edition <= self.need_last

    def drifted(self, edition: int) -> bool:
        """Whether this reader's interests have changed by `edition`."""
        return self.preferences_after is not None and self.drift_edition is not None and edition >= self.drift_edition


def _dirichlet(rng: random.Random, alphas: dict[str, float]) -> dict[str, float]:
    draws = {topic: rng.gammavariate(alpha, 1.0) for topic, alpha in alphas.items()}
    total = sum(draws.values())
    if total <= 0.0:  # every draw underflowed (tiny concentration): all weight on one topic
        chosen = rng.choice(sorted(alphas))
        return {topic: float(topic == chosen) for topic in alphas}
    return {topic: value / total for topic, value in draws.items()}


def _weighted_pick(rng: random.Random, weights: dict[str, float], leave_out: Iterable[str] = ()) -> str | None:
    """One topic drawn in proportion to `weights`, never one of `leave_out` (None when none is left)."""
    left = set(leave_out)
    topics = [t for t in weights if t not in left]
    return rng.choices(topics, [weights[t] for t in topics])[0] if topics else None


def _section_affinity(affinity: dict[str, float], topics: Iterable[str]) -> float:
    return max((affinity.get(topic, 0.0) for topic in topics), default=0.0)


def _chance(propensity: Propensity, served: float) -> float:
    return propensity.base + (propensity.poorly_served - propensity.base) * (1.0 - served)


class SimulatedAudience:
    """Every reader of a reader model for one seed, created on demand from their address."""

    def __init__(self, model: ReaderModel, seed: int):
        self.model = model
        self.seed = seed
        count = len(model.topics)
        self._alphas = {topic: model.concentration * count * share for topic, share in model.topics.items()}
        self._readers: dict[str, SimulatedReader] = {}

    def reader(self, email: str) -> SimulatedReader:
        """The hidden truth of the reader with this address (the same for the same seed, always)."""
        key = email.strip().lower()
        found = self._readers.get(key)
        if found is not None:
            return found
        rng = reader_stream(self.seed, key, "reader")
        # Every draw is made whatever the model says, so changing one field never reshuffles the others.
        before = _dirichlet(rng, self._alphas)
        after = _dirichlet(rng, self._alphas)
        machine = rng.random() < self.model.engagement.machine_open_share
        declares = rng.random() < self.model.declared.share
        drifts = rng.random() < (self.model.drift.share if self.model.drift else 0.0)
        # Drawn after the draws above, so models without these fields give every reader the same tastes as before.
        wrong = rng.random() < self.model.declared.wrong_share
        needs = rng.random() < (self.model.needs.share if self.model.needs else 0.0)
        need = _weighted_pick(rng, self.model.topics)
        declared: dict[str, float] = {}
        if declares and self.model.declared.topics:
            top = max(before.values())
            ranked = sorted(before, key=lambda t: (-before[t], t))[:self.model.declared.topics]
            # Readers round what they say: weights in steps of 0.2, never below 0.2.
            declared = {t: max(0.2, round(before[t] / top * 5) / 5) for t in ranked}
            if wrong:
                named: list[str] = []
                for _ in ranked:
                    pick = _weighted_pick(rng, self.model.topics, leave_out=[*ranked, *named])
                    if pick is not None:
                        named.append(pick)
                declared = dict(zip(named, declared.values()))
        found = SimulatedReader(email=key, preferences_before=before, preferences_after=after if drifts else None,
                                machine_opener=machine, declared=declared,
                                drift_edition=self.model.drift.at_edition if drifts and self.model.drift else None,
                                need=need if needs and self.model.needs else None,
                                need_last=self.model.needs.lasts if needs and self.model.needs else 0,
                                need_strength=self.model.needs.strength if needs and self.model.needs else 0.0)
        if len(self._readers) >= _CACHE_LIMIT:
            self._readers.clear()
        self._readers[key] = found
        return found

    def click_chances(self, email: str, edition: int, sections: Sequence[ShownSection]) -> list[float]:
        """Per section, the chance the reader clicks it once they read the newsletter."""
        affinity = self.reader(email).affinities(edition)
        engagement = self.model.engagement
        return [min(1.0, engagement.click_rate * _section_affinity(affinity, s.topics)
                    * engagement.position_decay ** s.position) for s in sections]

    def served(self, email: str, edition: int, sections: Sequence[ShownSection]) -> float:
        """How well the newsletter matches the reader: the best affinity among its sections (0-1)."""
        affinity = self.reader(email).affinities(edition)
        return min(1.0, max((_section_affinity(affinity, s.topics) for s in sections), default=0.0))

    def respond(self, email: str, edition: int, sections: Sequence[ShownSection]) -> Response:
        """What the reader does with this newsletter at `edition`: random, deterministic per (seed, address, edition)."""
        reader = self.reader(email)
        rng = reader_stream(self.seed, reader.email, f"edition:{edition}")
        opened = rng.random() < self.model.engagement.open_rate
        chances = self.click_chances(email, edition, sections)
        draws = [rng.random() for _ in sections]
        clicks = tuple(s.section_id for s, p, u in zip(sections, chances, draws) if opened and u < p)
        served = self.served(email, edition, sections)
        spam_draw, unsubscribe_draw = rng.random(), rng.random()
        spam = opened and spam_draw < _chance(self.model.complaint, served)
        unsubscribed = opened and not spam and unsubscribe_draw < _chance(self.model.unsubscribe, served)
        return Response(opened=opened, machine_open=reader.machine_opener, clicks=clicks,
                        unsubscribed=unsubscribed, spam_report=spam)

    def expect(self, email: str, edition: int, sections: Sequence[ShownSection]) -> Expectation:
        """Expected clicks, unsubscribe and complaint chances of this newsletter (the mean of `respond`)."""
        opened = self.model.engagement.open_rate
        served = self.served(email, edition, sections)
        complaint = opened * _chance(self.model.complaint, served)
        unsubscribe = opened * (1.0 - _chance(self.model.complaint, served)) * _chance(self.model.unsubscribe, served)
        return Expectation(clicks=opened * sum(self.click_chances(email, edition, sections)),
                           unsubscribe=unsubscribe, complaint=complaint)

    def oracle(self, email: str, edition: int, candidates: Sequence[Candidate], *, k: int,
               max_per_topic: int) -> list[ShownSection]:
        """The newsletter that knows the hidden preferences, under the edition's rules.

        Pinned sections first, then the best affinities first (ties in editorial order), at most
        `max_per_topic` per topic, `k` in all; places left are filled in editorial order, as
        the production selection does. Greedy, which is optimal when sections have one topic.
        """
        affinity = self.reader(email).affinities(edition)
        # sorted() is stable: sections of equal affinity stay in editorial order.
        order = sorted(range(len(candidates)), key=lambda i: -_section_affinity(affinity, candidates[i].topics))
        picks = fill_newsletter(candidates, order, k=k, max_per_topic=max_per_topic)
        return [ShownSection(candidates[i].section_id, candidates[i].topics, place) for place, i in enumerate(picks)]


def fill_newsletter(candidates: Sequence[Candidate], order: Sequence[int], *, k: int, max_per_topic: int) -> list[int]:
    """Indexes of a newsletter: pinned candidates first, then `order` (best first) at most
    `max_per_topic` per topic, then places left in editorial order; `k` in all."""
    chosen: list[int] = []
    per_topic: dict[str, int] = {}

    def take(i: int) -> None:
        chosen.append(i)
        for topic in candidates[i].topics:
            per_topic[topic] = per_topic.get(topic, 0) + 1

    for i, candidate in enumerate(candidates):
        if candidate.pinned and len(chosen) < k:
            take(i)
    for i in order:
        if len(chosen) >= k:
            break
        candidate = candidates[i]
        if not candidate.pinned and all(per_topic.get(t, 0) < max_per_topic for t in candidate.topics):
            take(i)
    for i, candidate in enumerate(candidates):
        if len(chosen) >= k:
            break
        if i not in chosen and not candidate.pinned:
            take(i)
    return chosen
