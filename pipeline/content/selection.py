"""Choosing the sections that serve one reader (first version: a deterministic scoring rule).

Score of a section = the best of its topics, where a topic is worth the reader's declared
weight (0-1) and an unexpired need adds NEED_BOOST, so that what the reader needs soon
outranks what they merely follow. Pinned sections come first; ties keep the editor's order.
Sections that match nothing fill the remaining places in editorial order, so a reader with
few interests still gets a full newsletter.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass

from pipeline.audience.profile import Profile
from pipeline.content.edition import Edition, Section
from pipeline.content.wording import need_reason

__all__ = ["Pick", "Selection", "select_sections", "variant_id_of", "NEED_BOOST"]

NEED_BOOST = 1.5  # above any declared weight (at most 1): what a reader needs soon comes first
REASON_PINNED = "editor's pick for every reader"
REASON_FILL = "one of this week's top stories"


@dataclass(frozen=True)
class Pick:
    """A chosen section, its score and the reason the reader is shown."""

    section_id: str
    score: float
    reason: str


@dataclass(frozen=True)
class Selection:
    """The sections one reader gets, in order."""

    picks: tuple[Pick, ...]

    @property
    def section_ids(self) -> tuple[str, ...]:
        """Section ids in reading order."""
        return tuple(p.section_id for p in self.picks)

    @property
    def variant_id(self) -> str:
        """Id shared by every reader who got the same sections in the same order."""
        return variant_id_of(self.section_ids)

    @property
    def reasons(self) -> dict[str, str]:
        """Section id to reason."""
        return {p.section_id: p.reason for p in self.picks}


def variant_id_of(section_ids: tuple[str, ...] | list[str]) -> str:
    """A short stable id for an ordered list of sections."""
    return hashlib.blake2b("\x1f".join(section_ids).encode(), digest_size=8).hexdigest()


def _score(section: Section, profile: Profile, needs: dict[str, dt.date], edition: Edition) -> tuple[float, str]:
    best, reason = 0.0, ""
    for topic in section.topics:
        label = edition.taxonomy.label(topic)
        weight = profile.interests.get(topic, 0.0)
        if topic in needs:
            value = NEED_BOOST + weight
            why = need_reason(label, needs[topic], profile.need_words.get(topic))
        elif weight > 0:
            value, why = weight, f"you follow {label}"
        else:
            continue
        if value > best:
            best, reason = value, why
    return best, reason


def select_sections(edition: Edition, profile: Profile, *, today: dt.date, k: int | None = None,
                    max_per_topic: int | None = None) -> Selection:
    """Choose up to k sections for `profile`, each with the reason it serves them.

    Deterministic for (edition, profile, today): a resumed send picks the same sections.
    """
    k = edition.sections_per_reader if k is None else k
    cap = edition.max_per_topic if max_per_topic is None else max_per_topic
    needs = profile.current_needs(today)
    per_topic: dict[str, int] = {}
    picks: list[Pick] = []

    def fits(section: Section) -> bool:
        if profile.opted_out.intersection(section.topics):
            return False
        return all(per_topic.get(t, 0) < cap for t in section.topics)

    def take(section: Section, score: float, reason: str) -> None:
        picks.append(Pick(section.id, score, reason))
        for t in section.topics:
            per_topic[t] = per_topic.get(t, 0) + 1

    for section in edition.sections:
        if section.pinned and len(picks) < k and not profile.opted_out.intersection(section.topics):
            take(section, float("inf"), REASON_PINNED)

    scored = []
    for position, section in enumerate(edition.sections):
        if section.pinned:
            continue
        score, reason = _score(section, profile, needs, edition)
        scored.append((-score, position, section, reason))
    scored.sort(key=lambda item: (item[0], item[1]))

    for neg_score, _, section, reason in scored:
        if len(picks) >= k:
            break
        if neg_score < 0 and fits(section):
            take(section, -neg_score, reason)
    for neg_score, _, section, _ in sorted(scored, key=lambda item: item[1]):
        if len(picks) >= k:
            break
        if neg_score == 0 and fits(section):
            take(section, 0.0, REASON_FILL)
    return Selection(tuple(picks))
