"""Shared wire helpers for the GATT codecs: a bounds-checked byte reader and writer (little-endian,
as every Bluetooth SIG characteristic), the Date Time field, IEEE-11073 numbers and the bookkeeping
of values that arrive as special values.

The Date Time field (GATT Specification Supplement, "Date Time", 7 octets: year uint16, month, day,
hours, minutes, seconds) uses 0 for "not known" in year, month and day. A timestamp with any of
them unknown decodes to None (the codecs then set ``status["time_stamp_unknown"] = True``); values
outside the defined ranges (year 1..1581 or above 9999, month 13, hour 24, ...) are reserved and
raise DecodeError.
"""

from __future__ import annotations

import calendar
import math
import struct
from collections.abc import Mapping
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any, NoReturn

from devices.gatt.errors import DecodeError, EncodeError
from devices.ieee11073 import (
    SpecialValue,
    decode_float,
    decode_sfloat,
    encode_float,
    encode_sfloat,
)
from devices.models import Measurement, Quantity, trusted_measurement, trusted_quantity

Number = float | SpecialValue

SPECIAL_VALUES = "special_values"
# Fixed-point fields (weight, body fat) spell a failed measurement with their all-ones raw value.
UNSUCCESSFUL = "unsuccessful"
TIME_STAMP_UNKNOWN = "time_stamp_unknown"
UNKNOWN_USER = "unknown_user"
UNKNOWN_USER_ID = 0xFF

_SPECIAL_BY_NAME = {special.value: special for special in SpecialValue}
_U16 = struct.Struct("<H")
_SFLOAT_CACHE: dict[int, Number] = {}
_DATE_TIME = struct.Struct("<HBBBBB")  # year, month, day, hours, minutes, seconds
_DATE_TIME_PARTS = ("month", "day", "hours", "minutes", "seconds")


class Reader:
    """Reads one characteristic value front to back; every failure names field and offset."""

    def __init__(self, data: bytes, label: str) -> None:
        self._data = data
        self._label = label
        self.offset = 0
        # Reserved (RFU) flag bits the device set: ignored, as the specifications require of a
        # receiver, and reported in the Measurement's status by ``devices.gatt.decode``.
        self.reserved_flags = 0

    def fail(self, message: str) -> NoReturn:
        raise DecodeError(f"{self._label}: {message}")

    def _take(self, size: int, field: str) -> bytes:
        offset = self.offset
        if len(self._data) - offset < size:
            self._short(size, field)
        self.offset = offset + size
        return self._data[offset : offset + size]

    def _short(self, size: int, field: str) -> NoReturn:
        available = len(self._data) - self.offset
        self.fail(
            f"field {field!r} at offset {self.offset}: expected {size} byte(s), got "
            f"{max(available, 0)} (payload is {len(self._data)} bytes)"
        )

    def uint(self, size: int, field: str) -> int:
        return int.from_bytes(self._take(size, field), "little")

    # u8 and u16 are most of every payload: read in place rather than through ``_take``.
    def u8(self, field: str) -> int:
        offset = self.offset
        if offset >= len(self._data):
            self._short(1, field)
        self.offset = offset + 1
        return self._data[offset]

    def u16(self, field: str) -> int:
        offset = self.offset
        if len(self._data) - offset < 2:
            self._short(2, field)
        self.offset = offset + 2
        return _U16.unpack_from(self._data, offset)[0]

    def s16(self, field: str) -> int:
        return int.from_bytes(self._take(2, field), "little", signed=True)

    def sfloat(self, field: str, shift: int = 0) -> Number:
        offset = self.offset
        if len(self._data) - offset < 2:
            self._short(2, field)
        self.offset = offset + 2
        raw = _U16.unpack_from(self._data, offset)[0]
        if shift:
            return decode_sfloat(raw, shift)
        # Devices repeat a small set of values (pressures, pulse rates, weights): remember each
        # decoded raw value; at most 65,536 entries.
        number = _SFLOAT_CACHE.get(raw)
        if number is None:
            number = _SFLOAT_CACHE[raw] = decode_sfloat(raw)
        return number

    def float32(self, field: str, shift: int = 0) -> Number:
        return decode_float(self.uint(4, field), shift)

    def flags(self, size: int, defined_mask: int, field: str = "flags") -> int:
        """The flags field with its reserved bits cleared (they are kept in ``reserved_flags``).

        A receiver ignores Reserved-for-Future-Use bits (Core Specification, Vol 3, Part G;
        every GATT service specification repeats it): the fields the defined bits announce are
        still where they were, and real cuffs set such bits (Beurer BM85 sends flags 0x56).
        """
        flags = self.uint(size, field)
        self.reserved_flags |= flags & ~defined_mask
        return flags & defined_mask

    def date_time(self, field: str) -> datetime | None:
        at = self.offset
        if len(self._data) - at >= _DATE_TIME.size:
            parts = _DATE_TIME.unpack_from(self._data, at)
            self.offset = at + _DATE_TIME.size
        else:  # short: read part by part, so the error names the part that is missing
            parts = (
                self.u16(f"{field}.year"),
                *(self.u8(f"{field}.{part}") for part in _DATE_TIME_PARTS),
            )
        year, month, day, hour, minute, second = parts
        if year != 0 and not 1582 <= year <= 9999:
            self.fail(f"field {field!r} at offset {at}: year {year} is reserved (0 or 1582..9999)")
        if month > 12:
            self.fail(f"field {field!r} at offset {at + 2}: month {month} is reserved (0..12)")
        if hour > 23 or minute > 59 or second > 59:
            self.fail(
                f"field {field!r} at offset {at + 4}: time {hour:02}:{minute:02}:{second:02} "
                "is out of range (hours 0..23, minutes and seconds 0..59)"
            )
        if 0 in parts[:3]:
            return None
        if day > calendar.monthrange(year, month)[1]:
            self.fail(
                f"field {field!r} at offset {at + 3}: day {day} does not exist in {year}-{month:02}"
            )
        return datetime(*parts)

    def remaining(self) -> int:
        return len(self._data) - self.offset

    def rest(self) -> bytes:
        return self._take(self.remaining(), "rest")

    def end(self) -> None:
        """Strict end, for requests our simulated devices parse (a device's own rules)."""
        extra = self.remaining()
        if extra:
            self.fail(
                f"{extra} unexpected byte(s) after the last field at offset {self.offset} "
                f"(the flags define {self.offset} of the {len(self._data)} bytes)"
            )


