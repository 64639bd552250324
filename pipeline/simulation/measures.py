"""Measuring an edition of the simulation on comparable readers, and checking the goals.

For every reader who got the personalised newsletter, the response model gives the expected
clicks and unsubscribe chance of three newsletters: the one they got, the editorial one (what
the holdout got) and the oracle's (chosen knowing their hidden preferences). Expected values,
not draws, so that the three arms differ only by their selection, never by luck. The holdout
group is the live editorial arm; its simulated figures are kept beside (see `ArmCounts`).

CTR here is distinct sections clicked per delivered newsletter. Lift is
ctr_personalised / ctr_editorial - 1, with a 95% interval by the delta method for a ratio of
paired means over readers: var(R) ~ var(x - R y) / (n mean(y)^2). That interval only covers
which readers were sampled; within a run the ratio swings far more between editions (which
sections an edition happened to have) than it does between samples of readers, so the run's
lift is also given with a bootstrap over readers AND editions (`lift_over_editions`). Unsubscribes
are expected rates per delivered newsletter (a spam report also ends the subscription but is
counted apart).

Needs served: among personalised readers with an active need whose edition has a section on
the needed topic, the share whose copy had one, and their expected clicks on those sections.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["GOALS", "ArmCounts", "EditionMeasure", "ReaderOutcome", "check_goals", "json_number", "lift_over_editions",
           "measure_edition"]

_Z95 = 1.959964
_BOOTSTRAP = 200  # resamples of the readers-and-editions bootstrap

GOALS = {
    "final_vs_editorial": 1.5,  # personalised CTR at least 1.5 x editorial after the last edition
    "final_vs_oracle": 0.85,  # and at least 0.85 x oracle
    "cold_start_vs_editorial": 1.0,  # edition 1 never below editorial
    "drift_vs_oracle": 0.9,  # within 10% of oracle ...
    "drift_editions": 3,  # ... within 3 editions of the drift
}


@dataclass(frozen=True)
class ReaderOutcome:
    """Expected outcomes of one personalised reader under the three newsletters."""

    personalised: float  # expected clicks of what they got
    editorial: float
    oracle: float
    unsubscribe_personalised: float
    unsubscribe_editorial: float
    drifted: bool = False
    declared: bool = False  # the reader declared interests at sign-up
    reader_id: int = 0  # the same reader in every edition: the bootstrap resamples readers, not rows
    need: bool = False  # the reader has an active need and the edition has a section for it
    need_served: bool = False  # ... and their copy had one
    need_clicks: float = 0.0  # expected clicks on the sections of their copy on the needed topic


@dataclass
class ArmCounts:
    """What the simulated readers of one arm really did (draws, through the webhook format and the store)."""

    delivered: int = 0
    clicks: int = 0  # distinct (reader, section) clicks
    openers: int = 0  # readers with a human open event
    unsubscribes: int = 0
    spam_reports: int = 0

    @property
    def ctr(self) -> float:
        """Distinct clicks per delivered newsletter."""
        return self.clicks / self.delivered if self.delivered else 0.0

    def as_dict(self) -> dict[str, Any]:
        """The counts and rates, for the details file."""
        return {"delivered": self.delivered, "clicks": self.clicks, "ctr": round(self.ctr, 6),
                "openers": self.openers, "unsubscribes": self.unsubscribes, "spam_reports": self.spam_reports,
                "unsubscribe_rate": round(self.unsubscribes / self.delivered, 6) if self.delivered else 0.0}


@dataclass
class EditionMeasure:
    """One edition's figures."""

    edition: int
    edition_id: str
    readers: int
    ctr_personalised: float
    ctr_editorial: float
    ctr_oracle: float
    lift: float
    lift_ci: tuple[float, float]
    unsubscribes_personalised: float
    unsubscribes_editorial: float
    ctr_drifted: tuple[float, float] | None = None  # (personalised, oracle) over readers who drifted
    live: dict[str, ArmCounts] = field(default_factory=dict)  # "personalised" and "holdout"
    # Expected CTRs of groups of personalised readers (declared interests or not): where the gap is.
    groups: dict[str, dict[str, float]] = field(default_factory=dict)
    # Readers with an active need the edition could serve: how many, the share served, their clicks on it.
    needs: dict[str, float] | None = None

    def as_json(self) -> dict[str, Any]:
        """The entry of this edition in the evaluation's JSON (exactly the documented keys; null when undefined)."""
        return {"edition": self.edition, "ctr_personalised": json_number(self.ctr_personalised),
                "ctr_editorial": json_number(self.ctr_editorial), "ctr_oracle": json_number(self.ctr_oracle),
                "lift": json_number(self.lift), "lift_ci": [json_number(self.lift_ci[0]), json_number(self.lift_ci[1])],
                "unsubscribes_personalised": json_number(self.unsubscribes_personalised),
                "unsubscribes_editorial": json_number(self.unsubscribes_editorial)}

    def details(self) -> dict[str, Any]:
        """Everything measured, for the details file."""
        extra: dict[str, Any] = {"edition_id": self.edition_id, "personalised_readers": self.readers,
                                 "vs_oracle": round(self.ctr_personalised / self.ctr_oracle, 4) if self.ctr_oracle else None,
                                 "live": {arm: counts.as_dict() for arm, counts in self.live.items()},
                                 "groups": self.groups}
        if self.needs is not None:
            extra["needs"] = self.needs
        if self.ctr_drifted is not None:
            extra["drifted"] = {"ctr_personalised": round(self.ctr_drifted[0], 6),
                                "ctr_oracle": round(self.ctr_drifted[1], 6)}
        return {**self.as_json(), **extra}


