"""A reader's profile as selection sees it: declared interests, current needs, learned signals."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

__all__ = ["Profile", "TopicSignal", "READER_FIELDS"]

# Reader fields that templates and subjects may use.
READER_FIELDS = ("first_name", "last_name", "email")


@dataclass(frozen=True)
class TopicSignal:
    """What readerfirst learned about a reader and a topic: (decayed) clicks over exposures."""

    clicks: float = 0.0
    exposures: float = 0.0


@dataclass(frozen=True)
class Profile:
    """One reader, read-only, with everything needed to choose and merge their sections."""

    reader_id: int
    email: str
    public_id: str = ""
    first_name: str = ""
    last_name: str = ""
    timezone: str = ""
    status: str = "subscribed"
    interests: dict[str, float] = field(default_factory=dict)
    needs: dict[str, dt.date] = field(default_factory=dict)
    learned: dict[str, TopicSignal] = field(default_factory=dict)
    opted_out: frozenset[str] = frozenset()
    need_words: dict[str, str] = field(default_factory=dict)  # topic -> the reader's own words for that need

    def current_needs(self, today: dt.date) -> dict[str, dt.date]:
        """Needs that have not expired on `today`."""
        return {topic: until for topic, until in self.needs.items() if until >= today}