class Writer:
    """Builds one characteristic value; out-of-range fields raise EncodeError naming the field."""

    def __init__(self, label: str) -> None:
        self._label = label
        self._out = bytearray()

    def fail(self, message: str) -> NoReturn:
        raise EncodeError(f"{self._label}: {message}")

    def uint(self, value: int, size: int, field: str) -> None:
        if not 0 <= value < 1 << (8 * size):
            self.fail(f"field {field!r}: {value} does not fit an unsigned {8 * size}-bit integer")
        self._out += value.to_bytes(size, "little")

    def u8(self, value: int, field: str) -> None:
        self.uint(value, 1, field)

    def u16(self, value: int, field: str) -> None:
        self.uint(value, 2, field)

    def s16(self, value: int, field: str) -> None:
        if not -(1 << 15) <= value < 1 << 15:
            self.fail(f"field {field!r}: {value} does not fit a signed 16-bit integer")
        self._out += value.to_bytes(2, "little", signed=True)

    def sfloat(self, value: Number, field: str, shift: int = 0) -> None:
        try:
            self.u16(encode_sfloat(value, shift), field)
        except EncodeError:
            raise
        except ValueError as exc:
            self.fail(f"field {field!r}: {exc}")

    def float32(self, value: Number, field: str, shift: int = 0) -> None:
        try:
            self.uint(encode_float(value, shift), 4, field)
        except EncodeError:
            raise
        except ValueError as exc:
            self.fail(f"field {field!r}: {exc}")

    def date_time(self, value: datetime | None, field: str) -> None:
        if value is None:
            self._out += bytes(7)
            return
        if not 1582 <= value.year <= 9999:
            self.fail(f"field {field!r}: year {value.year} is outside 1582..9999")
        self.u16(value.year, field)
        self._out += bytes((value.month, value.day, value.hour, value.minute, value.second))

    def raw(self, data: bytes) -> None:
        self._out += data

    def getvalue(self) -> bytes:
        return bytes(self._out)


def fixed_point(raw: int, numerator: int, denominator: int) -> float:
    """``raw * numerator / denominator``, correctly rounded (0.005 kg is 5/1000, not 0.005)."""
    return raw * numerator / denominator


