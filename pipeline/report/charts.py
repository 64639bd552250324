"""Charts of the HTML report, drawn here as inline SVG: no script, no library, nothing to fetch.

Each chart is an `<svg>` with a viewBox and no fixed size, so CSS scales it to the page's
width (a laptop or a phone). Every drawn datum has the class `mark` and a `<title>` (the
browser's tooltip); a value that is missing (None) is left out and said so in the labels,
never drawn as 0.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from markupsafe import Markup, escape

from pipeline.report.formats import MISSING, percent, signed_percent

__all__ = ["PALETTE", "line_chart", "interval_chart", "share_chart", "bar_chart"]

# Okabe-Ito: told apart by readers with any common colour blindness.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#8C6D1F", "#555555")
# Drawn at 480 units wide: a phone shows it at about 0.75x, a laptop at up to 1.25x (CSS caps it).
_WIDTH = 480
_LEFT, _RIGHT, _TOP = 100, 16, 36
_ROW = 26
_FONT = 'font-size="12"'


def _n(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


def _nice_top(value: float) -> float:
    """The smallest 1/2/2.5/5 x 10^k at or above `value` (an axis end that reads well)."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    return next(step * power for step in (1, 2, 2.5, 5, 10) if step * power >= value)


def _svg(name: str, title: str, height: float, body: list[str]) -> Markup:
    label = f"chart-{name}-title"
    return Markup(f'<svg class="chart" data-chart="{escape(name)}" viewBox="0 0 {_WIDTH} {_n(height)}" role="img"'
                  f' aria-labelledby="{label}" xmlns="http://www.w3.org/2000/svg">'
                  f'<title id="{label}">{escape(title)}</title>'
                  f'<text x="0" y="18" font-size="14" font-weight="600">{escape(title)}</text>'
                  + "".join(body) + "</svg>")


def line_chart(name: str, title: str, labels: Sequence[str],
               series: Sequence[tuple[str, Sequence[float | None]]],
               fmt: Callable[[float | None], str] = percent) -> Markup:
    """One line per series over the labels (editions, oldest first); a None breaks the line."""
    height, bottom, left, pad = 240.0, 56.0, 56.0, 34.0  # pad: room for the first and last labels
    plot_w, plot_h = _WIDTH - left - _RIGHT - 2 * pad, height - _TOP - bottom
    known = [v for _, values in series for v in values if v is not None]
    top = _nice_top(max(known, default=0.0))
    step = plot_w / max(1, len(labels) - 1)

    def x(i: int) -> float:
        return left + pad + (i * step if len(labels) > 1 else plot_w / 2)

    def y(v: float) -> float:
        return _TOP + plot_h * (1 - v / top)

    body = []
    for tick in range(5):
        value = top * tick / 4
        body.append(f'<line x1="{left}" x2="{_WIDTH - _RIGHT}" y1="{_n(y(value))}" y2="{_n(y(value))}"'
                    ' stroke="#ddd"/>')
        body.append(f'<text x="{left - 6}" y="{_n(y(value) + 4)}" text-anchor="end" {_FONT}>{escape(fmt(value))}</text>')
    # A label takes about 70 units (an edition id at 12 px): with many editions, name every few.
    every = max(1, math.ceil(len(labels) * 72 / (plot_w + 2 * pad)))
    for i, label in enumerate(labels):
        if i % every == 0:
            body.append(f'<text x="{_n(x(i))}" y="{_n(height - bottom + 18)}" text-anchor="middle" {_FONT}>'
                        f'{escape(label)}</text>')
    for number, (series_name, values) in enumerate(series):
        colour = PALETTE[number % len(PALETTE)]
        run: list[str] = []
        for i, value in enumerate([*values, None]):
            if value is not None:
                run.append(f"{_n(x(i))},{_n(y(value))}")
            elif run:
                if len(run) > 1:  # a lone point between gaps is drawn by its circle alone
                    body.append(f'<polyline class="mark" points="{" ".join(run)}" fill="none" stroke="{colour}"'
                                ' stroke-width="2.5"/>')
                run = []
        for i, value in enumerate(values):
            if value is not None:
                body.append(f'<circle class="mark" cx="{_n(x(i))}" cy="{_n(y(value))}" r="4" fill="{colour}">'
                            f'<title>{escape(series_name)} {escape(labels[i])}: {escape(fmt(value))}</title></circle>')
        legend_x = left + number * 150
        body.append(f'<rect x="{legend_x}" y="{_n(height - 22)}" width="14" height="4" fill="{colour}"/>'
                    f'<text x="{legend_x + 20}" y="{_n(height - 16)}" {_FONT}>{escape(series_name)}</text>')
    return _svg(name, title, height, body)


