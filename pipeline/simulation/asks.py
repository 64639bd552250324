"""Who among simulated readers answers the ask, and what they say: the ask side of the reader model.

A reader who opened a copy carrying the ask answers it with a chance of `base`, plus
`unserved_bonus` when the copy had nothing on the need they have (a reader whose need went
unserved has the most reason to say so). They pick, among the topics the ask offers, the one
they need when it is there, else the one they like most (the reader model's favourites), and
say it in a few words of their own. Deterministic per (seed, address, edition), like
`simulated_reply`, on a stream of its own so that adding answers changes no other response.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pipeline.simulation.readers import ShownSection, SimulatedAudience, reader_stream

__all__ = ["AskHabit", "SimulatedAnswer", "simulated_answer"]


@dataclass(frozen=True)
class AskHabit:
    """How often readers answer the ask: `base`, plus `unserved_bonus` when their need went unserved."""

    base: float = 0.25
    unserved_bonus: float = 0.2

    def __post_init__(self) -> None:
        if not (0.0 <= self.base <= 1.0 and 0.0 <= self.unserved_bonus <= 1.0):
            raise ValueError("answer chances are between 0 and 1")


@dataclass(frozen=True)
class SimulatedAnswer:
    """One reader's answer: the offered topic they chose, for how many days, in their words."""

    topic: str
    days: int
    words: str


_DAYS = (30, 45, 60)
_PHRASES = ("I need to get better at {topic} this quarter.", "Practical help with {topic}, please.",
            "Anything on {topic}: my team starts on it next month.")


def simulated_answer(audience: SimulatedAudience, email: str, edition: int, offered: Sequence[str],
                     sections: Sequence[ShownSection], habit: AskHabit) -> SimulatedAnswer | None:
    """The answer this reader gives to the ask offering `offered` in this edition, or None."""
    if not offered:
        return None
    reader = audience.reader(email)
    rng = reader_stream(audience.seed, reader.email, f"ask:{edition}")
    need = reader.need if reader.need_active(edition) else None
    unserved = need is not None and not any(need in s.topics for s in sections)
    if rng.random() >= min(1.0, habit.base + (habit.unserved_bonus if unserved else 0.0)):
        return None
    if need is not None and need in offered:
        topic = need
    else:
        preferences = reader.preferences(edition)
        topic = min(offered, key=lambda t: (-preferences.get(t, 0.0), list(offered).index(t)))
    words = _PHRASES[rng.randrange(len(_PHRASES))].format(topic=topic.replace("-", " "))
    return SimulatedAnswer(topic=topic, days=_DAYS[rng.randrange(len(_DAYS))], words=words)
