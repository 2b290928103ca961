"""Restarts anywhere in a random series change nothing the window rules say.

Random readings over weeks, some arriving late (out of measured order) and some so late that the
oldest days have been forgotten, go through one engine that runs throughout and through another
that writes its state after every batch and is restarted from what was written at random points
(as after a kill -9 between batches): both raise and resolve exactly the same alerts.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.intake.alerts import AlertEngine
from tests.test_window_alerts import RISE, day, glucose, restart, rule, systolic, weight

CONFIG = {
    "rules": [
        RISE,
        rule(kind="glucose", value="glucose", below=3.0, unit="mmol/L", count=2, within="2d"),
        rule(
            kind="blood_pressure",
            value="systolic",
            mean_above=135,
            over="3d",
            times=["05:00-11:00"],
            min_readings=2,
        ),
    ]
}
MAKERS = {"weight": (weight, 78.0, 84.0), "glucose": (glucose, 40.0, 120.0)}
readings = st.lists(
    st.tuples(
        st.sampled_from(["weight", "glucose", "systolic"]),
        st.integers(0, 40 * 24),  # the hour it was measured, over 40 days
        st.floats(0, 1),
        st.integers(0, 3),  # 0: a batch ends after it
        st.sampled_from([0, 0, 0, 200, 500]),  # hours late: most on time, some a week or three
    ),
    min_size=1,
    max_size=60,
)


@settings(max_examples=150, deadline=None)
@given(readings, st.data())
def test_restarting_between_batches_raises_and_resolves_the_same_alerts(script, data):
    script = sorted(script, key=lambda row: row[1] + row[4])  # arrival order
    steady = AlertEngine(**CONFIG)
    disk: dict = {}
    restarted = AlertEngine(**CONFIG)
    said_steady, said_restarted = [], []
    for number, (kind, hour, fraction, end, _late) in enumerate(script):
        at = day(hour / 24)
        if kind == "systolic":
            made = systolic(120 + 30 * fraction, at, f"r{number}")
        else:
            maker, low, high = MAKERS[kind]
            made = maker(low + (high - low) * fraction, at, f"r{number}")
        said_steady += [(e.type, e.alert_id) for e in steady.evaluate(made)]
        said_restarted += [(e.type, e.alert_id) for e in restarted.evaluate(made)]
        if end == 0:
            steady.take_changes()
            if data.draw(st.booleans()):
                restarted = restart(restarted, disk, **CONFIG)
            else:
                restart(restarted, disk, **CONFIG)  # written, not restarted
    assert said_restarted == said_steady
