"""Blood Pressure Measurement (0x2A35) and Intermediate Cuff Pressure (0x2A36).

Layout (Blood Pressure Service 1.1, section 3.2; GATT Specification Supplement, "Blood Pressure
Measurement"): flags uint8, then systolic, diastolic and mean arterial pressure as SFLOAT, then the
optional Time Stamp (Date Time, flag bit 1), Pulse Rate (SFLOAT, bit 2), User ID (uint8, bit 3) and
Measurement Status (uint16, bit 4). Flag bit 0 selects kPa instead of mmHg for all three pressures.
Intermediate Cuff Pressure has the same layout; its systolic slot carries the current cuff
pressure and the diastolic and MAP slots are unused (a sensor sends NaN; the decoder ignores them,
the encoder writes NaN).

Values: ``systolic``, ``diastolic``, ``mean_arterial_pressure`` ("mm[Hg]" or "kPa"), ``pulse_rate``
("/min"); for 0x2A36 ``cuff_pressure`` and ``pulse_rate``.

Status keys:

* ``body_movement``, ``cuff_fit_loose``, ``irregular_pulse``, ``improper_measurement_position``
  (bool) and ``pulse_rate_range`` ("within" | "exceeds_upper" | "below_lower" | "reserved"): all
  five present exactly when the device sent the Measurement Status field; its reserved bits 6..15
  are ignored. The encoder writes the field when any of the five keys is present.
* ``unknown_user`` (True): User ID 0xFF ("unknown user"); ``user_index`` is then None.
* ``time_stamp_unknown`` (True): a Time Stamp field with year, month or day 0 ("not known");
  ``measured_at`` is then None.
* ``special_values``: ``{value name: "nan" | "nres" | "+inf" | "-inf" | "reserved"}``.

Reserved flag bits (5..7) are ignored, as the specification requires of a receiver (the fields
the defined bits announce are still where they are), and so are bytes after the last announced
field; ``devices.gatt.decode`` reports both in ``status`` (``reserved_flags``, ``ignored_bytes``).
Models that deviate further (Beurer BM85 family) are handled by ``devices.gatt.quirks``.
"""

from __future__ import annotations

from typing import Any

from devices.gatt._codec import Codec
from devices.gatt._fields import (
    Reader,
    ValueSink,
    ValueSource,
    Writer,
    enum_code,
    has_time_stamp,
    has_user,
    pick_unit,
    read_time_stamp,
    user_index_of,
    write_user,
)
from devices.ieee11073 import SpecialValue
from devices.models import Measurement

BLOOD_PRESSURE_MEASUREMENT = 0x2A35
INTERMEDIATE_CUFF_PRESSURE = 0x2A36

KPA = 0x01
TIME_STAMP = 0x02
PULSE_RATE = 0x04
USER_ID = 0x08
STATUS = 0x10
DEFINED_FLAGS = 0x1F

PRESSURE_UNITS = {"mm[Hg]": 0, "kPa": KPA}
PULSE_UNIT = "/min"

STATUS_BITS = {
    0: "body_movement",
    1: "cuff_fit_loose",
    2: "irregular_pulse",
    5: "improper_measurement_position",
}
PULSE_RATE_RANGE = {0: "within", 1: "exceeds_upper", 2: "below_lower", 3: "reserved"}
STATUS_KEYS = (*STATUS_BITS.values(), "pulse_rate_range")

_BP_NAMES = ("systolic", "diastolic", "mean_arterial_pressure")


def _slots(pressure_names: tuple[str, ...]) -> tuple[str, ...]:
    """Field names of the three SFLOAT slots; the ones a characteristic leaves unused say so."""
    unused = tuple(f"{name} (unused)" for name in _BP_NAMES[len(pressure_names) :])
    return (*pressure_names, *unused)


def decode_status(raw: int) -> dict[str, Any]:
    status: dict[str, Any] = {name: bool(raw >> bit & 1) for bit, name in STATUS_BITS.items()}
    status["pulse_rate_range"] = PULSE_RATE_RANGE[raw >> 3 & 0b11]
    return status


def encode_status(writer: Writer, status: dict[str, Any]) -> int:
    raw = sum(1 << bit for bit, name in STATUS_BITS.items() if status.get(name))
    pulse_range = status.get("pulse_rate_range", "within")
    raw |= enum_code(writer, PULSE_RATE_RANGE, pulse_range, "pulse_rate_range") << 3
    return raw


