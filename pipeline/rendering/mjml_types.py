"""MJML attribute value types (`color`, `unit(px,%){1,4}`, `enum(a,b)`...) as the reference checks them.

The reference's checks are looser than CSS in places (an `integer` is anything with a digit
in it, `rgb(...)` may sit anywhere in a colour) and stricter in others (named colours are
lower-case). We reproduce its verdicts, not CSS's, so that our verdict and
`mjml --validate strict` agree.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache

from pipeline.rendering.mjml_table import NAMED_COLORS

__all__ = ["value_problem"]

_RGBA = re.compile(r"rgba\(\d{1,3},\s?\d{1,3},\s?\d{1,3},\s?\d(\.\d{1,3})?\)", re.IGNORECASE | re.ASCII)
_RGB = re.compile(r"rgb\(\d{1,3},\s?\d{1,3},\s?\d{1,3}\)", re.IGNORECASE | re.ASCII)
_HEX = re.compile(r"#([0-9a-f]{3}){1,2}", re.IGNORECASE | re.ASCII)
_DIGIT = re.compile(r"\d", re.ASCII)
_UNIT = re.compile(r"(unit|unitWithNegative)\(([^)]*)\)(?:\{([^}]*)\})?")


def _color(value: str) -> str | None:
    if _RGBA.search(value) or _RGB.search(value) or _HEX.fullmatch(value) or value in NAMED_COLORS:
        return None
    return "not a colour (#abc, #aabbcc, rgb(...), rgba(...) or a lower-case CSS colour name)"


def _unit_checker(spec: str) -> Callable[[str], str | None]:
    found = _UNIT.fullmatch(spec)
    if not found:
        raise ValueError(f"unknown MJML unit type {spec!r}")
    negative = found.group(1) == "unitWithNegative"
    units = found.group(2).split(",")
    counts = (found.group(3) or "1").split(",")
    number = r"[-\d,.]+" if negative else r"[\d,.]+"
    named = "|".join(re.escape(u) for u in units if u != "auto")
    single = f"(?:{number}(?:{named})|0{'|auto' if 'auto' in units else ''})"
    # One to four values, each optionally followed by one space, as the reference counts them.
    pattern = re.compile(f"(?:{single} ?){{{','.join(counts)}}}", re.ASCII)
    shown = ", ".join(u if u else "no unit" for u in units)
    many = f"{' to '.join(counts)} value{'s' if counts != ['1'] else ''}"

    def check(value: str) -> str | None:
        if pattern.fullmatch(value):
            return None
        return f"not {many} in {shown}{' (negative allowed)' if negative else ''}"

    return check


def _enum_checker(spec: str) -> Callable[[str], str | None]:
    options = spec[spec.index("(") + 1:spec.rindex(")")].split(",")

    def check(value: str) -> str | None:
        if value in options:
            return None
        return f"not one of {', '.join(o if o else '(empty)' for o in options)}"

    return check


@lru_cache(maxsize=None)
def _checker(spec: str) -> Callable[[str], str | None]:
    if spec.startswith("string"):
        return lambda value: None
    if spec.startswith("boolean"):
        return lambda value: None if value in ("true", "false") else "not true or false"
    if spec.startswith("integer"):
        return lambda value: None if _DIGIT.search(value) else "not an integer"
    if spec.startswith("color"):
        return _color
    if spec.startswith("enum"):
        return _enum_checker(spec)
    return _unit_checker(spec)


def value_problem(spec: str, value: str) -> str | None:
    """Why `value` is not a valid value of MJML type `spec` (None when it is)."""
    return _checker(spec)(value)
