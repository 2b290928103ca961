"""Trend charts as inline SVG, drawn on the hub (no library, no network, no script).

One point per day (the day's mean) with a bar from the day's lowest to its highest value, and
the alert limits as dashed lines. Only presentation attributes are used (no ``style``), so the
page's Content-Security-Policy can forbid inline styles. Every text in the SVG is a number, a
date or a label from the message catalogue, escaped.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, time
from html import escape

from gateway.api.trends import DailyPoint, Limit
from gateway.i18n import Translator

# Wider than tall, so a chart and its legend fit a 480-pixel-high screen together.
WIDTH = 440
HEIGHT = 190
LEFT = 54
RIGHT = 14
TOP = 12
BOTTOM = 32
FONT = 17
LIMIT_COLOUR = "#7a1f1f"


@dataclass(frozen=True, slots=True)
class Series:
    label: str
    colour: str
    days: list[DailyPoint]


def _nice_step(span: float) -> float:
    raw = span / 4 if span > 0 else 1.0
    magnitude = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 2.5, 5, 10):
        if raw <= factor * magnitude:
            return factor * magnitude
    return 10 * magnitude


def trend_svg(
    tr: Translator,
    series: list[Series],
    limits: list[Limit],
    start: float,
    end: float,
    label: str,
) -> str:
    values = [v for s in series for d in s.days for v in (d.low, d.high)]
    if not values:
        return ""
    values += [limit.value for limit in limits]
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

    def noon(point: DailyPoint) -> float:
        return datetime.combine(point.day, time(12), tr.zone).timestamp()

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
            f' fill="#333">{escape(tr.number(tick))}</text>'
        )
        tick += step
    baseline = HEIGHT - BOTTOM
    for epoch, anchor in ((start, "start"), ((start + end) / 2, "middle"), (end, "end")):
        text = (
            tr.t("chart.today") if epoch == end else tr.day(datetime.fromtimestamp(epoch, tr.zone))
        )
        parts.append(
            f'<text x="{x(epoch):.1f}" y="{baseline + 22}" text-anchor="{anchor}"'
            f' font-size="{FONT}" fill="#333">{escape(text)}</text>'
        )
    for limit in limits:
        ly = y(limit.value)
        parts.append(
            f'<line class="limit" x1="{LEFT}" y1="{ly:.1f}" x2="{WIDTH - RIGHT}" y2="{ly:.1f}"'
            f' stroke="{LIMIT_COLOUR}" stroke-width="2" stroke-dasharray="8 5"/>'
        )
    for s in series:
        if len(s.days) > 1:
            path = " ".join(f"{x(noon(d)):.1f},{y(d.mean):.1f}" for d in s.days)
            parts.append(
                f'<polyline points="{path}" fill="none" stroke="{s.colour}" stroke-width="2.5"'
                ' stroke-linejoin="round"/>'
            )
        for d in s.days:
            cx = x(noon(d))
            if d.high > d.low:
                parts.append(
                    f'<line class="range" x1="{cx:.1f}" y1="{y(d.high):.1f}" x2="{cx:.1f}"'
                    f' y2="{y(d.low):.1f}" stroke="{s.colour}" stroke-width="4"'
                    ' stroke-linecap="round" stroke-opacity="0.45"/>'
                )
            parts.append(
                f'<circle cx="{cx:.1f}" cy="{y(d.mean):.1f}" r="5" fill="{s.colour}"'
                ' stroke="#fff" stroke-width="1.5"/>'
            )
    parts.append("</svg>")
    return "".join(parts)
