"""A rule's quick judgements (what the engine asks per reading) agree with its full definition.

The engine asks every reading ``WindowJudge.holds``, then ``quick`` (no evidence built) when a
rule holds or an alert is raised, and judges again with ``judge`` only when an alert is raised or
resolved; all must say the same thing. Random rules of every window type, in the series' unit
or another, over random series that grow out of order (late readings) and forget their oldest
days, judged at the reading that arrived and at the newest, as the engine does; the full
judgement is also checked against a plain reference computed from the samples kept.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.intake.alert_windows import DAY_S, minute_mask
from gateway.intake.window_alert_event import WindowRule
from gateway.intake.window_judges import WindowJudge
from gateway.intake.window_series import Sample, Series, order
from gateway.settings import AlertRuleSettings
from gateway.units import convert

instants = st.integers(min_value=0, max_value=20 * 24).map(lambda h: float(h * 3600))
values = st.floats(min_value=2, max_value=25, allow_nan=False).map(lambda v: round(v, 1))
arrivals = st.lists(
    st.tuples(instants, values, st.integers(min_value=0, max_value=DAY_S - 1)),
    min_size=1,
    max_size=50,
)
windows = st.sampled_from(["6h", "1d", "3d", "7d"])
rules = st.one_of(
    st.builds(
        lambda amount, within, fall: AlertRuleSettings(
            kind="glucose",
            value="glucose",
            within=within,
            unit="mmol/L",
            **{"fall" if fall else "rise": amount},
        ),
        st.floats(0.5, 8).map(lambda v: round(v, 1)),
        windows,
        st.booleans(),
    ),
    st.builds(
        lambda limit, over, times, least, below: AlertRuleSettings(
            kind="glucose",
            value="glucose",
            over=over,
            times=times or None,
            min_readings=least,
            unit="mmol/L",
            **{"mean_below" if below else "mean_above": limit},
        ),
        values,
        windows,
        st.lists(st.sampled_from(["06:00-10:00", "22:00-02:00", "11:00-19:30"]), max_size=2),
        st.integers(1, 6),
        st.booleans(),
    ),
    st.builds(
        lambda limit, needed, within, below: AlertRuleSettings(
            kind="glucose",
            value="glucose",
            count=needed,
            within=within,
            unit="mmol/L",
            **{"below" if below else "above": limit},
        ),
        values,
        st.integers(1, 5),
        windows,
        st.booleans(),
    ),
)


def reference(rule: WindowRule, kept: list[Sample], judged: Sample, unit: str) -> tuple | None:
    """(held, amount) from the samples kept, sorted and filtered from scratch. Values are
    compared in the series' unit (``unit``), as the rules define: a count's limits are
    converted to it, a mean or a change is converted from it to the rule's unit."""
    window = [s for s in kept if judged.t - rule.span <= s.t and order(s) <= order(judged)]
    settings_ = rule.settings
    if rule.type == "change":
        if settings_.rise is not None:
            amount = convert(judged.value - min(s.value for s in window), unit, "mmol/L")
            return amount > settings_.rise, amount
        amount = convert(max(s.value for s in window) - judged.value, unit, "mmol/L")
        return amount > settings_.fall, amount
    if rule.type == "mean":
        if rule.times:
            mask = minute_mask(rule.times)
            window = [s for s in window if mask[s.day_s // 60]]
        if not window or len(window) < settings_.min_readings:
            return None
        amount = convert(math.fsum(s.value for s in window) / len(window), unit, "mmol/L")
        if settings_.mean_above is not None:
            return amount > settings_.mean_above, amount
        return amount < settings_.mean_below, amount
    above = None if settings_.above is None else convert(settings_.above, "mmol/L", unit)
    below = None if settings_.below is None else convert(settings_.below, "mmol/L", unit)
    beyond = [
        s
        for s in window
        if (above is not None and s.value > above) or (below is not None and s.value < below)
    ]
    return len(beyond) >= settings_.count, float(len(beyond))


@settings(max_examples=400, deadline=None)
@given(rules, arrivals, st.sampled_from(["mmol/L", "mg/dL"]), st.data())
def test_the_quick_judgement_agrees_with_the_full_one_and_the_reference(
    settings_, rows, series_unit, data
):
    rule = WindowRule.of("g0", settings_)
    series = Series(series_unit)
    judge = WindowJudge(rule, series)  # bound before any sample, as for a person's first reading
    kept: list[Sample] = []
    for number, (t, value, day_s) in enumerate(rows):
        if data.draw(st.integers(0, 9)) == 0:  # now and then the oldest days are forgotten
            cut = (max(s.t for s in kept) - 2 * DAY_S) // DAY_S * DAY_S if kept else 0.0
            series.trim(cut)
            kept = [s for s in kept if s.t >= cut]
        sample = Sample(t, convert(value, "mmol/L", series_unit), f"r-{number:03d}", day_s)
        index = series.insert(sample)
        kept.append(sample)
        for at in {index, len(series) - 1}:  # the late reading's own time, and the newest
            quick, full, holds = judge.quick(at), judge.judge(at), judge.holds(at)
            assert holds == (quick is not None and quick.held)
            expected = reference(rule, sorted(kept, key=order), series.samples[at], series_unit)
            if expected is None:
                assert quick is None and full is None
                continue
            assert quick is not None and full is not None
            assert quick._replace(observation=None) == full._replace(observation=None)
            assert quick.observation is None and full.observation is not None
            assert full.held == expected[0]
            assert full.amount == pytest.approx(expected[1], abs=1e-9)
