"""The incremental window structure agrees with sorting and filtering everything again.

Samples arrive out of order (late bursts, a reading from another scale), the series forgets its
oldest days, and subsets (a mean's times of day, a count's readings beyond a limit) are asked for
at any moment: after every step, the series and each subset hold exactly what a plain sort and
filter of the samples kept would.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.intake.alert_windows import (
    DAY_S,
    Sample,
    Series,
    at_times,
    beyond,
    minute_mask,
    parse_time_ranges,
)
from gateway.intake.window_series import order

instants = st.integers(min_value=0, max_value=30 * 24).map(lambda h: float(h * 3600))
values = st.floats(min_value=2, max_value=25, allow_nan=False).map(lambda v: round(v, 1))
rows = st.tuples(instants, values, st.integers(min_value=0, max_value=DAY_S - 1))
# One step: a sample arrives, the series is trimmed at an instant, or a subset is asked for.
steps = st.lists(
    st.one_of(
        st.tuples(st.just("insert"), rows),
        st.tuples(st.just("trim"), instants),
        st.tuples(st.just("times"), st.sampled_from(["06:00-10:00", "22:00-02:00", "12:00-13:30"])),
        st.tuples(st.just("beyond"), st.tuples(st.none() | values, st.none() | values)),
    ),
    max_size=80,
)


def passes(sample: Sample, name: tuple) -> bool:
    if name[0] == "times":
        return bool(minute_mask(parse_time_ranges([name[1]]))[sample.day_s // 60])
    above, below = name[1]
    return (above is not None and sample.value > above) or (
        below is not None and sample.value < below
    )


@settings(max_examples=400, deadline=None)
@given(steps)
def test_a_series_grown_out_of_order_and_trimmed_matches_a_fresh_sort(script):
    series = Series("mmol/L")
    held: list[Sample] = []  # the reference: everything inserted and not trimmed
    asked: list[tuple] = []
    for number, (step, argument) in enumerate(script):
        if step == "insert":
            t, value, day_s = argument
            sample = Sample(t, value, f"r-{number:03d}", day_s)
            index = series.insert(sample)
            held.append(sample)
            ordered = sorted(held, key=order)
            assert series.samples[index] == sample
            assert index == max(k for k, s in enumerate(ordered) if s == sample)
        elif step == "trim":
            series.trim(argument)
            held = [s for s in held if s.t >= argument]
        else:
            name = (step, argument)
            if step == "times":
                at_times(series, parse_time_ranges([argument]))
            else:
                beyond(series, *argument)
            asked.append(name)
        ordered = sorted(held, key=order)
        assert series.samples == ordered
        assert series.times == [s.t for s in ordered]
        assert series.values == [s.value for s in ordered]
        assert series.keys == [order(s) for s in ordered]
        for name in asked:
            if name[0] == "times":
                subset = at_times(series, parse_time_ranges([name[1]]))
            else:
                subset = beyond(series, *name[1])
            expected = [s for s in ordered if passes(s, name)]
            assert subset.samples == expected
            assert subset.times == [s.t for s in expected]
            assert subset.values == [s.value for s in expected]


@settings(max_examples=300, deadline=None)
@given(st.lists(rows, min_size=1, max_size=60), st.data())
def test_a_subset_window_holds_the_samples_between_its_start_and_the_judged_sample(rows_, data):
    series = Series("kg")
    for number, (t, value, day_s) in enumerate(rows_):
        series.insert(Sample(t, value, f"r-{number:03d}", day_s))
    subset = beyond(series, 10.0, 5.0)
    index = data.draw(st.integers(0, len(series) - 1))
    start = data.draw(instants)
    first, last = subset.window(start, series.keys[index])
    judged = series.keys[index]
    expected = [s for s in subset.samples if s.t >= start and order(s) <= judged]
    assert subset.samples[first:last] == expected
