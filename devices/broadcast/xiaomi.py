"""Xiaomi scales that broadcast each weighing in advertisement service data.

Facts carried over from public parsers and their test vectors (cited per vector in
``tests/vectors/xiaomi_*.json``): Bluetooth-Devices/xiaomi-ble (``parser.py`` ``_parse_scale_v1``/
``_parse_scale_v2``), custom-components/ble_monitor (``ble_parser/miscale.py``), openScale
(``MiScaleHandler.kt``), ble-scale-sync (``src/scales/mi-scale-2.ts``) and theengs/decoder
(``src/devices/XMTZC04HMKG_json.h``, ``XMTZC05HMKG_json.h``). All fields little-endian.

Mi Smart Scale / Mi Smart Scale 2 (XMTZC01HM, XMTZC04HM), service data under 0x181D, 10 bytes::

    0     control: bit 0 pounds, bit 4 jin (catty), bit 5 stabilized, bit 6 object (not person)
          weighing, bit 7 load removed
    1-2   weight: kg * 200, or pounds * 100, or jin * 100
    3-9   date time: year uint16, month, day, hours, minutes, seconds

Mi Body Composition Scale / Scale 2 (XMTZC02HM, XMTZC05HM), service data under 0x181B, 13 bytes::

    0     control 0: bit 0 pounds, bit 2 object weighing (captures: 0x02 kg, 0x03 pounds)
    1     control 1: bit 1 impedance present, bit 5 stabilized, bit 6 jin, bit 7 load removed
    2-8   date time, as above
    9-10  impedance, Ohm
    11-12 weight, as above

Values: ``body_weight`` in kg or ``[lb_av]`` as the scale shows it; jin (0.5 kg) is converted to kg
and ``status["scale_unit"] = "jin"`` remembers the display. ``impedance`` ("Ohm") when its bit
is set and the field is not 0 (a "load removed" capture sets the bit over a zero field); which
advertisement to keep (xiaomi-ble and ble_monitor publish impedance only from a stabilized weighing
that is not "load removed") is the source's decision, not the decoder's. ``status``:
``stabilized``, ``load_removed`` (booleans, always), ``weighing_mode`` ("person" | "object": the
scale's object mode, for luggage or a pet, is no body weight), and ``time_stamp_unknown`` when the
scale's clock reports year, month or day 0. Bits the sources do not define (bit 1 of the Mi Scale's
control byte, set in every capture) are ignored; pounds and jin together is impossible and raises
DecodeError, as do truncation and an impossible date.
"""

from __future__ import annotations

from typing import Any

from devices.gatt._fields import Reader, Writer, read_time_stamp, to_fixed_point
from devices.models import Measurement, Quantity, trusted_measurement, trusted_quantity

SCALE_LABEL = "Mi Scale service data (0x181D)"
BODY_COMPOSITION_LABEL = "Mi Body Composition Scale service data (0x181B)"

STABILIZED = "stabilized"
LOAD_REMOVED = "load_removed"
WEIGHING_MODE = "weighing_mode"
PERSON = "person"
OBJECT = "object"
SCALE_UNIT = "scale_unit"
JIN = "jin"

# Scale: control byte bits.
_SCALE_POUNDS = 0x01
_SCALE_JIN = 0x10
_SCALE_STABILIZED = 0x20
_SCALE_OBJECT = 0x40
_SCALE_REMOVED = 0x80
# Set in every Mi Scale capture (0x22, 0xA2, 0x82) with no documented meaning: the encoder sets it
# so simulated advertisements look like real ones.
_SCALE_ALWAYS_SET = 0x02

# Body composition scale: control byte 0 and control byte 1 bits.
_BC_POUNDS = 0x01
_BC_ALWAYS_SET = 0x02  # 0x02 (kg) and 0x03 (pounds) in every capture
_BC_OBJECT = 0x04
_BC_IMPEDANCE = 0x02
_BC_STABILIZED = 0x20
_BC_JIN = 0x40
_BC_REMOVED = 0x80
# Undocumented bit 2 of control 1: set in every capture taken with a load on the scale (0x04, 0x26),
# clear in the "load removed" one (0x82); the encoder copies that so simulated frames match.
_BC_LOADED = 0x04