def json_number(value: float) -> float | None:
    """`value` rounded for JSON, or None when it is not finite."""
    # NaN is not JSON: a lift with no editorial clicks (or too few readers for an interval) is null.
    return round(value, 6) if math.isfinite(value) else None


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def _ratio_interval(x: Sequence[float], y: Sequence[float]) -> tuple[float, float, float]:
    """(ratio of means, low, high) of paired samples, 95% by the delta method."""
    n = len(x)
    mx, my = _mean(x), _mean(y)
    if my <= 0:
        return (math.nan, math.nan, math.nan)
    ratio = mx / my
    if n < 2:
        return (ratio, math.nan, math.nan)
    residual = [a - ratio * b for a, b in zip(x, y)]
    variance = sum(r * r for r in residual) / (n - 1)
    half = _Z95 * math.sqrt(variance / n) / my
    return ratio, ratio - half, ratio + half


def measure_edition(number: int, edition_id: str, outcomes: Sequence[ReaderOutcome],
                    live: dict[str, ArmCounts]) -> EditionMeasure:
    """The figures of one edition from its personalised readers' expected outcomes."""
    personalised = [o.personalised for o in outcomes]
    editorial = [o.editorial for o in outcomes]
    ratio, low, high = _ratio_interval(personalised, editorial)
    drifted = [o for o in outcomes if o.drifted]
    groups = {name: _group(members) for name, members in (
        ("declared", [o for o in outcomes if o.declared]), ("undeclared", [o for o in outcomes if not o.declared]))
        if members}
    return EditionMeasure(
        edition=number, edition_id=edition_id, readers=len(outcomes),
        ctr_personalised=_mean(personalised), ctr_editorial=_mean(editorial),
        ctr_oracle=_mean([o.oracle for o in outcomes]), lift=ratio - 1.0, lift_ci=(low - 1.0, high - 1.0),
        unsubscribes_personalised=_mean([o.unsubscribe_personalised for o in outcomes]),
        unsubscribes_editorial=_mean([o.unsubscribe_editorial for o in outcomes]),
        ctr_drifted=(_mean([o.personalised for o in drifted]), _mean([o.oracle for o in drifted])) if drifted else None,
        live=live, groups=groups, needs=_needs(outcomes))


def _needs(outcomes: Sequence[ReaderOutcome]) -> dict[str, float] | None:
    needing = [o for o in outcomes if o.need]
    if not needing:
        return None
    return {"readers": len(needing), "served": round(sum(o.need_served for o in needing) / len(needing), 6),
            "ctr_on_need": round(_mean([o.need_clicks for o in needing]), 6)}


def lift_over_editions(editions: Sequence[Sequence[ReaderOutcome]], *, seed: int = 0,
                       resamples: int = _BOOTSTRAP) -> tuple[float, float, float]:
    """(lift, low, high) of personalised over editorial CTR across `editions`, 95% by a two-way bootstrap.

    Each resample weighs every reader and every edition by an independent Poisson(1) count
    (the pigeonhole bootstrap for crossed factors), so the interval covers both which readers
    and which editions were drawn. Percentile interval; NaN without editorial clicks.
    """
    rng = random.Random(seed)
    readers = sorted({o.reader_id for outcomes in editions for o in outcomes})
    totals = [sum(o.editorial for outcomes in editions for o in outcomes)]
    if not editions or totals[0] <= 0:
        return (math.nan, math.nan, math.nan)
    lift = sum(o.personalised for outcomes in editions for o in outcomes) / totals[0] - 1.0
    rows = [[(o.reader_id, o.personalised, o.editorial) for o in outcomes] for outcomes in editions]
    lifts = []
    for _ in range(resamples):
        weight = {r: _poisson(rng) for r in readers}
        x = y = 0.0
        for edition in rows:
            w = _poisson(rng)
            if not w:
                continue
            ex = ey = 0.0
            for reader, personalised, editorial in edition:
                v = weight[reader]
                ex += v * personalised
                ey += v * editorial
            x += w * ex
            y += w * ey
        if y > 0:
            lifts.append(x / y - 1.0)
    if len(lifts) < 2:
        return (lift, math.nan, math.nan)
    lifts.sort()
    return lift, lifts[int(0.025 * (len(lifts) - 1))], lifts[int(math.ceil(0.975 * (len(lifts) - 1)))]


