from datetime import timedelta

from gateway.alerts import AlertEngine
from gateway.settings import AlertRuleSettings
from tests.factories import bound, bp_measurement

HIGH = AlertRuleSettings(
    kind="blood_pressure",
    value="systolic",
    above=180,
    unit="mm[Hg]",
    severity="critical",
    cooldown_s=600,
)
LOW = AlertRuleSettings(kind="blood_pressure", value="systolic", below=90, unit="mm[Hg]")


def test_above_limit_raises_once_with_how_far_over():
    engine = AlertEngine([HIGH])
    [event] = engine.evaluate(bound(bp_measurement(190, 100)))
    assert event.type == "alert.raised" and event.direction == "above"
    body = event.body({"system": "sys", "value": "197001011234"})
    assert body["type"] == "alert.raised"
    assert body["data"]["exceeded_by"] == 10
    assert body["data"]["threshold"] == {"direction": "above", "limit": 180, "unit": "mm[Hg]"}
    assert body["data"]["subject"] == {"identifier": {"system": "sys", "value": "197001011234"}}
    assert body["data"]["reading_id"] == "r-1"


def test_within_limits_raises_nothing():
    assert AlertEngine([HIGH, LOW]).evaluate(bound(bp_measurement(150, 90))) == []


def test_cooldown_then_resolved_then_raised_again():
    engine = AlertEngine([HIGH])
    first = bound(bp_measurement(190), reading_id="r-1")
    assert len(engine.evaluate(first)) == 1
    again = bound(
        bp_measurement(195), reading_id="r-2", received_at=first.received_at + timedelta(seconds=60)
    )
    assert engine.evaluate(again) == []  # still high, within the cooldown
    normal = bound(
        bp_measurement(130),
        reading_id="r-3",
        received_at=first.received_at + timedelta(seconds=120),
    )
    [resolved] = engine.evaluate(normal)
    assert resolved.type == "alert.resolved"
    high_again = bound(
        bp_measurement(200),
        reading_id="r-4",
        received_at=first.received_at + timedelta(seconds=180),
    )
    assert [e.type for e in engine.evaluate(high_again)] == ["alert.raised"]


def test_after_cooldown_a_persisting_breach_alerts_again():
    engine = AlertEngine([HIGH])
    first = bound(bp_measurement(190), reading_id="r-1")
    engine.evaluate(first)
    later = bound(
        bp_measurement(190),
        reading_id="r-2",
        received_at=first.received_at + timedelta(seconds=601),
    )
    assert [e.type for e in engine.evaluate(later)] == ["alert.raised"]


def test_kpa_reading_is_converted_to_the_rule_unit():
    engine = AlertEngine([HIGH])
    [event] = engine.evaluate(bound(bp_measurement(25.0, 13.0, unit="kPa")))  # 187.5 mmHg
    assert event.unit == "mm[Hg]" and abs(event.value - 187.52) < 0.05


def test_subjects_are_tracked_separately():
    engine = AlertEngine([HIGH])
    assert len(engine.evaluate(bound(bp_measurement(190), subject_ref="s-1"))) == 1
    assert len(engine.evaluate(bound(bp_measurement(190), subject_ref="s-2"))) == 1
