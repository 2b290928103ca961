"""Window and missing-readings rules, judged by the alert engine on scripted days."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

from gateway.intake.alerts import AlertEngine
from gateway.intake.events import BoundReading
from gateway.models import Measurement, Quantity
from gateway.settings import AlertRuleSettings
from tests.factories import bound

DAY0 = datetime(2026, 11, 2, 8, 0, 0)  # device time (naive, the hub's zone)


def day(n: float) -> datetime:
    return DAY0 + timedelta(days=n)


def instant(moment: datetime) -> datetime:
    return moment.astimezone(UTC)  # a naive device time read in the hub's zone


def reading(
    kind: str,
    name: str,
    value: float,
    unit: str,
    at: datetime,
    rid: str,
    *,
    ref: str = "s-1",
    offset: float | None = None,
) -> BoundReading:
    measurement = Measurement(
        kind=kind, values={name: Quantity(value=value, unit=unit)}, measured_at=at
    )
    made = bound(measurement, reading_id=rid, subject_ref=ref, received_at=datetime.now(UTC))
    return dataclasses.replace(made, clock_offset_s=offset)


def weight(value: float, at: datetime, rid: str, **kw: Any) -> BoundReading:
    return reading("weight", "body_weight", value, "kg", at, rid, **kw)


def systolic(value: float, at: datetime, rid: str) -> BoundReading:
    return reading("blood_pressure", "systolic", value, "mm[Hg]", at, rid)


def glucose(mg_dl: float, at: datetime, rid: str) -> BoundReading:
    return reading("glucose", "glucose", mg_dl, "mg/dL", at, rid)


def rule(**keys: Any) -> AlertRuleSettings:
    return AlertRuleSettings(**keys)


RISE = rule(kind="weight", value="body_weight", rise=2.0, within="3d", unit="kg")


def run(engine: AlertEngine, readings: list[BoundReading]) -> list[tuple[str, str]]:
    """(event type, reading id) of everything the readings raised or resolved, in order."""
    return [(e.type, e.reading_id) for r in readings for e in engine.evaluate(r)]


def test_weight_gain_over_days_raises_once_with_its_window_and_readings_then_resolves():
    engine = AlertEngine([RISE])
    assert run(engine, [weight(80.0, day(0), "w0"), weight(80.4, day(1), "w1")]) == []
    assert run(engine, [weight(81.5, day(2), "w2")]) == []  # 1.5 kg: not more than 2
    [raised] = engine.evaluate(weight(82.3, day(2.5), "w3"))
    assert raised.type == "alert.raised" and raised.alert_id == "w3.g0.raised"
    body = raised.body({"system": "sys", "value": "197001011234"})["data"]
    assert body["rule"] | {} == {
        "id": "g0",
        "type": "change",
        "kind": "weight",
        "value": "body_weight",
        "unit": "kg",
        "personal": False,
        "rise": 2.0,
        "within": "3d",
    }
    assert body["observed"] == {"measure": "change", "value": 2.3, "unit": "kg"}
    assert body["threshold"] == {"direction": "rise", "limit": 2.0, "unit": "kg"}
    assert body["exceeded_by"] == 0.3
    assert [(r["reading_id"], r["value"]) for r in body["readings"]] == [("w0", 80.0), ("w3", 82.3)]
    assert body["readings"][0]["measured_at"] == instant(day(0)).isoformat()
    assert body["window"] == {
        "from": instant(day(-0.5)).isoformat(),
        "to": instant(day(2.5)).isoformat(),
        "duration": "3d",
    }
    assert run(engine, [weight(82.4, day(2.75), "w4")]) == []  # still up: said once
    assert run(engine, [weight(81.0, day(3.5), "w5")]) == [("alert.resolved", "w5")]


def test_a_fall_in_pounds_is_judged_on_readings_in_kilograms():
    engine = AlertEngine(
        [rule(kind="weight", value="body_weight", fall=4, within="2d", unit="[lb_av]")]
    )
    run(engine, [weight(80.0, day(0), "w0")])
    [raised] = engine.evaluate(weight(78.0, day(1), "w1"))  # 2 kg = 4.41 lb
    assert raised.unit == "[lb_av]" and abs(raised.value - 4.409) < 0.01
    assert raised.direction == "fall"


def test_home_blood_pressure_mean_judges_only_morning_and_evening_once_enough_readings():
    mean_rule = rule(
        kind="blood_pressure",
        value="systolic",
        mean_above=135,
        over="7d",
        min_readings=4,
        times=["06:00-10:00", "18:00-22:00"],
        unit="mm[Hg]",
    )
    engine = AlertEngine([mean_rule])
    readings = [
        systolic(150, day(0), "b0"),
        systolic(150, day(0.5), "b1"),
        systolic(150, day(1), "b2"),
    ]
    assert run(engine, readings) == []  # three readings: too few to judge
    assert run(engine, [systolic(90, day(1.2), "noon")]) == []  # 12:48: outside the times
    [raised] = engine.evaluate(systolic(146, day(1.5), "b3"))
    body = raised.body({"system": "s", "value": "v"})["data"]
    assert body["observed"] == {"measure": "mean", "value": 149.0, "unit": "mm[Hg]"}
    assert [r["reading_id"] for r in body["readings"]] == ["b0", "b1", "b2", "b3"]
    assert body["rule"]["times"] == ["06:00-10:00", "18:00-22:00"] and body["rule"]["over"] == "7d"
    lower = [systolic(120, day(2 + i / 2), f"l{i}") for i in range(4)]
    assert run(engine, lower) == [("alert.resolved", "l3")]  # mean 134.5 after the 4th


def test_repeated_low_glucose_in_mg_dl_counts_against_a_limit_in_mmol_l():
    engine = AlertEngine(
        [rule(kind="glucose", value="glucose", below=3.0, unit="mmol/L", count=3, within="7d")]
    )
    assert run(engine, [glucose(50, day(0), "g0"), glucose(110, day(1), "n1")]) == []
    assert run(engine, [glucose(52, day(2), "g1")]) == []  # two lows
    [raised] = engine.evaluate(glucose(48, day(4), "g2"))
    body = raised.body({"system": "s", "value": "v"})["data"]
    assert [r["reading_id"] for r in body["readings"]] == ["g0", "g1", "g2"]
    assert body["readings"][0]["unit"] == "mmol/L" and body["readings"][0]["value"] == 2.775
    assert run(engine, [glucose(45, day(5), "g3")]) == []  # a fourth: still the same episode
    assert run(engine, [glucose(110, day(7.5), "n2")]) == []  # g1, g2, g3 still within 7 days
    assert run(engine, [glucose(100, day(9.5), "n3")]) == [("alert.resolved", "n3")]


def test_missing_weight_raises_once_per_gap_and_resolves_when_readings_resume():
    missing = rule(kind="weight", missing_for="2d")
    engine = AlertEngine(
        [missing], subjects={"s-1": "197001011234"}, watched_kinds={"s-1": {"weight"}}
    )
    run(engine, [weight(80.0, day(0), "w0")])
    at = instant(day(0))
    assert engine.check_missing(at + timedelta(days=1)) == []
    [raised] = engine.check_missing(at + timedelta(days=2, seconds=1))
    body = raised.body({"system": "s", "value": "v"})["data"]
    assert body["readings"] == [{"reading_id": "w0", "measured_at": at.isoformat()}]
    assert body["observed"]["measure"] == "time_since_last_reading"
    assert body["rule"]["missing_for"] == "2d" and body["window"]["duration"] == "2d"
    assert engine.check_missing(at + timedelta(days=3)) == []  # the same gap: once
    assert run(engine, [weight(80.2, day(3.5), "w1")]) == [("alert.resolved", "w1")]
    assert engine.check_missing(at + timedelta(days=4.5)) == []
    [again] = engine.check_missing(at + timedelta(days=5.6))  # a new gap
    assert again.alert_id != raised.alert_id


def test_a_person_who_never_measures_is_missed_from_when_watching_began():
    engine = AlertEngine(
        [rule(kind="weight", missing_for="2d")],
        subjects={"s-1": "197001011234"},
        watched_kinds={"s-1": {"weight"}, "s-2": {"blood_pressure"}},
    )
    start = datetime(2026, 11, 2, tzinfo=UTC)
    assert engine.check_missing(start) == []
    [raised] = engine.check_missing(start + timedelta(days=2))
    assert raised.subject_ref == "s-1"  # s-2 has no scale: never missed
    assert raised.body({"system": "s", "value": "v"})["data"]["readings"] == []


def test_a_late_burst_is_judged_at_its_measured_times_not_at_arrival():
    engine = AlertEngine([RISE])
    # Ten days of slow gain arriving at once: 0.5 kg a day is never 2 kg within 3 days.
    slow = [weight(80 + 0.5 * i, day(i), f"s{i}") for i in range(10)]
    assert run(engine, slow) == []
    # A burst with a fast rise in the middle: raised once, at the reading that made it, and
    # resolved within the burst when the rise leaves the window.
    engine = AlertEngine([RISE])
    values = [80, 80, 80.5, 81.5, 82.6, 82.6, 82.4, 82.5, 82.5, 82.4]
    fast = [weight(v, day(i), f"f{i}") for i, v in enumerate(values)]
    assert run(engine, fast) == [("alert.raised", "f4"), ("alert.resolved", "f6")]


def test_a_late_reading_is_judged_at_its_own_time_and_the_newest_window_again():
    engine = AlertEngine([RISE])
    run(
        engine,
        [weight(80.0, day(0), "w0"), weight(81.0, day(2), "w2"), weight(81.5, day(2.5), "w3")],
    )
    # A reading from the day before, taken on another scale, arrives late: the newest reading's
    # window now holds a low of 79.4, so 81.5 is a rise of 2.1.
    events = engine.evaluate(weight(79.4, day(1), "late"))
    assert [(e.type, e.alert_id) for e in events] == [("alert.raised", "w3.g0.raised.late")]


def test_the_device_clock_offset_places_a_reading_at_its_true_time():
    engine = AlertEngine([RISE])
    run(engine, [weight(80.0, day(0), "w0")])
    # A scale whose clock runs two days fast shows day 5; it was measured on day 3, within
    # three days of the 80 kg reading.
    [raised] = engine.evaluate(weight(82.5, day(5), "fast", offset=2 * 86400))
    body = raised.body({"system": "s", "value": "v"})["data"]
    assert body["readings"][-1]["measured_at"] == instant(day(3)).isoformat()
    engine = AlertEngine([RISE])
    run(engine, [weight(80.0, day(0), "w0")])
    assert engine.evaluate(weight(82.5, day(5), "fast")) == []  # without an offset: too far apart


def test_a_more_severe_rule_escalates_within_the_cooldown_and_a_milder_one_stays_quiet():
    warning = rule(kind="weight", value="body_weight", rise=1.5, within="3d", severity="warning")
    critical = rule(kind="weight", value="body_weight", rise=2.5, within="3d", severity="critical")
    engine = AlertEngine([warning, critical])
    run(engine, [weight(80.0, day(0), "w0")])
    [first] = engine.evaluate(weight(81.6, day(1), "w1"))
    [second] = engine.evaluate(weight(82.6, day(1.5), "w2"))
    assert (first.severity, second.severity) == ("warning", "critical")
    assert engine.evaluate(weight(81.8, day(2), "w3")) == []  # back to the warning level: quiet


def test_own_rules_replace_the_general_ones_of_their_kind_only():
    general_mean = rule(kind="blood_pressure", value="systolic", mean_above=135, over="7d")
    own_limit = rule(kind="blood_pressure", value="systolic", above=200)
    own_rise = rule(kind="weight", value="body_weight", rise=1.0, within="3d")
    engine = AlertEngine([general_mean, RISE], {"s-1": [own_limit, own_rise]})
    [mean_alert] = engine.evaluate(systolic(150, day(0), "b0"))  # the general mean still applies
    assert mean_alert.rule.key == "g0"
    run(engine, [weight(80.0, day(0), "w0")])
    [own] = engine.evaluate(weight(81.2, day(1), "w1"))  # own 1 kg rule instead of 2 kg
    assert own.rule.key == "p1"


def restart(engine: AlertEngine, disk: dict[tuple[str, str], dict], **kw: Any) -> AlertEngine:
    """What the pipeline does: write the changes, and at the next start restore what was written."""
    for ref, slot, state in engine.take_changes():
        if state is None:
            disk.pop((ref, slot), None)
        else:
            disk[(ref, slot)] = state
    again = AlertEngine(**kw)
    again.restore([(ref, slot, state) for (ref, slot), state in disk.items()])
    return again


def test_after_a_restart_a_still_high_value_does_not_alert_again():
    config = {
        "rules": [rule(kind="blood_pressure", value="systolic", above=180, severity="critical")]
    }
    disk: dict = {}
    engine = AlertEngine(**config)
    assert len(engine.evaluate(systolic(190, day(0), "b0"))) == 1
    engine = restart(engine, disk, **config)
    assert engine.evaluate(systolic(195, day(0.01), "b1")) == []
    engine = restart(engine, disk, **config)
    assert run(engine, [systolic(120, day(0.02), "b2")]) == [("alert.resolved", "b2")]
    assert restart(engine, disk, **config) and disk == {}


def test_a_restart_in_the_middle_of_a_window_neither_repeats_nor_forgets():
    config = {
        "rules": [
            RISE,
            rule(kind="glucose", value="glucose", below=3.0, unit="mmol/L", count=3, within="7d"),
        ]
    }
    disk: dict = {}
    engine = AlertEngine(**config)
    run(engine, [glucose(50, day(0), "g0"), glucose(50, day(1), "g1"), weight(80.0, day(0), "w0")])
    engine = restart(engine, disk, **config)
    # Not forgotten: the third low within the week and the gain since day 0 both count.
    events = run(engine, [glucose(50, day(2), "g2"), weight(82.5, day(2), "w1")])
    assert events == [("alert.raised", "g2"), ("alert.raised", "w1")]
    engine = restart(engine, disk, **config)
    # Not repeated: the same episodes go on.
    assert run(engine, [glucose(50, day(3), "g3"), weight(82.6, day(2.5), "w2")]) == []
    engine = restart(engine, disk, **config)
    assert run(engine, [weight(82.0, day(4), "w3")]) == [("alert.resolved", "w3")]


def test_state_of_a_rule_no_longer_configured_is_dropped_at_start():
    disk: dict = {}
    engine = AlertEngine([RISE])
    run(engine, [weight(80.0, day(0), "w0"), weight(82.5, day(1), "w1")])
    engine = restart(engine, disk, rules=[])
    assert engine.evaluate(weight(90, day(2), "w2")) == []
    assert ("s-1", "episode/weight/body_weight/change") not in {
        (ref, slot) for ref, slot, state in engine.take_changes() if state is not None
    }


def test_forgetting_a_person_drops_their_windows():
    engine = AlertEngine([RISE])
    run(engine, [weight(80.0, day(0), "w0")])
    engine.forget("s-1")
    assert engine.take_changes() == []
    assert engine.evaluate(weight(82.5, day(1), "w1")) == []  # the 80 kg reading is gone


def test_history_on_disk_is_kept_by_day_and_only_as_far_back_as_the_windows_need():
    config = {"rules": [RISE]}
    disk: dict = {}
    engine = AlertEngine(**config)
    for n in range(40):  # a reading a day for 40 days, written after each as the pipeline does
        run(engine, [weight(80.0, day(n), f"w{n}")])
        engine = restart(engine, disk, **config)
    days = sorted(int(slot.rsplit("/", 1)[1]) for _ref, slot in disk if slot.startswith("series/"))
    newest = int(instant(day(39)).timestamp() // 86400)
    assert days[-1] == newest and newest - days[0] <= 18  # 3 days of window + 14 for late ones
    assert len(days) == len(set(days)) <= 19
    # What was kept still judges: a gain against the reading two days before the newest.
    assert run(engine, [weight(82.5, day(40), "w40")]) == [("alert.raised", "w40")]


def test_vital_interest_only_on_raised_window_alerts_of_critical_rules_that_allow_it():
    vital = rule(
        kind="glucose",
        value="glucose",
        below=3.0,
        unit="mmol/L",
        count=2,
        within="1d",
        severity="critical",
        vital_interest=True,
    )
    engine = AlertEngine([vital])
    run(engine, [glucose(45, day(0), "g0")])
    [raised] = engine.evaluate(glucose(44, day(0.1), "g1"))
    assert raised.vital_interest and raised.severity == "critical"
    [resolved] = engine.evaluate(glucose(110, day(1.5), "n1"))
    assert resolved.type == "alert.resolved" and not resolved.vital_interest


def test_a_missing_readings_alert_is_not_raised_again_after_a_restart_in_the_same_gap():
    config = {
        "rules": [rule(kind="weight", missing_for="2d")],
        "subjects": {"s-1": "197001011234"},
        "watched_kinds": {"s-1": {"weight"}},
    }
    disk: dict = {}
    engine = AlertEngine(**config)
    run(engine, [weight(80.0, day(0), "w0")])
    at = instant(day(0))
    assert len(engine.check_missing(at + timedelta(days=2, hours=1))) == 1
    engine = restart(engine, disk, **config)
    assert engine.check_missing(at + timedelta(days=4)) == []
    assert run(engine, [weight(80.1, day(4.5), "w1")]) == [("alert.resolved", "w1")]
