"""What the hub page shows one person, in plain words and their language: readings, trends,
devices, consents, who received their data, and alerts (``GET /api/subjects/{id}/summary``).

The texts come from the message catalogue (``gateway/i18n.py``) in the language the request
asks for, with times in the hub's zone; the raw fields (destination, purpose, legal basis,
ISO times) travel beside them so a script can use the same endpoint.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import orjson

from gateway.api.alert_view import (
    AlertMemory,
    AlertNote,
    AlertView,
    kind_text,
    lower,
    unit_text,
    value_text,
)
from gateway.api.charts import Series, trend_svg
from gateway.api.noticed import KIND_LABELS  # the page's English kind names, one list
from gateway.api.trends import Limit, daily, sentence
from gateway.i18n import Translator
from gateway.privacy import audit
from gateway.settings import PURPOSES, AlertRuleSettings, Settings
from gateway.storage import consents, quarantine, readings
from gateway.storage.alert_state import AlertStateStore
from gateway.storage.database import reading_aad
from gateway.units import UnitError, convert

if TYPE_CHECKING:
    from gateway.storage.crypto import Sealer

__all__ = ["KIND_LABELS", "AlertMemory", "AlertNote", "SummaryBuilder", "device_readings"]

TREND_DAYS = 30
HISTORY_LIMIT = 100
# Withdrawing these stops the care team hearing about the person: the page warns first and
# shows a banner while they are off.
MONITORING_PURPOSES = ("care", "alerting")

# English names for the operator's views (the CLI and /api/devices); the page uses the
# catalogue.
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
DESTINATION_KINDS = ("fhir", "webhook", "analytics", "aggregate")


def _when(event: dict[str, Any]) -> str:
    """The device's own time (local, as the device showed it) or, failing that, receipt."""
    return str(event.get("measured_at") or event["received_at"])


def _values(event: dict[str, Any]) -> dict[str, tuple[float, str]]:
    return {
        name: (float(q["value"]), str(q["unit"])) for name, q in event.get("values", {}).items()
    }


def rules_for(settings: Settings, subject_id: str) -> list[AlertRuleSettings]:
    """The rules that apply to a person: their own replace the general ones for a value."""
    own = settings.subject(subject_id).alert_rules
    replaced = {(rule.kind, rule.value) for rule in own}
    general = [r for r in settings.alert_rules if (r.kind, r.value) not in replaced]
    return [*own, *general]


