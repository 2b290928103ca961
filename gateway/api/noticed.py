"""What the alert rules have noticed and still hold, in plain words for the person's hub page.

Read from the persisted alert state (``gateway/storage/alert_state.py``), so it is the same after a
restart. Each item carries its wording as data: a message id and parameters (``message``),
and the English text made from ``MESSAGES``, so the page can word it in the person's language
from the same id. The care provider's ``instructions`` of the rule travel beside it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from gateway.intake.alert_windows import duration_words
from gateway.settings import AlertRuleSettings, Settings

# The value as a person would name it, in the middle of a sentence.
VALUE_NAMES = {
    "body_weight": "weight",
    "systolic": "upper blood pressure (systolic)",
    "diastolic": "lower blood pressure (diastolic)",
    "mean_arterial_pressure": "mean blood pressure",
    "pulse_rate": "pulse",
    "heart_rate": "heart rate",
    "glucose": "blood sugar",
    "body_temperature": "temperature",
    "spo2": "oxygen saturation",
    "body_fat_percentage": "body fat",
}
# Message id -> English template; the parameters are worded by ``_words``.
MESSAGES = {
    "limit.above": "Your {name} was {amount} {unit}, above the limit of {limit} {unit}",
    "limit.below": "Your {name} was {amount} {unit}, below the limit of {limit} {unit}",
    "change.rise": "Your {name} has gone up {amount} {unit} in {window}",
    "change.fall": "Your {name} has gone down {amount} {unit} in {window}",
    "mean.above": "Your average {name} over {window} is {amount} {unit}, above {limit} {unit}",
    "mean.below": "Your average {name} over {window} is {amount} {unit}, below {limit} {unit}",
    "count.at_least": "{count} {name} readings {beyond} {threshold} {unit} within {window}",
    "missing.longer_than": "No {kind} reading for {window} or more",
}


KIND_LABELS = {
    "blood_pressure": "Blood pressure",
    "weight": "Weight",
    "body_composition": "Body composition",
    "glucose": "Blood sugar",
    "temperature": "Temperature",
    "heart_rate": "Heart rate",
    "spo2": "Blood oxygen",
}
UNIT_LABELS = {
    "mm[Hg]": "mmHg",
    "/min": "beats per minute",
    "[lb_av]": "lb",
    "Cel": "°C",
    "[degF]": "°F",
    "kg/m2": "",
}


def number(value: float) -> str:
    rounded = round(value, 1)
    return f"{rounded:g}"


def unit_label(unit: str) -> str:
    return UNIT_LABELS.get(unit, unit)


def noticed(
    rows: list[tuple[str, str, dict[str, Any]]],
    settings: Settings,
    subject_id: str,
    wording: Callable[[str, dict[str, Any]], str] | None = None,
) -> list[dict[str, Any]]:
    """One item per alert raised and not yet resolved, newest first; ``wording`` words each in
    the page's language (default: English)."""
    word = wording or text
    items = []
    for _ref, slot, state in rows:
        phrase = state.get("phrase") or {}
        key = state.get("active") if slot.startswith("missing/") else state.get("rule")
        if not phrase or not key:
            continue
        rule = _rule(settings, subject_id, str(key))
        since = state.get("gap_from") if slot.startswith("missing/") else state.get("raised_at")
        items.append(
            {
                "message": {"id": phrase["id"], "params": phrase["params"]},
                "text": word(phrase["id"], phrase["params"]),
                "severity": rule.severity if rule else None,
                "instructions": rule.instructions if rule else None,
                "since": _iso(since),
            }
        )
    items.sort(key=lambda item: str(item["since"]), reverse=True)
    return items


def text(message_id: str, params: dict[str, Any]) -> str:
    template = MESSAGES.get(message_id)
    if template is None:
        return "Something in your readings was noticed"
    return template.format(**_words(params))


def _words(params: dict[str, Any]) -> dict[str, str]:
    value = params.get("value")
    kind = str(params.get("kind"))
    window = params.get("window_s")
    return {
        "name": VALUE_NAMES.get(str(value), str(value).replace("_", " ")),
        "kind": KIND_LABELS.get(kind, kind.replace("_", " ")).lower(),
        "amount": number(float(params.get("amount") or 0)),
        "count": f"{float(params.get('amount') or 0):g}",
        "limit": number(float(params.get("limit") or 0)),
        "threshold": number(float(params.get("threshold") or 0)),
        "beyond": str(params.get("beyond", "beyond")),
        "unit": unit_label(str(params.get("unit") or "")),
        "window": duration_words(float(window)) if window else "",
    }


def _rule(settings: Settings, subject_id: str, key: str) -> AlertRuleSettings | None:
    rules = (
        settings.alert_rules if key.startswith("g") else settings.subject(subject_id).alert_rules
    )
    index = int(key[1:]) if key[1:].isdigit() else -1
    return rules[index] if 0 <= index < len(rules) else None


def _iso(moment: object) -> str | None:
    if isinstance(moment, int | float):
        return datetime.fromtimestamp(moment, UTC).isoformat()
    return None if moment is None else str(moment)
