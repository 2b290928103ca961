"""Trend charts as inline SVG, drawn on the hub (no library, no network, no script).

Only presentation attributes are used (no ``style``), so the page's Content-Security-Policy
can forbid inline styles. Every text in the SVG is a number, a date or a fixed label.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from html import escape

WIDTH = 420
HEIGHT = 230
LEFT = 48
RIGHT = 14
TOP = 14
BOTTOM = 34
FONT = 15


@dataclass(frozen=True, slots=True)
class Series:
    label: str
    colour: str
    points: list[tuple[float, float]]  # (epoch seconds, value)


def _nice_step(span: float) -> float:
    raw = span / 4 if span > 0 else 1.0
    magnitude = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 2.5, 5, 10):
        if raw <= factor * magnitude:
            return factor * magnitude
    return 10 * magnitude


def _number(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".") if value % 1 else f"{value:.0f}"


def _day(epoch: float) -> str:
    moment = datetime.fromtimestamp(epoch).astimezone()
    return f"{moment.day} {moment.strftime('%b')}"


def trend_svg(series: list[Series], start: float, end: float, unit: str, title: str) -> str:
    values = [value for s in series for _, value in s.points]
    if not values:
        return ""
    low, high = min(values), max(values)
    step = _nice_step(high - low)
    axis_low = math.floor(low / step) * step
    axis_high = math.ceil(high / step) * step
    if axis_high == axis_low:
        axis_low, axis_high = axis_low - step, axis_high + step
    plot_w = WIDTH - LEFT - RIGHT
    plot_h = HEIGHT - TOP - BOTTOM

    def x(epoch: float) -> float:
        clamped = min(max(epoch, start), end)
        return LEFT + plot_w * (clamped - start) / (end - start)

    def y(value: float) -> float:
        return TOP + plot_h * (1 - (value - axis_low) / (axis_high - axis_low))

    ranges = []
    for s in series:
        low_s, high_s = min(v for _, v in s.points), max(v for _, v in s.points)
        ranges.append(f"{s.label} {_number(low_s)} to {_number(high_s)}")
    counts = ", ".join(ranges)
    label = f"{title}, last 30 days: {len(series[0].points)} readings; {counts} {unit}"
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" role="img"'
        f' aria-label="{escape(label)}" class="chart">',
        f"<title>{escape(label)}</title>",
    ]
    tick = axis_low
    while tick <= axis_high + step / 1000:
        ty = y(tick)
        parts.append(
            f'<line x1="{LEFT}" y1="{ty:.1f}" x2="{WIDTH - RIGHT}" y2="{ty:.1f}"'
            ' stroke="#c9cdd3" stroke-width="1"/>'
        )
        parts.append(
            f'<text x="{LEFT - 6}" y="{ty + 5:.1f}" text-anchor="end" font-size="{FONT}"'
            f' fill="#333">{_number(tick)}</text>'
        )
        tick += step
    baseline = HEIGHT - BOTTOM
    for epoch, anchor in ((start, "start"), ((start + end) / 2, "middle"), (end, "end")):
        text = "Today" if epoch == end else _day(epoch)
        parts.append(
            f'<text x="{x(epoch):.1f}" y="{baseline + 24}" text-anchor="{anchor}"'
            f' font-size="{FONT}" fill="#333">{text}</text>'
        )
    for s in series:
        points = sorted(s.points)
        if len(points) > 1:
            path = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in points)
            parts.append(
                f'<polyline points="{path}" fill="none" stroke="{s.colour}" stroke-width="3"'
                ' stroke-linejoin="round"/>'
            )
        for t, v in points:
            parts.append(
                f'<circle cx="{x(t):.1f}" cy="{y(v):.1f}" r="5" fill="{s.colour}"'
                ' stroke="#fff" stroke-width="1.5"/>'
            )
    parts.append("</svg>")
    return "".join(parts)
