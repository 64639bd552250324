"""Our own model of engagement, whatever the provider: an `EngagementEvent` with an `EventType`.

Providers translate to this at the edge (see `sendgrid_events.py`); the rest of readerfirst
(learning, suppressions, reports) reads only this.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from enum import StrEnum

__all__ = ["EventType", "NormalisedEvent", "ENGAGEMENT", "SUPPRESSING"]


class EventType(StrEnum):
    """What happened to a message, in readerfirst's terms."""

    PROCESSED = "processed"
    DROPPED = "dropped"
    DELIVERED = "delivered"
    DEFERRED = "deferred"
    HARD_BOUNCE = "hard_bounce"  # SendGrid bounce, type "bounce"
    SOFT_BOUNCE = "soft_bounce"  # SendGrid bounce, type "blocked"
    OPEN = "open"  # a person opened it
    MACHINE_OPEN = "machine_open"  # Apple Mail Privacy Protection prefetch: never engagement
    CLICK = "click"
    SPAM_REPORT = "spam_report"
    UNSUBSCRIBE = "unsubscribe"
    GROUP_UNSUBSCRIBE = "group_unsubscribe"
    GROUP_RESUBSCRIBE = "group_resubscribe"
    REPLY = "reply"  # the reader wrote back to their reply address: the strongest signal there is


# Events that show a person engaged with the newsletter.
ENGAGEMENT = frozenset({EventType.OPEN, EventType.CLICK, EventType.REPLY})
# Events that stop all mail to the reader at once.
SUPPRESSING = frozenset({EventType.HARD_BOUNCE, EventType.SPAM_REPORT, EventType.UNSUBSCRIBE})


@dataclass(frozen=True)
class NormalisedEvent:
    """One provider event in our terms, attributed as far as the event allows; raw kept."""

    provider_event_id: str
    event_type: EventType
    email: str
    occurred_at: dt.datetime  # UTC, naive
    reason: str | None = None
    reader_id: int | None = None
    edition_id: str | None = None
    section_id: str | None = None
    variant_id: str | None = None
    holdout: bool | None = None
    url: str | None = None
    asm_group_id: int | None = None
    raw: dict = field(default_factory=dict)
