"""Per-model deviations from the GATT specifications, keyed by lower-case model name.

``devices.gatt.decode(characteristic, data, model=...)`` looks the model up here; a model that is
not in the table (or ``model=None``) gets plain specification behaviour. Each entry says what the
device does differently, which characteristics it affects and where that is documented. The
matching encoders let simulated devices send the same bytes the real ones do.

``beurer-bm85``, ``beurer-bm59``, ``beurer-bm48``, ``beurer-elite900`` (Blood Pressure
Measurement 0x2A35): the User ID byte is always present, flagged or not; Pulse Rate (SFLOAT) and
Measurement Status (uint16) are sent big-endian; flag bit 6 is set (reserved: ignored); the mean
arterial pressure is sent as 0 (no value), decoded as the NaN special value. Source:
derdilla/blood-pressure-monitor-fl PRs #735 and #737 (captures from a BM85, asserted in
``app/test/features/bluetooth/logic/characteristics/ble_measurement_data_test.dart``); the model
list is the one the official Beurer app keeps (``isKnownBigEndianDevice``: BM48, BM59, BM85,
ELITE900). Only the BM85 is confirmed by captures; a BM59 owner had reported plain decoding
working before that PR, so set the model only when plain decoding fails for you.

``taidoc-dm30b`` (Glucose Measurement 0x2A18): Diamond Mobile Mini DM30b (TaiDoc), firmware
1.2.4, numbers its records backwards and not uniquely, so a sequence number cannot identify a
record; readings carry ``status["sequence_number_reliable"] = False`` and whoever builds a
reading's identity uses the time stamp instead. Source: NightscoutFoundation/xDrip
``app/src/main/java/com/eveningoutpost/dexdrip/services/BluetoothGlucoseMeter.java`` ("v1.2.4 has
reversed sequence numbers"; the meter also has no clock access and no context characteristic).

Facts recorded for the connection side (not decoding quirks): A&D cuffs and scales and Roche
meters (Accu-Chek Aviva/Guide Connect) set their clock through Date Time 0x2A08, not the Current
Time Service (xDrip ``BluetoothGlucoseMeter.java``: "Roche Aviva Connect uses a DateTime
characteristic instead"); i-SENS CareSens meters set theirs through a vendor characteristic 0xFFF1.

``model_for_name(advertised_name)`` maps an advertised name to its key the way the public sources
recognise these devices (upper-cased, punctuation dropped, a known model number contained), so a
source can pick the quirks when the configuration names none.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from devices.gatt import blood_pressure, glucose
from devices.gatt._fields import (
    Reader,
    ValueSink,
    ValueSource,
    Writer,
    has_time_stamp,
    read_time_stamp,
    user_index_of,
    write_user,
)
from devices.ieee11073 import SpecialValue, decode_sfloat, encode_sfloat
from devices.models import Measurement

Decoder = Callable[[Reader], Measurement]
Encoder = Callable[[Writer, Measurement], None]

SEQUENCE_NUMBER_RELIABLE = "sequence_number_reliable"


@dataclass(frozen=True, slots=True)
class ModelQuirks:
    """How one model family deviates: per-characteristic decoder and encoder replacements."""

    summary: str
    source: str
    decoders: Mapping[int, Decoder]
    encoders: Mapping[int, Encoder]


# --- Beurer BM blood pressure monitors ---------------------------------------------------------

_BEURER_FLAG_BIT_6 = 0x40  # set in every BM85 capture (flags 0x56); reserved in the specification


def _be_sfloat(reader: Reader, field: str) -> float | SpecialValue:
    raw = reader.u16(field)
    return decode_sfloat(((raw & 0xFF) << 8) | (raw >> 8))


def _be_u16(reader: Reader, field: str) -> int:
    raw = reader.u16(field)
    return ((raw & 0xFF) << 8) | (raw >> 8)


def decode_beurer_bm(reader: Reader) -> Measurement:
    """Blood Pressure Measurement as the Beurer BM85 family sends it (see the module table)."""
    flags = reader.flags(1, blood_pressure.DEFINED_FLAGS)
    unit = "kPa" if flags & blood_pressure.KPA else "mm[Hg]"
    sink = ValueSink()
    sink.put("systolic", reader.sfloat("systolic"), unit)
    sink.put("diastolic", reader.sfloat("diastolic"), unit)
    mean = reader.sfloat("mean_arterial_pressure")
    # 0 where the specification has NaN: the cuff does not compute a mean arterial pressure (and
    # no living person has a mean arterial pressure of 0, so nothing real is lost).
    sink.put("mean_arterial_pressure", SpecialValue.NAN if mean == 0 else mean, unit)
    status: dict[str, Any] = {}
    measured_at = read_time_stamp(reader, status) if flags & blood_pressure.TIME_STAMP else None
    if flags & blood_pressure.PULSE_RATE:
        sink.put("pulse_rate", _be_sfloat(reader, "pulse_rate"), blood_pressure.PULSE_UNIT)
    user_index = user_index_of(reader, status)  # present whether or not flag bit 3 says so
    if flags & blood_pressure.STATUS:
        status.update(blood_pressure.decode_status(_be_u16(reader, "measurement_status")))
    blood_pressure.check_plausible(reader, sink)
    return sink.measurement("blood_pressure", status, measured_at, user_index)


def encode_beurer_bm(writer: Writer, measurement: Measurement) -> None:
    """The bytes a BM85 sends: flag bit 6 set, user id unflagged, pulse and status big-endian."""
    source = ValueSource(measurement, writer)
    names = ("systolic", "diastolic", "mean_arterial_pressure")
    unit = blood_pressure.pressure_unit(writer, source, names)
    flags = blood_pressure.PRESSURE_UNITS[unit] | _BEURER_FLAG_BIT_6
    flags |= blood_pressure.TIME_STAMP if has_time_stamp(measurement) else 0
    flags |= blood_pressure.PULSE_RATE if source.has("pulse_rate") else 0
    has_status = any(key in measurement.status for key in blood_pressure.STATUS_KEYS)
    flags |= blood_pressure.STATUS if has_status else 0
    writer.u8(flags, "flags")
    writer.sfloat(source.number("systolic", unit), "systolic")
    writer.sfloat(source.number("diastolic", unit), "diastolic")
    mean = source.number("mean_arterial_pressure", unit) if source.has(names[2]) else None
    if mean is None or mean is SpecialValue.NAN:
        writer.u16(0, "mean_arterial_pressure")
    elif mean == 0:
        writer.fail("mean_arterial_pressure 0 cannot be sent: this cuff's 0 means 'no value'")
    else:
        writer.sfloat(mean, "mean_arterial_pressure")
    if flags & blood_pressure.TIME_STAMP:
        writer.date_time(measurement.measured_at, "time_stamp")
    if flags & blood_pressure.PULSE_RATE:
        raw = _sfloat_raw(writer, source.number("pulse_rate", blood_pressure.PULSE_UNIT))
        writer.raw(raw.to_bytes(2, "big"))
    write_user(writer, measurement)
    if has_status:
        raw_status = blood_pressure.encode_status(writer, measurement.status)
        writer.raw(raw_status.to_bytes(2, "big"))


def _sfloat_raw(writer: Writer, value: float | SpecialValue) -> int:
    try:
        return encode_sfloat(value)
    except ValueError as exc:
        writer.fail(f"field 'pulse_rate': {exc}")


# --- TaiDoc Diamond Mobile Mini glucose meter --------------------------------------------------


def decode_unreliable_sequence_glucose(reader: Reader) -> Measurement:
    measurement = glucose.decode_glucose(reader)
    measurement.status[SEQUENCE_NUMBER_RELIABLE] = False
    return measurement


_BEURER_BM = ModelQuirks(
    summary=(
        "user id always present (unflagged); pulse rate and measurement status big-endian; "
        "flag bit 6 set; mean arterial pressure sent as 0"
    ),
    source=(
        "derdilla/blood-pressure-monitor-fl PR #735/#737, app/test/features/bluetooth/logic/"
        "characteristics/ble_measurement_data_test.dart"
    ),
    decoders={blood_pressure.BLOOD_PRESSURE_MEASUREMENT: decode_beurer_bm},
    encoders={blood_pressure.BLOOD_PRESSURE_MEASUREMENT: encode_beurer_bm},
)

_TAIDOC_DM30B = ModelQuirks(
    summary="sequence numbers reversed and not unique: not usable as a record identity",
    source="NightscoutFoundation/xDrip app/src/main/java/com/eveningoutpost/dexdrip/services/"
    "BluetoothGlucoseMeter.java",
    decoders={glucose.GLUCOSE_MEASUREMENT: decode_unreliable_sequence_glucose},
    encoders={glucose.GLUCOSE_MEASUREMENT: glucose.encode_glucose},
)

QUIRKS: dict[str, ModelQuirks] = {
    "beurer-bm85": _BEURER_BM,
    "beurer-bm59": _BEURER_BM,
    "beurer-bm48": _BEURER_BM,
    "beurer-elite900": _BEURER_BM,
    "taidoc-dm30b": _TAIDOC_DM30B,
}

# Advertised-name fragments (upper case, letters and digits only) -> model key.
_NAME_FRAGMENTS = {
    "BM85": "beurer-bm85",
    "BM59": "beurer-bm59",
    "BM48": "beurer-bm48",
    "ELITE900": "beurer-elite900",
}
_NOT_NAME = re.compile(r"[^A-Z0-9]")


def _key(model: str | None) -> str | None:
    return None if model is None else model.strip().lower()


def decoder_for(model: str | None, uuid16: int) -> Decoder | None:
    """The replacement decoder ``model`` needs for ``uuid16``, or None for the specification's."""
    quirks = QUIRKS.get(_key(model) or "")
    return None if quirks is None else quirks.decoders.get(uuid16)


def encoder_for(model: str | None, uuid16: int) -> Encoder | None:
    quirks = QUIRKS.get(_key(model) or "")
    return None if quirks is None else quirks.encoders.get(uuid16)


def model_for_name(advertised_name: str | None) -> str | None:
    """The quirk-table key for a device advertising ``advertised_name``, when one is known."""
    if not advertised_name:
        return None
    normalized = _NOT_NAME.sub("", advertised_name.upper())
    for fragment, key in _NAME_FRAGMENTS.items():
        if fragment in normalized:
            return key
    return None
