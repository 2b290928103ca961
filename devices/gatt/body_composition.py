"""Body Composition Measurement (0x2A9C), and the multiple-packet case.

Layout (Body Composition Service 1.0, section 3.2; GATT Specification Supplement, "Body
Composition Measurement"): flags uint16, body fat percentage uint16 (0.1 %), then in flag order
the optional Time Stamp (bit 1), User ID (bit 2), Basal Metabolism (bit 3, uint16 kJ), Muscle
Percentage (bit 4, 0.1 %), Muscle Mass (5), Fat Free Mass (6), Soft Lean Mass (7), Body Water Mass
(8), Impedance (bit 9, 0.1 Ohm), Weight (10) and Height (11). Flag bit 0 selects imperial units:
masses are 0.005 kg or 0.01 lb, height 0.001 m or 0.1 in. A body fat percentage of 0xFFFF means
"measurement unsuccessful". Bit 12 is "multiple packet measurement".

Values: ``body_fat_percentage``, ``basal_metabolism`` ("kJ"), ``muscle_percentage`` ("%"),
``muscle_mass``, ``fat_free_mass``, ``soft_lean_mass``, ``body_water_mass``, ``body_weight``
("kg" | "[lb_av]"), ``impedance`` ("Ohm"), ``height`` ("m" | "[in_i]").

Status keys:

* ``multiple_packet`` (True): this value is one packet of a measurement the server split because
  it exceeds ATT_MTU - 3 (20 octets at the default MTU). Each packet is a complete characteristic
  value (flags, the mandatory body fat percentage, some of the optional fields), so ``decode``
  returns one Measurement per packet. ``BodyCompositionAssembler`` joins them into one
  Measurement with ``status["packets"]`` (how many were joined; ``status["incomplete"] = True``
  when a measurement ended early); ``split_body_composition`` does the server's side.
* ``unknown_user`` (True), ``time_stamp_unknown`` (True) as in the other profiles.
* ``special_values``: ``{"body_fat_percentage": "unsuccessful"}`` for 0xFFFF.

Reserved flag bits (13..15) and bytes after the last announced field are ignored, as the
specifications require of a receiver (``devices.gatt.decode`` records them in
``status["reserved_flags"]`` and ``status["ignored_bytes"]``).
"""

from __future__ import annotations

from typing import Any