# Weight resolution (numerator, denominator): kg * 200 and pounds * 100 on the wire.
_KG = (1, 200)
_POUNDS = (1, 100)


def _weight(reader: Reader, pounds: bool, jin: bool, status: dict[str, Any]) -> Quantity:
    raw = reader.u16("weight")
    if pounds and jin:
        reader.fail("the control bits select both pounds and jin")
    if pounds:
        return trusted_quantity(raw / 100, "[lb_av]")
    if jin:  # raw is jin * 100 and a jin is 0.5 kg, so kg = raw / 200 as for kg
        status[SCALE_UNIT] = JIN
    return trusted_quantity(raw / 200, "kg")


def decode_scale(data: bytes) -> Measurement:
    """Mi Smart Scale (2) service data under 0x181D."""
    reader = Reader(data, SCALE_LABEL)
    control = reader.u8("control")
    status: dict[str, Any] = {
        STABILIZED: bool(control & _SCALE_STABILIZED),
        LOAD_REMOVED: bool(control & _SCALE_REMOVED),
        WEIGHING_MODE: OBJECT if control & _SCALE_OBJECT else PERSON,
    }
    weight = _weight(reader, bool(control & _SCALE_POUNDS), bool(control & _SCALE_JIN), status)
    measured_at = read_time_stamp(reader, status, "date_time")
    return trusted_measurement("weight", {"body_weight": weight}, status, measured_at)


def decode_body_composition(data: bytes) -> Measurement:
    """Mi Body Composition Scale (2) service data under 0x181B."""
    reader = Reader(data, BODY_COMPOSITION_LABEL)
    control0 = reader.u8("control_0")
    control1 = reader.u8("control_1")
    status: dict[str, Any] = {
        STABILIZED: bool(control1 & _BC_STABILIZED),
        LOAD_REMOVED: bool(control1 & _BC_REMOVED),
        WEIGHING_MODE: OBJECT if control0 & _BC_OBJECT else PERSON,
    }
    measured_at = read_time_stamp(reader, status, "date_time")
    impedance = reader.u16("impedance")
    weight = _weight(reader, bool(control0 & _BC_POUNDS), bool(control1 & _BC_JIN), status)
    values = {"body_weight": weight}
    if control1 & _BC_IMPEDANCE and impedance:
        values["impedance"] = trusted_quantity(float(impedance), "Ohm")
    return trusted_measurement("body_composition", values, status, measured_at)


# Encoders: strict, for the simulators.


def _flag(writer: Writer, measurement: Measurement, name: str) -> bool:
    value = measurement.status.get(name)
    if not isinstance(value, bool):
        writer.fail(f"status[{name!r}] must be a bool, got {value!r}")
    return value


def _check(writer: Writer, measurement: Measurement, kind: str, allowed: set[str]) -> None:
    if measurement.kind != kind:
        writer.fail(f"carries kind {kind!r}, not {measurement.kind!r}")
    unknown = set(measurement.values) - allowed
    if unknown:
        writer.fail(f"cannot carry {sorted(unknown)}; only {sorted(allowed)}")
    if measurement.user_index is not None:
        writer.fail("a broadcast scale has no user index (user_index must be None)")