class SummaryBuilder:
    def __init__(self, settings: Settings, sealer: Sealer) -> None:
        self._settings = settings
        self._sealer = sealer
        self.sealer = sealer
        self.device_names = {device.address: device.name for device in settings.devices}

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
            "alert_state": AlertStateStore(self._sealer).load(connection, ref),
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

    def translator(self, language: str) -> Translator:
        return Translator(language, self._settings.gateway.zone)

    def build(
        self,
        subject_id: str,
        held: dict[str, Any],
        *,
        language: str,
        restricted: bool,
        devices: list[dict[str, Any]],
        alerts: list[AlertNote],
        now: float | None = None,
    ) -> dict[str, Any]:
        now = time.time() if now is None else now
        moment = datetime.fromtimestamp(now, UTC)
        tr = self.translator(language)
        start = now - TREND_DAYS * 86400
        by_kind: dict[str, list[dict[str, Any]]] = {}
        for event in held["recent"]:
            by_kind.setdefault(str(event["kind"]), []).append(event)
        rules = rules_for(self._settings, subject_id)
        consents = self._consents(tr, subject_id, held["consents"])
        erased_at = next(
            (e.at for e in held["entries"] if e.event == "subject.erased"), None
        )  # entries are newest first
        return {
            "language": language,
            "restricted": restricted,
            "monitoring": self._monitoring(tr, consents, restricted),
            "latest": [self._latest_card(tr, event, moment) for event in held["latest"]],
            "trends": [
                self._trend_card(tr, kind, events, rules, start, now)
                for kind, events in sorted(by_kind.items())
            ],
            "devices": [self._device(tr, d, moment) for d in devices],
            "consents": consents,
            "history": self._history(tr, held["entries"], held["kinds"], moment),
            "alerts": AlertView(self._settings, tr, moment).build(
                alerts, held["entries"], held["kinds"], self._destination_text_for(tr), erased_at
            ),
            # Stored readings that could not be opened, and items kept aside for that reason.
            "unreadable_readings": held.get("unreadable", 0),
            "quarantined": held.get("quarantined", 0),
            "storage_notice": self._storage_notice(tr, held),
            "generated_at": moment.isoformat(),
            "updated": tr.t("summary.updated", when=tr.when(moment, moment, inline=True)),
        }

    # Readings and trends --------------------------------------------------------------------

    @staticmethod
    def _storage_notice(tr: Translator, held: dict[str, Any]) -> str:
        """A line for the page when some of the person's stored data could not be read."""
        damaged = held.get("unreadable", 0) or held.get("quarantined", 0)
        return tr.t("storage.damaged", count=damaged) if damaged else ""

    def _latest_card(self, tr: Translator, event: dict[str, Any], now: datetime) -> dict[str, Any]:
        kind = str(event["kind"])
        values = _values(event)
        details = []
        if kind == "blood_pressure" and "systolic" in values and "diastolic" in values:
            headline = f"{tr.number(values['systolic'][0])}/{tr.number(values['diastolic'][0])}"
            unit = unit_text(tr, values["systolic"][1])
            shown = {"systolic", "diastolic", "mean_arterial_pressure"}
        else:
            primary = next(iter(TREND_VALUES.get(kind, [])), (None, ""))[0]
            name = primary if primary in values else next(iter(values), None)
            headline = tr.number(values[name][0]) if name else "—"
            unit = unit_text(tr, values[name][1]) if name else ""
            shown = {name}
        for name, (value, value_unit) in values.items():
            if name not in shown:
                details.append(
                    {
                        "name": name,
                        "label": value_text(tr, name),
                        "value": tr.number(value),
                        "unit": unit_text(tr, value_unit),
                    }
                )
        device = self.device_names.get(str(event.get("device_address"))) or ""
        when = tr.when(_when(event), now)
        return {
            "kind": kind,
            "label": kind_text(tr, kind),
            "at": _when(event),
            "when": tr.t("latest.when_from", when=when, device=device) if device else when,
            "headline": headline,
            "unit": unit,
            "details": details,
            "device": device,
            "reading_id": event["reading_id"],
        }

    def _limits(
        self, tr: Translator, rules: list[AlertRuleSettings], kind: str, name: str, unit: str
    ) -> list[Limit]:
        limits = []
        for rule in rules:
            if rule.kind != kind or rule.value != name:
                continue
            for direction, bound in (("above", rule.above), ("below", rule.below)):
                if bound is None:
                    continue
                try:
                    value = convert(bound, rule.unit or unit, unit)
                except UnitError:
                    continue  # a rule in a unit this value cannot be shown in: no line
                label = tr.t(
                    "chart.limit",
                    value=lower(value_text(tr, name)),
                    limit=tr.number(value),
                    unit=unit_text(tr, unit),
                )
                limits.append(Limit(value, direction, label))
        return limits

    def _trend_card(
        self,
        tr: Translator,
        kind: str,
        events: list[dict[str, Any]],
        rules: list[AlertRuleSettings],
        start: float,
        end: float,
    ) -> dict[str, Any]:
        wanted = TREND_VALUES.get(kind)
        if wanted is None:
            first = next((name for e in events for name in e.get("values", {})), None)
            wanted = [(first, "#1d4e89")] if first else []
        series: list[Series] = []
        limits: list[Limit] = []
        sentences: list[str] = []
        unit = ""
        for name, colour in wanted:
            points, ucum = [], ""
            for event in events:
                value = event.get("values", {}).get(name)
                if value is not None:
                    points.append((_epoch(_when(event), tr), float(value["value"])))
                    ucum = str(value["unit"])
            if not points:
                continue
            unit = unit_text(tr, ucum)
            days = daily(points, tr.zone)
            own_limits = self._limits(tr, rules, kind, name, ucum)
            limits += own_limits
            series.append(Series(value_text(tr, name), colour, days))
            sentences.append(sentence(tr, value_text(tr, name), unit, days, own_limits))
        label = kind_text(tr, kind)
        ranges = "; ".join(
            tr.t(
                "chart.range",
                value=s.label,
                low=tr.number(min(d.low for d in s.days)),
                high=tr.number(max(d.high for d in s.days)),
                unit=unit,
            )
            for s in series
        )
        days_count = len({d.day for s in series for d in s.days})
        aria = tr.t("chart.label", kind=label, days=days_count, ranges=ranges)
        return {
            "kind": kind,
            "label": label,
            "title": tr.plural("trend.title", len(events), kind=label),
            "unit": unit,
            "readings": len(events),
            "days": days_count,
            "legend": [
                {"label": tr.t("chart.legend", value=s.label, unit=unit), "colour": s.colour}
                for s in series
            ],
            "limits": [{"value": limit.value, "label": limit.label} for limit in limits],
            # The first value's trend (the upper pressure of a blood pressure) says enough.
            "sentence": sentences[0] if sentences else "",
            "how_to_read": tr.t("chart.how_to_read"),
            "svg": trend_svg(tr, series, limits, start, end, aria) if series else "",
        }

    # Devices -----------------------------------------------------------------------------------

    def _device(self, tr: Translator, device: dict[str, Any], now: datetime) -> dict[str, Any]:
        """A device in plain words, with what needs the person's attention first."""
        gateway = self._settings.gateway
        trouble: list[dict[str, str]] = []
        if device.get("radio_problem"):
            trouble.append({"code": "radio", "text": tr.t("device.radio")})
        battery = device.get("battery_level")
        if battery is not None and battery <= gateway.low_battery_percent:
            trouble.append(
                {"code": "battery_low", "text": tr.t("device.battery_low", level=battery)}
            )
        last_seen = device.get("last_seen") or device.get("last_reading_at")
        if last_seen:
            seen = datetime.fromisoformat(str(last_seen))
            if seen.tzinfo is None:
                seen = seen.replace(tzinfo=UTC)
            days = (now - seen).total_seconds() / 86400
            if days >= gateway.device_unseen_days:
                trouble.append({"code": "unseen", "text": tr.plural("device.unseen", round(days))})
        if device.get("consent_refused"):
            trouble.append({"code": "consent_refused", "text": tr.t("device.consent_refused")})
        if device.get("held_ambiguous"):
            trouble.append({"code": "held", "text": tr.t("device.held")})
        connected = bool(device.get("connected"))
        state = tr.t("device.last_seen", ago=tr.ago(last_seen, now))
        if battery is not None:
            state += " " + tr.t("device.battery", level=battery)
        return {
            **device,
            "name": device.get("name") or kind_text(tr, str(device.get("profile", ""))),
            "badge": tr.t("device.connected" if connected else "device.not_connected"),
            "state": state,
            "hint": ""
            if connected or trouble
            else tr.t(
                "device.listened_to" if device.get("broadcast") else "device.normal_when_idle"
            ),
            "trouble": trouble,
        }

    # Consents and monitoring -------------------------------------------------------------------

    def _destination_text(self, tr: Translator, name: str) -> str:
        for destination in self._settings.destinations:
            if destination.name == name:
                what = tr.get(f"destination.{destination.kind}", destination.kind)
                return tr.t("destination.named", name=name, what=what)
        return name

    def _destination_text_for(self, tr: Translator) -> Callable[[str], str]:
        return lambda name: self._destination_text(tr, name)

    def _consents(
        self, tr: Translator, subject_id: str, recorded: dict[str, tuple[bool, str]]
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
            granted, changed_at = recorded.get(purpose, (False, None))
            note = tr.t("consent.note.vital") if purpose == "alerting" and vital else ""
            warning = ""
            if purpose in MONITORING_PURPOSES and destinations.get(purpose):
                warning = tr.t(f"consent.withdraw_warning.{purpose}")
            result.append(
                {
                    "purpose": purpose,
                    "label": purpose_text(tr, purpose),
                    "explanation": tr.get(f"purpose.{purpose}.explain", ""),
                    "note": note,
                    "granted": granted,
                    "state": tr.t("consent.allowed" if granted else "consent.not_allowed"),
                    "changed_at": changed_at,
                    "withdraw_warning": warning,
                    "destinations": [
                        self._destination_text(tr, name) for name in destinations.get(purpose, [])
                    ],
                    "goes_to": tr.t(
                        "consent.goes_to",
                        where=", ".join(
                            self._destination_text(tr, n) for n in destinations.get(purpose, [])
                        ),
                    )
                    if destinations.get(purpose)
                    else "",
                }
            )
        return result

    def _monitoring(
        self, tr: Translator, consents: list[dict[str, Any]], restricted: bool
    ) -> dict[str, Any]:
        """Whether the care team still hears about this person, said plainly for a banner."""
        served = {c["purpose"] for c in consents if c["destinations"]}
        stopped = [
            p
            for p in MONITORING_PURPOSES
            if p in served
            and (restricted or not next(c["granted"] for c in consents if c["purpose"] == p))
        ]
        if not stopped:
            return {"stopped": [], "banner": ""}
        key = "both" if len(stopped) == len(MONITORING_PURPOSES) else stopped[0]
        return {"stopped": stopped, "banner": tr.t(f"monitoring.stopped.{key}")}

    # History -------------------------------------------------------------------------------------

    def _history(
        self,
        tr: Translator,
        entries: list[audit.AuditEntry],
        kinds: dict[str, str],
        now: datetime,
    ) -> list[dict[str, Any]]:
        history = []
        for entry in entries:
            data = entry.data
            item: dict[str, Any] = {
                "at": entry.at,
                "when": tr.when(entry.at, now),
                "event": entry.event,
            }
            if entry.event == "disclosure":
                kind = kinds.get(str(data.get("reading_id")), "")
                what_kind = lower(kind_text(tr, kind)) if kind else tr.t("history.a_reading")
                category = "alert" if data.get("category") == "alert" else "reading"
                basis = str(data.get("legal_basis"))
                item |= {
                    "type": "disclosure",
                    "title": tr.t(
                        "history.sent.title",
                        where=self._destination_text(tr, str(data.get("destination"))),
                    ),
                    "detail": tr.t(
                        f"history.sent.{category}",
                        kind=what_kind,
                        purpose=lower(purpose_text(tr, str(data.get("purpose")))),
                        basis=tr.get(f"basis.{basis}", basis),
                    ),
                    "destination": data.get("destination"),
                    "purpose": data.get("purpose"),
                    "legal_basis": basis,
                    "category": data.get("category"),
                    "fields": data.get("fields", []),
                }
            elif entry.event == "consent.changed":
                purposes = data.get("purposes", {})
                key = "history.setup" if data.get("source") == "config" else "history.changed"
                detail = "; ".join(
                    tr.t(
                        "history.consent.allowed" if granted else "history.consent.withdrawn",
                        purpose=purpose_text(tr, p),
                    )
                    for p, granted in purposes.items()
                )
                item |= {"type": "consent", "title": tr.t(key), "detail": detail}
            elif entry.event == "consent.withdrawn.purged":
                item |= {
                    "type": "consent",
                    "title": tr.t(
                        "history.withdrawn.title",
                        purpose=purpose_text(tr, str(data.get("purpose"))),
                    ),
                    "detail": tr.plural(
                        "history.withdrawn.detail", int(data.get("queued_items_removed", 0))
                    ),
                    "purpose": data.get("purpose"),
                }
            elif entry.event == "withheld":
                item |= {
                    "type": "withheld",
                    "title": tr.t(
                        "history.withheld.title",
                        where=self._destination_text(tr, str(data.get("destination"))),
                    ),
                    "detail": tr.t("history.withheld.detail"),
                    "destination": data.get("destination"),
                }
            elif entry.event == "restriction.changed":
                key = "history.paused" if data.get("restricted") else "history.resumed"
                item |= {
                    "type": "restriction",
                    "title": tr.t(f"{key}.title"),
                    "detail": tr.t(f"{key}.detail"),
                }
            elif entry.event == "subject.exported":
                item |= {
                    "type": "export",
                    "title": tr.t("history.export.title"),
                    "detail": tr.t(
                        "history.export.detail", format=str(data.get("format", "")).upper()
                    ),
                }
            elif entry.event == "subject.erased":
                counts = data.get("counts", {})
                item |= {
                    "type": "erasure",
                    "title": tr.t("history.erased.title"),
                    "detail": tr.t(
                        "history.erased.detail",
                        readings=counts.get("readings", 0),
                        queued=counts.get("queued", 0),
                    ),
                }
            else:
                continue
            history.append(item)
        return history


def purpose_text(tr: Translator, purpose: str) -> str:
    return tr.get(f"purpose.{purpose}.label", purpose.replace("_", " ").capitalize())


def _epoch(when: str, tr: Translator) -> float:
    moment = datetime.fromisoformat(when)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=tr.zone)  # the device's clock is read as the hub's time
    return moment.timestamp()


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
