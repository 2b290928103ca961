"""Alert rules: a value above or below a limit raises an alert for the care provider.

Rules come from the config (``[[alert_rules]]``); a person's own rules
(``[[subjects.alert_rules]]``, a care provider's personal limits) replace the general rules for
the same kind and value. A rule's limit is in the rule's unit; the reading is converted to it.

State is kept per (person, kind, value): when a value leaves its limits one alert is raised (the
most severe rule that is breached); while it stays out, nothing repeats within that rule's
cooldown unless the severity rises; when a later reading is back inside every limit, an
``alert.resolved`` event follows. The state is written with the readings (``take_changes``,
``gateway/storage/alert_state.py``) and restored at start, so a value still out of range after a
restart does not alert again.

Window rules (a change, a mean or a count over a window, and missing readings) are judged by
``gateway/intake/window_alerts.py``; this engine hands them every reading and returns both kinds of
event.

"Later" means received later. The pipeline takes readings that may cross a limit ahead of the
readings queued before them (``may_breach``), so an alert is not kept waiting behind a
backlog; an in-range reading that arrived before the latest out-of-range one is therefore
sometimes judged after it, and must not resolve that alert.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from gateway.intake.events import BoundReading
from gateway.intake.window_alert_event import WindowAlertEvent, WindowRule
from gateway.intake.window_alerts import WindowEngine
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
    def reading_id(self) -> str:
        return self.reading.reading_id

    @property
    def subject_ref(self) -> str:
        return self.reading.subject_ref

    @property
    def subject_id(self) -> str:
        return self.reading.subject_id

    @property
    def kind(self) -> str:
        return self.reading.measurement.kind

    def phrase(self) -> dict[str, Any]:
        """What was noticed, as a message id and its parameters (worded by the hub page)."""
        return {
            "id": f"limit.{self.direction}",
            "params": {
                "kind": self.rule.settings.kind,
                "value": self.rule.settings.value,
                "amount": round(self.value, 3),
                "limit": self.limit,
                "unit": self.unit,
            },
        }

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
    phrase: dict[str, Any]

    @property
    def rank(self) -> int:
        return SEVERITY_RANK[self.rule.settings.severity]

    def state(self) -> dict[str, Any]:
        return {
            "rule": self.rule.key,
            "raised_at": self.raised_at.isoformat(),
            "last_breach_at": self.last_breach_at.isoformat(),
            "phrase": self.phrase,
        }


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
        *,
        subjects: Mapping[str, str] | None = None,
        watched_kinds: Mapping[str, set[str]] | None = None,
        history_limit_s: float | None = None,
    ) -> None:
        """``personal`` maps a subject reference to that person's own rules; ``subjects`` maps
        references to ids and ``watched_kinds`` to the kinds their devices send (for missing
        readings); ``history_limit_s`` caps the window history kept (the retention period)."""
        personal = personal or {}
        self._general = [Rule(f"g{i}", r) for i, r in enumerate(rules) if r.rule_type == "limit"]
        self._personal = {
            ref: [Rule(f"p{i}", r) for i, r in enumerate(own) if r.rule_type == "limit"]
            for ref, own in personal.items()
        }
        self.windows = WindowEngine(
            [WindowRule.of(f"g{i}", r) for i, r in enumerate(rules) if r.rule_type != "limit"],
            {
                ref: [
                    WindowRule.of(f"p{i}", r) for i, r in enumerate(own) if r.rule_type != "limit"
                ]
                for ref, own in personal.items()
            },
            subjects or {},
            watched_kinds or {},
            history_limit_s=history_limit_s,
        )
        self._active: dict[tuple[str, str, str], _Active] = {}
        self._changed: dict[tuple[str, str], dict[str, Any] | None] = {}
        self._rules_cache: dict[tuple[str, str, str], list[Rule]] = {}
        # Every rule that targets a (kind, value), general or anyone's own: ``may_breach``
        # needs no person, so it asks all of them.
        # A count rule's limit is a single value's limit too: a reading beyond it may complete
        # a count, so it is urgent as well.
        self._any_rule: dict[tuple[str, str], list[Rule]] = {}
        counting = [Rule(f"g{i}", r) for i, r in enumerate(rules) if r.rule_type == "count"] + [
            Rule(f"p{i}", r)
            for own in personal.values()
            for i, r in enumerate(own)
            if r.rule_type == "count"
        ]
        for rule in [
            *self._general,
            *(r for own in self._personal.values() for r in own),
            *counting,
        ]:
            target = (rule.settings.kind, str(rule.settings.value))
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

    def evaluate(self, reading: BoundReading) -> list[AlertEvent | WindowAlertEvent]:
        events: list[AlertEvent | WindowAlertEvent] = list(self._evaluate_limits(reading))
        events += self.windows.evaluate(reading)
        return events

    def check_missing(self, now: datetime) -> list[WindowAlertEvent]:
        return self.windows.check_missing(now)

    def take_changes(self) -> list[tuple[str, str, dict[str, Any] | None]]:
        """Alert state changed since the last call: (subject ref, slot, state or None)."""
        changes = [(ref, slot, state) for (ref, slot), state in self._changed.items()]
        self._changed.clear()
        return changes + self.windows.take_changes()

    def forget(self, subject_ref: str) -> None:
        """Drops everything held in memory about a person (after erasure)."""
        for key in [key for key in self._active if key[0] == subject_ref]:
            del self._active[key]
        for key in [key for key in self._changed if key[0] == subject_ref]:
            del self._changed[key]
        self.windows.forget(subject_ref)

    def restore(self, rows: Iterable[tuple[str, str, dict[str, Any]]]) -> None:
        """Loads the state written before a restart; state of rules no longer configured is
        dropped (and deleted with the next write)."""
        windows = []
        for ref, slot, state in rows:
            parts = slot.split("/")
            if parts[0] != "limit" or len(parts) != 3:
                windows.append((ref, slot, state))
                continue
            _, kind, value = parts
            rule = next(
                (r for r in self._rules_for(ref, kind, value) if r.key == state["rule"]), None
            )
            if rule is None:
                self._changed[(ref, slot)] = None
                continue
            self._active[(ref, kind, value)] = _Active(
                rule,
                datetime.fromisoformat(state["raised_at"]),
                datetime.fromisoformat(state["last_breach_at"]),
                state.get("phrase", {}),
            )
        self.windows.restore(windows)

    def _evaluate_limits(self, reading: BoundReading) -> list[AlertEvent]:
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
            self._changed[(key[0], _limit_slot(target))] = None
            value, unit = inside
            return AlertEvent("alert.resolved", active.rule, reading, value, unit, None, None)
        worst = max(
            breaches,
            key=lambda b: (SEVERITY_RANK[b.rule.settings.severity], abs(b.value - b.limit)),
        )
        rank = SEVERITY_RANK[worst.rule.settings.severity]
        if active is not None:
            if now > active.last_breach_at:
                active.last_breach_at = now
                self._changed[(key[0], _limit_slot(target))] = active.state()
            within_cooldown = (now - active.raised_at).total_seconds() < (
                active.rule.settings.cooldown
            )
            if within_cooldown and rank <= active.rank:
                return None
        last_breach_at = now if active is None else active.last_breach_at
        raised = AlertEvent(
            "alert.raised",
            worst.rule,
            reading,
            worst.value,
            worst.unit,
            worst.limit,
            worst.direction,
        )
        self._active[key] = _Active(worst.rule, now, last_breach_at, raised.phrase())
        self._changed[(key[0], _limit_slot(target))] = self._active[key].state()
        return raised


def _limit_slot(target: tuple[str, str]) -> str:
    return f"limit/{target[0]}/{target[1]}"


def _targets(rule: Rule, kind: str, value: str) -> bool:
    return rule.settings.kind == kind and rule.settings.value == value


def _breach(rule: AlertRuleSettings, value: float) -> tuple[str | None, float | None]:
    if rule.above is not None and value > rule.above:
        return "above", rule.above
    if rule.below is not None and value < rule.below:
        return "below", rule.below
    return None, None
