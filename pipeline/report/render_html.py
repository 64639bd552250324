"""The engagement report as one self-contained HTML file: inline CSS, inline SVG charts, no script.

It opens offline from a file or an email attachment: nothing is fetched, nothing runs. Every
number shown carries `data-metric` (its name, e.g. `edition.2026-12-07.ctr`) and `data-value`
(its exact JSON value), so a reader's tool, or a test, can check the page against the JSON.
"""

from __future__ import annotations

import json
from itertools import pairwise
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup, escape

from pipeline.report.charts import bar_chart, interval_chart, line_chart, share_chart
from pipeline.report.formats import MISSING, count, percent, signed_percent
from pipeline.report.model import LEARNED_CTR_BUCKETS, Report

__all__ = ["render_html"]

_TEMPLATES = Path(__file__).resolve().parent / "templates"
_SHOW = {"count": count, "percent": percent, "signed": signed_percent}


def _metric(key: str, value: Any, kind: str = "count", tag: str = "td", flag: bool = False) -> Markup:
    """`value` shown as `kind` (count, percent, signed), named `key` (e.g. `edition.2026-12-07.ctr`), with its
    exact JSON value beside it; in a table cell unless tag="span"."""
    shown = MISSING if value is None else _SHOW[kind](value)
    number = Markup(f'<span data-metric="{escape(key)}" data-value="{escape(json.dumps(value))}">'
                    f"{escape(shown)}</span>")
    if flag:
        number += Markup(' <span class="flag-mark" title="above the threshold">⚠</span>')
    if tag == "span":
        return number
    return Markup(f'<{tag} class="{"num flag" if flag else "num"}">') + number + Markup(f"</{tag}>")


def _flag(key: str, value: bool) -> Markup:
    """'yes' or 'no' for a threshold flag, named `key`."""
    return Markup(f'<span data-metric="{escape(key)}" data-value="{json.dumps(value)}">'
                  f'{"⚠ yes" if value else "no"}</span>')


def _charts(report: Report) -> dict[str, Markup]:
    trends = report.trends()
    labels = trends["editions"]
    charts = {
        "engagement": line_chart("trend-engagement", "Click-through and click-to-open rate by edition", labels,
                                 [("CTR", trends["ctr"]), ("CTOR", trends["ctor"])]),
        "unsubscribes": line_chart("trend-unsubscribes", "Unsubscribe rate by edition", labels,
                                   [("unsubscribe rate", trends["unsubscribe_rate"])]),
        "lift": interval_chart("lift", "Personalisation lift in CTR, with 95% interval",
                               [(m.edition_id, m.lift, m.lift_low, m.lift_high) for m in report.lift]),
        "interests": bar_chart("learned-ctr", "Mean learned CTR per topic (readers with exposures)",
                               [(i.topic, i.mean_learned_ctr) for i in report.interests]),
    }
    if any(m.lift is not None for m in report.responses):
        charts["responses"] = interval_chart("response-lift", "Personalisation lift in response rate, with 95% interval",
                                             [(m.edition_id, m.lift, m.lift_low, m.lift_high) for m in report.responses])
    topics = sorted({t.topic for t in report.topics})
    charts["shares"] = share_chart("topic-share", "Share of topic clicks by edition",
                                   [(e.edition_id, [(t.topic, t.click_share or 0.0) for t in
                                                    sorted(report.topics_of(e.edition_id), key=lambda t: t.topic)])
                                    for e in report.editions], topics)
    return charts


def _environment() -> Environment:
    environment = Environment(loader=FileSystemLoader(_TEMPLATES), autoescape=select_autoescape(["html", "j2"]),
                              undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    environment.globals.update(metric=_metric, flag=_flag, percent=percent)
    return environment


def render_html(report: Report) -> str:
    """`report` as one HTML document that needs nothing else: charts as inline SVG, styles inline."""
    bounds = ["0"] + [percent(b, 0) for b in LEARNED_CTR_BUCKETS]
    template = _environment().get_template("report.html.j2")
    flagged = [e for e in report.editions if e.spam_flag or e.bounce_flag]
    return template.render(report=report, flagged=flagged, charts=_charts(report) if report.editions else {},
                           buckets=[f"{low}–{high}" for low, high in pairwise(bounds)], scope=report.scope())
