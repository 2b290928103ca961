from datetime import timedelta

from gateway.intake.alerts import AlertEngine
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
ELEVATED = AlertRuleSettings(
    kind="blood_pressure",
    value="systolic",
    above=160,
    unit="mm[Hg]",
    severity="warning",
    cooldown_s=600,
)
LOW = AlertRuleSettings(kind="blood_pressure", value="systolic", below=90, unit="mm[Hg]")


def later(first, seconds, systolic, reading_id):
    return bound(
        bp_measurement(systolic),
        reading_id=reading_id,
        received_at=first.received_at + timedelta(seconds=seconds),
    )


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
    assert body["data"]["rule"]["id"] == "g0" and body["data"]["rule"]["personal"] is False


def test_within_limits_raises_nothing():
    assert AlertEngine([HIGH, LOW]).evaluate(bound(bp_measurement(150, 90))) == []


def test_cooldown_then_resolved_then_raised_again():
    engine = AlertEngine([HIGH])
    first = bound(bp_measurement(190), reading_id="r-1")
    assert len(engine.evaluate(first)) == 1
    assert engine.evaluate(later(first, 60, 195, "r-2")) == []  # still high, within cooldown
    [resolved] = engine.evaluate(later(first, 120, 130, "r-3"))
    assert resolved.type == "alert.resolved" and resolved.alert_id == "r-3.g0.resolved"
    assert [e.type for e in engine.evaluate(later(first, 180, 200, "r-4"))] == ["alert.raised"]


def test_after_cooldown_a_persisting_breach_alerts_again():
    engine = AlertEngine([HIGH])
    first = bound(bp_measurement(190), reading_id="r-1")
    engine.evaluate(first)
    assert [e.type for e in engine.evaluate(later(first, 601, 190, "r-2"))] == ["alert.raised"]


def test_rising_severity_alerts_within_cooldown_but_falling_does_not():
    engine = AlertEngine([ELEVATED, HIGH])
    first = bound(bp_measurement(170), reading_id="r-1")
    [warning] = engine.evaluate(first)
    assert warning.severity == "warning"
    [critical] = engine.evaluate(later(first, 30, 190, "r-2"))
    assert critical.severity == "critical" and critical.rule.key == "g1"
    assert engine.evaluate(later(first, 60, 170, "r-3")) == []  # back to warning level: quiet


def test_the_most_severe_breached_rule_speaks():
    [event] = AlertEngine([ELEVATED, HIGH]).evaluate(bound(bp_measurement(200)))
    assert event.severity == "critical" and event.limit == 180


def test_personal_rules_replace_the_general_ones_for_that_person():
    personal = AlertRuleSettings(
        kind="blood_pressure", value="systolic", above=140, severity="warning"
    )
    engine = AlertEngine([HIGH], {"s-1": [personal]})
    [mine] = engine.evaluate(bound(bp_measurement(150), subject_ref="s-1"))
    assert mine.rule.key == "p0" and mine.limit == 140
    assert engine.evaluate(bound(bp_measurement(150), subject_ref="s-2")) == []


def test_kpa_reading_is_converted_to_the_rule_unit():
    engine = AlertEngine([HIGH])
    [event] = engine.evaluate(bound(bp_measurement(25.0, 13.0, unit="kPa")))  # 187.5 mmHg
    assert event.unit == "mm[Hg]" and abs(event.value - 187.52) < 0.05


def test_subjects_are_tracked_separately():
    engine = AlertEngine([HIGH])
    assert len(engine.evaluate(bound(bp_measurement(190), subject_ref="s-1"))) == 1
    assert len(engine.evaluate(bound(bp_measurement(190), subject_ref="s-2"))) == 1


def test_vital_interest_only_on_raised_alerts_of_rules_that_allow_it():
    vital = AlertRuleSettings(
        kind="blood_pressure", value="systolic", above=180, severity="critical", vital_interest=True
    )
    engine = AlertEngine([vital])
    first = bound(bp_measurement(190), reading_id="r-1")
    [raised] = engine.evaluate(first)
    assert raised.vital_interest
    [resolved] = engine.evaluate(later(first, 10, 120, "r-2"))
    assert not resolved.vital_interest


def test_may_breach_asks_every_rule_including_other_peoples_and_converts_units():
    strict = AlertRuleSettings(kind="blood_pressure", value="systolic", above=140, unit="mm[Hg]")
    engine = AlertEngine([HIGH], {"s-2": [strict]})
    assert engine.may_breach(bp_measurement(150))  # s-2's own limit: urgent for anyone
    assert not engine.may_breach(bp_measurement(130))
    assert engine.may_breach(bp_measurement(25.5, 12, unit="kPa"))  # 191 mmHg
    assert not AlertEngine([]).may_breach(bp_measurement(250))


def test_an_older_in_range_reading_judged_after_a_newer_breach_does_not_resolve_it():
    """The urgent lane can judge a high reading before in-range ones that arrived earlier."""
    engine = AlertEngine([HIGH])
    earlier_normal = bound(bp_measurement(130), reading_id="r-1")
    high = later(earlier_normal, 5, 195, "r-2")
    assert [e.type for e in engine.evaluate(high)] == ["alert.raised"]
    assert engine.evaluate(earlier_normal) == []  # arrived before the breach: not a resolution
    [resolved] = engine.evaluate(later(earlier_normal, 10, 130, "r-3"))
    assert resolved.type == "alert.resolved"


def test_a_breach_within_cooldown_still_moves_the_point_a_resolution_must_follow():
    engine = AlertEngine([HIGH])
    first = bound(bp_measurement(190), reading_id="r-1")
    engine.evaluate(first)
    assert engine.evaluate(later(first, 60, 195, "r-3")) == []  # within cooldown: quiet
    assert engine.evaluate(later(first, 30, 130, "r-2")) == []  # arrived before r-3
    assert [e.type for e in engine.evaluate(later(first, 90, 120, "r-4"))] == ["alert.resolved"]
