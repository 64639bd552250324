"""Rates and the personalisation lift's log-ratio (Katz) 95% interval, with zero counts."""

from __future__ import annotations

import math

import pytest

from pipeline.report.stats import Z_95, estimate_lift, rate


def test_rate_is_none_without_a_denominator():
    """A rate over 0 is None (shown as a dash), never 0 and never an error."""
    assert rate(3, 4) == 0.75 and rate(0, 4) == 0.0 and rate(0, 0) is None


def test_lift_and_interval_match_the_katz_log_method():
    """15/100 against 10/100: lift +50%, interval exp(ln 1.5 -/+ 1.96 sqrt(1/15 - 1/100 + 1/10 - 1/100)) - 1."""
    found = estimate_lift(15, 100, 10, 100)
    assert found.lift == pytest.approx(0.5)
    assert found.low == pytest.approx(-0.291882, abs=1e-6) and found.high == pytest.approx(2.177435, abs=1e-6)
    assert found.note is None
    # Symmetric around the ratio on the log scale.
    assert math.log(1 + found.high) - math.log(1.5) == pytest.approx(math.log(1.5) - math.log(1 + found.low))


def test_interval_narrows_with_more_readers():
    """Ten times the readers at the same rates gives the same lift and a narrower interval around it."""
    small, large = estimate_lift(15, 100, 10, 100), estimate_lift(150, 1000, 100, 1000)
    assert large.lift == pytest.approx(small.lift)
    assert small.low < large.low < large.lift < large.high < small.high


def test_z_is_the_two_sided_95_percent_quantile():
    """Z_95 is the standard normal's 97.5th percentile."""
    assert 0.5 * math.erfc(-Z_95 / math.sqrt(2)) == pytest.approx(0.975, abs=1e-12)


@pytest.mark.parametrize("counts, lift, reason", [
    ((3, 6, 0, 5), None, "no holdout reader clicked"),
    ((0, 6, 2, 5), -1.0, "no personalised reader clicked"),
    ((3, 6, 0, 0), None, "no delivered readers in the holdout arm"),
    ((0, 0, 2, 5), None, "no delivered readers in the personalised arm"),
])
def test_zero_counts_give_null_with_the_reason(counts, lift, reason):
    """Any zero that makes the ratio or its log undefined leaves the interval null and says which."""
    found = estimate_lift(*counts)
    assert found.lift == lift and (found.low, found.high) == (None, None) and reason in found.note
