"""What the hub page shows one person, in plain words: readings, trends, devices, consents,
who received their data, and alerts (``GET /api/subjects/{id}/summary``).

The texts are written for a person who is not technical; the raw fields (destination, purpose,
legal basis, times) travel beside them so a script can use the same endpoint.
"""

from __future__ import annotations

import sqlite3
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import orjson

from gateway.activity import ActivityEntry
from gateway.api.charts import Series, trend_svg
from gateway.privacy import audit
from gateway.settings import PURPOSES, Settings
from gateway.storage import consents, quarantine, readings
from gateway.storage.database import reading_aad

if TYPE_CHECKING:
    from gateway.storage.crypto import Sealer

TREND_DAYS = 30
HISTORY_LIMIT = 100
ALERT_MEMORY = 200

KIND_LABELS = {
    "blood_pressure": "Blood pressure",
    "weight": "Weight",
    "body_composition": "Body composition",
    "glucose": "Blood sugar",
    "temperature": "Temperature",
    "heart_rate": "Heart rate",
    "spo2": "Blood oxygen",
}
VALUE_LABELS = {
    "systolic": "Upper (systolic)",
    "diastolic": "Lower (diastolic)",
    "mean_arterial_pressure": "Mean pressure",
    "pulse_rate": "Pulse",
    "body_weight": "Weight",
    "bmi": "BMI",
    "height": "Height",
    "body_fat_percentage": "Body fat",
    "glucose": "Blood sugar",
    "body_temperature": "Temperature",
    "heart_rate": "Heart rate",
    "spo2": "Oxygen saturation",
}
UNIT_LABELS = {
    "mm[Hg]": "mmHg",
    "kPa": "kPa",
    "/min": "beats per minute",
    "kg": "kg",
    "[lb_av]": "lb",
    "Cel": "°C",
    "[degF]": "°F",
    "%": "%",
    "mg/dL": "mg/dL",
    "mmol/L": "mmol/L",
    "kg/m2": "",
    "m": "m",
}
# The values drawn in each kind's trend chart, with their colours (dark enough on white).
TREND_VALUES = {
    "blood_pressure": [("systolic", "#a4161a"), ("diastolic", "#1d4e89")],
    "weight": [("body_weight", "#1d4e89")],
    "body_composition": [("body_fat_percentage", "#1d4e89")],
    "glucose": [("glucose", "#1d4e89")],
    "temperature": [("body_temperature", "#a4161a")],
    "heart_rate": [("heart_rate", "#a4161a")],
    "spo2": [("spo2", "#1d4e89")],
}
PURPOSE_TEXT = {
    "care": (
        "Your care team",
        "Your readings go to your care team's system, so your nurse and doctor can follow"
        " how you are doing.",
    ),
    "alerting": (
        "Alerts to a nurse",
        "If a reading is dangerously high or low, a nurse is told at once so they can contact you.",
    ),
    "analytics": (
        "Improving the service",
        "Readings without your name or personal number help the provider improve the service.",
    ),
    "research": (
        "Medical research",
        "Readings without your name or personal number may be used in approved medical research.",
    ),
    "employer_statistics": (
        "Employer statistics",
        "Your employer sees only totals for a group of people, never your own readings.",
    ),
}
DESTINATION_KIND_TEXT = {
    "fhir": "your care team's system",
    "webhook": "the nurse alert service",
    "analytics": "the service statistics",
    "aggregate": "anonymous group statistics",
}
LEGAL_BASIS_TEXT = {
    "consent": "because you allowed it",
    "vital_interest": "without asking, because your life or health could have been in danger"
    " (vital interest)",
}


def unit_label(unit: str) -> str:
    return UNIT_LABELS.get(unit, unit)


def number(value: float) -> str:
    rounded = round(value, 1)
    return f"{rounded:g}"


def purpose_label(purpose: str) -> str:
    return PURPOSE_TEXT.get(purpose, (purpose.replace("_", " ").capitalize(), ""))[0]


@dataclass(frozen=True, slots=True)
class AlertNote:
    at: float
    type: str  # alert.raised / alert.resolved
    fields: dict[str, Any]


