"""A window or missing-readings alert: the rule, what was judged, and the webhook body.

``WindowAlertEvent`` has the interface of ``gateway.alerts.AlertEvent`` (type, rule, alert id,
severity, vital interest, ``body``), so the pipeline, the audit log and the webhook format take
either. ``phrase`` gives what was noticed as a message id and parameters for the hub page.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple

from gateway.intake.alert_rule_kinds import window_s
from gateway.intake.alert_windows import Observation, duration_text, parse_time_ranges
from gateway.intake.events import BoundReading
from gateway.settings import AlertRuleSettings
from gateway.units import UnitError, convert

SEVERITY_RANK = {"info": 0, "warning": 1, "critical": 2}
MAX_EVIDENCE = 100  # readings listed in one alert body (a mean over a long window may hold more)


@dataclass(frozen=True, slots=True)
class WindowRule:
    key: str  # "g2": the config's third general rule; "p0": a person's first own rule
    settings: AlertRuleSettings
    type: str  # change / mean / count / missing
    span: float
    times: tuple[tuple[int, int], ...] = ()

    @property
    def rank(self) -> int:
        return SEVERITY_RANK[self.settings.severity]

    @staticmethod
    def of(key: str, settings: AlertRuleSettings) -> WindowRule:
        times = parse_time_ranges(settings.times) if settings.times else ()
        return WindowRule(key, settings, settings.rule_type, window_s(settings), times)


class Judgement(NamedTuple):  # a named tuple: one is made per rule for every judgement
    rule: WindowRule
    held: bool
    direction: str  # rise / fall / above / below / at_least / longer_than
    amount: float  # in the rule's unit: the change, the mean, the count, or seconds missing
    limit: float  # in the rule's unit
    unit: str | None
    observation: Observation | None

    @property
    def excess(self) -> float:
        return abs(self.amount - self.limit)


@dataclass(frozen=True, slots=True)
class WindowAlertEvent:
    """A raised or resolved window or missing-readings alert (same interface as ``AlertEvent``)."""

    type: str  # "alert.raised" or "alert.resolved"
    rule: WindowRule
    subject_ref: str
    subject_id: str
    judgement: Judgement
    at: datetime  # the judged reading's measured instant, or the time of a missing check
    reading: BoundReading | None = None  # the reading that brought it (None: a missing check)
    judged_id: str | None = None  # the reading whose window was judged, when not ``reading``
    series_unit: str | None = None
    issued_at: datetime | None = None  # a missing check: the gateway's time of the check
    last_reading: tuple[str, float] | None = None  # a missing check: (id, measured instant)

    @property
    def reading_id(self) -> str:
        if self.reading is not None:
            return self.reading.reading_id
        return f"gap.{self.subject_ref}.{self.rule.key}.{int(self.at.timestamp())}"

    @property
    def alert_id(self) -> str:
        suffix = self.type.split(".")[1]
        judged = self.judged_id or self.reading_id
        tail = "" if judged == self.reading_id else f".{self.reading_id}"
        return f"{judged}.{self.rule.key}.{suffix}{tail}"

    @property
    def kind(self) -> str:
        return self.rule.settings.kind

    @property
    def value(self) -> float:
        return self.judgement.amount

    @property
    def unit(self) -> str | None:
        return self.judgement.unit

    @property
    def limit(self) -> float:
        return self.judgement.limit

    @property
    def direction(self) -> str | None:
        return self.judgement.direction if self.type == "alert.raised" else None

    @property
    def severity(self) -> str:
        return self.rule.settings.severity

    @property
    def vital_interest(self) -> bool:
        return self.type == "alert.raised" and self.rule.settings.vital_interest

    def phrase(self) -> dict[str, Any]:
        """What was noticed, as a message id and its parameters (worded by the hub page)."""
        settings = self.rule.settings
        params: dict[str, Any] = {
            "kind": settings.kind,
            "value": settings.value,
            "amount": round(self.judgement.amount, 3),
            "limit": self.judgement.limit,
            "unit": self.judgement.unit,
            "window_s": self.rule.span,
        }
        if self.rule.type == "count":
            params["beyond"] = "below" if settings.below is not None else "above"
            params["threshold"] = settings.below if settings.below is not None else settings.above
        return {"id": f"{self.rule.type}.{self.judgement.direction}", "params": params}

    def body(self, subject_identifier: dict[str, str]) -> dict[str, Any]:
        """The webhook event body (documented in README "Alert webhook")."""
        settings = self.rule.settings
        judgement = self.judgement
        rule: dict[str, Any] = {
            "id": self.rule.key,
            "type": self.rule.type,
            "kind": settings.kind,
            "value": settings.value,
            "unit": judgement.unit,
            "personal": self.rule.key.startswith("p"),
        }
        for key in ("rise", "fall", "mean_above", "mean_below", "count", "above", "below"):
            if getattr(settings, key) is not None:
                rule[key] = getattr(settings, key)
        for key in ("within", "over", "missing_for"):
            if getattr(settings, key) is not None:
                rule[key] = duration_text(getattr(settings, key))
        if settings.times:
            rule["times"] = list(settings.times)
        if self.rule.type == "mean":
            rule["min_readings"] = settings.min_readings
        data: dict[str, Any] = {
            "alert_id": self.alert_id,
            "rule": rule,
            "severity": settings.severity,
            "subject": {"identifier": subject_identifier},
            "kind": settings.kind,
            "observed": {
                "measure": _MEASURES[self.rule.type],
                "value": round(judgement.amount, 3),
                "unit": "s" if self.rule.type == "missing" else judgement.unit,
            },
            "readings": self._evidence(),
            "measured_at": None,
            "received_at": None,
            "reading_id": self.reading.reading_id if self.reading else None,
        }
        observation = judgement.observation
        if observation is not None:
            data["window"] = {
                "from": _iso(observation.start),
                "to": _iso(observation.end),
                "duration": duration_text(self.rule.span),
            }
        if self.reading is not None:
            measured = self.reading.measurement.measured_at
            data["measured_at"] = measured.isoformat() if measured else None
            data["received_at"] = self.reading.received_at.isoformat()
        if self.type == "alert.raised":
            data["threshold"] = {
                "direction": judgement.direction,
                "limit": judgement.limit,
                "unit": "s" if self.rule.type == "missing" else judgement.unit,
            }
            data["exceeded_by"] = round(judgement.excess, 3)
        timestamp = self.reading.received_at if self.reading is not None else self.issued_at
        timestamp = timestamp or self.at
        return {"type": self.type, "timestamp": timestamp.isoformat(), "data": data}

    def _evidence(self) -> list[dict[str, Any]]:
        if self.last_reading is not None:  # a gap: the last reading before it
            return [{"reading_id": self.last_reading[0], "measured_at": _iso(self.last_reading[1])}]
        observation = self.judgement.observation
        if observation is None:
            return []
        unit = self.judgement.unit
        listed = observation.evidence[-MAX_EVIDENCE:]
        return [
            {
                "reading_id": sample.reading_id,
                "measured_at": _iso(sample.t),
                "value": round(_from_series(sample.value, self.series_unit, unit), 3),
                "unit": unit,
            }
            for sample in listed
        ]


_MEASURES = {
    "change": "change",
    "mean": "mean",
    "count": "count",
    "missing": "time_since_last_reading",
}


def _from_series(value: float, series_unit: str | None, unit: str | None) -> float:
    if series_unit is None or unit is None:
        return value
    try:
        return convert(value, series_unit, unit)
    except UnitError:
        return value


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat()
