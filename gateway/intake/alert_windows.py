"""Window computations for alert rules: pure functions over a person's series of one value.

A series (``gateway/intake/window_series.py``) holds ``Sample``s sorted by measured time (then
reading id), with the subsets the mean's times of day and the count's limits pick. Every rule is
judged at one sample, the one at ``index``: its window holds that sample and every sample before
it (in the sorted order) measured no more than ``span`` seconds earlier, both ends included. So a
reading is always judged at its own measured time, whenever it arrived.

- change: how far the judged value rose above the lowest value in its window (``rise``), or fell
  below the highest (``fall``); the readings that made it are that extreme and the judged one.
- mean: the mean of the window's values, optionally only of those measured at given times of
  day; ``None`` (cannot judge) while the window holds fewer than ``min_readings``.
- count: how many of the window's values are beyond a limit (``> above`` or ``< below``).

Nothing here knows about rules, units, persons or storage; ``tests/test_alert_windows.py``
checks every function against a plain reference implementation on random series.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable, Sequence
from typing import NamedTuple

from gateway.intake.window_series import Sample, Series, Subset

DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400}
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
_TIME_RANGE = re.compile(r"^(\d{1,2}):(\d{2})-(\d{1,2}):(\d{2})$")
DAY_S = 86_400


class Observation(NamedTuple):  # a named tuple: one or more are made for every judgement
    """What a window shows: the amount (a change, a mean or a count) and the readings behind it."""

    amount: float
    evidence: tuple[Sample, ...]
    start: float  # the window's first instant
    end: float  # the judged sample's instant


def parse_duration(text: object) -> float:
    """``"3d"`` -> 259200.0 seconds; a duration is a positive number with s, m, h or d."""
    if not isinstance(text, str):
        raise ValueError(
            f'{text!r} is not a duration; write a number with its unit, such as "3d" or "12h"'
        )
    match = _DURATION.match(text.strip())
    if match is None or float(match.group(1)) <= 0:
        raise ValueError(
            f"{text!r} is not a duration; write a positive number followed by s, m, h or d,"
            ' such as "3d", "12h" or "90m"'
        )
    return float(match.group(1)) * DURATION_UNITS[match.group(2)]


def duration_text(seconds: float) -> str:
    """The duration as config writes it: the largest unit that divides it (``"3d"``, ``"36h"``)."""
    for unit in ("d", "h", "m"):
        size = DURATION_UNITS[unit]
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def duration_words(seconds: float) -> str:
    """The duration in plain words for a person (``"3 days"``, ``"12 hours"``)."""
    for unit, word in (("d", "day"), ("h", "hour"), ("m", "minute")):
        size = DURATION_UNITS[unit]
        if seconds >= size and seconds % size == 0:
            count = int(seconds // size)
            return f"{count} {word}{'s' if count != 1 else ''}"
    return f"{seconds:g} seconds"


def parse_time_ranges(ranges: Sequence[str]) -> tuple[tuple[int, int], ...]:
    """``["06:00-10:00", "22:00-02:00"]`` -> seconds since midnight (a range may wrap midnight)."""
    parsed = []
    for text in ranges:
        match = _TIME_RANGE.match(text.strip())
        if match is None:
            raise ValueError(f'{text!r} is not a time range; write it as "06:00-10:00"')
        h1, m1, h2, m2 = (int(part) for part in match.groups())
        if h1 > 23 or h2 > 23 or m1 > 59 or m2 > 59:
            raise ValueError(f"{text!r}: hours are 00-23 and minutes 00-59")
        start, end = h1 * 3600 + m1 * 60, h2 * 3600 + m2 * 60
        if start == end:
            raise ValueError(f"{text!r} is empty; the start and the end must differ")
        parsed.append((start, end))
    return tuple(parsed)


def in_time_ranges(day_s: int, ranges: tuple[tuple[int, int], ...]) -> bool:
    """Whether a time of day is in any range: start included, end excluded."""
    for start, end in ranges:
        if (start <= day_s < end) if start < end else (day_s >= start or day_s < end):
            return True
    return False


@functools.lru_cache(maxsize=64)
def minute_mask(ranges: tuple[tuple[int, int], ...]) -> bytes:
    """Per minute of the day, whether it is in the ranges (ranges are whole minutes)."""
    return bytes(in_time_ranges(minute * 60, ranges) for minute in range(DAY_S // 60))


def change(series: Series, index: int, span: float, direction: str) -> Observation:
    """``rise``: the judged value minus the window's lowest; ``fall``: the highest minus it."""
    values = series.values
    first = series.window_start(index, span)
    # min and max keep the first of equal values and compare as a loop with ``<`` / ``>`` would.
    extreme = (min if direction == "rise" else max)(values[first : index + 1])
    current = series.samples[index]
    amount = current.value - extreme if direction == "rise" else extreme - current.value
    at = values.index(extreme, first, index + 1)
    evidence = (current,) if at == index else (series.samples[at], current)
    return Observation(amount, evidence, current.t - span, current.t)


def mean(
    series: Series,
    index: int,
    span: float,
    times: tuple[tuple[int, int], ...] = (),
    min_readings: int = 1,
) -> Observation | None:
    """The mean of the window (of the samples taken at ``times``); None below ``min_readings``."""
    end = series.samples[index]
    if times:
        subset = at_times(series, times)
        first, last = subset.window(end.t - span, (end.t, end.reading_id))
        values, samples = subset.values, subset.samples
    else:
        first, last = series.window_start(index, span), index + 1
        values, samples = series.values, series.samples
    held = last - first
    if not held or held < min_readings:
        return None
    amount = math.fsum(values[first:last]) / held
    return Observation(amount, tuple(samples[first:last]), end.t - span, end.t)


def count(
    series: Series, index: int, span: float, above: float | None, below: float | None
) -> Observation:
    """How many samples in the window are above ``above`` or below ``below``."""
    end = series.samples[index]
    subset = beyond(series, above, below)
    first, last = subset.window(end.t - span, (end.t, end.reading_id))
    return Observation(float(last - first), tuple(subset.samples[first:last]), end.t - span, end.t)


def at_times(series: Series, times: tuple[tuple[int, int], ...]) -> Subset:
    """The series' samples taken at the given times of day."""
    mask = minute_mask(times)
    return series.subset(("times", times), lambda sample: bool(mask[sample.day_s // 60]))


def beyond(series: Series, above: float | None, below: float | None) -> Subset:
    """The series' samples above ``above`` or below ``below`` (in the series' unit)."""
    return series.subset(("beyond", above, below), _beyond_test(above, below))


def _beyond_test(above: float | None, below: float | None) -> Callable[[Sample], bool]:
    if below is None:
        if above is None:
            return lambda sample: False
        return lambda sample: sample.value > above
    if above is None:
        return lambda sample: sample.value < below
    return lambda sample: sample.value > above or sample.value < below