def to_fixed_point(value: float, numerator: int, denominator: int) -> int:
    """The raw integer nearest ``value`` at resolution ``numerator / denominator``."""
    scaled = Decimal(repr(float(value))) * denominator / numerator
    return int(scaled.to_integral_value(rounding=ROUND_HALF_EVEN))


def put_fixed(
    sink: ValueSink,
    name: str,
    raw: int,
    resolution: tuple[int, int],
    unit: str,
    unsuccessful_raw: int | None = None,
) -> None:
    """A fixed-point unsigned field; ``unsuccessful_raw`` marks a failed measurement."""
    if raw == unsuccessful_raw:
        sink.specials[name] = UNSUCCESSFUL
    else:
        sink.put(name, fixed_point(raw, *resolution), unit)


def write_fixed(
    writer: Writer,
    source: ValueSource,
    name: str,
    size: int,
    resolution: tuple[int, int],
    unit: str,
    unsuccessful_raw: int | None = None,
) -> None:
    """Write a fixed-point unsigned field, rounding to its resolution (half to even)."""
    code = source.special_code(name)
    if code is not None:
        if code == UNSUCCESSFUL and unsuccessful_raw is not None:
            writer.uint(unsuccessful_raw, size, name)
            return
        allowed = [UNSUCCESSFUL] if unsuccessful_raw is not None else []
        writer.fail(
            f"value {name!r} cannot carry special value {code!r} (an unsigned field; "
            f"allowed: {allowed})"
        )
    value = source.number(name, unit)
    if not math.isfinite(value):
        writer.fail(f"value {name!r} is {value}, not a finite number")
    raw = to_fixed_point(value, *resolution)
    limit = (1 << (8 * size)) - (1 if unsuccessful_raw is not None else 0)
    if not 0 <= raw < limit:
        step = resolution[0] / resolution[1]
        writer.fail(
            f"value {name!r} = {value} {unit} is outside the field's range "
            f"0..{(limit - 1) * step:g} {unit}"
        )
    writer.uint(raw, size, name)


class ValueSink:
    """Collects decoded values; special values go to ``status["special_values"]`` instead."""

    def __init__(self) -> None:
        self.values: dict[str, Quantity] = {}
        self.specials: dict[str, str] = {}

    def put(self, name: str, number: Number, unit: str) -> None:
        if number.__class__ is SpecialValue:
            self.specials[name] = number.value  # type: ignore[union-attr]
        else:
            self.values[name] = trusted_quantity(float(number), unit)

    def put_status(self, status: dict[str, Any], name: str, number: Number) -> None:
        """A numeric status entry (e.g. a pulse amplitude index); specials are recorded likewise."""
        if isinstance(number, SpecialValue):
            self.specials[name] = number.value
        else:
            status[name] = number

    def measurement(
        self,
        kind: str,
        status: dict[str, Any],
        measured_at: datetime | None = None,
        user_index: int | None = None,
    ) -> Measurement:
        if self.specials:
            status[SPECIAL_VALUES] = self.specials
        return trusted_measurement(kind, self.values, status, measured_at, user_index)


