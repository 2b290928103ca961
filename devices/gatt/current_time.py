"""Current Time (0x2A2B) of the Current Time Service: the gateway writes it to set a clock.

Layout (Current Time Service 1.1, section 3.1; GATT Specification Supplement, "Current Time"):
Exact Time 256 (Date Time, day of week uint8 with 1 = Monday .. 7 = Sunday and 0 = unknown,
fractions of a second in 1/256 units) and Adjust Reason (uint8 bit field). 10 octets. The time is
the device's local wall-clock time, naive like every device timestamp: ``encode_current_time``
writes the wall-clock fields of the datetime it is given and ignores its tzinfo.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import IntFlag

from devices.gatt._fields import Reader, Writer
from devices.gatt.errors import DecodeError, EncodeError

CURRENT_TIME = 0x2A2B
_LABEL = "Current Time (0x2A2B)"


class AdjustReason(IntFlag):
    """Why the time was last changed (the Adjust Reason bit field)."""

    NONE = 0
    MANUAL_TIME_UPDATE = 0x01
    EXTERNAL_REFERENCE_TIME_UPDATE = 0x02
    CHANGE_OF_TIME_ZONE = 0x04
    CHANGE_OF_DST = 0x08


@dataclass(frozen=True, slots=True)
class CurrentTime:
    """A decoded Current Time value; ``time`` is None when the device reports its date unknown."""

    time: datetime | None
    adjust_reason: AdjustReason


def encode_current_time(
    now: datetime,
    adjust_reason: AdjustReason = AdjustReason.EXTERNAL_REFERENCE_TIME_UPDATE,
) -> bytes:
    """The 10 octets that set a device clock to ``now`` (default reason: synced to a reference)."""
    if not isinstance(now, datetime):
        raise EncodeError(f"{_LABEL}: expected a datetime, got {now!r}")
    if not 0 <= int(adjust_reason) <= 0x0F:
        raise EncodeError(f"{_LABEL}: adjust reason {int(adjust_reason):#x} sets reserved bits")
    writer = Writer(_LABEL)
    writer.date_time(now, "date_time")
    writer.u8(now.isoweekday(), "day_of_week")
    writer.u8(now.microsecond * 256 // 1_000_000, "fractions256")
    writer.u8(int(adjust_reason), "adjust_reason")
    return writer.getvalue()


def parse_current_time(data: bytes) -> CurrentTime:
    """Decode a Current Time value; DecodeError for a short value or impossible date/weekday.

    A day of week that contradicts the date is accepted (the date wins); reserved adjust reason
    bits are ignored.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise DecodeError(f"{_LABEL}: expected bytes, got {type(data).__name__}")
    reader = Reader(bytes(data), _LABEL)
    stamp = reader.date_time("date_time")
    day_of_week = reader.u8("day_of_week")
    if day_of_week > 7:
        reader.fail(f"field 'day_of_week' at offset 7: {day_of_week} is reserved (0..7)")
    fractions = reader.u8("fractions256")
    reason = AdjustReason(reader.u8("adjust_reason") & 0x0F)
    # Bytes after the last field are ignored, as of every characteristic a receiver reads.
    if stamp is not None:
        # Round up so that encoding the result (which rounds down) gives the same fraction.
        stamp = stamp.replace(microsecond=-(-fractions * 1_000_000 // 256))
    return CurrentTime(time=stamp, adjust_reason=reason)


def decode_current_time(data: bytes) -> datetime | None:
    """The device's wall-clock time, or None when it reports its date as unknown."""
    return parse_current_time(data).time