from devices.gatt._codec import Codec
from devices.gatt._fields import (
    SPECIAL_VALUES,
    TIME_STAMP_UNKNOWN,
    UNKNOWN_USER,
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
from devices.gatt.errors import EncodeError
from devices.gatt.weight import LENGTH_FOR_MASS, LENGTH_UNITS, MASS_UNITS
from devices.models import Measurement

BODY_COMPOSITION_MEASUREMENT = 0x2A9C
LABEL = "Body Composition Measurement (0x2A9C)"

_IMPERIAL = 0x0001
_TIME_STAMP = 0x0002
_USER_ID = 0x0004
MULTIPLE_PACKET = 0x1000
_DEFINED_FLAGS = 0x1FFF

UNSUCCESSFUL_BODY_FAT = 0xFFFF
PERCENT = (1, 10)
MULTIPLE_PACKET_KEY = "multiple_packet"

# Optional uint16 fields in wire order: (flag bit, value name, kind of unit).
_OPTIONAL = (
    (0x0008, "basal_metabolism", "kJ"),
    (0x0010, "muscle_percentage", "%"),
    (0x0020, "muscle_mass", "mass"),
    (0x0040, "fat_free_mass", "mass"),
    (0x0080, "soft_lean_mass", "mass"),
    (0x0100, "body_water_mass", "mass"),
    (0x0200, "impedance", "Ohm"),
    (0x0400, "body_weight", "mass"),
    (0x0800, "height", "length"),
)
_MASS_NAMES = tuple(name for _, name, kind in _OPTIONAL if kind == "mass")
_FIXED_UNITS = {"kJ": (1, 1), "%": PERCENT, "Ohm": (1, 10)}


def _resolution(kind: str, mass_unit: str) -> tuple[tuple[int, int], str]:
    if kind == "mass":
        return MASS_UNITS[mass_unit], mass_unit
    if kind == "length":
        length_unit = LENGTH_FOR_MASS[mass_unit]
        return LENGTH_UNITS[length_unit], length_unit
    return _FIXED_UNITS[kind], kind


def decode_body_composition(reader: Reader) -> Measurement:
    flags = reader.flags(2, _DEFINED_FLAGS)
    mass_unit = "[lb_av]" if flags & _IMPERIAL else "kg"
    sink = ValueSink()
    status: dict[str, Any] = {}
    raw_fat = reader.u16("body_fat_percentage")
    put_fixed(sink, "body_fat_percentage", raw_fat, PERCENT, "%", UNSUCCESSFUL_BODY_FAT)
    measured_at = read_time_stamp(reader, status) if flags & _TIME_STAMP else None
    user_index = user_index_of(reader, status) if flags & _USER_ID else None
    for bit, name, kind in _OPTIONAL:
        if flags & bit:
            resolution, unit = _resolution(kind, mass_unit)
            put_fixed(sink, name, reader.u16(name), resolution, unit)
    if flags & MULTIPLE_PACKET:
        status[MULTIPLE_PACKET_KEY] = True
    return sink.measurement("body_composition", status, measured_at, user_index)


def _mass_unit(writer: Writer, source: ValueSource) -> str:
    """The unit system (flag bit 0), named by its mass unit, shared by every mass and the height."""
    units = {unit for name in _MASS_NAMES if (unit := source.unit(name)) is not None}
    height = source.unit("height")
    if height is not None:
        by_length = {length: mass for mass, length in LENGTH_FOR_MASS.items()}
        if height not in by_length:
            writer.fail(f"height unit {height!r} is not one of {sorted(by_length)}")
        units.add(by_length[height])
    if len(units) > 1:
        writer.fail(
            f"masses and height must all be SI (kg, m) or all imperial ([lb_av], [in_i]); "
            f"got mass systems {sorted(units)}"
        )
    unit = units.pop() if units else "kg"
    if unit not in MASS_UNITS:
        writer.fail(f"mass unit {unit!r} is not one of {sorted(MASS_UNITS)}")
    return unit


def encode_body_composition(writer: Writer, measurement: Measurement) -> None:
    source = ValueSource(measurement, writer)
    mass_unit = _mass_unit(writer, source)
    flags = _IMPERIAL if mass_unit == "[lb_av]" else 0
    flags |= _TIME_STAMP if has_time_stamp(measurement) else 0
    flags |= _USER_ID if has_user(measurement) else 0
    flags |= sum(bit for bit, name, _ in _OPTIONAL if source.has(name))
    flags |= MULTIPLE_PACKET if measurement.status.get(MULTIPLE_PACKET_KEY) else 0
    writer.u16(flags, "flags")
    write_fixed(writer, source, "body_fat_percentage", 2, PERCENT, "%", UNSUCCESSFUL_BODY_FAT)
    if flags & _TIME_STAMP:
        writer.date_time(measurement.measured_at, "time_stamp")
    if flags & _USER_ID:
        write_user(writer, measurement)
    for bit, name, kind in _OPTIONAL:
        if flags & bit:
            resolution, unit = _resolution(kind, mass_unit)
            write_fixed(writer, source, name, 2, resolution, unit)


def _encode(measurement: Measurement) -> bytes:
    writer = Writer(LABEL)
    encode_body_composition(writer, measurement)
    return writer.getvalue()


def split_body_composition(measurement: Measurement, max_payload: int = 20) -> list[bytes]:
    """The indications a server sends for ``measurement`` when each holds ``max_payload`` octets.

    A value that fits is sent whole. Otherwise every packet carries the flags, the mandatory body
    fat percentage and as many of the remaining fields, in wire order, as fit; all have the
    multiple-packet bit set.
    """
    if measurement.kind != "body_composition":
        raise EncodeError(f"{LABEL} carries kind 'body_composition', not {measurement.kind!r}")
    whole = _encode(measurement)
    if len(whole) <= max_payload:
        return [whole]
    status = measurement.status
    specials = dict(status.get(SPECIAL_VALUES) or {})
    base_status = {k: v for k, v in status.items() if k not in (SPECIAL_VALUES, UNKNOWN_USER)}
    base_status.pop(TIME_STAMP_UNKNOWN, None)
    base_status[MULTIPLE_PACKET_KEY] = True
    fat_name = "body_fat_percentage"
    # Each optional part: (octets, how it changes a packet's Measurement fields).
    parts: list[tuple[int, dict[str, Any]]] = []
    if has_time_stamp(measurement):
        stamp: dict[str, Any] = {"measured_at": measurement.measured_at}
        if measurement.measured_at is None:
            stamp["status"] = {TIME_STAMP_UNKNOWN: True}
        parts.append((7, stamp))
    if has_user(measurement):
        user: dict[str, Any] = {"user_index": measurement.user_index}
        if measurement.user_index is None:
            user["status"] = {UNKNOWN_USER: True}
        parts.append((1, user))
    for _, name, _ in _OPTIONAL:
        if name in measurement.values:
            parts.append((2, {"values": {name: measurement.values[name]}}))
        elif name in specials:
            parts.append((2, {"status": {SPECIAL_VALUES: {name: specials[name]}}}))
    header = 4
    if header + max(size for size, _ in parts) > max_payload:
        raise EncodeError(f"{LABEL}: max_payload {max_payload} cannot hold even one field")
    packets: list[list[dict[str, Any]]] = [[]]
    room = max_payload - header
    for size, part in parts:
        if size > room:
            packets.append([])
            room = max_payload - header
        packets[-1].append(part)
        room -= size
    return [_encode(_packet(measurement, fat_name, specials, base_status, p)) for p in packets]


def _packet(
    measurement: Measurement,
    fat_name: str,
    specials: dict[str, Any],
    base_status: dict[str, Any],
    parts: list[dict[str, Any]],
) -> Measurement:
    values = {fat_name: measurement.values[fat_name]} if fat_name in measurement.values else {}
    status = dict(base_status)
    packet_specials = {fat_name: specials[fat_name]} if fat_name in specials else {}
    fields: dict[str, Any] = {}
    for part in parts:
        values.update(part.get("values", {}))
        extra = dict(part.get("status", {}))
        packet_specials.update(extra.pop(SPECIAL_VALUES, {}))
        status.update(extra)
        fields.update({k: v for k, v in part.items() if k in ("measured_at", "user_index")})
    if packet_specials:
        status[SPECIAL_VALUES] = packet_specials
    return Measurement(kind="body_composition", values=values, status=status, **fields)


class BodyCompositionAssembler:
    """Joins the packets of multiple-packet Body Composition Measurements (pure, no I/O).

    Feed every decoded 0x2A9C Measurement in arrival order; ``feed`` returns the Measurements that
    are complete: a single-packet one at once, a split one when its ``packets`` parts are in. A
    part that contradicts the pending ones (a value, time stamp or user they already hold) starts
    a new measurement and the pending one comes out marked ``incomplete``. Call ``flush`` when the
    connection ends to get a pending partial measurement.
    """

    def __init__(self, packets: int = 2) -> None:
        if packets < 2:
            raise ValueError("a multiple-packet measurement has at least 2 packets")
        self._packets = packets
        self._parts: list[Measurement] = []

    def feed(self, measurement: Measurement) -> list[Measurement]:
        if not measurement.status.get(MULTIPLE_PACKET_KEY):
            return [*self.flush(), measurement]
        out: list[Measurement] = []
        if self._parts and self._conflicts(measurement):
            out.extend(self.flush())
        self._parts.append(measurement)
        if len(self._parts) == self._packets:
            out.append(self._merge(incomplete=False))
            self._parts = []
        return out

    def flush(self) -> list[Measurement]:
        if not self._parts:
            return []
        merged = self._merge(incomplete=True)
        self._parts = []
        return [merged]

    def _conflicts(self, part: Measurement) -> bool:
        for held in self._parts:
            for name, quantity in part.values.items():
                if name != "body_fat_percentage" and name in held.values:
                    return True
                if name == "body_fat_percentage" and held.values.get(name, quantity) != quantity:
                    return True
            if None not in (held.measured_at, part.measured_at):
                return True
            if None not in (held.user_index, part.user_index) and (
                held.user_index != part.user_index
            ):
                return True
        return False

    def _merge(self, incomplete: bool) -> Measurement:
        values: dict[str, Any] = {}
        status: dict[str, Any] = {}
        specials: dict[str, Any] = {}
        measured_at = None
        user_index = None
        for part in self._parts:
            for name, quantity in part.values.items():
                values.setdefault(name, quantity)
            for key, value in part.status.items():
                if key == SPECIAL_VALUES:
                    specials.update(value)
                elif key != MULTIPLE_PACKET_KEY:
                    status[key] = value
            measured_at = measured_at or part.measured_at
            user_index = part.user_index if user_index is None else user_index
        if specials:
            status[SPECIAL_VALUES] = specials
        status["packets"] = len(self._parts)
        if incomplete:
            status["incomplete"] = True
        return Measurement(
            kind="body_composition",
            values=values,
            measured_at=measured_at,
            user_index=user_index,
            status=status,
        )


CODECS = (
    Codec(
        BODY_COMPOSITION_MEASUREMENT,
        "Body Composition Measurement",
        "body_composition",
        decode_body_composition,
        encode_body_composition,
    ),
)
