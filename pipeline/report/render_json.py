"""The engagement report as JSON: the reference form the Markdown and HTML reports agree with."""

from __future__ import annotations

import json

from pipeline.report.model import Report

__all__ = ["render_json"]


def render_json(report: Report, *, indent: int | None = 2) -> str:
    """`report` as JSON text; rates are fractions, and null where their denominator is 0."""
    # allow_nan=False: a NaN would be invalid JSON; every undefined rate is already None.
    return json.dumps(report.as_dict(), indent=indent, ensure_ascii=False, allow_nan=False) + "\n"
