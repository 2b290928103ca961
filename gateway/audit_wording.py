"""One sentence per audit entry for ``health-gateway audit show``: what happened, to what.

The audit log keeps structured data (``gateway/audit.py``); an operator asked "who withdrew
what?" needs the consent that changed and its new state, not ``source=operator-api``. Events
this module does not know are shown as their plain ``key=value`` fields, so a new event is
never hidden.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

_SOURCES = {
    "operator-api": "by the operator",
    "hub-page": "by the person on the hub page",
    "config": "from the config file",
}


def _by(data: dict[str, Any]) -> str:
    source = data.get("source")
    if not source:
        return ""
    return " " + _SOURCES.get(str(source), f"by {source}")


def _consent(data: dict[str, Any]) -> str:
    purposes = data.get("purposes") or {}
    changes = ", ".join(
        f"{purpose} {'granted' if granted else 'withdrawn'}"
        for purpose, granted in sorted(purposes.items())
    )
    return f"consent: {changes or 'no purposes'}{_by(data)}"


def _purged(data: dict[str, Any]) -> str:
    return (
        f"{data.get('purpose')} withdrawn: {data.get('queued_items_removed', 0)}"
        " queued item(s) removed"
    )


def _restriction(data: dict[str, Any]) -> str:
    state = "restricted (stored, nothing sent)" if data.get("restricted") else "restriction lifted"
    return f"processing {state}{_by(data)}"


def _erased(data: dict[str, Any]) -> str:
    counts = data.get("counts") or {}
    deleted = ", ".join(f"{count} {name.replace('_', ' ')}" for name, count in counts.items())
    return f"erased: {deleted or 'nothing held'}; every consent withdrawn{_by(data)}"


def _disclosure(data: dict[str, Any]) -> str:
    fields = ", ".join(data.get("fields") or []) or "no fields"
    basis = str(data.get("legal_basis", "")).replace("_", " ")
    return (
        f"sent to {data.get('destination')} for {data.get('purpose')} ({basis}),"
        f" reading {data.get('reading_id')}: {fields}"
    )


def _withheld(data: dict[str, Any]) -> str:
    return (
        f"not sent to {data.get('destination')} ({data.get('reason')});"
        f" reading {data.get('reading_id')}"
    )


def _alert(verb: str) -> Callable[[dict[str, Any]], str]:
    def describe(data: dict[str, Any]) -> str:
        what = f"{data.get('severity')} alert {verb}: {data.get('kind')} {data.get('value')}"
        limit = data.get("limit")
        if limit is None:  # a resolution: back inside the rule's range
            where = " back within its limit"
        else:
            direction = "above" if data.get("direction") == "above" else "below"
            where = f" {direction} {limit:g} {data.get('unit') or ''}".rstrip()
        personal = " (personal limit)" if data.get("personal_rule") else ""
        vital = "; sent on vital interest" if data.get("vital_interest") else ""
        return what + where + personal + vital

    return describe


def _requeued(data: dict[str, Any]) -> str:
    ids = ", ".join(str(i) for i in data.get("ids") or []) or "none"
    return f"dead letters re-queued: {ids}{_by(data)}"


def _retention(data: dict[str, Any]) -> str:
    counts = ", ".join(
        f"{count} {name.replace('_', ' ')}"
        for name, count in data.items()
        if name != "retention_days"
    )
    return f"older than {data.get('retention_days')} days deleted: {counts}"


def _held_assigned(data: dict[str, Any]) -> str:
    return f"held weighing {data['held_id']} assigned by {data.get('source')}"


def _held_discarded(data: dict[str, Any]) -> str:
    return f"held weighing {data['held_id']} discarded by {data.get('source')}"


_DESCRIBERS: dict[str, Callable[[dict[str, Any]], str]] = {
    "consent.changed": _consent,
    "consent.withdrawn.purged": _purged,
    "restriction.changed": _restriction,
    "subject.erased": _erased,
    "disclosure": _disclosure,
    "withheld": _withheld,
    "alert.raised": _alert("raised"),
    "alert.resolved": _alert("resolved"),
    "dead_letters.requeued": _requeued,
    "retention.deleted": _retention,
    "held_weighing.assigned": _held_assigned,
    "held_weighing.discarded": _held_discarded,
}


def describe_entry(event: str, data: dict[str, Any]) -> str:
    """What the entry says, in one line."""
    describer = _DESCRIBERS.get(event)
    if describer is not None:
        try:
            return describer(data)
        except (AttributeError, TypeError, ValueError):
            pass  # an older or unexpected shape: fall back to the plain fields below
    return ", ".join(
        f"{key}={value}" for key, value in data.items() if not isinstance(value, dict | list)
    )
