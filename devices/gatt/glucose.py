"""Glucose Measurement (0x2A18).

Layout (Glucose Service 1.0, section 3.1; GATT Specification Supplement, "Glucose
Measurement"): flags uint8 (bit 0 time offset, bit 1 concentration with type and sample location,
bit 2 concentration in mol/L instead of kg/L, bit 3 sensor status annunciation, bit 4 context
information follows), sequence number uint16, base time (Date Time), then the optional time offset
(sint16, minutes), concentration (SFLOAT) with type and sample location (uint8: type in the low
nibble, location in the high nibble) and sensor status annunciation (uint16).

Units: the specification's kg/L and mol/L are reported as "mg/dL" (kg/L * 1e5) and "mmol/L"
(mol/L * 1e3). That is a rename of the same quantity, done exactly on the decimal exponent (no
binary rounding); the encoder inverts it.

Time: ``measured_at`` is the user-facing time, base time + time offset (the offset is how a meter
keeps its base time monotonic while the user changes the clock). A base time with year, month or
day 0 ("not known") gives ``measured_at`` None and ``status["time_stamp_unknown"] = True``.

Value: ``glucose`` ("mg/dL" | "mmol/L"), only when the concentration field is present.

Status keys:

* ``sequence_number`` (int, always).
* ``time_offset_minutes`` (int): present when the time offset field is.
* ``sample_type``: "capillary_whole_blood", "capillary_plasma", "venous_whole_blood",
  "venous_plasma", "arterial_whole_blood", "arterial_plasma", "undetermined_whole_blood",
  "undetermined_plasma", "interstitial_fluid", "control_solution" or "reserved";
  ``sample_location``: "finger", "alternate_site_test", "earlobe", "control_solution",
  "not_available" or "reserved". Both present with the concentration field.
* ``sensor_status``: ``{flag: bool}`` for ``battery_low``, ``sensor_malfunction``,
  ``sample_size_insufficient``, ``strip_insertion_error``, ``strip_type_incorrect``,
  ``result_too_high``, ``result_too_low``, ``temperature_too_high``, ``temperature_too_low``,
  ``read_interrupted``, ``general_device_fault``, ``time_fault``; present with the annunciation
  field (its reserved bits 12..15 are ignored).
* ``context_follows`` (bool, always): a Glucose Measurement Context (0x2A34) with the same sequence
  number follows; see ``devices.gatt.glucose_join``.
* ``time_stamp_unknown`` (True); ``special_values`` (``{"glucose": "nan" | ...}``).

Reserved flag bits (5..7) and bytes after the last announced field are ignored, as the
specifications require of a receiver (``devices.gatt.decode`` records them in
``status["reserved_flags"]`` and ``status["ignored_bytes"]``). A "reserved" sample type or location
cannot be encoded (its number is not kept).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from devices.gatt._codec import Codec
from devices.gatt._fields import (
    TIME_STAMP_UNKNOWN,
    Reader,
    ValueSink,
    ValueSource,
    Writer,
    bit_flags,
    bits_from,
    enum_code,
    enum_name,
    pick_unit,
)
from devices.models import Measurement

GLUCOSE_MEASUREMENT = 0x2A18

_TIME_OFFSET = 0x01
_CONCENTRATION = 0x02
_MOL_PER_L = 0x04
_SENSOR_STATUS = 0x08
_CONTEXT_FOLLOWS = 0x10
_DEFINED_FLAGS = 0x1F

# Decimal shift from the wire unit to the reported unit: kg/L -> mg/dL, mol/L -> mmol/L.
UNITS = {"mg/dL": 0, "mmol/L": _MOL_PER_L}
_SHIFT = {"mg/dL": 5, "mmol/L": 3}

SAMPLE_TYPES = {
    1: "capillary_whole_blood",
    2: "capillary_plasma",
    3: "venous_whole_blood",
    4: "venous_plasma",
    5: "arterial_whole_blood",
    6: "arterial_plasma",
    7: "undetermined_whole_blood",
    8: "undetermined_plasma",
    9: "interstitial_fluid",
    10: "control_solution",
}
SAMPLE_LOCATIONS = {
    1: "finger",
    2: "alternate_site_test",
    3: "earlobe",
    4: "control_solution",
    15: "not_available",
}
SENSOR_STATUS = {
    0: "battery_low",
    1: "sensor_malfunction",
    2: "sample_size_insufficient",
    3: "strip_insertion_error",
    4: "strip_type_incorrect",
    5: "result_too_high",
    6: "result_too_low",
    7: "temperature_too_high",
    8: "temperature_too_low",
    9: "read_interrupted",
    10: "general_device_fault",
    11: "time_fault",
}


def decode_glucose(reader: Reader) -> Measurement:
    flags = reader.flags(1, _DEFINED_FLAGS)
    status: dict[str, Any] = {"sequence_number": reader.u16("sequence_number")}
    base_time = reader.date_time("base_time")
    if base_time is None:
        status[TIME_STAMP_UNKNOWN] = True
    measured_at = base_time
    if flags & _TIME_OFFSET:
        offset = reader.s16("time_offset")
        status["time_offset_minutes"] = offset
        if base_time is not None:
            try:
                measured_at = base_time + timedelta(minutes=offset)
            except OverflowError:
                reader.fail(
                    f"base time {base_time} plus time offset {offset} min is outside years 1..9999"
                )
    sink = ValueSink()
    if flags & _CONCENTRATION:
        unit = "mmol/L" if flags & _MOL_PER_L else "mg/dL"
        sink.put("glucose", reader.sfloat("glucose_concentration", _SHIFT[unit]), unit)
        type_location = reader.u8("type_sample_location")
        status["sample_type"] = enum_name(SAMPLE_TYPES, type_location & 0x0F)
        status["sample_location"] = enum_name(SAMPLE_LOCATIONS, type_location >> 4)
    if flags & _SENSOR_STATUS:
        status["sensor_status"] = bit_flags(SENSOR_STATUS, reader.u16("sensor_status_annunciation"))
    status["context_follows"] = bool(flags & _CONTEXT_FOLLOWS)
    return sink.measurement("glucose", status, measured_at)


def encode_glucose(writer: Writer, measurement: Measurement) -> None:
    source = ValueSource(measurement, writer)
    status = measurement.status
    unit = pick_unit(writer, source, ("glucose",), UNITS, "mg/dL")
    offset = status.get("time_offset_minutes")
    if offset is not None and (isinstance(offset, bool) or not isinstance(offset, int)):
        writer.fail(f"status['time_offset_minutes'] must be an int, got {offset!r}")
    flags = _TIME_OFFSET if offset is not None else 0
    flags |= (_CONCENTRATION | UNITS[unit]) if source.has("glucose") else 0
    flags |= _SENSOR_STATUS if "sensor_status" in status else 0
    flags |= _CONTEXT_FOLLOWS if status.get("context_follows") else 0
    writer.u8(flags, "flags")
    sequence = status.get("sequence_number")
    if isinstance(sequence, bool) or not isinstance(sequence, int):
        writer.fail(f"status['sequence_number'] must be an int, got {sequence!r}")
    writer.u16(sequence, "sequence_number")
    base_time = measurement.measured_at
    if base_time is not None and offset is not None:
        try:
            base_time -= timedelta(minutes=offset)
        except OverflowError:
            writer.fail(f"measured_at {measurement.measured_at} minus time offset is out of range")
    writer.date_time(base_time, "base_time")
    if offset is not None:
        writer.s16(offset, "time_offset")
    if flags & _CONCENTRATION:
        writer.sfloat(source.number("glucose", unit), "glucose_concentration", _SHIFT[unit])
        sample_type = enum_code(writer, SAMPLE_TYPES, status.get("sample_type"), "sample_type")
        location = enum_code(
            writer, SAMPLE_LOCATIONS, status.get("sample_location"), "sample_location"
        )
        writer.u8(location << 4 | sample_type, "type_sample_location")
    if flags & _SENSOR_STATUS:
        raw = bits_from(writer, SENSOR_STATUS, status["sensor_status"], "sensor_status")
        writer.u16(raw, "sensor_status_annunciation")


CODECS = (
    Codec(GLUCOSE_MEASUREMENT, "Glucose Measurement", "glucose", decode_glucose, encode_glucose),
)
