"""Scripted readings for simulated devices, from config rows.

A row is a table of value names (in the profile's default unit, see ``devices.profiles``) plus
optional ``measured_at`` (ISO 8601 string or datetime, the device's local time, so
timezone-naive) and ``user_index`` (a multi-user scale's User ID)::

    {systolic = 190, diastolic = 100, pulse_rate = 90, measured_at = "2026-11-20T08:00:00"}
    {body_weight = 82.4, bmi = 25.4, height = 1.80, user_index = 1}

A few profiles take named details as strings too (they go into ``Measurement.status``):
glucose ``meal``, ``tester``, ``health`` (sent as the record's Glucose Measurement Context),
``sample_type`` and ``sample_location``; temperature ``temperature_type``. The names are the
codecs' (``devices.gatt.glucose``, ``glucose_context``, ``temperature``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from devices.gatt.glucose import SAMPLE_LOCATIONS, SAMPLE_TYPES
from devices.gatt.glucose_context import HEALTH, MEALS, TESTERS
from devices.gatt.temperature import TEMPERATURE_TYPES
from devices.models import Measurement, Quantity
from devices.profiles import Profile, profile

_RESERVED = ("measured_at", "user_index")
# Per profile: detail name -> the names it may take.
DETAILS: dict[str, dict[str, tuple[str, ...]]] = {
    "glucose": {
        "meal": tuple(MEALS.values()),
        "tester": tuple(TESTERS.values()),
        "health": tuple(HEALTH.values()),
        "sample_type": tuple(SAMPLE_TYPES.values()),
        "sample_location": tuple(SAMPLE_LOCATIONS.values()),
    },
    "temperature": {"temperature_type": tuple(TEMPERATURE_TYPES.values())},
}


def script_to_measurements(
    profile_name: str, rows: Sequence[Mapping[str, Any]]
) -> list[Measurement]:
    """Turn script rows into Measurements of the profile's kind; ValueError names the bad field."""
    try:
        prof = profile(profile_name)
    except KeyError as exc:
        raise ValueError(exc.args[0]) from None
    return [_row(prof, index, row) for index, row in enumerate(rows)]


def _row(prof: Profile, index: int, row: Mapping[str, Any]) -> Measurement:
    where = f"script row {index + 1}"
    if not isinstance(row, Mapping):
        raise ValueError(f"{where}: expected a table of values, got {type(row).__name__}")
    values: dict[str, Quantity] = {}
    details = DETAILS.get(prof.name, {})
    status: dict[str, Any] = {}
    for name, raw in row.items():
        if name in _RESERVED:
            continue
        if name in details:
            if raw not in details[name]:
                raise ValueError(
                    f"{where}: {name!r} must be one of {', '.join(details[name])}, got {raw!r}"
                )
            status[name] = raw
            continue
        unit = prof.default_units.get(name)
        if unit is None:
            allowed = ", ".join([*prof.default_units, *details, *_RESERVED])
            raise ValueError(
                f"{where}: unknown value {name!r} for profile {prof.name!r} (expected: {allowed})"
            )
        if isinstance(raw, bool) or not isinstance(raw, int | float):
            raise ValueError(f"{where}: value {name!r} must be a number, got {raw!r}")
        values[name] = Quantity(value=float(raw), unit=unit)
    if not values:
        raise ValueError(f"{where}: no values (expected some of: {', '.join(prof.default_units)})")
    return Measurement(
        kind=prof.name,
        values=values,
        measured_at=_measured_at(where, row.get("measured_at")),
        user_index=_user_index(where, row.get("user_index")),
        status=status,
    )


def _measured_at(where: str, raw: object) -> datetime | None:
    if raw is None:
        return None
    if isinstance(raw, datetime):
        stamp = raw
    elif isinstance(raw, str):
        try:
            stamp = datetime.fromisoformat(raw)
        except ValueError:
            raise ValueError(
                f"{where}: 'measured_at' {raw!r} is not an ISO 8601 date-time "
                "(e.g. 2026-11-20T08:00:00)"
            ) from None
    else:
        raise ValueError(f"{where}: 'measured_at' must be an ISO 8601 string, got {raw!r}")
    if stamp.tzinfo is not None:
        raise ValueError(
            f"{where}: 'measured_at' {raw!r} has a UTC offset; devices keep local time, "
            "so leave the offset out"
        )
    return stamp


def _user_index(where: str, raw: object) -> int | None:
    if raw is None:
        return None
    if isinstance(raw, bool) or not isinstance(raw, int) or not 0 <= raw <= 0xFE:
        raise ValueError(f"{where}: 'user_index' must be an integer 0..254, got {raw!r}")
    return raw