class AlertMemory:
    """Alerts raised since the gateway started, per person (from the activity feed).

    The durable record of an alert is its disclosure in the audit log; this adds what the rule
    said (which value, how far over the limit), which the audit entry does not hold.
    """

    def __init__(self) -> None:
        self._notes: OrderedDict[tuple[str, str], AlertNote] = OrderedDict()

    def observe(self, entry: ActivityEntry) -> None:
        if entry.kind not in ("alert.raised", "alert.resolved"):
            return
        key = (str(entry.fields.get("reading_id")), entry.kind)
        self._notes[key] = AlertNote(entry.at, entry.kind, dict(entry.fields))
        while len(self._notes) > ALERT_MEMORY:
            self._notes.popitem(last=False)

    def for_subject(self, subject_ref: str) -> list[AlertNote]:
        return [n for n in self._notes.values() if n.fields.get("subject_ref") == subject_ref]


def _when(event: dict[str, Any]) -> str:
    """The device's own time (local, as the device showed it) or, failing that, receipt."""
    return str(event.get("measured_at") or event["received_at"])


def _epoch(when: str) -> float:
    moment = datetime.fromisoformat(when)
    if moment.tzinfo is None:
        moment = moment.astimezone()  # the device's clock is read as the hub's local time
    return moment.timestamp()


def _values(event: dict[str, Any]) -> dict[str, tuple[float, str]]:
    return {
        name: (float(q["value"]), str(q["unit"])) for name, q in event.get("values", {}).items()
    }


def latest_card(event: dict[str, Any], device_names: dict[str, str]) -> dict[str, Any]:
    kind = str(event["kind"])
    values = _values(event)
    details = []
    if kind == "blood_pressure" and "systolic" in values and "diastolic" in values:
        headline = f"{number(values['systolic'][0])}/{number(values['diastolic'][0])}"
        unit = unit_label(values["systolic"][1])
        shown = {"systolic", "diastolic", "mean_arterial_pressure"}
    else:
        primary = next(iter(TREND_VALUES.get(kind, [])), (None, ""))[0]
        name = primary if primary in values else next(iter(values), None)
        headline = number(values[name][0]) if name else "—"
        unit = unit_label(values[name][1]) if name else ""
        shown = {name}
    for name, (value, value_unit) in values.items():
        if name not in shown:
            details.append(
                {
                    "name": name,
                    "label": VALUE_LABELS.get(name, name.replace("_", " ").capitalize()),
                    "value": number(value),
                    "unit": unit_label(value_unit),
                }
            )
    return {
        "kind": kind,
        "label": KIND_LABELS.get(kind, kind.replace("_", " ").capitalize()),
        "when": _when(event),
        "headline": headline,
        "unit": unit,
        "details": details,
        "device": device_names.get(str(event.get("device_address")), ""),
        "reading_id": event["reading_id"],
    }


def trend_card(kind: str, events: list[dict[str, Any]], start: float, end: float) -> dict[str, Any]:
    wanted = TREND_VALUES.get(kind)
    if wanted is None:
        first = next((name for e in events for name in e.get("values", {})), None)
        wanted = [(first, "#1d4e89")] if first else []
    series: list[Series] = []
    unit = ""
    for name, colour in wanted:
        points = []
        for event in events:
            value = event.get("values", {}).get(name)
            if value is not None:
                points.append((_epoch(_when(event)), float(value["value"])))
                unit = unit_label(str(value["unit"]))
        if points:
            series.append(Series(VALUE_LABELS.get(name, name), colour, points))
    label = KIND_LABELS.get(kind, kind.replace("_", " ").capitalize())
    return {
        "kind": kind,
        "label": label,
        "unit": unit,
        "readings": len(events),
        "legend": [{"label": s.label, "colour": s.colour} for s in series],
        "svg": trend_svg(series, start, end, unit, label) if series else "",
    }


