"""Weight Measurement (0x2A9D).

Layout (Weight Scale Service 1.0, section 3.2; GATT Specification Supplement, "Weight
Measurement"): flags uint8 (bit 0 imperial units, bit 1 time stamp, bit 2 user id, bit 3 BMI and
height), weight uint16, then the optional Time Stamp (Date Time), User ID (uint8), BMI (uint16) and
Height (uint16). Resolutions: weight 0.005 kg or 0.01 lb, BMI 0.1 kg/m2, height 0.001 m or 0.1 in.
A weight of 0xFFFF means "measurement unsuccessful".

Values: ``body_weight`` ("kg" | "[lb_av]"), ``bmi`` ("kg/m2"), ``height`` ("m" | "[in_i]"); BMI and
height come together. The encoder rounds to the field resolution.

Status keys:

* ``unknown_user`` (True): User ID 0xFF; ``user_index`` is then None (otherwise the User ID is the
  ``user_index``).
* ``time_stamp_unknown`` (True): a Time Stamp with year, month or day 0; ``measured_at`` is None.
* ``special_values``: ``{"body_weight": "unsuccessful"}`` for a weight of 0xFFFF.

Reserved flag bits (4..7) and bytes after the last announced field are ignored, as the
specifications require of a receiver (``devices.gatt.decode`` records them in
``status["reserved_flags"]`` and ``status["ignored_bytes"]``).
"""

from __future__ import annotations

from typing import Any

from devices.gatt._codec import Codec
from devices.gatt._fields import (
    Reader,
    ValueSink,
    ValueSource,
    Writer,
    has_time_stamp,
    has_user,
    put_fixed,
    read_time_stamp,
    user_index_of,
    write_fixed,
    write_user,
)
from devices.models import Measurement

WEIGHT_MEASUREMENT = 0x2A9D

_IMPERIAL = 0x01
_TIME_STAMP = 0x02
_USER_ID = 0x04
_BMI_AND_HEIGHT = 0x08
_DEFINED_FLAGS = 0x0F

UNSUCCESSFUL_WEIGHT = 0xFFFF

# (numerator, denominator) of each resolution, so 0.005 kg is exact.
MASS_UNITS = {"kg": (5, 1000), "[lb_av]": (1, 100)}
LENGTH_UNITS = {"m": (1, 1000), "[in_i]": (1, 10)}
LENGTH_FOR_MASS = {"kg": "m", "[lb_av]": "[in_i]"}
BMI_RESOLUTION = (1, 10)
BMI_UNIT = "kg/m2"


def decode_weight(reader: Reader) -> Measurement:
    flags = reader.flags(1, _DEFINED_FLAGS)
    mass_unit = "[lb_av]" if flags & _IMPERIAL else "kg"
    length_unit = LENGTH_FOR_MASS[mass_unit]
    sink = ValueSink()
    status: dict[str, Any] = {}
    raw_weight = reader.u16("weight")
    put_fixed(
        sink, "body_weight", raw_weight, MASS_UNITS[mass_unit], mass_unit, UNSUCCESSFUL_WEIGHT
    )
    measured_at = read_time_stamp(reader, status) if flags & _TIME_STAMP else None
    user_index = user_index_of(reader, status) if flags & _USER_ID else None
    if flags & _BMI_AND_HEIGHT:
        put_fixed(sink, "bmi", reader.u16("bmi"), BMI_RESOLUTION, BMI_UNIT)
        put_fixed(sink, "height", reader.u16("height"), LENGTH_UNITS[length_unit], length_unit)
    return sink.measurement("weight", status, measured_at, user_index)


def mass_unit_of(writer: Writer, source: ValueSource) -> str:
    """The mass unit that sets flag bit 0; a height must be in the same (SI or imperial) system."""
    mass, height = source.unit("body_weight"), source.unit("height")
    if mass is None:
        by_length = {length: unit for unit, length in LENGTH_FOR_MASS.items()}
        if height is None:
            return "kg"
        if height not in by_length:
            writer.fail(f"height unit {height!r} is not one of {sorted(by_length)}")
        return by_length[height]
    if mass not in MASS_UNITS:
        writer.fail(f"body_weight unit {mass!r} is not one of {sorted(MASS_UNITS)}")
    if height is not None and height != LENGTH_FOR_MASS[mass]:
        writer.fail(
            f"height in {height!r} does not match body_weight in {mass!r}: one flag bit selects "
            "SI (kg, m) or imperial ([lb_av], [in_i]) for both"
        )
    return mass


def encode_weight(writer: Writer, measurement: Measurement) -> None:
    source = ValueSource(measurement, writer)
    mass_unit = mass_unit_of(writer, source)
    length_unit = LENGTH_FOR_MASS[mass_unit]
    with_bmi = source.has("bmi") or source.has("height")
    flags = _IMPERIAL if mass_unit == "[lb_av]" else 0
    flags |= _TIME_STAMP if has_time_stamp(measurement) else 0
    flags |= _USER_ID if has_user(measurement) else 0
    flags |= _BMI_AND_HEIGHT if with_bmi else 0
    writer.u8(flags, "flags")
    write_fixed(
        writer,
        source,
        "body_weight",
        2,
        MASS_UNITS[mass_unit],
        mass_unit,
        UNSUCCESSFUL_WEIGHT,
    )
    if flags & _TIME_STAMP:
        writer.date_time(measurement.measured_at, "time_stamp")
    if flags & _USER_ID:
        write_user(writer, measurement)
    if with_bmi:
        write_fixed(writer, source, "bmi", 2, BMI_RESOLUTION, BMI_UNIT)
        write_fixed(writer, source, "height", 2, LENGTH_UNITS[length_unit], length_unit)


CODECS = (Codec(WEIGHT_MEASUREMENT, "Weight Measurement", "weight", decode_weight, encode_weight),)
