"""Rates and the personalisation lift with its 95% confidence interval.

Lift compares two click-through rates, personalised (p) against holdout (h):

    lift = CTR_p / CTR_h - 1,   CTR = unique clickers / delivered

Its interval is the usual one for a ratio of two proportions (Katz et al., 1978): the log of
the ratio is close to normal, with the delta-method standard error

    se = sqrt(1/a - 1/n_p + 1/c - 1/n_h)

where a and c are the clickers and n_p and n_h the delivered readers of each arm; the interval
is exp(log(ratio) +/- 1.96 se) - 1. It treats readers as independent, which holds within one
edition; pooled over editions a reader counts once per edition, so the pooled interval is a
little too narrow when the same readers click edition after edition.

A ratio with a zero in it has no log: the lift (or its interval) is then null, with the reason.

Beside every lift the report gives the minimum detectable effect (MDE): the smallest relative
lift a test of this size would find with 80% power at a two-sided 5% level, for two
proportions with the pooled rate p of both arms as the baseline:

    MDE = (z_0.975 + z_0.80) * sqrt(p (1 - p) (1/n_p + 1/n_h)) / p,   z_0.975 + z_0.80 = 1.960 + 0.842

(the normal approximation; n_p and n_h are the delivered readers of each arm). A lift smaller
than that is likely to go unseen; when the interval holds 0 the report says, in a sentence,
that this holdout is too small to show whether personalisation helped by less than the MDE.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["Z_95", "Z_80", "LiftEstimate", "rate", "estimate_lift", "minimum_detectable_lift", "inconclusive"]

Z_95 = 1.959963984540054  # two-sided 95% quantile of the standard normal
Z_80 = 0.8416212335729143  # one-sided 80% quantile: the power of the test


def rate(part: int, whole: int) -> float | None:
    """`part / whole`, or None when there is nothing to divide by."""
    return part / whole if whole else None


@dataclass(frozen=True)
class LiftEstimate:
    """Relative lift of one rate over another, its 95% interval, and why any of it is missing."""

    lift: float | None
    low: float | None
    high: float | None
    note: str | None = None


def estimate_lift(clicked: int, delivered: int, holdout_clicked: int, holdout_delivered: int,
                  *, z: float = Z_95) -> LiftEstimate:
    """Lift of CTR (clicked / delivered) over the holdout's CTR, with a log-ratio delta-method interval."""
    if delivered == 0 or holdout_delivered == 0:
        arm = "personalised" if delivered == 0 else "holdout"
        return LiftEstimate(None, None, None, f"no delivered readers in the {arm} arm: nothing to compare")
    if holdout_clicked == 0:
        return LiftEstimate(None, None, None,
                            "no holdout reader clicked: the holdout CTR is 0, so the ratio is undefined")
    ratio = (clicked / delivered) / (holdout_clicked / holdout_delivered)
    if clicked == 0:
        # The point estimate exists (-100%), but log(0) does not: no log-ratio interval.
        return LiftEstimate(ratio - 1.0, None, None,
                            "no personalised reader clicked: the log-ratio interval is undefined")
    se = math.sqrt(1 / clicked - 1 / delivered + 1 / holdout_clicked - 1 / holdout_delivered)
    centre = math.log(ratio)
    return LiftEstimate(ratio - 1.0, math.exp(centre - z * se) - 1.0, math.exp(centre + z * se) - 1.0)


def minimum_detectable_lift(successes: int, trials: int, holdout_successes: int, holdout_trials: int,
                            *, z_alpha: float = Z_95, z_power: float = Z_80) -> float | None:
    """The smallest relative lift detectable with 80% power at a two-sided 5% level (see the module docstring).

    None when an arm is empty or the pooled rate is 0 or 1 (nothing varies, so no size is enough).
    """
    if trials <= 0 or holdout_trials <= 0:
        return None
    pooled = (successes + holdout_successes) / (trials + holdout_trials)
    if not 0.0 < pooled < 1.0:
        return None
    spread = math.sqrt(pooled * (1.0 - pooled) * (1.0 / trials + 1.0 / holdout_trials))
    return (z_alpha + z_power) * spread / pooled


def inconclusive(estimate: LiftEstimate, holdout_readers: int, mde: float | None, *,
                 scope: str = "this edition") -> str | None:
    """The plain sentence for a lift that cannot conclude (its interval holds 0, or is missing), else None."""
    if estimate.low is not None and estimate.high is not None and (estimate.low > 0 or estimate.high < 0):
        return None
    readers = f"{holdout_readers} reader{'s' if holdout_readers != 1 else ''}"
    if mde is None:
        return f"The holdout ({readers}) gives nothing to compare yet; {scope} cannot show whether personalisation helped."
    return (f"The holdout ({readers}) is too small to detect less than a +{mde * 100:.0f}% change; "
            f"{scope} cannot show whether personalisation helped.")
