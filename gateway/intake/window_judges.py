"""One window rule made ready to judge a series: its limits, units and subset worked out once.

A rule's limit is in the rule's unit and a series is kept in one unit; converting a count's
limits, or deciding that the amount needs no conversion (the usual case: the rule's unit is the
series'), is done when a series first meets the rule, not per reading. The samples the rule looks
at in part (a mean's times of day, a count's readings beyond its limit) are kept by the series as
a subset from then on.

Three ways to ask, with the same outcome:

- ``holds``: what the engine asks for every reading: whether the rule holds. Most readings end
  there (nothing holds and nothing was raised).
- ``quick``: the judgement (whether it holds, by how much) without its evidence, to pick the rule
  that speaks and to decide whether anything is raised or resolved.
- ``judge``: the rule's definition (``gateway/intake/alert_windows.py``) with its evidence (the
  readings that made it), for the judgements that raise or resolve an alert.

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
        "_count_limits",
        "_limit",
        "_same_unit",
        "_series",
        "_subset",
        "amount",
        "direction",
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
        # Held when the amount is above ``_above`` or below ``_below`` (a mean), or above or at
        # least ``_limit`` (a change, a count).
        self._above: float | None = None
        self._below: float | None = None
        self._count_limits: tuple[float | None, float | None] = (None, None)
        self._limit = 0.0
        self.direction = ""
        # The amount the rule judges at a sample, in its unit; None where it cannot judge.
        self.amount: Callable[[int], float | None] = _cannot
        try:
            convert(0.0, series.unit, self.unit)
            if rule.type == "change":
                self.direction = "rise" if settings.rise is not None else "fall"
                self._limit = float(
                    settings.rise if settings.rise is not None else settings.fall or 0.0
                )
                self.amount = self._change
            elif rule.type == "mean":
                self._above, self._below = settings.mean_above, settings.mean_below
                self._subset = at_times(series, rule.times) if rule.times else None
                self.amount = self._mean
            elif rule.type == "count":
                above, below = settings.above, settings.below
                above = None if above is None else convert(above, self.unit, series.unit)
                below = None if below is None else convert(below, self.unit, series.unit)
                self._limit = float(settings.count or 1)
                self._count_limits = (above, below)  # in the series' unit
                self._subset = beyond(series, above, below)
                self.amount = self._count
        except UnitError:
            pass  # the rule's unit and the series' do not convert: it cannot judge

    def holds(self, index: int) -> bool:
        """Whether the rule holds at the series' sample at ``index`` (what most readings need
        to know: when no rule holds and none was raised, nothing else is asked)."""
        amount = self.amount(index)
        if amount is None:
            return False
        type_ = self.rule.type
        if type_ == "count":
            return amount >= self._limit
        if type_ == "change":
            return amount > self._limit
        above, below = self._above, self._below
        return (above is not None and amount > above) or (below is not None and amount < below)

    def quick(self, index: int) -> Judgement | None:
        """The rule judged at the series' sample at ``index``, without its evidence."""
        amount = self.amount(index)
        return None if amount is None else self._judgement(amount, None)

    def judge(self, index: int) -> Judgement | None:
        """The rule judged at the series' sample at ``index``, with its evidence (the rule's
        definition, ``gateway/intake/alert_windows.py``)."""
        if self.amount is _cannot:
            return None
        rule, series = self.rule, self._series
        observation: Observation | None
        if rule.type == "change":
            observation = change(series, index, rule.span, self.direction)
            return self._judgement(self._difference(observation.amount), observation)
        if rule.type == "mean":
            observation = mean(series, index, rule.span, rule.times, rule.settings.min_readings)
            if observation is None:
                return None
            return self._judgement(self._in_rule_unit(observation.amount), observation)
        observation = count(series, index, rule.span, *self._count_limits)
        return self._judgement(observation.amount, observation)

    def _judgement(self, amount: float, observation: Observation | None) -> Judgement:
        rule, unit = self.rule, self.unit
        if rule.type == "change":
            limit = self._limit
            return Judgement(rule, amount > limit, self.direction, amount, limit, unit, observation)
        if rule.type == "count":
            limit = self._limit
            return Judgement(rule, amount >= limit, "at_least", amount, limit, unit, observation)
        above, below = self._above, self._below
        if above is not None and amount > above:
            return Judgement(rule, True, "above", amount, above, unit, observation)
        if below is not None and amount < below:
            return Judgement(rule, True, "below", amount, below, unit, observation)
        limit = above if above is not None else below
        direction = "above" if above is not None else "below"
        return Judgement(rule, False, direction, amount, float(limit or 0.0), unit, observation)

    def _change(self, index: int) -> float:
        series = self._series
        values = series.values
        first = bisect.bisect_left(series.times, series.times[index] - self.rule.span, 0, index + 1)
        current = values[index]
        if self.direction == "rise":
            return self._difference(current - min(values[first : index + 1]))
        return self._difference(max(values[first : index + 1]) - current)

    def _mean(self, index: int) -> float | None:
        series, subset = self._series, self._subset
        times = series.times
        start = times[index] - self.rule.span
        if subset is None:
            values = series.values
            first, last = bisect.bisect_left(times, start, 0, index + 1), index + 1
        else:
            values = subset.values
            first = bisect.bisect_left(subset.times, start)
            if index == len(times) - 1:  # the newest: every sample of the subset is before it
                last = len(values)
            else:
                last = bisect.bisect_right(subset.keys, series.keys[index], first)
        held = last - first
        if not held or held < self.rule.settings.min_readings:
            return None
        amount = math.fsum(values[first:last]) / held
        return amount if self._same_unit else self._in_rule_unit(amount)

    def _count(self, index: int) -> float:
        series, subset = self._series, self._subset
        assert subset is not None
        times = series.times
        first = bisect.bisect_left(subset.times, times[index] - self.rule.span)
        if index == len(times) - 1:  # the newest: every sample of the subset is before it
            return float(len(subset.times) - first)
        return float(bisect.bisect_right(subset.keys, series.keys[index], first) - first)

    def _in_rule_unit(self, amount: float) -> float:
        return amount if self._same_unit else convert(amount, self._series.unit, self.unit)

    def _difference(self, amount: float) -> float:
        """A difference of two values in the rule's unit (an offset cancels: 1 Cel apart is
        1.8 degF apart)."""
        if self._same_unit:
            return amount - 0.0  # what the conversion below gives within one unit, exactly
        source, target = self._series.unit, self.unit
        return convert(amount, source, target) - convert(0.0, source, target)


def _cannot(index: int) -> None:
    return None
