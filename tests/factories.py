"""Small builders of domain objects for unit tests."""

from __future__ import annotations

from datetime import UTC, date, datetime

from gateway.intake.events import BoundReading
from gateway.models import Measurement, Quantity


def bp_measurement(
    systolic: float = 120,
    diastolic: float = 80,
    pulse: float | None = 70,
    unit: str = "mm[Hg]",
    measured_at: datetime | None = None,
) -> Measurement:
    values = {
        "systolic": Quantity(value=systolic, unit=unit),
        "diastolic": Quantity(value=diastolic, unit=unit),
    }
    if pulse is not None:
        values["pulse_rate"] = Quantity(value=pulse, unit="/min")
    return Measurement(
        kind="blood_pressure",
        values=values,
        measured_at=measured_at or datetime(2026, 11, 20, 8, 0, 0),
    )


def bound(
    measurement: Measurement | None = None,
    *,
    reading_id: str = "r-1",
    subject_id: str = "197001011234",
    subject_ref: str = "s-1",
    received_at: datetime | None = None,
) -> BoundReading:
    return BoundReading(
        reading_id=reading_id,
        subject_id=subject_id,
        subject_ref=subject_ref,
        company_id="5591464838",
        birth_date=date(1970, 1, 1),
        device_address="C4:7C:8D:6A:12:34",
        device_ref="device-1",
        profile="blood_pressure",
        measurement=measurement or bp_measurement(),
        received_at=received_at or datetime(2026, 11, 20, 7, 0, 5, tzinfo=UTC),
    )
