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


_CHAR = 7.5  # units a character of the 12 px labels takes, at most (digits and most letters take less)


def _fit(label: str, units: float) -> str:
    """`label` cut (with an ellipsis) to what fits in `units`, so that it never runs into its neighbour."""
    most = max(1, int(units // _CHAR))
    return label if len(label) <= most else label[:most - 1] + "\u2026"


def _labelled(text: str, label: str) -> str:
    """The text of a label, with the whole label as its tooltip when it had to be cut."""
    return escape(text) if text == label else f"{escape(text)}<title>{escape(label)}</title>"


def _axis_labels(ticks: Sequence[tuple[float, str]], left: float, right: float) -> list[tuple[float, str, str]]:
    """(x, text, anchor) of the tick labels that fit without touching, in the order given (first kept first).

    Each label is centred on its tick, or anchored inwards at the plot's ends, and one that would
    overlap a label already kept is left out: the lift axis once printed "0" over "-100%" as "0100%".
    """
    kept: list[tuple[float, float]] = []
    labels = []
    for x, text in ticks:
        width = len(text) * _CHAR
        anchor, start = "middle", x - width / 2
        if start < left:
            anchor, start = "start", max(x, left)
        elif start + width > right:
            anchor, start = "end", min(x, right) - width
        if any(start < end + 6 and other < start + width + 6 for other, end in kept):
            continue
        kept.append((start, start + width))
        labels.append((x if anchor == "middle" else start if anchor == "start" else start + width, text, anchor))
    return labels


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
    known = [v for _, values in series for v in values if v is not None]
    top = _nice_top(max(known, default=0.0))
    # The value axis is as wide as its longest label ("100.00%"), so no label starts outside the chart.
    widest = max(len(fmt(top * tick / 4)) for tick in range(5))
    height, bottom, left, pad = 240.0, 56.0, max(56.0, widest * _CHAR + 8), 34.0  # pad: room for the end labels
    plot_w, plot_h = _WIDTH - left - _RIGHT - 2 * pad, height - _TOP - bottom
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
            body.append(f'<text x="{_n(x(i))}" y="{_n(height - bottom + 22)}" text-anchor="middle" {_FONT}>'
                        f'{_labelled(_fit(label, 70 * every), label)}</text>')
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
    ticks = [(x(value), signed_percent(value, 0) if value else "0%") for value in dict.fromkeys((0.0, least, most))]
    for at, text, anchor in _axis_labels(ticks, _LEFT, _WIDTH - _RIGHT):
        body.append(f'<text x="{_n(at)}" y="{_n(height - 10)}" text-anchor="{anchor}" {_FONT}>{escape(text)}</text>')
    for i, (label, lift, low, high) in enumerate(rows):
        middle = _TOP + _ROW * i + _ROW / 2
        body.append(f'<text x="{_LEFT - 8}" y="{_n(middle + 4)}" text-anchor="end" {_FONT}>'
                    f'{_labelled(_fit(label, _LEFT - 8), label)}</text>')
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
        body.append(f'<text x="{_LEFT - 8}" y="{_n(top + 15)}" text-anchor="end" {_FONT}>'
                    f'{_labelled(_fit(label, _LEFT - 8), label)}</text>')
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
                    f'<text x="{lx + 16}" y="{ly + 11}" {_FONT}>{_labelled(_fit(topic, 116 - 16 - 6), topic)}</text>')
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
        body.append(f'<text x="{_LEFT - 8}" y="{_n(top + 15)}" text-anchor="end" {_FONT}>'
                    f'{_labelled(_fit(label, _LEFT - 8), label)}</text>')
        width = 0.0 if value is None else max(plot_w * value / top_value, 1.0)
        if value is not None:
            body.append(f'<rect class="mark" x="{_LEFT}" y="{_n(top)}" width="{_n(width)}" height="{_ROW - 6}"'
                        f' fill="{PALETTE[0]}"><title>{escape(label)}: {escape(fmt(value))}</title></rect>')
        body.append(f'<text x="{_n(_LEFT + width + 6)}" y="{_n(top + 15)}" {_FONT}>{escape(fmt(value))}</text>')
    return _svg(name, title, height, body)
