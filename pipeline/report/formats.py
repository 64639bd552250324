"""How the report's numbers read in Markdown and HTML: counts with separators, rates as percentages."""

from __future__ import annotations

__all__ = ["MISSING", "count", "percent", "signed_percent", "interval"]

MISSING = "—"  # a rate whose denominator is 0, or a lift that cannot be estimated


def count(value: int) -> str:
    """1234567 -> '1,234,567'."""
    return f"{value:,}"


def percent(value: float | None, digits: int = 2) -> str:
    """0.12345 -> '12.35%'; None -> '—'. Two decimals: spam rates matter around 0.10%."""
    return MISSING if value is None else f"{value * 100:.{digits}f}%"


def signed_percent(value: float | None, digits: int = 1) -> str:
    """0.234 -> '+23.4%', -0.5 -> '-50.0%'; None -> '—'."""
    return MISSING if value is None else f"{value * 100:+.{digits}f}%"


def interval(low: float | None, high: float | None, digits: int = 1) -> str:
    """A 95% interval of a lift: '[+3.1%, +40.2%]', or '—' when it cannot be estimated."""
    if low is None or high is None:
        return MISSING
    return f"[{signed_percent(low, digits)}, {signed_percent(high, digits)}]"