# What no cuff can have measured, so a number outside it is not a reading but a misread field (the
# big-endian pulse rate of a Beurer BM85 read little-endian: 63/min arrives as -256000/min, 130/min
# as 0.00000512/min). Pressures: 0 up to far beyond what a cuff inflates to (about 300 mmHg, 40
# kPa). Pulse rate: 0 (none) or 20..300/min; cuffs measure about 40..200/min.
PRESSURE_LIMIT = {"mm[Hg]": 1000.0, "kPa": 150.0}
PULSE_RANGE = (20.0, 300.0)


def check_plausible(reader: Reader, sink: ValueSink) -> None:
    """DecodeError for a pressure or pulse rate no device can have measured."""
    for name, quantity in sink.values.items():
        value, unit = quantity.value, quantity.unit
        if unit == PULSE_UNIT:
            low, high = PULSE_RANGE
            if value == 0.0 or low <= value <= high:
                continue
            allowed = f"0 or {low:g}..{high:g}"
        else:
            if 0.0 <= value <= PRESSURE_LIMIT[unit]:
                continue
            allowed = f"0..{PRESSURE_LIMIT[unit]:g}"
        reader.fail(
            f"{name} = {value:g} {unit} is impossible ({allowed}); if this cuff deviates from "
            "the specification, configure its model (devices.gatt.quirks)"
        )


def pressure_unit(writer: Writer, source: ValueSource, names: tuple[str, ...]) -> str:
    """The one pressure unit (flag bit 0) all present pressures share."""
    return pick_unit(writer, source, names, PRESSURE_UNITS, "mm[Hg]")


def _decode(reader: Reader, kind: str, pressure_names: tuple[str, ...]) -> Measurement:
    flags = reader.flags(1, DEFINED_FLAGS)
    unit = "kPa" if flags & KPA else "mm[Hg]"
    sink = ValueSink()
    for index, slot in enumerate(_slots(pressure_names)):
        number = reader.sfloat(slot)
        if index < len(pressure_names):
            sink.put(slot, number, unit)
    status: dict[str, Any] = {}
    measured_at = read_time_stamp(reader, status) if flags & TIME_STAMP else None
    if flags & PULSE_RATE:
        sink.put("pulse_rate", reader.sfloat("pulse_rate"), PULSE_UNIT)
    user_index = user_index_of(reader, status) if flags & USER_ID else None
    if flags & STATUS:
        status.update(decode_status(reader.u16("measurement_status")))
    check_plausible(reader, sink)
    return sink.measurement(kind, status, measured_at, user_index)


def _encode(writer: Writer, measurement: Measurement, pressure_names: tuple[str, ...]) -> None:
    source = ValueSource(measurement, writer)
    unit = pressure_unit(writer, source, pressure_names)
    status = measurement.status
    flags = PRESSURE_UNITS[unit]
    flags |= TIME_STAMP if has_time_stamp(measurement) else 0
    flags |= PULSE_RATE if source.has("pulse_rate") else 0
    flags |= USER_ID if has_user(measurement) else 0
    flags |= STATUS if any(key in status for key in STATUS_KEYS) else 0
    writer.u8(flags, "flags")
    for index, slot in enumerate(_slots(pressure_names)):
        if index < len(pressure_names):
            writer.sfloat(source.number(slot, unit), slot)
        else:
            writer.sfloat(SpecialValue.NAN, slot)
    if flags & TIME_STAMP:
        writer.date_time(measurement.measured_at, "time_stamp")
    if flags & PULSE_RATE:
        writer.sfloat(source.number("pulse_rate", PULSE_UNIT), "pulse_rate")
    if flags & USER_ID:
        write_user(writer, measurement)
    if flags & STATUS:
        writer.u16(encode_status(writer, status), "measurement_status")


def decode_blood_pressure(reader: Reader) -> Measurement:
    return _decode(reader, "blood_pressure", _BP_NAMES)


def encode_blood_pressure(writer: Writer, measurement: Measurement) -> None:
    _encode(writer, measurement, _BP_NAMES)


def decode_cuff_pressure(reader: Reader) -> Measurement:
    return _decode(reader, "cuff_pressure", ("cuff_pressure",))


def encode_cuff_pressure(writer: Writer, measurement: Measurement) -> None:
    _encode(writer, measurement, ("cuff_pressure",))


CODECS = (
    Codec(
        BLOOD_PRESSURE_MEASUREMENT,
        "Blood Pressure Measurement",
        "blood_pressure",
        decode_blood_pressure,
        encode_blood_pressure,
    ),
    Codec(
        INTERMEDIATE_CUFF_PRESSURE,
        "Intermediate Cuff Pressure",
        "cuff_pressure",
        decode_cuff_pressure,
        encode_cuff_pressure,
    ),
)
