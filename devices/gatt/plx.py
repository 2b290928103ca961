"""PLX Spot-Check Measurement (0x2A5E) and PLX Continuous Measurement (0x2A5F).

Layouts (Pulse Oximeter Service 1.0, sections 3.1 and 3.2; GATT Specification Supplement, "PLX
Spot-Check Measurement" / "PLX Continuous Measurement"), all numbers SFLOAT:

* Spot-check: flags uint8 (bit 0 time stamp, 1 measurement status, 2 device and sensor status,
  3 pulse amplitude index, 4 device clock is not set), SpO2, pulse rate, then the optional Time
  Stamp (Date Time), Measurement Status (uint16), Device and Sensor Status (uint24) and Pulse
  Amplitude Index.
* Continuous: flags uint8 (bit 0 SpO2PR-Fast, 1 SpO2PR-Slow, 2 measurement status, 3 device and
  sensor status, 4 pulse amplitude index), SpO2PR-Normal (SpO2, pulse rate), then the optional
  SpO2PR-Fast pair, SpO2PR-Slow pair, Measurement Status, Device and Sensor Status and Pulse
  Amplitude Index.

Kind ``spo2`` for both. Values: ``spo2`` ("%") and ``pulse_rate`` ("/min") (the normal averaging
for the continuous characteristic).

Status keys:

* ``spo2_fast``, ``pulse_rate_fast``, ``spo2_slow``, ``pulse_rate_slow`` (float, % and /min):
  continuous only, present with their pair.
* ``pulse_amplitude_index`` (float, %): present with its field.
* ``measurement_status``: ``{flag: bool}`` for ``measurement_ongoing``, ``early_estimated_data``,
  ``validated_data``, ``fully_qualified_data``, ``data_from_measurement_storage``,
  ``data_for_demonstration``, ``data_for_testing``, ``calibration_ongoing``,
  ``measurement_unavailable``, ``questionable_measurement_detected``,
  ``invalid_measurement_detected``; present with the field (reserved bits 0..4 are ignored).
* ``device_and_sensor_status``: ``{flag: bool}`` for ``extended_display_update_ongoing``,
  ``equipment_malfunction_detected``, ``signal_processing_irregularity_detected``,
  ``inadequate_signal_detected``, ``poor_signal_detected``, ``low_perfusion_detected``,
  ``erratic_signal_detected``, ``nonpulsatile_signal_detected``, ``questionable_pulse_detected``,
  ``signal_analysis_ongoing``, ``sensor_interference_detected``, ``sensor_unconnected_to_user``,
  ``unknown_sensor_connected``, ``sensor_displaced``, ``sensor_malfunctioning``,
  ``sensor_disconnected``; present with the field (reserved bits 16..23 are ignored).
* ``device_clock_not_set`` (bool, spot-check only, always).
* ``time_stamp_unknown`` (True, spot-check); ``special_values`` for any SFLOAT above, keyed by the
  value or status name (e.g. ``{"spo2_fast": "nan"}``).

Reserved flag bits (5..7) and bytes after the last announced field are ignored, as the
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
    bit_flags,
    bits_from,
    has_time_stamp,
    read_time_stamp,
)
from devices.models import Measurement

PLX_SPOT_CHECK_MEASUREMENT = 0x2A5E
PLX_CONTINUOUS_MEASUREMENT = 0x2A5F

SPO2_UNIT = "%"
RATE_UNIT = "/min"
PAI = "pulse_amplitude_index"

MEASUREMENT_STATUS = {
    5: "measurement_ongoing",
    6: "early_estimated_data",
    7: "validated_data",
    8: "fully_qualified_data",
    9: "data_from_measurement_storage",
    10: "data_for_demonstration",
    11: "data_for_testing",
    12: "calibration_ongoing",
    13: "measurement_unavailable",
    14: "questionable_measurement_detected",
    15: "invalid_measurement_detected",
}
DEVICE_AND_SENSOR_STATUS = {
    0: "extended_display_update_ongoing",
    1: "equipment_malfunction_detected",
    2: "signal_processing_irregularity_detected",
    3: "inadequate_signal_detected",
    4: "poor_signal_detected",
    5: "low_perfusion_detected",
    6: "erratic_signal_detected",
    7: "nonpulsatile_signal_detected",
    8: "questionable_pulse_detected",
    9: "signal_analysis_ongoing",
    10: "sensor_interference_detected",
    11: "sensor_unconnected_to_user",
    12: "unknown_sensor_connected",
    13: "sensor_displaced",
    14: "sensor_malfunctioning",
    15: "sensor_disconnected",
}

# Spot-check flags
_SC_TIME_STAMP = 0x01
_SC_MEASUREMENT_STATUS = 0x02
_SC_DEVICE_STATUS = 0x04
_SC_PAI = 0x08
_SC_CLOCK_NOT_SET = 0x10
# Continuous flags
_CT_FAST = 0x01
_CT_SLOW = 0x02
_CT_MEASUREMENT_STATUS = 0x04
_CT_DEVICE_STATUS = 0x08
_CT_PAI = 0x10
_DEFINED_FLAGS = 0x1F


def _read_tail(
    reader: Reader, sink: ValueSink, status: dict[str, Any], flags: int, bits: tuple[int, int, int]
) -> None:
    """Measurement status, device and sensor status and pulse amplitude index, in that order."""
    measurement_bit, device_bit, pai_bit = bits
    if flags & measurement_bit:
        raw = reader.u16("measurement_status")
        status["measurement_status"] = bit_flags(MEASUREMENT_STATUS, raw)
    if flags & device_bit:
        raw = reader.uint(3, "device_and_sensor_status")
        status["device_and_sensor_status"] = bit_flags(DEVICE_AND_SENSOR_STATUS, raw)
    if flags & pai_bit:
        sink.put_status(status, PAI, reader.sfloat(PAI))


def _tail_flags(source: ValueSource, bits: tuple[int, int, int]) -> int:
    status = source.measurement.status
    measurement_bit, device_bit, pai_bit = bits
    flags = measurement_bit if "measurement_status" in status else 0
    flags |= device_bit if "device_and_sensor_status" in status else 0
    flags |= pai_bit if PAI in status or source.special(PAI) is not None else 0
    return flags


def _write_tail(
    writer: Writer, source: ValueSource, flags: int, bits: tuple[int, int, int]
) -> None:
    status = source.measurement.status
    measurement_bit, device_bit, pai_bit = bits
    if flags & measurement_bit:
        raw = bits_from(
            writer, MEASUREMENT_STATUS, status["measurement_status"], "measurement_status"
        )
        writer.u16(raw, "measurement_status")
    if flags & device_bit:
        raw = bits_from(
            writer,
            DEVICE_AND_SENSOR_STATUS,
            status["device_and_sensor_status"],
            "device_and_sensor_status",
        )
        writer.uint(raw, 3, "device_and_sensor_status")
    if flags & pai_bit:
        writer.sfloat(source.status_number(PAI), PAI)


_SC_TAIL = (_SC_MEASUREMENT_STATUS, _SC_DEVICE_STATUS, _SC_PAI)
_CT_TAIL = (_CT_MEASUREMENT_STATUS, _CT_DEVICE_STATUS, _CT_PAI)


def decode_spot_check(reader: Reader) -> Measurement:
    flags = reader.flags(1, _DEFINED_FLAGS)
    sink = ValueSink()
    sink.put("spo2", reader.sfloat("spo2"), SPO2_UNIT)
    sink.put("pulse_rate", reader.sfloat("pulse_rate"), RATE_UNIT)
    status: dict[str, Any] = {}
    measured_at = read_time_stamp(reader, status) if flags & _SC_TIME_STAMP else None
    _read_tail(reader, sink, status, flags, _SC_TAIL)
    status["device_clock_not_set"] = bool(flags & _SC_CLOCK_NOT_SET)
    return sink.measurement("spo2", status, measured_at)


def encode_spot_check(writer: Writer, measurement: Measurement) -> None:
    source = ValueSource(measurement, writer)
    flags = _SC_TIME_STAMP if has_time_stamp(measurement) else 0
    flags |= _tail_flags(source, _SC_TAIL)
    flags |= _SC_CLOCK_NOT_SET if measurement.status.get("device_clock_not_set") else 0
    writer.u8(flags, "flags")
    writer.sfloat(source.number("spo2", SPO2_UNIT), "spo2")
    writer.sfloat(source.number("pulse_rate", RATE_UNIT), "pulse_rate")
    if flags & _SC_TIME_STAMP:
        writer.date_time(measurement.measured_at, "time_stamp")
    _write_tail(writer, source, flags, _SC_TAIL)


_VARIANTS = ((_CT_FAST, "fast"), (_CT_SLOW, "slow"))


def decode_continuous(reader: Reader) -> Measurement:
    flags = reader.flags(1, _DEFINED_FLAGS)
    sink = ValueSink()
    sink.put("spo2", reader.sfloat("spo2"), SPO2_UNIT)
    sink.put("pulse_rate", reader.sfloat("pulse_rate"), RATE_UNIT)
    status: dict[str, Any] = {}
    for bit, variant in _VARIANTS:
        if flags & bit:
            for name in (f"spo2_{variant}", f"pulse_rate_{variant}"):
                sink.put_status(status, name, reader.sfloat(name))
    _read_tail(reader, sink, status, flags, _CT_TAIL)
    return sink.measurement("spo2", status)


def _has_status_number(source: ValueSource, name: str) -> bool:
    return name in source.measurement.status or source.special(name) is not None


def encode_continuous(writer: Writer, measurement: Measurement) -> None:
    source = ValueSource(measurement, writer)
    flags = _tail_flags(source, _CT_TAIL)
    for bit, variant in _VARIANTS:
        names = (f"spo2_{variant}", f"pulse_rate_{variant}")
        if any(_has_status_number(source, name) for name in names):
            flags |= bit
    writer.u8(flags, "flags")
    writer.sfloat(source.number("spo2", SPO2_UNIT), "spo2")
    writer.sfloat(source.number("pulse_rate", RATE_UNIT), "pulse_rate")
    for bit, variant in _VARIANTS:
        if flags & bit:
            for name in (f"spo2_{variant}", f"pulse_rate_{variant}"):
                writer.sfloat(source.status_number(name), name)
    _write_tail(writer, source, flags, _CT_TAIL)


CODECS = (
    Codec(
        PLX_SPOT_CHECK_MEASUREMENT,
        "PLX Spot-Check Measurement",
        "spo2",
        decode_spot_check,
        encode_spot_check,
    ),
    Codec(
        PLX_CONTINUOUS_MEASUREMENT,
        "PLX Continuous Measurement",
        "spo2",
        decode_continuous,
        encode_continuous,
    ),
)
