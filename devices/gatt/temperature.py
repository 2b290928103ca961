"""Temperature Measurement (0x2A1C).

Layout (Health Thermometer Service 1.0, section 3.1; GATT Specification Supplement, "Temperature
Measurement"): flags uint8 (bit 0 Fahrenheit instead of Celsius, bit 1 time stamp, bit 2
temperature type), temperature as a 32-bit IEEE-11073 FLOAT, then the optional Time Stamp (Date
Time) and Temperature Type (uint8).

Value: ``body_temperature`` ("Cel" | "[degF]").

Status keys:

* ``temperature_type``: "armpit", "body", "ear", "finger", "gastrointestinal_tract", "mouth",
  "rectum", "toe", "tympanum" or "reserved"; present when the device sent the field (a thermometer
  may instead expose the fixed Temperature Type characteristic 0x2A1D).
* ``time_stamp_unknown`` (True); ``special_values`` (``{"body_temperature": "nan" | ...}``).

Reserved flag bits (3..7) and bytes after the last announced field are ignored, as the
specifications require of a receiver (``devices.gatt.decode`` records them in
``status["reserved_flags"]`` and ``status["ignored_bytes"]``). A "reserved" temperature type cannot
be encoded.
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
    enum_name,
    has_time_stamp,
    pick_unit,
    read_time_stamp,
)
from devices.models import Measurement

TEMPERATURE_MEASUREMENT = 0x2A1C

_FAHRENHEIT = 0x01
_TIME_STAMP = 0x02
_TYPE = 0x04
_DEFINED_FLAGS = 0x07

UNITS = {"Cel": 0, "[degF]": _FAHRENHEIT}
TEMPERATURE_TYPES = {
    1: "armpit",
    2: "body",
    3: "ear",
    4: "finger",
    5: "gastrointestinal_tract",
    6: "mouth",
    7: "rectum",
    8: "toe",
    9: "tympanum",
}


def decode_temperature(reader: Reader) -> Measurement:
    flags = reader.flags(1, _DEFINED_FLAGS)
    unit = "[degF]" if flags & _FAHRENHEIT else "Cel"
    sink = ValueSink()
    sink.put("body_temperature", reader.float32("temperature"), unit)
    status: dict[str, Any] = {}
    measured_at = read_time_stamp(reader, status) if flags & _TIME_STAMP else None
    if flags & _TYPE:
        status["temperature_type"] = enum_name(TEMPERATURE_TYPES, reader.u8("temperature_type"))
    return sink.measurement("temperature", status, measured_at)


def encode_temperature(writer: Writer, measurement: Measurement) -> None:
    source = ValueSource(measurement, writer)
    unit = pick_unit(writer, source, ("body_temperature",), UNITS, "Cel")
    status = measurement.status
    flags = UNITS[unit]
    flags |= _TIME_STAMP if has_time_stamp(measurement) else 0
    flags |= _TYPE if "temperature_type" in status else 0
    writer.u8(flags, "flags")
    writer.float32(source.number("body_temperature", unit), "temperature")
    if flags & _TIME_STAMP:
        writer.date_time(measurement.measured_at, "time_stamp")
    if flags & _TYPE:
        code = enum_code(writer, TEMPERATURE_TYPES, status["temperature_type"], "temperature_type")
        writer.u8(code, "temperature_type")


CODECS = (
    Codec(
        TEMPERATURE_MEASUREMENT,
        "Temperature Measurement",
        "temperature",
        decode_temperature,
        encode_temperature,
    ),
)
