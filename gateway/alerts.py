"""Alert rules: a value above or below a limit raises an alert for the care provider.

A rule's limit is in the rule's unit; the reading's value is converted to it. One alert is raised
when a value leaves its limits; while it stays out, the same rule does not repeat within its
cooldown unless the severity rises; when a later reading is back inside, a "resolved" event follows.
State is per (rule, subject) and held in memory.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from gateway.events import BoundReading
from gateway.settings import AlertRuleSettings
from gateway.units import UnitError, convert

SEVERITY_RANK = {"info": 0, "warning": 1, "critical": 2}


@dataclass(frozen=True, slots=True)
class AlertEvent:
    type: str  # "alert.raised" or "alert.resolved"
    rule_index: int
    rule: AlertRuleSettings
    reading: BoundReading
    value: float
    unit: str
    limit: float | None
    direction: str | None  # "above" or "below"; None when resolved

    @property
    def alert_id(self) -> str:
        return f"{self.reading.reading_id}.rule{self.rule_index}.{self.type.split('.')[1]}"

    @property
    def vital_interest(self) -> bool:
        return self.type == "alert.raised" and self.rule.vital_interest

    def body(self, subject_identifier: dict[str, str]) -> dict[str, Any]:
        """The webhook event body (documented in README "Alert webhook")."""
        measurement = self.reading.measurement
        data: dict[str, Any] = {
            "alert_id": self.alert_id,
            "rule": {
                "index": self.rule_index,
                "kind": self.rule.kind,
                "value": self.rule.value,
                "above": self.rule.above,
                "below": self.rule.below,
                "unit": self.unit,
            },
            "severity": self.rule.severity,
            "subject": {"identifier": subject_identifier},
            "kind": measurement.kind,
            "value": {"name": self.rule.value, "value": round(self.value, 3), "unit": self.unit},
            "measured_at": measurement.measured_at.isoformat() if measurement.measured_at else None,
            "received_at": self.reading.received_at.isoformat(),
            "reading_id": self.reading.reading_id,
        }
        if self.direction is not None and self.limit is not None:
            data["threshold"] = {
                "direction": self.direction,
                "limit": self.limit,
                "unit": self.unit,
            }
            data["exceeded_by"] = round(abs(self.value - self.limit), 3)
        return {"type": self.type, "timestamp": self.reading.received_at.isoformat(), "data": data}


@dataclass(slots=True)
class _Active:
    severity_rank: int
    raised_at: datetime


class AlertEngine:
    def __init__(self, rules: list[AlertRuleSettings]) -> None:
        self._rules = list(enumerate(rules))
        self._active: dict[tuple[int, str], _Active] = {}

    def evaluate(self, reading: BoundReading) -> list[AlertEvent]:
        events: list[AlertEvent] = []
        measurement = reading.measurement
        for index, rule in self._rules:
            quantity = measurement.values.get(rule.value)
            if rule.kind != measurement.kind or quantity is None:
                continue
            unit = rule.unit or quantity.unit
            try:
                value = convert(quantity.value, quantity.unit, unit)
            except UnitError:
                continue  # a device unit the rule cannot compare with; validated at config load
            event = self._judge(index, rule, reading, value, unit)
            if event is not None:
                events.append(event)
        return events

    def _judge(
        self, index: int, rule: AlertRuleSettings, reading: BoundReading, value: float, unit: str
    ) -> AlertEvent | None:
        key = (index, reading.subject_ref)
        active = self._active.get(key)
        direction, limit = _breach(rule, value)
        now = reading.received_at
        if direction is None:
            if active is None:
                return None
            del self._active[key]
            return AlertEvent("alert.resolved", index, rule, reading, value, unit, None, None)
        rank = SEVERITY_RANK[rule.severity]
        if active is not None:
            within_cooldown = (now - active.raised_at).total_seconds() < rule.cooldown_s
            if within_cooldown and rank <= active.severity_rank:
                return None
        self._active[key] = _Active(rank, now)
        return AlertEvent("alert.raised", index, rule, reading, value, unit, limit, direction)


def _breach(rule: AlertRuleSettings, value: float) -> tuple[str | None, float | None]:
    if rule.above is not None and value > rule.above:
        return "above", rule.above
    if rule.below is not None and value < rule.below:
        return "below", rule.below
    return None, None