def interval_chart(name: str, title: str, rows: Sequence[tuple[str, float | None, float | None, float | None]]) -> Markup:
    """A forest plot: per row a point (lift) and its interval, around a line at 0; missing ones say so."""
    height = _TOP + _ROW * len(rows) + 34
    known = [v for _, *values in rows for v in values if v is not None]
    # From the lowest to the highest value, 0 always in view; a lift never goes below -100%.
    least = -_nice_top(-min(known)) if known and min(known) < 0 else 0.0
    most = _nice_top(max(known)) if known and max(known) > 0 else 0.0
    if least == most:
        least, most = -1.0, 1.0
    plot_w = _WIDTH - _LEFT - _RIGHT - 8

    def x(v: float) -> float:
        return _LEFT + plot_w * (v - least) / (most - least)

    body = [(f'<line x1="{_n(x(0))}" x2="{_n(x(0))}" y1="{_TOP - 6}" y2="{_n(height - 28)}" stroke="#999"'
             ' stroke-dasharray="4 3"/>')]
    ticks = {least: "start", most: "end", 0.0: "start" if least == 0 else "end" if most == 0 else "middle"}
    for value, anchor in ticks.items():
        body.append(f'<text x="{_n(x(value))}" y="{_n(height - 10)}" text-anchor="{anchor}" {_FONT}>'
                    f'{escape(signed_percent(value, 0) if value else "0%")}</text>')
    for i, (label, lift, low, high) in enumerate(rows):
        middle = _TOP + _ROW * i + _ROW / 2
        body.append(f'<text x="{_LEFT - 8}" y="{_n(middle + 4)}" text-anchor="end" {_FONT}>{escape(label)}</text>')
        if low is not None and high is not None:
            body.append(f'<line class="mark" x1="{_n(x(low))}" x2="{_n(x(high))}" y1="{_n(middle)}" y2="{_n(middle)}"'
                        f' stroke="{PALETTE[0]}" stroke-width="3"><title>{escape(label)}: 95% interval'
                        f' {escape(signed_percent(low))} to {escape(signed_percent(high))}</title></line>')
        if lift is not None:
            body.append(f'<circle class="mark" cx="{_n(x(lift))}" cy="{_n(middle)}" r="5" fill="{PALETTE[3]}">'
                        f'<title>{escape(label)}: lift {escape(signed_percent(lift))}</title></circle>')
        else:
            body.append(f'<text x="{_LEFT + 4}" y="{_n(middle + 4)}" {_FONT} fill="#666">'
                        f'{MISSING} not estimable (see the table)</text>')
    return _svg(name, title, height, body)


def share_chart(name: str, title: str, rows: Sequence[tuple[str, Sequence[tuple[str, float]]]],
                topics: Sequence[str]) -> Markup:
    """Per row a bar split into each topic's share (shares of one row sum to 1)."""
    legend_rows = math.ceil(len(topics) / 4)
    height = _TOP + _ROW * len(rows) + 14 + 20 * legend_rows
    plot_w = _WIDTH - _LEFT - _RIGHT
    colour = {topic: PALETTE[i % len(PALETTE)] for i, topic in enumerate(topics)}
    body = []
    for i, (label, shares) in enumerate(rows):
        top = _TOP + _ROW * i + 3
        body.append(f'<text x="{_LEFT - 8}" y="{_n(top + 15)}" text-anchor="end" {_FONT}>{escape(label)}</text>')
        start = 0.0
        for topic, share in shares:
            if share <= 0:
                continue
            body.append(f'<rect class="mark" x="{_n(_LEFT + plot_w * start)}" y="{_n(top)}"'
                        f' width="{_n(max(plot_w * share, 0.5))}" height="{_ROW - 6}" fill="{colour[topic]}">'
                        f'<title>{escape(label)} {escape(topic)}: {escape(percent(share))}</title></rect>')
            start += share
        if start == 0:
            body.append(f'<text x="{_LEFT}" y="{_n(top + 15)}" {_FONT} fill="#666">no clicks yet</text>')
    legend_top = _TOP + _ROW * len(rows) + 14
    for i, topic in enumerate(topics):
        lx, ly = (i % 4) * 116, legend_top + (i // 4) * 20
        body.append(f'<rect x="{lx}" y="{ly}" width="12" height="12" fill="{colour[topic]}"/>'
                    f'<text x="{lx + 16}" y="{ly + 11}" {_FONT}>{escape(topic)}</text>')
    return _svg(name, title, height, body)


def bar_chart(name: str, title: str, rows: Sequence[tuple[str, float | None]],
              fmt: Callable[[float | None], str] = percent) -> Markup:
    """One horizontal bar per row, with its value written beside it."""
    height = _TOP + _ROW * len(rows) + 8
    top_value = _nice_top(max((v for _, v in rows if v is not None), default=0.0))
    plot_w = _WIDTH - _LEFT - _RIGHT - 56  # room for the value written after the bar
    body = []
    for i, (label, value) in enumerate(rows):
        top = _TOP + _ROW * i + 3
        body.append(f'<text x="{_LEFT - 8}" y="{_n(top + 15)}" text-anchor="end" {_FONT}>{escape(label)}</text>')
        width = 0.0 if value is None else max(plot_w * value / top_value, 1.0)
        if value is not None:
            body.append(f'<rect class="mark" x="{_LEFT}" y="{_n(top)}" width="{_n(width)}" height="{_ROW - 6}"'
                        f' fill="{PALETTE[0]}"><title>{escape(label)}: {escape(fmt(value))}</title></rect>')
        body.append(f'<text x="{_n(_LEFT + width + 6)}" y="{_n(top + 15)}" {_FONT}>{escape(fmt(value))}</text>')
    return _svg(name, title, height, body)
