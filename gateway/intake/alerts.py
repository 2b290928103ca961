"""Alert rules: a value above or below a limit raises an alert for the care provider.

Rules come from the config (``[[alert_rules]]``); a person's own rules
(``[[subjects.alert_rules]]``, a care provider's personal limits) replace the general rules for
the same kind and value. A rule's limit is in the rule's unit; the reading is converted to it.

State is kept per (person, kind, value): when a value leaves its limits one alert is raised (the
most severe rule that is breached); while it stays out, nothing repeats within that rule's
cooldown unless the severity rises; when a later reading is back inside every limit, an
``alert.resolved`` event follows. State is held in memory: after a restart, a value that is
still out of range alerts again, which errs on the side of telling the care provider.

"Later" means received later. The pipeline takes readings that may cross a limit ahead of the
readings queued before them (``may_breach``), so an alert is not kept waiting behind a
backlog; an in-range reading that arrived before the latest out-of-range one is therefore
sometimes judged after it, and must not resolve that alert.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from gateway.intake.events import BoundReading
from gateway.models import Measurement
from gateway.settings import AlertRuleSettings
from gateway.units import UnitError, convert

SEVERITY_RANK = {"info": 0, "warning": 1, "critical": 2}


@dataclass(frozen=True, slots=True)
class Rule:
    key: str  # "g0" for the first general rule, "p1" for a person's second own rule
    settings: AlertRuleSettings


@dataclass(frozen=True, slots=True)
class AlertEvent:
    type: str  # "alert.raised" or "alert.resolved"
    rule: Rule
    reading: BoundReading
    value: float
    unit: str
    limit: float | None
    direction: str | None  # "above" or "below"; None when resolved

    @property
    def alert_id(self) -> str:
        return f"{self.reading.reading_id}.{self.rule.key}.{self.type.split('.')[1]}"

    @property
    def vital_interest(self) -> bool:
        return self.type == "alert.raised" and self.rule.settings.vital_interest

    @property
    def severity(self) -> str:
        return self.rule.settings.severity

    def body(self, subject_identifier: dict[str, str]) -> dict[str, Any]:
        """The webhook event body (documented in README "Alert webhook")."""
        rule = self.rule.settings
        measurement = self.reading.measurement
        data: dict[str, Any] = {
            "alert_id": self.alert_id,
            "rule": {
                "id": self.rule.key,
                "kind": rule.kind,
                "value": rule.value,
                "above": rule.above,
                "below": rule.below,
                "unit": self.unit,
                "personal": self.rule.key.startswith("p"),
            },
            "severity": rule.severity,
            "subject": {"identifier": subject_identifier},
            "kind": measurement.kind,
            "value": {"name": rule.value, "value": round(self.value, 3), "unit": self.unit},
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
    rule: Rule
    raised_at: datetime
    last_breach_at: datetime  # received_at of the latest reading seen out of range

    @property
    def rank(self) -> int:
        return SEVERITY_RANK[self.rule.settings.severity]


@dataclass(frozen=True, slots=True)
class _Breach:
    rule: Rule
    value: float
    unit: str
    direction: str
    limit: float


class AlertEngine:
    def __init__(
        self,
        rules: Sequence[AlertRuleSettings],
        personal: Mapping[str, Sequence[AlertRuleSettings]] | None = None,
    ) -> None:
        """``personal`` maps a subject reference to that person's own rules."""
        self._general = [Rule(f"g{i}", r) for i, r in enumerate(rules)]
        self._personal = {
            ref: [Rule(f"p{i}", r) for i, r in enumerate(own)]
            for ref, own in (personal or {}).items()
        }
        self._active: dict[tuple[str, str, str], _Active] = {}
        self._rules_cache: dict[tuple[str, str, str], list[Rule]] = {}
        # Every rule that targets a (kind, value), general or anyone's own: ``may_breach``
        # needs no person, so it asks all of them.
        self._any_rule: dict[tuple[str, str], list[Rule]] = {}
        for rule in [*self._general, *(r for own in self._personal.values() for r in own)]:
            target = (rule.settings.kind, rule.settings.value)
            self._any_rule.setdefault(target, []).append(rule)

    def may_breach(self, measurement: Measurement) -> bool:
        """Whether any value of ``measurement`` is outside any rule's limits (anyone's rules).

        A cheap test before binding, for the pipeline's urgent lane: it errs on the side of
        urgency (another person's stricter limit counts), never the other way.
        """
        for name, quantity in measurement.values.items():
            for rule in self._any_rule.get((measurement.kind, name), ()):
                try:
                    value = convert(
                        quantity.value, quantity.unit, rule.settings.unit or quantity.unit
                    )
                except UnitError:
                    continue
                if _breach(rule.settings, value)[0] is not None:
                    return True
        return False

    def _rules_for(self, subject_ref: str, kind: str, value: str) -> list[Rule]:
        key = (subject_ref, kind, value)  # rules are fixed at start: look each target up once
        rules = self._rules_cache.get(key)
        if rules is None:
            own = [r for r in self._personal.get(subject_ref, ()) if _targets(r, kind, value)]
            rules = own or [r for r in self._general if _targets(r, kind, value)]
            self._rules_cache[key] = rules
        return rules

    def evaluate(self, reading: BoundReading) -> list[AlertEvent]:
        measurement = reading.measurement
        events: list[AlertEvent] = []
        for name, quantity in measurement.values.items():
            rules = self._rules_for(reading.subject_ref, measurement.kind, name)
            if not rules:
                continue
            breaches: list[_Breach] = []
            inside: tuple[float, str] | None = None  # the value in a rule's unit, if within
            for rule in rules:
                unit = rule.settings.unit or quantity.unit
                try:
                    value = convert(quantity.value, quantity.unit, unit)
                except UnitError:
                    continue  # validated at start; a device in an unexpected unit is skipped
                direction, limit = _breach(rule.settings, value)
                if direction is None or limit is None:
                    inside = inside or (value, unit)
                else:
                    breaches.append(_Breach(rule, value, unit, direction, limit))
            event = self._judge(reading, (measurement.kind, name), breaches, inside)
            if event is not None:
                events.append(event)
        return events

    def _judge(
        self,
        reading: BoundReading,
        target: tuple[str, str],
        breaches: list[_Breach],
        inside: tuple[float, str] | None,
    ) -> AlertEvent | None:
        key = (reading.subject_ref, *target)
        active = self._active.get(key)
        now = reading.received_at
        if not breaches:
            if active is None or inside is None:
                return None
            if now < active.last_breach_at:  # older than the latest breach: says nothing now
                return None
            del self._active[key]
            value, unit = inside
            return AlertEvent("alert.resolved", active.rule, reading, value, unit, None, None)
        worst = max(
            breaches,
            key=lambda b: (SEVERITY_RANK[b.rule.settings.severity], abs(b.value - b.limit)),
        )
        rank = SEVERITY_RANK[worst.rule.settings.severity]
        if active is not None:
            active.last_breach_at = max(active.last_breach_at, now)
            within_cooldown = (now - active.raised_at).total_seconds() < (
                active.rule.settings.cooldown_s
            )
            if within_cooldown and rank <= active.rank:
                return None
        last_breach_at = now if active is None else active.last_breach_at
        self._active[key] = _Active(worst.rule, now, last_breach_at)
        return AlertEvent(
            "alert.raised",
            worst.rule,
            reading,
            worst.value,
            worst.unit,
            worst.limit,
            worst.direction,
        )


def _targets(rule: Rule, kind: str, value: str) -> bool:
    return rule.settings.kind == kind and rule.settings.value == value


def _breach(rule: AlertRuleSettings, value: float) -> tuple[str | None, float | None]:
    if rule.above is not None and value > rule.above:
        return "above", rule.above
    if rule.below is not None and value < rule.below:
        return "below", rule.below
    return None, None
