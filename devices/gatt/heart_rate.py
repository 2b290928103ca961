"""Heart Rate Measurement (0x2A37).

Layout (Heart Rate Service 1.0, section 3.1; GATT Specification Supplement, "Heart Rate
Measurement"): flags uint8 (bit 0 heart rate as uint16 instead of uint8, bits 1-2 sensor contact
status, bit 3 energy expended, bit 4 RR intervals), heart rate (uint8 or uint16, beats per minute),
then the optional energy expended (uint16, kJ) and RR intervals (uint16 each, 1/1024 s) filling
the rest of the value.

Values: ``heart_rate`` ("/min"), ``energy_expended`` ("kJ"; a sensor holds it at 65535 once it
saturates until the client resets it through the control point).

Status keys:

* ``sensor_contact`` (always): "not_supported" (bits 0b00 or 0b01), "not_detected" (0b10) or
  "detected" (0b11).
* ``rr_intervals``: list of seconds (float, resolution 1/1024 s), oldest first; present when the
  flag is set (possibly empty).

The encoder writes the heart rate as uint8 when it fits and as uint16 otherwise, and rounds RR
intervals to 1/1024 s. Reserved flag bits (5..7) and bytes after the last announced field (when
there are no RR intervals, which run to the end) are ignored, as the specifications require of a
receiver (``devices.gatt.decode`` records them in ``status["reserved_flags"]`` and
``status["ignored_bytes"]``). An odd number of bytes where RR intervals are is an interval cut
short: DecodeError.
"""

from __future__ import annotations

import math
from typing import Any

from devices.gatt._codec import Codec
from devices.gatt._fields import (
    Reader,
    ValueSink,
    ValueSource,
    Writer,
    fixed_point,
    to_fixed_point,
)
from devices.ieee11073 import SpecialValue
from devices.models import Measurement

HEART_RATE_MEASUREMENT = 0x2A37

_UINT16 = 0x01
_CONTACT_MASK = 0x06
_ENERGY = 0x08
_RR = 0x10
_DEFINED_FLAGS = 0x1F

SENSOR_CONTACT = {0: "not_supported", 1: "not_supported", 2: "not_detected", 3: "detected"}
_CONTACT_CODES = {"not_supported": 0, "not_detected": 2, "detected": 3}
RR_RESOLUTION = (1, 1024)
RATE_UNIT = "/min"
ENERGY_UNIT = "kJ"


def decode_heart_rate(reader: Reader) -> Measurement:
    flags = reader.flags(1, _DEFINED_FLAGS)
    rate = reader.u16("heart_rate") if flags & _UINT16 else reader.u8("heart_rate")
    sink = ValueSink()
    sink.put("heart_rate", rate, RATE_UNIT)
    status: dict[str, Any] = {"sensor_contact": SENSOR_CONTACT[(flags & _CONTACT_MASK) >> 1]}
    if flags & _ENERGY:
        sink.put("energy_expended", reader.u16("energy_expended"), ENERGY_UNIT)
    if flags & _RR:
        # The intervals run to the end of the value: an odd byte is an interval cut short
        # (truncation), not a trailing byte after the last field.
        if reader.remaining() % 2:
            reader.fail(
                f"field 'rr_intervals' at offset {reader.offset}: {reader.remaining()} byte(s) "
                "left, expected a whole number of 2-byte intervals"
            )
        count = reader.remaining() // 2
        status["rr_intervals"] = [
            fixed_point(reader.u16(f"rr_intervals[{i}]"), *RR_RESOLUTION) for i in range(count)
        ]
    return sink.measurement("heart_rate", status)


def _whole(writer: Writer, source: ValueSource, name: str, unit: str) -> int:
    value = source.number(name, unit)
    if isinstance(value, SpecialValue) or not math.isfinite(value):
        writer.fail(f"value {name!r} must be a finite number, got {value!r}")
    return to_fixed_point(value, 1, 1)


def encode_heart_rate(writer: Writer, measurement: Measurement) -> None:
    source = ValueSource(measurement, writer)
    status = measurement.status
    rate = _whole(writer, source, "heart_rate", RATE_UNIT)
    contact = status.get("sensor_contact", "not_supported")
    if contact not in _CONTACT_CODES:
        writer.fail(
            f"status['sensor_contact'] = {contact!r} is not one of {sorted(_CONTACT_CODES)}"
        )
    intervals = status.get("rr_intervals")
    if intervals is not None and not isinstance(intervals, list | tuple):
        writer.fail(f"status['rr_intervals'] must be a list of seconds, got {intervals!r}")
    flags = _UINT16 if rate > 0xFF else 0
    flags |= _CONTACT_CODES[contact] << 1
    flags |= _ENERGY if source.has("energy_expended") else 0
    flags |= _RR if intervals is not None else 0
    writer.u8(flags, "flags")
    writer.uint(rate, 2 if flags & _UINT16 else 1, "heart_rate")
    if flags & _ENERGY:
        writer.u16(_whole(writer, source, "energy_expended", ENERGY_UNIT), "energy_expended")
    for index, seconds in enumerate(intervals or ()):
        field = f"rr_intervals[{index}]"
        if isinstance(seconds, bool) or not isinstance(seconds, int | float):
            writer.fail(f"{field} must be a number of seconds, got {seconds!r}")
        if not math.isfinite(seconds):
            writer.fail(f"{field} must be finite, got {seconds!r}")
        writer.u16(to_fixed_point(seconds, *RR_RESOLUTION), field)


CODECS = (
    Codec(
        HEART_RATE_MEASUREMENT,
        "Heart Rate Measurement",
        "heart_rate",
        decode_heart_rate,
        encode_heart_rate,
    ),
)
