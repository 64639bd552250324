"""Who among simulated readers writes back, and what they write: the reply side of the reader model.

A reader who read the newsletter replies with a chance that grows with how well the copy served
them (`SimulatedAudience.served`: their best affinity among its sections): `base` for a copy
that missed them entirely, `base + served_bonus` for one that was all about what they care for.
The reply names the two topics they care most about as a need, in plain words ("hiring",
"remote work"), above a quote of the newsletter and a mobile footer, as real replies look.
Deterministic per (seed, address, edition), like every other simulated response.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pipeline.simulation.readers import ShownSection, SimulatedAudience, reader_stream

__all__ = ["ReplyHabit", "simulated_reply"]


@dataclass(frozen=True)
class ReplyHabit:
    """How often readers write back: `base`, plus `served_bonus` times how well the copy served them."""

    base: float = 0.02
    served_bonus: float = 0.2

    def __post_init__(self) -> None:
        if not (0.0 <= self.base <= 1.0 and 0.0 <= self.served_bonus <= 1.0):
            raise ValueError("reply chances are between 0 and 1")


_OPENINGS = ("Thanks, this was useful.", "Great issue, thank you!", "Thank you for asking.")


def simulated_reply(audience: SimulatedAudience, email: str, edition: int, sections: Sequence[ShownSection],
                    habit: ReplyHabit) -> str | None:
    """The body of the reply this reader writes to this edition, or None when they do not write."""
    reader = audience.reader(email)
    rng = reader_stream(audience.seed, reader.email, f"reply:{edition}")
    chance = habit.base + habit.served_bonus * audience.served(email, edition, sections)
    if rng.random() >= min(1.0, chance):
        return None
    preferences = reader.preferences(edition)
    first, second = sorted(preferences, key=lambda t: (-preferences[t], t))[:2] + [""] * max(0, 2 - len(preferences))
    wanted = first.replace("-", " ") + (f" and {second.replace('-', ' ')}" if second else "")
    return (f"{_OPENINGS[rng.randrange(len(_OPENINGS))]} In the next few weeks I need help with {wanted}.\n\n"
            f"On Mon, 4 Jan 2027 at 07:00, readerfirst <newsletter@readerfirst.example> wrote:\n"
            f"> This week's newsletter\n> ...\n\nSent from my phone\n")