class ValueSource:
    """The encoder's view of a Measurement: a value by name, as a number or a special value."""

    def __init__(self, measurement: Measurement, writer: Writer) -> None:
        self.measurement = measurement
        self._writer = writer
        specials = measurement.status.get(SPECIAL_VALUES) or {}
        if not isinstance(specials, Mapping):
            writer.fail(f"status[{SPECIAL_VALUES!r}] must be a mapping, got {specials!r}")
        self._specials: Mapping[str, Any] = specials

    def has(self, name: str) -> bool:
        return name in self.measurement.values or name in self._specials

    def special_code(self, name: str) -> str | None:
        """The raw ``special_values`` entry for ``name`` (e.g. "nan", "unsuccessful"), if any."""
        code = self._specials.get(name)
        if code is not None and not isinstance(code, str):
            self._writer.fail(
                f"status[{SPECIAL_VALUES!r}][{name!r}] must be a string, got {code!r}"
            )
        return code

    def special(self, name: str) -> SpecialValue | None:
        if name not in self._specials:
            return None
        code = self._specials[name]
        special = _SPECIAL_BY_NAME.get(code) if isinstance(code, str) else None
        if special is None:
            self._writer.fail(
                f"status[{SPECIAL_VALUES!r}][{name!r}] = {code!r} is not one of "
                f"{sorted(_SPECIAL_BY_NAME)}"
            )
        return special

    def unit(self, name: str) -> str | None:
        quantity = self.measurement.values.get(name)
        return None if quantity is None else quantity.unit

    def number(self, name: str, unit: str | None = None) -> Number:
        """The value named ``name``; ``unit`` (when given) must match the Quantity's unit."""
        special = self.special(name)
        if special is not None:
            if name in self.measurement.values:
                self._writer.fail(f"value {name!r} is both a number and a special value")
            return special
        quantity = self.measurement.values.get(name)
        if quantity is None:
            self._writer.fail(f"value {name!r} is required but missing")
        if unit is not None and quantity.unit != unit:
            self._writer.fail(f"value {name!r} has unit {quantity.unit!r}, expected {unit!r}")
        return quantity.value

    def status_number(self, name: str) -> Number:
        special = self.special(name)
        if special is not None:
            return special
        value = self.measurement.status.get(name)
        if isinstance(value, bool) or not isinstance(value, int | float):
            self._writer.fail(f"status[{name!r}] must be a number, got {value!r}")
        return float(value)


def pick_unit(
    writer: Writer,
    source: ValueSource,
    names: tuple[str, ...],
    choices: Mapping[str, int],
    default: str,
) -> str:
    """The one unit all present ``names`` share (a flag bit selects it for all of them)."""
    units = {unit for name in names if (unit := source.unit(name)) is not None}
    if len(units) > 1:
        writer.fail(f"values {', '.join(names)} must share one unit, got {sorted(units)}")
    unit = units.pop() if units else default
    if unit not in choices:
        writer.fail(f"unit {unit!r} is not supported here; use one of {sorted(choices)}")
    return unit


def enum_name(table: Mapping[int, str], raw: int) -> str:
    """The name of an enumerated value, or "reserved" for values the specification leaves open."""
    return table.get(raw, "reserved")


def enum_code(writer: Writer, table: Mapping[int, str], name: object, field: str) -> int:
    for code, known in table.items():
        if known == name:
            return code
    writer.fail(f"status[{field!r}] = {name!r} is not one of {sorted(table.values())}")


def bit_flags(names: Mapping[int, str], raw: int) -> dict[str, bool]:
    """A bit field as a dict of booleans, one per defined bit (bit number -> name)."""
    return {name: bool(raw >> bit & 1) for bit, name in names.items()}


def bits_from(writer: Writer, names: Mapping[int, str], flags: object, field: str) -> int:
    if not isinstance(flags, Mapping):
        writer.fail(f"status[{field!r}] must be a mapping of flag name to bool, got {flags!r}")
    unknown = set(flags) - set(names.values())
    if unknown:
        writer.fail(f"status[{field!r}] has unknown flags {sorted(map(str, unknown))}")
    return sum(1 << bit for bit, name in names.items() if flags.get(name))


def user_index_of(reader: Reader, status: dict[str, Any], field: str = "user_id") -> int | None:
    """A User ID field: 0xFF means "unknown user" and goes to status, not to user_index."""
    user_id = reader.u8(field)
    if user_id == UNKNOWN_USER_ID:
        status[UNKNOWN_USER] = True
        return None
    return user_id


def has_user(measurement: Measurement) -> bool:
    return measurement.user_index is not None or bool(measurement.status.get(UNKNOWN_USER))


def write_user(writer: Writer, measurement: Measurement, field: str = "user_id") -> None:
    if measurement.user_index is None:
        writer.u8(UNKNOWN_USER_ID, field)
        return
    if not 0 <= measurement.user_index < UNKNOWN_USER_ID:
        writer.fail(f"user_index {measurement.user_index} is outside 0..254 (255 means unknown)")
    writer.u8(measurement.user_index, field)


def has_time_stamp(measurement: Measurement) -> bool:
    return measurement.measured_at is not None or bool(measurement.status.get(TIME_STAMP_UNKNOWN))


def read_time_stamp(
    reader: Reader, status: dict[str, Any], field: str = "time_stamp"
) -> datetime | None:
    stamp = reader.date_time(field)
    if stamp is None:
        status[TIME_STAMP_UNKNOWN] = True
    return stamp