def _weight_raw(writer: Writer, measurement: Measurement) -> tuple[int, bool, bool]:
    """(raw weight, pounds, jin) for the weight field and the unit bits."""
    quantity = measurement.values.get("body_weight")
    if quantity is None:
        writer.fail("value 'body_weight' is required but missing")
    jin = measurement.status.get(SCALE_UNIT) == JIN
    if SCALE_UNIT in measurement.status and not jin:
        writer.fail(f"status[{SCALE_UNIT!r}] may only be {JIN!r}")
    if quantity.unit == "kg":
        resolution = _KG
    elif quantity.unit == "[lb_av]" and not jin:
        resolution = _POUNDS
    else:
        writer.fail(f"body_weight unit {quantity.unit!r} is not kg or [lb_av] (jin needs kg)")
    raw = to_fixed_point(quantity.value, *resolution)
    if not 0 <= raw <= 0xFFFF:
        writer.fail(f"body_weight {quantity.value} {quantity.unit} is outside the field's range")
    return raw, resolution is _POUNDS, jin


def _object_mode(writer: Writer, measurement: Measurement) -> bool:
    mode = measurement.status.get(WEIGHING_MODE, PERSON)
    if mode not in (PERSON, OBJECT):
        writer.fail(f"status[{WEIGHING_MODE!r}] must be {PERSON!r} or {OBJECT!r}, got {mode!r}")
    return mode == OBJECT


def _date_time(writer: Writer, measurement: Measurement) -> None:
    if measurement.measured_at is None and not measurement.status.get("time_stamp_unknown"):
        writer.fail("measured_at is required (or status['time_stamp_unknown'] = True)")
    writer.date_time(measurement.measured_at, "date_time")


def encode_scale(measurement: Measurement) -> bytes:
    writer = Writer(SCALE_LABEL)
    _check(writer, measurement, "weight", {"body_weight"})
    raw, pounds, jin = _weight_raw(writer, measurement)
    control = _SCALE_ALWAYS_SET
    control |= _SCALE_POUNDS if pounds else 0
    control |= _SCALE_JIN if jin else 0
    control |= _SCALE_STABILIZED if _flag(writer, measurement, STABILIZED) else 0
    control |= _SCALE_REMOVED if _flag(writer, measurement, LOAD_REMOVED) else 0
    control |= _SCALE_OBJECT if _object_mode(writer, measurement) else 0
    writer.u8(control, "control")
    writer.u16(raw, "weight")
    _date_time(writer, measurement)
    return writer.getvalue()


def encode_body_composition(measurement: Measurement) -> bytes:
    writer = Writer(BODY_COMPOSITION_LABEL)
    _check(writer, measurement, "body_composition", {"body_weight", "impedance"})
    raw, pounds, jin = _weight_raw(writer, measurement)
    stabilized = _flag(writer, measurement, STABILIZED)
    removed = _flag(writer, measurement, LOAD_REMOVED)
    impedance = measurement.values.get("impedance")
    impedance_raw = 0
    if impedance is not None:
        if impedance.unit != "Ohm":
            writer.fail(f"impedance unit {impedance.unit!r} is not 'Ohm'")
        impedance_raw = to_fixed_point(impedance.value, 1, 1)
        if not 0 < impedance_raw <= 0xFFFF or impedance_raw != impedance.value:
            writer.fail(f"impedance {impedance.value} Ohm is not a whole number in 1..65535")
    control1 = _BC_IMPEDANCE if impedance is not None else 0
    control1 |= _BC_STABILIZED if stabilized else 0
    control1 |= _BC_JIN if jin else 0
    control1 |= _BC_REMOVED if removed else _BC_LOADED
    control0 = _BC_ALWAYS_SET | (_BC_POUNDS if pounds else 0)
    control0 |= _BC_OBJECT if _object_mode(writer, measurement) else 0
    writer.u8(control0, "control_0")
    writer.u8(control1, "control_1")
    _date_time(writer, measurement)
    writer.u16(impedance_raw, "impedance")
    writer.u16(raw, "weight")
    return writer.getvalue()


__all__ = [
    "LOAD_REMOVED",
    "OBJECT",
    "PERSON",
    "SCALE_UNIT",
    "STABILIZED",
    "WEIGHING_MODE",
    "decode_body_composition",
    "decode_scale",
    "encode_body_composition",
    "encode_scale",
]
