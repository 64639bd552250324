"""The engagement report: per edition, section, topic and arm, as JSON, Markdown or one HTML file.

`build_report` reads the database into a plain `Report`; `render_json`, `render_markdown` and
`render_html` turn that one `Report` into text, so every format says the same numbers.
"""

from __future__ import annotations

from pipeline.report.metrics import InvalidThreshold, UnknownEdition, build_report
from pipeline.report.model import DEFAULT_BOUNCE_THRESHOLD, SPAM_THRESHOLD, Report
from pipeline.report.render_html import render_html
from pipeline.report.render_json import render_json
from pipeline.report.render_markdown import edition_rows, render_markdown

__all__ = [
    "DEFAULT_BOUNCE_THRESHOLD",
    "SPAM_THRESHOLD",
    "InvalidThreshold",
    "Report",
    "UnknownEdition",
    "build_report",
    "edition_rows",
    "render_html",
    "render_json",
    "render_markdown",
]
