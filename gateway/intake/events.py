"""The event schema: everything the gateway knows about one reading, as a flat dict.

Destination chains start from this dict and keep only what their allow-list names, so this is
the single place that defines which fields exist (documented in README "Event schema").
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from gateway.models import Measurement


@dataclass(frozen=True, slots=True)
class BoundReading:
    """A decoded measurement bound to the person it belongs to."""

    reading_id: str
    subject_id: str
    subject_ref: str
    company_id: str | None
    birth_date: date
    device_address: str
    device_ref: str
    profile: str
    measurement: Measurement
    received_at: datetime  # UTC
    clock_offset_s: float | None = None  # device clock minus gateway clock, when known
    sex: str = "unknown"
    device_model: str | None = None


def age_on(birth_date: date, day: date) -> int:
    before_birthday = (day.month, day.day) < (birth_date.month, birth_date.day)
    return day.year - birth_date.year - int(before_birthday)


def age_band(age: int) -> str:
    low = (age // 10) * 10
    return f"{low}-{low + 9}"


@functools.lru_cache(maxsize=1024)
def _person_on(birth_date: date, day: date) -> tuple[str, str, str]:
    """(the day, the birth date, the age band that day) as the event writes them: the same for
    every reading of a person on a day, so made once."""
    return day.isoformat(), birth_date.isoformat(), age_band(age_on(birth_date, day))


def reading_event(reading: BoundReading) -> dict[str, Any]:
    measurement = reading.measurement
    measured_at = measurement.measured_at
    when = measured_at or reading.received_at.replace(tzinfo=None)
    day, birth_date, band = _person_on(reading.birth_date, when.date())
    return {
        "reading_id": reading.reading_id,
        "kind": measurement.kind,
        "values": {
            name: {"value": quantity.value, "unit": quantity.unit}
            for name, quantity in measurement.values.items()
        },
        "measured_at": measured_at.isoformat() if measured_at else None,
        "measured_day": day,
        "measured_hour": when.replace(minute=0, second=0, microsecond=0).isoformat(),
        "received_at": reading.received_at.isoformat(),
        "status": measurement.status,
        "device_clock_offset_s": reading.clock_offset_s,
        "subject": reading.subject_id,
        "company": reading.company_id,
        "birth_date": birth_date,
        "age_band": band,
        "device_address": reading.device_address,
        "device_model": reading.device_model,
        "sex": reading.sex,
        "profile": reading.profile,
    }
