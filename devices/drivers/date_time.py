"""Date Time (0x2A08, GATT Specification Supplement 3.70): the clock of A&D and Roche devices.

Seven octets: year (uint16, 0 = unknown), month, day (0 = unknown), hours, minutes, seconds;
the device's local wall-clock time, naive. Built on the field readers of ``devices.gatt`` so
that its errors read like every other codec's.
"""

from __future__ import annotations

from datetime import datetime

from devices.gatt._fields import Reader, Writer

DATE_TIME_UUID16 = 0x2A08
_LABEL = "Date Time (0x2A08)"


def encode_date_time(now: datetime) -> bytes:
    """The 7 octets that set a device's Date Time to ``now`` (whole seconds)."""
    writer = Writer(_LABEL)
    writer.date_time(now, "date_time")
    return writer.getvalue()


def decode_date_time(data: bytes) -> datetime | None:
    """The device time, None when it reports its date unknown; DecodeError when malformed.

    Octets after the seventh are ignored, as a receiver ignores what a later version appends.
    """
    return Reader(bytes(data), _LABEL).date_time("date_time")