def _poisson(rng: random.Random) -> int:
    """A Poisson(1) draw by inversion (about 1.7 uniform draws each)."""
    u, k, p = rng.random(), 0, math.exp(-1.0)
    cumulative = p
    while u > cumulative:
        k += 1
        p /= k
        cumulative += p
    return k


def _group(outcomes: Sequence[ReaderOutcome]) -> dict[str, float]:
    return {"readers": len(outcomes), "ctr_personalised": round(_mean([o.personalised for o in outcomes]), 6),
            "ctr_editorial": round(_mean([o.editorial for o in outcomes]), 6),
            "ctr_oracle": round(_mean([o.oracle for o in outcomes]), 6)}


def _goal(name: str, met: bool | None, value: Any, target: str, note: str = "") -> dict[str, Any]:
    return {"goal": name, "met": met, "value": value, "target": target, **({"note": note} if note else {})}


def check_goals(measures: Sequence[EditionMeasure], drift_at: int | None) -> list[dict[str, Any]]:
    """Each goal of the issue with the figure behind it, met or not (None: cannot be judged here)."""
    if not measures:
        return []
    goals = []
    last = measures[-1]
    vs_editorial = last.ctr_personalised / last.ctr_editorial if last.ctr_editorial else math.inf
    vs_oracle = last.ctr_personalised / last.ctr_oracle if last.ctr_oracle else math.nan
    judged = len(measures) >= 8
    note = "" if judged else f"only {len(measures)} editions: the goal is stated after 8"
    goals.append(_goal("personalised vs editorial CTR after the last edition", vs_editorial >= GOALS["final_vs_editorial"]
                       if judged else None, round(vs_editorial, 4), f">= {GOALS['final_vs_editorial']}x", note))
    goals.append(_goal("personalised vs oracle CTR after the last edition", vs_oracle >= GOALS["final_vs_oracle"]
                       if judged else None, round(vs_oracle, 4), f">= {GOALS['final_vs_oracle']}x", note))
    first = measures[0]
    cold = first.ctr_personalised / first.ctr_editorial if first.ctr_editorial else math.inf
    goals.append(_goal("cold start (edition 1) vs editorial CTR", cold >= GOALS["cold_start_vs_editorial"],
                       round(cold, 4), ">= 1.0x"))
    if drift_at is None or drift_at > len(measures):
        goals.append(_goal("back within 10% of oracle after a drift", None, None, "<= 3 editions",
                           "no drift within the editions run"))
    else:
        window = [m for m in measures if drift_at < m.edition <= drift_at + GOALS["drift_editions"]]
        recovered = next((m.edition for m in window
                          if m.ctr_oracle and m.ctr_personalised >= GOALS["drift_vs_oracle"] * m.ctr_oracle), None)
        complete = len(window) == GOALS["drift_editions"]
        ratios = [round(m.ctr_personalised / m.ctr_oracle, 4) if m.ctr_oracle else None for m in window]
        goals.append(_goal("back within 10% of oracle after a drift", True if recovered else (False if complete else None),
                           {"drift_at": drift_at, "recovered_at": recovered, "vs_oracle": ratios},
                           f">= {GOALS['drift_vs_oracle']}x oracle by edition {drift_at + GOALS['drift_editions']}",
                           "" if complete or recovered else "the run ends before the 3 editions after the drift"))
    unsub_p = _mean([m.unsubscribes_personalised for m in measures])
    unsub_e = _mean([m.unsubscribes_editorial for m in measures])
    goals.append(_goal("unsubscribe rate vs editorial (mean over editions)", unsub_p <= unsub_e,
                       {"personalised": round(unsub_p, 6), "editorial": round(unsub_e, 6)}, "personalised <= editorial"))
    return goals
