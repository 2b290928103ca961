"""The 30-day trend of one value: one point per day (its mean, with the day's range), the limits
the person's alert rules set, and a sentence on where it is going, in plain words.

Days are the hub's local days: a reading at 00:30 belongs to the day the person lived it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, tzinfo
from statistics import fmean

from gateway.i18n import Translator

# Below this relative change between the earlier and the later days, the value "stays about
# the same": day-to-day spread of home blood pressure and weight is of this order.
STEADY_FRACTION = 0.03
MIN_DAYS_FOR_TREND = 4


@dataclass(frozen=True, slots=True)
class DailyPoint:
    day: date
    mean: float
    low: float
    high: float
    count: int


@dataclass(frozen=True, slots=True)
class Limit:
    value: float
    direction: str  # "above": alerts above it; "below": alerts below it
    label: str


def daily(points: list[tuple[float, float]], zone: tzinfo) -> list[DailyPoint]:
    """``(epoch seconds, value)`` pairs -> one point per local day, oldest first."""
    by_day: dict[date, list[float]] = {}
    for epoch, value in points:
        by_day.setdefault(datetime.fromtimestamp(epoch, zone).date(), []).append(value)
    return [
        DailyPoint(day, fmean(values), min(values), max(values), len(values))
        for day, values in sorted(by_day.items())
    ]


def direction(days: list[DailyPoint]) -> tuple[str, float, float] | None:
    """``("up" | "down" | "steady", earlier mean, later mean)``, or None with too few days.

    The days with readings are split in an earlier and a later half; their means of daily
    means are compared, so one busy day with many readings does not outweigh the others.
    """
    if len(days) < MIN_DAYS_FOR_TREND:
        return None
    half = len(days) // 2
    earlier = fmean(d.mean for d in days[:half])
    later = fmean(d.mean for d in days[-half:])
    scale = max(abs(earlier), 1e-9)
    change = (later - earlier) / scale
    if abs(change) < STEADY_FRACTION:
        return "steady", earlier, later
    return ("up" if change > 0 else "down"), earlier, later


def sentence(
    tr: Translator, value_label: str, unit: str, days: list[DailyPoint], limits: list[Limit]
) -> str:
    """One plain sentence on the trend of one value, and on the limits if any day crossed one."""
    found = direction(days)
    if found is None:
        text = tr.plural("trend.too_few_days", len(days), value=value_label)
    else:
        way, earlier, later = found
        text = tr.t(
            f"trend.{way}",
            value=value_label,
            earlier=tr.number(earlier),
            later=tr.number(later),
            unit=unit,
        )
    crossed = sum(
        1
        for d in days
        if any(
            (limit.direction == "above" and d.high > limit.value)
            or (limit.direction == "below" and d.low < limit.value)
            for limit in limits
        )
    )
    if crossed:
        text += " " + tr.plural("trend.days_over_limit", crossed)
    return text
