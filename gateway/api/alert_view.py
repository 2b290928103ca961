"""Alerts as the person sees them: open ones first, each with what to do; resolved ones folded.

An alert is one rule's episode for one value: raised by a reading outside the limits, resolved
by a later reading back inside. The page shows each episode once (not a card per event), with
the care provider's instructions for its severity from ``[alert_instructions]``.

Sources, newest first: the alert notes held in memory since start (with the measured value),
then the audit log (rule, direction and limit, never the measured value), then alert
disclosures with neither (after a restart that lost both).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from gateway.activity import ActivityEntry
from gateway.i18n import Translator
from gateway.privacy import audit
from gateway.settings import Settings

ALERT_MEMORY = 200
SEVERITIES = ("info", "warning", "critical")


@dataclass(frozen=True, slots=True)
class AlertNote:
    at: float
    type: str  # alert.raised / alert.resolved
    fields: dict[str, Any]


class AlertMemory:
    """Alerts raised since the gateway started, per person (from the activity feed).

    The durable record of an alert is its disclosure in the audit log; this adds what the rule
    said (which value, how far over the limit), which the audit entry does not hold. Erasure
    forgets a person's notes: they hold health values.
    """

    def __init__(self) -> None:
        self._notes: OrderedDict[tuple[str, str, str], AlertNote] = OrderedDict()

    def observe(self, entry: ActivityEntry) -> None:
        if entry.kind not in ("alert.raised", "alert.resolved"):
            return
        # One reading can raise alerts on two values (upper and lower pressure).
        key = (str(entry.fields.get("reading_id")), str(entry.fields.get("value")), entry.kind)
        self._notes[key] = AlertNote(entry.at, entry.kind, dict(entry.fields))
        while len(self._notes) > ALERT_MEMORY:
            self._notes.popitem(last=False)

    def for_subject(self, subject_ref: str) -> list[AlertNote]:
        return [n for n in self._notes.values() if n.fields.get("subject_ref") == subject_ref]

    def forget(self, subject_ref: str) -> None:
        for key in [
            k for k, n in self._notes.items() if n.fields.get("subject_ref") == subject_ref
        ]:
            del self._notes[key]


@dataclass(slots=True)
class _Event:
    at: str  # ISO instant
    type: str  # alert.raised / alert.resolved
    reading_id: str
    kind: str
    value: str
    unit: str
    severity: str | None
    direction: str | None
    limit: float | None
    measured: float | None
    vital_interest: bool = False
    # Window and missing-readings rules (gateway/intake/window_alerts.py): the rule's type, and
    # its own words while the activity note is held (only the type once it is not).
    rule_type: str = "limit"
    phrase: dict[str, Any] | None = None


@dataclass(slots=True)
class _Episode:
    raised: _Event
    resolved: _Event | None = None
    reading_ids: list[str] = field(default_factory=list)  # every raise of the episode


def instructions(settings: Settings, tr: Translator, severity: str | None) -> str:
    configured = next(
        (text for level, text in settings.alert_instructions.items() if level == severity), None
    )
    if isinstance(configured, str):
        return configured
    if isinstance(configured, dict):
        text = configured.get(tr.language) or next(iter(configured.values()), None)
        if text:
            return text
    return tr.t("alert.instructions.default")


def _events(notes: list[AlertNote], entries: list[audit.AuditEntry]) -> list[_Event]:
    found: dict[tuple[str, str, str], _Event] = {}  # (reading, value, type)
    for note in notes:
        f = note.fields
        key = (str(f.get("reading_id")), str(f.get("value")), note.type)
        measured = f.get("measured")
        found[key] = _Event(
            at=datetime.fromtimestamp(note.at, UTC).isoformat(),
            type=note.type,
            reading_id=key[0],
            kind=str(f.get("kind")),
            value=str(f.get("value")),
            unit=str(f.get("unit")),
            severity=f.get("severity"),
            direction=f.get("direction"),
            limit=None if f.get("limit") is None else float(f["limit"]),
            measured=None if measured is None else float(measured),
            rule_type=str(f.get("rule_type") or "limit"),
            phrase=f.get("phrase"),
        )
    for entry in entries:
        if entry.event not in ("alert.raised", "alert.resolved"):
            continue
        data = entry.data
        key = (str(data.get("reading_id")), str(data.get("value")), entry.event)
        if key in found:
            found[key].vital_interest |= bool(data.get("vital_interest"))
            continue
        found[key] = _Event(
            at=entry.at,
            type=entry.event,
            reading_id=key[0],
            kind=str(data.get("kind")),
            value=str(data.get("value")),
            unit=str(data.get("unit")),
            severity=data.get("severity"),
            direction=data.get("direction"),
            limit=None if data.get("limit") is None else float(data["limit"]),
            measured=None,
            vital_interest=bool(data.get("vital_interest")),
            rule_type=str(data.get("rule_type") or "limit"),
        )
    return sorted(found.values(), key=lambda e: e.at)


def _episodes(events: list[_Event]) -> list[_Episode]:
    """Pair each raise with the next resolve of the same value; a raise while one is open for
    the same value (a higher severity, or after the cooldown) joins that open episode."""
    open_by_value: dict[tuple[str, str, str], _Episode] = {}
    episodes: list[_Episode] = []
    for event in events:
        target = (event.kind, event.value, event.rule_type)
        current = open_by_value.get(target)
        if event.type == "alert.raised":
            if current is None:
                current = _Episode(event)
                open_by_value[target] = current
                episodes.append(current)
            else:
                current.raised = event  # the latest word on an open episode
            current.reading_ids.append(event.reading_id)
        elif current is not None:
            current.resolved = event
            del open_by_value[target]
    return episodes


class AlertView:
    def __init__(self, settings: Settings, tr: Translator, now: datetime) -> None:
        self._settings = settings
        self._tr = tr
        self._now = now

    def build(
        self,
        notes: list[AlertNote],
        entries: list[audit.AuditEntry],
        kinds: dict[str, str],
        destination_text: Callable[[str], str],
        erased_at: str | None,
    ) -> list[dict[str, Any]]:
        """Open alerts first (newest first), then resolved ones (newest first).

        Nothing from before the person's last erasure is shown: its values were erased."""
        tr = self._tr
        sent: dict[str, list[dict[str, Any]]] = {}
        for entry in entries:
            if entry.event == "disclosure" and entry.data.get("category") == "alert":
                basis = str(entry.data.get("legal_basis"))
                where = destination_text(str(entry.data.get("destination")))
                sent.setdefault(str(entry.data.get("reading_id")), []).append(
                    {
                        "destination": entry.data.get("destination"),
                        "legal_basis": basis,
                        "at": entry.at,
                        "text": tr.t(
                            "alert.sent", where=where, basis=tr.get(f"basis.{basis}", basis)
                        ),
                    }
                )
        events = [e for e in _events(notes, entries) if erased_at is None or e.at > erased_at]
        covered: set[str] = set()
        alerts: list[dict[str, Any]] = []
        for episode in _episodes(events):
            deliveries = [d for rid in episode.reading_ids for d in sent.get(rid, [])]
            covered.update(episode.reading_ids)
            if episode.resolved is not None:
                covered.add(episode.resolved.reading_id)
            alerts.append(self._card(episode, deliveries))
        for reading_id, deliveries in sent.items():
            if reading_id in covered or (
                erased_at is not None and deliveries[0]["at"] <= erased_at
            ):
                continue
            kind = kinds.get(reading_id, "")
            alerts.append(
                {
                    "at": deliveries[0]["at"],
                    "when": tr.when(deliveries[0]["at"], self._now),
                    "type": "alert",
                    "open": False,
                    "severity": None,
                    "severity_text": "",
                    "title": tr.t("alert.unknown_title", kind=kind_text(tr, kind)),
                    "detail": "",
                    "instructions": "",
                    "resolved_when": "",
                    "vital_interest": any(d["legal_basis"] == "vital_interest" for d in deliveries),
                    "sent": deliveries,
                    "not_sent": "",
                }
            )
        alerts.sort(key=lambda a: str(a["at"]), reverse=True)
        alerts.sort(key=lambda a: not a["open"])  # stable: open first, each group newest first
        return alerts

    def _card(self, episode: _Episode, deliveries: list[dict[str, Any]]) -> dict[str, Any]:
        tr = self._tr
        raised = episode.raised
        unit = unit_text(tr, raised.unit)
        what = tr.t(
            "alert.what", kind=kind_text(tr, raised.kind), value=lower(value_text(tr, raised.value))
        )
        way = "above" if raised.direction == "above" else "below"
        limit = "" if raised.limit is None else tr.number(raised.limit)
        title = tr.t(f"alert.title.{way}", what=what)
        if raised.rule_type != "limit":
            # A window or missing-readings rule speaks in its own words (gateway/api/noticed.py),
            # held while the activity note is; after a restart only its type is known.
            phrase = raised.phrase or {}
            title = (
                window_text(tr, str(phrase["id"]), dict(phrase.get("params") or {})) + "."
                if phrase.get("id")
                else tr.t("alert.title.window", what=what, type=raised.rule_type)
            )
            detail = ""
        elif raised.measured is not None and limit:
            detail = tr.t(
                f"alert.detail.{way}", measured=tr.number(raised.measured), limit=limit, unit=unit
            )
        elif limit:
            detail = tr.t(f"alert.limit_only.{way}", limit=limit, unit=unit)
        else:
            detail = ""
        is_open = episode.resolved is None
        severity = raised.severity if raised.severity in SEVERITIES else "warning"
        return {
            "at": raised.at,
            "when": tr.when(raised.at, self._now),
            "type": "alert.raised",
            "open": is_open,
            "severity": raised.severity,
            "severity_text": tr.t(f"alert.severity.{severity}"),
            "title": title,
            "detail": detail,
            "instructions": instructions(self._settings, tr, raised.severity) if is_open else "",
            "resolved_when": ""
            if episode.resolved is None
            else tr.t(
                "alert.resolved_at", when=tr.when(episode.resolved.at, self._now, inline=True)
            ),
            "vital_interest": raised.vital_interest
            or any(d["legal_basis"] == "vital_interest" for d in deliveries),
            "sent": deliveries,
            "not_sent": "" if deliveries else tr.t("alert.not_sent"),
        }


