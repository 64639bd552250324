"""Fault injection: how often the emulator answers 429, 500, slowly, or drops the connection.

A fault is decided once, when an authorised mail-send request arrives, from a seeded generator,
so a run with the same seed and the same request order meets the same faults. A 429, 500 or
`drop` (the connection is cut before the body is read) stores nothing and emits no event, as a
refused SendGrid request delivers nothing; a slow answer waits, then is processed normally.
`drop-after` is the unlucky one: the request is accepted, stored and its events posted, and then
the connection is cut before the 202, so the client cannot know it went out.
"""

from __future__ import annotations

import enum
import math
import random
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass

from pipeline.errors import ConfigurationError

__all__ = ["Fault", "FaultDecider", "FaultPlan", "SERVER_ERROR_BODY", "TOO_MANY_REQUESTS_BODY", "rate_limit_headers"]

TOO_MANY_REQUESTS_BODY = {"errors": [{"field": None, "message": "too many requests"}]}
SERVER_ERROR_BODY = {"errors": [{"field": None, "message": "internal server error", "help": None}]}


class Fault(str, enum.Enum):
    """What goes wrong with one request (the value is the name used in options and stats)."""

    RATE_LIMITED = "429"
    SERVER_ERROR = "500"
    SLOW = "slow"
    DROP = "drop"
    DROP_AFTER = "drop-after"


@dataclass(frozen=True)
class FaultPlan:
    """The probability of each fault per mail-send request, and how slow "slow" is."""

    rate_limited: float = 0.0
    server_error: float = 0.0
    slow: float = 0.0
    drop: float = 0.0
    drop_after: float = 0.0
    slow_seconds: float = 0.3
    seed: int | None = None
    rate_limit: int = 600  # what X-RateLimit-Limit announces

    def __post_init__(self) -> None:
        rates = {"429": self.rate_limited, "500": self.server_error, "slow": self.slow, "drop": self.drop,
                 "drop-after": self.drop_after}
        for name, rate in rates.items():
            if not 0.0 <= rate <= 1.0:
                raise ConfigurationError(f"fault rate for {name} must be between 0 and 1, not {rate}")
        if sum(rates.values()) > 1.0 + 1e-9:
            raise ConfigurationError(f"fault rates add up to {sum(rates.values()):.3f}; their sum must be at most 1")
        if self.slow_seconds < 0:
            raise ConfigurationError(f"slow_seconds must be zero or more, not {self.slow_seconds}")

    @classmethod
    def spread(cls, total: float, kinds: Iterable[Fault | str] = tuple(Fault), **options: object) -> FaultPlan:
        """A plan where `total` is shared equally among `kinds` (what `--fault-rate` means)."""
        chosen = [Fault(kind) for kind in kinds]
        if not chosen:
            raise ConfigurationError("choose at least one fault kind (429, 500, slow, drop, drop-after)")
        if not 0.0 <= total <= 1.0:
            raise ConfigurationError(f"--fault-rate must be between 0 and 1, not {total}")
        share = total / len(chosen)
        rates = {
            "rate_limited": share if Fault.RATE_LIMITED in chosen else 0.0,
            "server_error": share if Fault.SERVER_ERROR in chosen else 0.0,
            "slow": share if Fault.SLOW in chosen else 0.0,
            "drop": share if Fault.DROP in chosen else 0.0,
            "drop_after": share if Fault.DROP_AFTER in chosen else 0.0,
        }
        return cls(**rates, **options)  # type: ignore[arg-type]

    @property
    def active(self) -> bool:
        """True when any fault can happen."""
        return (self.rate_limited + self.server_error + self.slow + self.drop + self.drop_after) > 0


class FaultDecider:
    """Draws the fault (or None) for each arriving request, thread-safely, from the plan's seed."""

    def __init__(self, plan: FaultPlan):
        self.plan = plan
        self._random = random.Random(plan.seed)
        self._lock = threading.Lock()
        self._thresholds: list[tuple[float, Fault]] = []
        cumulative = 0.0
        for fault, rate in (
            (Fault.RATE_LIMITED, plan.rate_limited),
            (Fault.SERVER_ERROR, plan.server_error),
            (Fault.SLOW, plan.slow),
            (Fault.DROP, plan.drop),
            (Fault.DROP_AFTER, plan.drop_after),
        ):
            cumulative += rate
            self._thresholds.append((cumulative, fault))

    def decide(self) -> Fault | None:
        """The fault for the request that just arrived, or None for a normal answer."""
        if not self.plan.active:
            return None
        with self._lock:
            draw = self._random.random()
        for threshold, fault in self._thresholds:
            if draw < threshold:
                return fault
        return None


def rate_limit_headers(plan: FaultPlan, now: float | None = None) -> dict[str, str]:
    """SendGrid's rate-limit headers for a 429: nothing left, reset about a second from now."""
    now = time.time() if now is None else now
    return {
        "X-RateLimit-Limit": str(plan.rate_limit),
        "X-RateLimit-Remaining": "0",
        # Whole epoch seconds, as SendGrid sends; rounding up keeps the reset in the future.
        "X-RateLimit-Reset": str(math.ceil(now + 1.0)),
    }

