"""A device timestamp the gateway cannot use is replaced by the time of receipt, with a reason.

Meters keep their own clocks, and some are badly wrong: a glucose record dated 9999-12-30 from
a meter whose clock is 400 days behind cannot be corrected (the corrected date is past year
9999), and a reading taken "tomorrow" by the gateway's clock is not a time at all. Such a
reading is still a reading: it is stored, judged by the alert rules and delivered, stamped
with when the gateway received it. The device's own stamp and the reason stay in its
``status`` so the care platform and the person can see what the device said.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from gateway.models import Measurement

# A device clock may run a little ahead of the gateway's, even after correction.
FUTURE_SLACK = timedelta(days=1)


def unusable_device_time(
    measurement: Measurement, clock_offset_s: float | None, received_at: datetime
) -> str | None:
    """Why the device's timestamp cannot be used (None: it can)."""
    measured = measurement.measured_at
    if measured is None:
        return None
    try:
        corrected = measured - timedelta(seconds=clock_offset_s or 0.0)
        # Naive device time is read as the hub's local time, as the FHIR mapping reads it.
        instant = corrected.astimezone(UTC)
    except (OverflowError, ValueError):
        return "the device time, corrected by the device's clock offset, is out of range"
    if instant > received_at + FUTURE_SLACK:
        return "the device time, corrected by the device's clock offset, is in the future"
    return None


def stamped_at_receipt(measurement: Measurement, reason: str) -> Measurement:
    """The measurement without its device time; the device's stamp and ``reason`` in status."""
    assert measurement.measured_at is not None
    status = {
        **measurement.status,
        "device_time_replaced": reason,
        "device_time_as_sent": measurement.measured_at.isoformat(),
    }
    return measurement.model_copy(update={"measured_at": None, "status": status})
