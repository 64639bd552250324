"""The engagement report as plain data: what `build_report` computes and every renderer reads.

Counts are of unique readers (a reader who clicked three times is one clicker); rates are
fractions (0.125, not 12.5) and None where their denominator is 0. `as_dict` is the JSON
form, with the same names, so the JSON, Markdown and HTML reports all say the same numbers.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "DEFAULT_BOUNCE_THRESHOLD",
    "SPAM_THRESHOLD",
    "ArmMetrics",
    "EditionMetrics",
    "InterestMetrics",
    "LiftMetrics",
    "NeedsServed",
    "ResponseArm",
    "ResponseMetrics",
    "Report",
    "SectionMetrics",
    "TopicMetrics",
    "LEARNED_CTR_BUCKETS",
]

DEFAULT_BOUNCE_THRESHOLD = 0.02  # the usual ceiling of ESPs before they review a sender
SPAM_THRESHOLD = 0.001  # Gmail's line: stay below 0.1% complaints, never reach 0.3%
# Upper bounds of the learned-CTR buckets (the last one includes 1.0).
LEARNED_CTR_BUCKETS = (0.05, 0.10, 0.20, 0.50, 1.0)


@dataclass(frozen=True)
class EditionMetrics:
    """Delivery and engagement of one edition, counted by unique reader."""

    edition_id: str
    first_sent_at: dt.datetime
    sent: int  # send-ledger rows in state 'sent'
    failed: int  # send-ledger rows in state 'failed': readers whose address was refused, never sent
    delivered: int
    dropped: int
    bounced: int  # readers with any bounce, hard or soft
    hard_bounces: int
    soft_bounces: int
    human_openers: int  # an open, or a click (a click proves a person opened it); never a machine open
    machine_openers: int  # readers with an Apple MPP prefetch, shown apart
    clickers: int
    unsubscribes: int
    group_unsubscribes: int  # topic (ASM group) opt-outs, not whole-list unsubscribes
    spam_reports: int
    unattributed_events: int  # events of this edition with no reader: counted nowhere else
    ctr: float | None  # clickers / delivered
    ctor: float | None  # clickers / human_openers
    unsubscribe_rate: float | None  # unsubscribes / delivered
    spam_rate: float | None  # spam_reports / delivered
    bounce_rate: float | None  # bounced / sent
    spam_flag: bool  # spam_rate above SPAM_THRESHOLD
    bounce_flag: bool  # bounce_rate above the report's bounce threshold


@dataclass(frozen=True)
class SectionMetrics:
    """One section of one edition: readers it was picked for, and how many of them clicked it."""

    edition_id: str
    section_id: str
    title: str
    position: int
    topics: list[str]
    exposed: int  # sent readers whose ledger picks include the section
    clickers: int  # unique readers who clicked it
    ctr: float | None  # clickers / exposed


@dataclass(frozen=True)
class TopicMetrics:
    """One topic in one edition, over the sections that carry it."""

    edition_id: str
    topic: str
    exposed: int  # sent readers picked at least one section of the topic
    clickers: int  # unique readers who clicked at least one section of the topic
    ctr: float | None  # clickers / exposed
    click_share: float | None  # clickers / the sum of clickers over the edition's topics


@dataclass(frozen=True)
class ArmMetrics:
    """One arm of the personalisation test (the send ledger's holdout flag)."""

    arm: str  # "personalised" or "holdout"
    sent: int
    delivered: int
    clickers: int
    ctr: float | None


@dataclass(frozen=True)
class LiftMetrics:
    """Personalised against holdout for one edition (or all of them pooled: edition_id "all")."""

    edition_id: str
    personalised: ArmMetrics
    holdout: ArmMetrics
    lift: float | None  # CTR_p / CTR_h - 1
    lift_low: float | None  # 95% interval
    lift_high: float | None
    note: str | None  # why lift or its interval is null
    mde: float | None = None  # smallest relative lift detectable at these arms' sizes (80% power, two-sided 5%)
    verdict: str | None = None  # the plain sentence when the holdout cannot conclude


@dataclass(frozen=True)
class ResponseArm:
    """One arm's answers to the ask and replies in one edition (or all pooled)."""

    arm: str  # "personalised" or "holdout"
    sent: int
    asked: int  # sent readers whose copy carried the ask
    answered: int  # readers who answered the ask of this edition
    replied: int  # readers whose reply was attributed to this edition
    responded: int  # readers who answered or replied (each once)
    response_rate: float | None  # responded / sent


@dataclass(frozen=True)
class ResponseMetrics:
    """Readers who answered the ask or replied, personalised vs holdout, with the lift, its interval and the MDE."""

    edition_id: str
    personalised: ResponseArm
    holdout: ResponseArm
    lift: float | None
    lift_low: float | None
    lift_high: float | None
    note: str | None
    mde: float | None
    verdict: str | None


@dataclass(frozen=True)
class NeedsServed:
    """Readers with a need running when the edition was sent, and whether their copy served it."""

    edition_id: str
    readers_with_need: int  # sent readers with a need running on the send day
    served: int  # of them, readers whose copy had a section on one of those needs' topics
    share_served: float | None  # served / readers_with_need
    clicked: int  # served readers who clicked a section on their need
    ctr_on_need: float | None  # clicked / served


@dataclass(frozen=True)
class InterestMetrics:
    """Where readers' learned interest in one topic stands now (reader_interests)."""

    topic: str
    readers: int  # readers with a row for the topic
    declared: int  # readers who declared a weight above 0
    opted_out: int
    exposed: int  # readers with learned exposures above 0
    mean_learned_ctr: float | None  # mean over exposed readers of min(1, clicks / exposures)
    pooled_learned_ctr: float | None  # all learned clicks / all learned exposures
    buckets: list[int]  # exposed readers per LEARNED_CTR_BUCKETS range of their learned CTR


@dataclass(frozen=True)
class Report:
    """Everything the engagement report says, for the editions it covers."""

    generated_at: dt.datetime
    edition_filter: str | None
    since: dt.date | None
    bounce_threshold: float
    editions: list[EditionMetrics]  # oldest first, by first send
    sections: list[SectionMetrics]
    topics: list[TopicMetrics]
    lift: list[LiftMetrics]  # one per edition, then "all"
    interests: list[InterestMetrics]
    notes: list[str] = field(default_factory=list)
    spam_threshold: float = SPAM_THRESHOLD
    responses: list[ResponseMetrics] = field(default_factory=list)  # one per edition, then "all"
    needs_served: list[NeedsServed] = field(default_factory=list)  # one per edition

    def scope(self) -> str:
        """What the report covers, in words: 'every edition sent', 'edition X' or 'editions first sent on or after D'."""
        if self.edition_filter:
            return f"edition {self.edition_filter}"
        if self.since:
            return f"editions first sent on or after {self.since.isoformat()}"
        return "every edition sent"

    def trends(self) -> dict[str, list[Any]]:
        """Per-edition series, oldest first: CTR, CTOR and unsubscribe rate."""
        return {"editions": [e.edition_id for e in self.editions],
                "ctr": [e.ctr for e in self.editions],
                "ctor": [e.ctor for e in self.editions],
                "unsubscribe_rate": [e.unsubscribe_rate for e in self.editions]}

    def sections_of(self, edition_id: str) -> list[SectionMetrics]:
        """The sections of one edition, in their order in the edition."""
        return [s for s in self.sections if s.edition_id == edition_id]

    def topics_of(self, edition_id: str) -> list[TopicMetrics]:
        """The topics of one edition."""
        return [t for t in self.topics if t.edition_id == edition_id]

    def as_dict(self) -> dict[str, Any]:
        """The report as JSON-ready data (dates as ISO text)."""
        data = _plain(dataclasses.asdict(self))
        data["trends"] = self.trends()
        data["learned_ctr_buckets"] = list(LEARNED_CTR_BUCKETS)
        return data


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if isinstance(value, dt.date):  # datetime included
        return value.isoformat()
    return value