# Shared words -------------------------------------------------------------------------------

UNIT_TEXT = {
    "mm[Hg]": "mmHg",
    "[lb_av]": "lb",
    "Cel": "°C",
    "[degF]": "°F",
    "kg/m2": "",
}


def unit_text(tr: Translator, unit: str) -> str:
    if unit == "/min":
        return tr.t("unit.per_minute")
    return UNIT_TEXT.get(unit, unit)


def kind_text(tr: Translator, kind: str) -> str:
    return tr.get(f"kind.{kind}", kind.replace("_", " ").capitalize())


def value_text(tr: Translator, name: str) -> str:
    return tr.get(f"value.{name}", name.replace("_", " ").capitalize())


def lower(text: str) -> str:
    """Lower-case the first letter of a label used inside a sentence (not "BMI" or "SpO2")."""
    if len(text) > 1 and text[1].isupper():
        return text
    return text[:1].lower() + text[1:]


def duration_text(tr: Translator, seconds: float) -> str:
    """A rule's window in the page's language ("3 dagar", "12 hours")."""
    for unit, size in (("day", 86_400), ("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            return tr.plural(f"duration.{unit}", int(seconds // size))
    return tr.plural("duration.second", round(seconds))


def window_text(tr: Translator, message_id: str, params: dict[str, Any]) -> str:
    """What a window or missing-readings rule noticed, in the page's language, from the
    message id and parameters the rule stored (gateway/api/noticed.py keeps their English)."""
    value = str(params.get("value"))
    window = params.get("window_s")
    words = {
        "name": lower(value_text(tr, value)),
        "kind": lower(kind_text(tr, str(params.get("kind")))),
        "amount": tr.number(float(params.get("amount") or 0)),
        "count": tr.number(float(params.get("amount") or 0)),
        "limit": tr.number(float(params.get("limit") or 0)),
        "threshold": tr.number(float(params.get("threshold") or 0)),
        "beyond": tr.get(f"noticed.beyond.{params.get('beyond')}", "beyond"),
        "unit": unit_text(tr, str(params.get("unit") or "")),
        "window": duration_text(tr, float(window)) if window else "",
    }
    return tr.get(f"noticed.{message_id}", tr.t("noticed.unknown"), **words)
