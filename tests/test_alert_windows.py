"""The window computations agree with a plain reference implementation on random series."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.intake.alert_windows import (
    DAY_S,
    Sample,
    Series,
    change,
    count,
    duration_text,
    in_time_ranges,
    mean,
    parse_duration,
    parse_time_ranges,
)

# Instants on a coarse grid (whole hours over 30 days) so that ties and window edges happen.
instants = st.integers(min_value=0, max_value=30 * 24).map(lambda h: float(h * 3600))
values = st.floats(min_value=20, max_value=250, allow_nan=False).map(lambda v: round(v, 1))
samples = st.lists(
    st.tuples(instants, values, st.integers(min_value=0, max_value=DAY_S - 1)),
    min_size=1,
    max_size=60,
).map(lambda rows: [Sample(t, v, f"r-{i:03d}", d) for i, (t, v, d) in enumerate(rows)])
spans = st.integers(min_value=1, max_value=10 * 24).map(lambda h: float(h * 3600))
ranges = st.lists(
    st.tuples(st.integers(0, 23 * 60 + 59), st.integers(0, 23 * 60 + 59))
    .filter(lambda r: r[0] != r[1])
    .map(lambda r: f"{r[0] // 60:02d}:{r[0] % 60:02d}-{r[1] // 60:02d}:{r[1] % 60:02d}"),
    max_size=3,
)


def reference_window(ordered: list[Sample], index: int, span: float) -> list[Sample]:
    """Every sample up to the judged one (in order) measured at most ``span`` before it."""
    end = ordered[index].t
    return [s for k, s in enumerate(ordered) if k <= index and end - span <= s.t]


def reference_in_ranges(day_s: int, texts: list[str]) -> bool:
    for text in texts:
        start_text, end_text = text.split("-")
        start = int(start_text[:2]) * 3600 + int(start_text[3:]) * 60
        end = int(end_text[:2]) * 3600 + int(end_text[3:]) * 60
        if (day_s - start) % DAY_S < (end - start) % DAY_S:  # distance past the start, mod a day
            return True
    return False


def ordered_series(rows: list[Sample]) -> tuple[Series, list[Sample]]:
    series = Series("kg")
    for sample in rows:  # inserted one by one, in arrival order, as readings come
        series.insert(sample)
    return series, sorted(rows, key=lambda s: (s.t, s.reading_id))


@settings(max_examples=300, deadline=None)
@given(samples, st.data())
def test_insert_keeps_the_series_in_measured_order(rows, data):
    series, ordered = ordered_series(rows)
    assert series.samples == ordered
    cut = data.draw(instants)
    series.trim(cut)
    assert series.samples == [s for s in ordered if s.t >= cut]


@settings(max_examples=300, deadline=None)
@given(samples, spans, st.data(), st.sampled_from(["rise", "fall"]))
def test_change_agrees_with_the_reference(rows, span, data, direction):
    series, ordered = ordered_series(rows)
    index = data.draw(st.integers(0, len(ordered) - 1))
    window = reference_window(ordered, index, span)
    current = ordered[index]
    if direction == "rise":
        expected = current.value - min(s.value for s in window)
    else:
        expected = max(s.value for s in window) - current.value
    observed = change(series, index, span, direction)
    assert observed.amount == pytest.approx(expected)
    assert observed.evidence[-1] == current
    assert all(s in window for s in observed.evidence)
    extreme = observed.evidence[0]
    assert current.value - extreme.value == pytest.approx(
        expected if direction == "rise" else -expected
    )
    assert (observed.start, observed.end) == (current.t - span, current.t)


@settings(max_examples=300, deadline=None)
@given(samples, spans, st.data(), ranges, st.integers(1, 8))
def test_mean_agrees_with_the_reference(rows, span, data, times, min_readings):
    series, ordered = ordered_series(rows)
    index = data.draw(st.integers(0, len(ordered) - 1))
    window = [
        s
        for s in reference_window(ordered, index, span)
        if not times or reference_in_ranges(s.day_s, times)
    ]
    observed = mean(series, index, span, parse_time_ranges(times), min_readings)
    if len(window) < min_readings or not window:
        assert observed is None
        return
    assert observed is not None
    assert observed.amount == pytest.approx(sum(s.value for s in window) / len(window))
    assert list(observed.evidence) == window


@settings(max_examples=300, deadline=None)
@given(
    samples,
    spans,
    st.data(),
    st.one_of(st.none(), values),
    st.one_of(st.none(), values),
)
def test_count_agrees_with_the_reference(rows, span, data, above, below):
    series, ordered = ordered_series(rows)
    index = data.draw(st.integers(0, len(ordered) - 1))
    beyond = [
        s
        for s in reference_window(ordered, index, span)
        if (above is not None and s.value > above) or (below is not None and s.value < below)
    ]
    observed = count(series, index, span, above, below)
    assert observed.amount == len(beyond)
    assert list(observed.evidence) == beyond


@settings(max_examples=500, deadline=None)
@given(st.integers(0, DAY_S - 1), ranges)
def test_times_of_day_agree_with_the_reference(day_s, times):
    assert in_time_ranges(day_s, parse_time_ranges(times)) == reference_in_ranges(day_s, times)


@given(st.integers(1, 10_000), st.sampled_from("smhd"))
def test_a_duration_reads_back_as_the_same_length(number, unit):
    seconds = parse_duration(f"{number}{unit}")
    assert seconds == number * {"s": 1, "m": 60, "h": 3600, "d": 86400}[unit]
    assert parse_duration(duration_text(seconds)) == seconds


@pytest.mark.parametrize("text", ["3", "3 days", "d", "-1d", "0h", "1w", "", "3D"])
def test_a_duration_without_a_known_unit_is_refused_with_an_example(text):
    with pytest.raises(ValueError, match='such as "3d"'):
        parse_duration(text)


def test_a_time_range_may_wrap_midnight():
    night = parse_time_ranges(["22:00-02:00"])
    assert in_time_ranges(23 * 3600, night) and in_time_ranges(3600, night)
    assert not in_time_ranges(12 * 3600, night) and not in_time_ranges(2 * 3600, night)


def test_the_mean_of_an_empty_filtered_window_cannot_judge():
    series = Series("mm[Hg]", [Sample(0.0, 150.0, "r-1", 12 * 3600)])
    assert mean(series, 0, 86400.0, parse_time_ranges(["06:00-10:00"])) is None
    assert math.isclose(mean(series, 0, 86400.0).amount, 150.0)