class SummaryBuilder:
    def __init__(self, settings: Settings, sealer: Sealer) -> None:
        self._settings = settings
        self._sealer = sealer
        self.sealer = sealer
        self.device_names = {
            device.address: device.name or KIND_LABELS.get(device.profile, device.profile)
            for device in settings.devices
        }

    def read(self, connection: sqlite3.Connection, ref: str, now: float) -> dict[str, Any]:
        """Everything the summary needs from the database, in one visit to the writer thread."""
        since = (datetime.fromtimestamp(now, UTC) - timedelta(days=TREND_DAYS)).isoformat()
        # A reading that cannot be opened (a damaged row) is left out and counted: one bad
        # row must not keep the person from the rest of their page.
        unreadable: set[str] = set()
        recent = self._open_all(readings.of_subject(connection, ref, since), unreadable)
        latest = self._open_all(readings.newest_per_kind(connection, ref), unreadable)
        entries = audit.entries(connection, subject_ref=ref, limit=HISTORY_LIMIT)
        ids = sorted({str(e.data["reading_id"]) for e in entries if "reading_id" in e.data})
        kinds = readings.kinds(connection, ids)
        choices = {
            purpose: (granted, changed_at)
            for purpose, granted, changed_at, _source in consents.of_subject(connection, ref)
        }
        return {
            "recent": recent,
            "latest": latest,
            "entries": entries,
            "kinds": kinds,
            "consents": choices,
            "unreadable": len(unreadable),
            "quarantined": len(quarantine.of_subject(connection, ref)),
        }

    def _open_all(
        self, rows: list[tuple[str, bytes]], unreadable: set[str]
    ) -> list[dict[str, Any]]:
        events = []
        for reading_id, payload in rows:
            opened = self._sealer.try_open(payload, reading_aad(reading_id))
            if opened is None:
                unreadable.add(reading_id)
            else:
                events.append(orjson.loads(opened))
        return events

    def build(
        self,
        subject_id: str,
        held: dict[str, Any],
        *,
        restricted: bool,
        devices: list[dict[str, Any]],
        alerts: list[AlertNote],
        now: float | None = None,
    ) -> dict[str, Any]:
        now = time.time() if now is None else now
        start = now - TREND_DAYS * 86400
        by_kind: dict[str, list[dict[str, Any]]] = {}
        for event in held["recent"]:
            by_kind.setdefault(str(event["kind"]), []).append(event)
        return {
            "restricted": restricted,
            "latest": [latest_card(event, self.device_names) for event in held["latest"]],
            "trends": [
                trend_card(kind, events, start, now) for kind, events in sorted(by_kind.items())
            ],
            "devices": devices,
            "consents": self._consents(subject_id, held["consents"]),
            "history": self._history(held["entries"], held["kinds"]),
            "alerts": self._alerts(alerts, held["entries"], held["kinds"]),
            # Stored readings that could not be opened, and items kept aside for that reason.
            "unreadable_readings": held.get("unreadable", 0),
            "quarantined": held.get("quarantined", 0),
            "generated_at": datetime.fromtimestamp(now, UTC).isoformat(),
        }

    def _destination_text(self, name: str) -> str:
        for destination in self._settings.destinations:
            if destination.name == name:
                return f"{name} ({DESTINATION_KIND_TEXT.get(destination.kind, destination.kind)})"
        return name

    def _consents(
        self, subject_id: str, recorded: dict[str, tuple[bool, str]]
    ) -> list[dict[str, Any]]:
        destinations: dict[str, list[str]] = {}
        for destination in self._settings.destinations:
            destinations.setdefault(destination.purpose, []).append(destination.name)
        subject = self._settings.subject(subject_id)
        purposes = set(destinations) | set(recorded) | set(subject.consent)
        order = {purpose: index for index, purpose in enumerate(PURPOSES)}
        vital = any(rule.vital_interest for rule in self._settings.alert_rules)
        result = []
        for purpose in sorted(purposes, key=lambda p: (order.get(p, len(order)), p)):
            label, explanation = PURPOSE_TEXT.get(purpose, (purpose_label(purpose), ""))
            granted, changed_at = recorded.get(purpose, (False, None))
            note = ""
            if purpose == "alerting" and vital:
                note = (
                    "Even when this is off, a nurse is told about a reading that could mean your"
                    " life is in danger. You will see it below if that happens."
                )
            result.append(
                {
                    "purpose": purpose,
                    "label": label,
                    "explanation": explanation,
                    "note": note,
                    "granted": granted,
                    "changed_at": changed_at,
                    "destinations": [
                        self._destination_text(name) for name in destinations.get(purpose, [])
                    ],
                }
            )
        return result

    def _history(
        self, entries: list[audit.AuditEntry], kinds: dict[str, str]
    ) -> list[dict[str, Any]]:
        history = []
        for entry in entries:
            data = entry.data
            item: dict[str, Any] = {"at": entry.at, "event": entry.event}
            if entry.event == "disclosure":
                kind = kinds.get(str(data.get("reading_id")), "")
                what = KIND_LABELS.get(kind, "A").lower() if kind else "a"
                category = "alert about your" if data.get("category") == "alert" else "your"
                basis = str(data.get("legal_basis"))
                item |= {
                    "type": "disclosure",
                    "title": f"Sent to {self._destination_text(str(data.get('destination')))}",
                    "detail": f"What: {category} {what} reading. Why: "
                    f"{purpose_label(str(data.get('purpose'))).lower()}, "
                    f"{LEGAL_BASIS_TEXT.get(basis, basis)}.",
                    "destination": data.get("destination"),
                    "purpose": data.get("purpose"),
                    "legal_basis": basis,
                    "category": data.get("category"),
                    "fields": data.get("fields", []),
                }
            elif entry.event == "consent.changed":
                purposes = data.get("purposes", {})
                if data.get("source") == "config":
                    title = "Your choices were recorded when the hub was set up"
                else:
                    title = "You changed who may receive your data"
                detail = "; ".join(
                    f"{purpose_label(p)}: {'allowed' if granted else 'withdrawn'}"
                    for p, granted in purposes.items()
                )
                item |= {"type": "consent", "title": title, "detail": detail}
            elif entry.event == "consent.withdrawn.purged":
                removed = int(data.get("queued_items_removed", 0))
                item |= {
                    "type": "consent",
                    "title": f"Consent withdrawn: {purpose_label(str(data.get('purpose')))}",
                    "detail": f"Nothing more is sent for this. {removed} waiting"
                    f" item{'s' if removed != 1 else ''} deleted from the queue.",
                    "purpose": data.get("purpose"),
                }
            elif entry.event == "withheld":
                item |= {
                    "type": "withheld",
                    "title": f"Not sent to {self._destination_text(str(data.get('destination')))}",
                    "detail": "You had withdrawn your consent or paused sharing.",
                    "destination": data.get("destination"),
                }
            elif entry.event == "restriction.changed":
                paused = bool(data.get("restricted"))
                item |= {
                    "type": "restriction",
                    "title": "All sharing paused" if paused else "Sharing resumed",
                    "detail": "Readings are kept on the hub but not sent anywhere."
                    if paused
                    else "Readings are sent again as you have allowed.",
                }
            elif entry.event == "subject.exported":
                item |= {
                    "type": "export",
                    "title": "A copy of your data was downloaded",
                    "detail": f"Format: {str(data.get('format', '')).upper()}.",
                }
            elif entry.event == "subject.erased":
                counts = data.get("counts", {})
                item |= {
                    "type": "erasure",
                    "title": "Your data was deleted from the hub",
                    "detail": f"{counts.get('readings', 0)} readings and"
                    f" {counts.get('queued', 0)} waiting items deleted.",
                }
            else:
                continue
            history.append(item)
        return history

    def _alerts(
        self, notes: list[AlertNote], entries: list[audit.AuditEntry], kinds: dict[str, str]
    ) -> list[dict[str, Any]]:
        sent: dict[str, list[dict[str, Any]]] = {}
        for entry in entries:
            if entry.event == "disclosure" and entry.data.get("category") == "alert":
                basis = str(entry.data.get("legal_basis"))
                where = self._destination_text(str(entry.data.get("destination")))
                sent.setdefault(str(entry.data.get("reading_id")), []).append(
                    {
                        "destination": entry.data.get("destination"),
                        "legal_basis": basis,
                        "at": entry.at,
                        "text": f"Sent to {where} {LEGAL_BASIS_TEXT.get(basis, basis)}.",
                    }
                )
        alerts: list[dict[str, Any]] = []
        covered: set[str] = set()
        covered_events: set[tuple[str, str]] = set()
        for note in sorted(notes, key=lambda n: n.at, reverse=True):
            f = note.fields
            reading_id = str(f.get("reading_id"))
            kind_label = KIND_LABELS.get(str(f.get("kind")), "")
            value_label = VALUE_LABELS.get(str(f.get("value")), str(f.get("value")))
            unit = unit_label(str(f.get("unit")))
            if note.type == "alert.raised":
                word = "High" if f.get("direction") == "above" else "Low"
                title = f"{word} {value_label.lower()} {kind_label.lower()}".strip()
                detail = (
                    f"{number(float(f.get('measured', 0)))} {unit}; the limit is"
                    f" {number(float(f.get('limit', 0)))} {unit}."
                )
            else:
                title = f"{kind_label} back within limits"
                detail = f"{number(float(f.get('measured', 0)))} {unit}."
            deliveries = sent.get(reading_id, [])
            covered.add(reading_id)
            covered_events.add((reading_id, note.type))
            alerts.append(
                {
                    "at": datetime.fromtimestamp(note.at, UTC).isoformat(),
                    "type": note.type,
                    "severity": f.get("severity"),
                    "title": title,
                    "detail": detail,
                    "vital_interest": any(d["legal_basis"] == "vital_interest" for d in deliveries),
                    "sent": deliveries,
                }
            )
        # After a restart the in-memory notes are gone; the audit log still says which rule
        # spoke, in which direction and at what limit (never the measured value).
        for entry in entries:
            if entry.event not in ("alert.raised", "alert.resolved"):
                continue
            data = entry.data
            reading_id = str(data.get("reading_id"))
            if (reading_id, entry.event) in covered_events:
                continue
            covered_events.add((reading_id, entry.event))
            covered.add(reading_id)
            kind_label = KIND_LABELS.get(str(data.get("kind")), "")
            value_label = VALUE_LABELS.get(str(data.get("value")), str(data.get("value")))
            unit = unit_label(str(data.get("unit")))
            deliveries = sent.get(reading_id, [])
            if entry.event == "alert.raised":
                word = "High" if data.get("direction") == "above" else "Low"
                title = f"{word} {value_label.lower()} {kind_label.lower()}".strip()
                detail = f"The limit is {number(float(data.get('limit') or 0))} {unit}."
            else:
                title, detail = f"{kind_label} back within limits", ""
            alerts.append(
                {
                    "at": entry.at,
                    "type": entry.event,
                    "severity": data.get("severity"),
                    "title": title,
                    "detail": detail,
                    "vital_interest": bool(data.get("vital_interest"))
                    or any(d["legal_basis"] == "vital_interest" for d in deliveries),
                    "sent": deliveries,
                }
            )
        for reading_id, deliveries in sent.items():
            if reading_id in covered:
                continue
            kind = kinds.get(reading_id, "")
            alerts.append(
                {
                    "at": deliveries[0]["at"],
                    "type": "alert",
                    "severity": None,
                    "title": f"Alert about your {KIND_LABELS.get(kind, 'a').lower()} reading",
                    "detail": "",
                    "vital_interest": any(d["legal_basis"] == "vital_interest" for d in deliveries),
                    "sent": deliveries,
                }
            )
        alerts.sort(key=lambda a: str(a["at"]), reverse=True)
        return alerts


def device_readings(
    connection: sqlite3.Connection, sealer: Sealer, limit: int = 200
) -> dict[str, dict[str, Any]]:
    """Per device address: the clock offset and time of its newest stored reading."""
    found: dict[str, dict[str, Any]] = {}
    for reading_id, payload in readings.newest(connection, limit):
        opened = sealer.try_open(payload, reading_aad(reading_id))
        if opened is None:  # a damaged row: the next reading of that device says the same
            continue
        event = orjson.loads(opened)
        address = event.get("device_address")
        if address and address not in found:
            found[address] = {
                "clock_offset_s": event.get("device_clock_offset_s"),
                "last_reading_at": event.get("received_at"),
            }
    return found
