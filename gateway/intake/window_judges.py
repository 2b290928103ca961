"""One window rule made ready to judge a series: its limits, units and subset worked out once.

A rule's limit is in the rule's unit and a series is kept in one unit; converting a count's
limits, or deciding that the amount needs no conversion (the usual case: the rule's unit is the
series'), is done when a series first meets the rule, not per reading. The samples the rule looks
at in part (a mean's times of day, a count's readings beyond its limit) are kept by the series as
a subset from then on.

Two ways to judge, with the same outcome:

- ``quick``: what the engine asks for every reading: whether the rule holds, and by how much. It
  builds no evidence (the readings that made it): most judgements change nothing.
- ``judge``: the rule's definition (``gateway/intake/alert_windows.py``) with its evidence, for
  the judgements that raise or resolve an alert.

``tests/test_window_judges.py`` checks that they agree on random series that grow out of order
and are trimmed.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable

from gateway.intake.alert_windows import Observation, at_times, beyond, change, count, mean
from gateway.intake.window_alert_event import Judgement, WindowRule
from gateway.intake.window_series import Series, Subset
from gateway.units import UnitError, convert


class WindowJudge:
    """A change, mean or count rule bound to one series (and its unit)."""

    __slots__ = (
        "_above",
        "_below",
        "_direction",
        "_limit",
        "_needed",
        "_same_unit",
        "_series",
        "_subset",
        "quick",
        "rule",
        "unit",
    )

    def __init__(self, rule: WindowRule, series: Series) -> None:
        settings = rule.settings
        self.rule = rule
        self.unit = settings.unit or series.unit
        self._series = series
        self._same_unit = self.unit == series.unit
        self._subset: Subset | None = None
        self._above: float | None = None
        self._below: float | None = None
        self._limit = self._needed = 0.0
        self._direction = ""
        self.quick: Callable[[int], Judgement | None] = self._cannot
        try:
            convert(0.0, series.unit, self.unit)
            if rule.type == "change":
                self._direction = "rise" if settings.rise is not None else "fall"
                self._limit = float(
                    settings.rise if settings.rise is not None else settings.fall or 0.0
                )
                self.quick = self._quick_change
            elif rule.type == "mean":
                self._subset = at_times(series, rule.times) if rule.times else None
                self.quick = self._quick_mean
            elif rule.type == "count":
                above, below = settings.above, settings.below
                self._above = None if above is None else convert(above, self.unit, series.unit)
                self._below = None if below is None else convert(below, self.unit, series.unit)
                self._needed = float(settings.count or 1)
                self._subset = beyond(series, self._above, self._below)
                self.quick = self._quick_count
        except UnitError:
            pass  # the rule's unit and the series' do not convert: it cannot judge

    def judge(self, index: int) -> Judgement | None:
        """The rule judged at the series' sample at ``index``, with its evidence."""
        if self.quick is self._cannot:
            return None
        rule, series = self.rule, self._series
        if rule.type == "change":
            observation = change(series, index, rule.span, self._direction)
            amount = self._difference(observation.amount)
            limit = self._limit
            return Judgement(
                rule, amount > limit, self._direction, amount, limit, self.unit, observation
            )
        if rule.type == "mean":
            found = mean(series, index, rule.span, rule.times, rule.settings.min_readings)
            if found is None:
                return None
            return self._mean_judgement(found.amount, found)
        observation = count(series, index, rule.span, self._above, self._below)
        needed = self._needed
        return Judgement(
            rule,
            observation.amount >= needed,
            "at_least",
            observation.amount,
            needed,
            self.unit,
            observation,
        )

    def _cannot(self, index: int) -> None:
        return None

    def _quick_change(self, index: int) -> Judgement:
        series = self._series
        values = series.values
        first = bisect.bisect_left(series.times, series.times[index] - self.rule.span, 0, index + 1)
        current = values[index]
        if self._direction == "rise":
            amount = self._difference(current - min(values[first : index + 1]))
        else:
            amount = self._difference(max(values[first : index + 1]) - current)
        limit = self._limit
        return Judgement(self.rule, amount > limit, self._direction, amount, limit, self.unit, None)

    def _quick_mean(self, index: int) -> Judgement | None:
        series, subset = self._series, self._subset
        start = series.times[index] - self.rule.span
        if subset is None:
            values = series.values
            first, last = bisect.bisect_left(series.times, start, 0, index + 1), index + 1
        else:
            values = subset.values
            first, last = _subset_window(series, subset, index, start)
        held = last - first
        if not held or held < self.rule.settings.min_readings:
            return None
        return self._mean_judgement(math.fsum(values[first:last]) / held, None)

    def _quick_count(self, index: int) -> Judgement:
        series, subset = self._series, self._subset
        assert subset is not None
        first, last = _subset_window(series, subset, index, series.times[index] - self.rule.span)
        amount, needed = float(last - first), self._needed
        return Judgement(self.rule, amount >= needed, "at_least", amount, needed, self.unit, None)

    def _mean_judgement(self, amount: float, observation: Observation | None) -> Judgement:
        if not self._same_unit:
            amount = convert(amount, self._series.unit, self.unit)
        rule, unit = self.rule, self.unit
        above, below = rule.settings.mean_above, rule.settings.mean_below
        if above is not None and amount > above:
            return Judgement(rule, True, "above", amount, above, unit, observation)
        if below is not None and amount < below:
            return Judgement(rule, True, "below", amount, below, unit, observation)
        limit = above if above is not None else below
        direction = "above" if above is not None else "below"
        return Judgement(rule, False, direction, amount, float(limit or 0.0), unit, observation)

    def _difference(self, amount: float) -> float:
        """A difference of two values in the rule's unit (an offset cancels: 1 Cel apart is
        1.8 degF apart)."""
        if self._same_unit:
            return amount - 0.0  # what the conversion below gives within one unit, exactly
        source, target = self._series.unit, self.unit
        return convert(amount, source, target) - convert(0.0, source, target)


def _subset_window(series: Series, subset: Subset, index: int, start: float) -> tuple[int, int]:
    """The subset's samples measured from ``start`` up to the series' sample at ``index``."""
    first = bisect.bisect_left(subset.times, start)
    if index == len(series.keys) - 1:  # the newest sample: every sample of the subset is before it
        return first, len(subset.keys)
    return first, bisect.bisect_right(subset.keys, series.keys[index], first)
