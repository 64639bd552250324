"""The report's inline SVG charts: one mark per known value, gaps for missing ones, text escaped."""

from __future__ import annotations

import re

import pytest

from pipeline.report.charts import _nice_top, bar_chart, interval_chart, line_chart, share_chart


def _marks(svg: str, tag: str) -> list[str]:
    return re.findall(rf'<{tag} class="mark"[^>]*>', svg)


def test_line_chart_breaks_at_missing_values():
    """A None draws no point and splits the line: [0.1, None, 0.2, 0.3] is three points and one line."""
    svg = line_chart("t", "Trend", ["a", "b", "c", "d"], [("CTR", [0.1, None, 0.2, 0.3])])
    assert len(_marks(svg, "circle")) == 3 and len(_marks(svg, "polyline")) == 1
    assert svg.startswith('<svg class="chart" data-chart="t" viewBox="0 0 480 240"')


def test_many_editions_name_every_few_so_labels_never_overlap():
    """With 30 editions every point is drawn but only every few are named, at least 70 units apart."""
    labels = [f"2026-{week:02d}-01" for week in range(1, 31)]
    svg = line_chart("t", "Trend", labels, [("CTR", [0.1] * 30)])
    named = [float(x) for x in re.findall(r'<text x="([^"]+)" y="[^"]+" text-anchor="middle"', svg)]
    assert len(_marks(svg, "circle")) == 30 and 3 <= len(named) < 30
    assert all(b - a >= 70 for a, b in zip(named, named[1:]))


def test_points_sit_at_their_value_on_the_axis():
    """With the axis topped at 0.5, a 0.25 point is halfway up the plot and a 0.5 point at its top."""
    svg = line_chart("t", "Trend", ["a", "b"], [("CTR", [0.25, 0.5])])
    ys = [float(y) for y in re.findall(r'<circle class="mark" cx="[^"]+" cy="([^"]+)"', svg)]
    top, bottom = 36.0, 240.0 - 56.0
    assert ys == [pytest.approx((top + bottom) / 2, abs=0.1), pytest.approx(top, abs=0.1)]


def test_interval_chart_says_when_a_row_cannot_be_estimated():
    """A row without lift draws no mark and says it is not estimable; a full row draws a point and a line."""
    svg = interval_chart("lift", "Lift", [("e1", None, None, None), ("e2", -0.25, -0.75, 1.3)])
    assert len(_marks(svg, "circle")) == 1 and len(_marks(svg, "line")) == 1
    assert "not estimable" in svg and ">-100%<" in svg and ">+200%<" in svg


def test_share_chart_fills_a_row_with_its_shares():
    """Shares of a row are drawn side by side and together span the plot's width."""
    svg = share_chart("s", "Shares", [("e1", [("ai", 0.25), ("climate", 0.75)]), ("e2", [])], ["ai", "climate"])
    widths = [float(w) for w in re.findall(r'<rect class="mark"[^>]* width="([^"]+)"', svg)]
    assert len(widths) == 2 and widths[1] == 3 * widths[0] and "no clicks yet" in svg


def test_text_in_charts_is_escaped():
    """Labels and titles are text, never markup."""
    svg = bar_chart("b", "Mean <learned> CTR", [("<script>", 0.5), ("none", None)])
    assert "<script>" not in svg and "&lt;script&gt;" in svg and "Mean &lt;learned&gt; CTR" in svg
    assert len(_marks(svg, "rect")) == 1 and "—" in svg


def test_axis_ends_are_round_numbers():
    """Axes end at 1, 2, 2.5 or 5 times a power of ten, at or above the largest value."""
    assert [_nice_top(v) for v in (0.0123, 0.2, 0.26, 1.33, 0.0)] == [0.02, 0.2, 0.5, 2.0, 1.0]
