"""IEEE 11073-20601 medical number formats: 16-bit SFLOAT and 32-bit FLOAT.

Both are base-10 floating point numbers, ``mantissa * 10**exponent``, with two's complement fields:

* SFLOAT: 4-bit exponent (-8..7) in the high nibble, 12-bit mantissa (-2048..2047).
* FLOAT: 8-bit exponent (-128..127) in the high octet, 24-bit mantissa (-2**23..2**23-1).

A few raw values with exponent 0 are reserved for special values (IEEE 11073-20601 Annex F.8; the
Bluetooth GATT Specification Supplement repeats them as the ``medfloat16``/``medfloat32`` types):

=========================  ========  ==========
meaning                    SFLOAT    FLOAT
=========================  ========  ==========
NaN (not a number)         0x07FF    0x007FFFFF
NRes (not at this res.)    0x0800    0x00800000
+INFINITY                  0x07FE    0x007FFFFE
-INFINITY                  0x0802    0x00800002
reserved for future use    0x0801    0x00800001
=========================  ========  ==========

Encoding picks the smallest exponent whose mantissa still fits (the most precision), rounding half
to even; then, while the value's exponent (in the caller's unit, see ``shift``) is negative, it
drops trailing decimal zeros of the mantissa. That loses nothing and yields the bytes a device
sends (120 mmHg is ``0x0078``, not ``1200e-1``; 36.6 is ``366e-1``). Magnitudes below the finest
step round to zero; too large ones raise ValueError. The ``shift`` argument moves the decimal point
exactly (no binary rounding); codecs use it for unit renames such as kg/L -> mg/dL, where 100 mg/dL
is sent as ``100e-5`` kg/L.
"""

from __future__ import annotations

import math
from decimal import ROUND_HALF_EVEN, Decimal
from enum import Enum

__all__ = [
    "SpecialValue",
    "decode_float",
    "decode_sfloat",
    "encode_float",
    "encode_sfloat",
]


class SpecialValue(Enum):
    """An IEEE-11073 special value; ``.value`` is the short name codecs put into ``status``."""

    NAN = "nan"
    NRES = "nres"
    PLUS_INFINITY = "+inf"
    MINUS_INFINITY = "-inf"
    RESERVED = "reserved"


class _Format:
    """Field widths and special codes of one of the two formats."""

    def __init__(self, name: str, mantissa_bits: int, exponent_bits: int) -> None:
        self.name = name
        self.mantissa_bits = mantissa_bits
        self.exponent_bits = exponent_bits
        self.total_bits = mantissa_bits + exponent_bits
        self.mantissa_max = (1 << (mantissa_bits - 1)) - 1
        self.mantissa_min = -(1 << (mantissa_bits - 1))
        self.exponent_max = (1 << (exponent_bits - 1)) - 1
        self.exponent_min = -(1 << (exponent_bits - 1))
        top = self.mantissa_max
        self.specials: dict[int, SpecialValue] = {
            top: SpecialValue.NAN,
            top + 1: SpecialValue.NRES,
            top - 1: SpecialValue.PLUS_INFINITY,
            top + 3: SpecialValue.MINUS_INFINITY,
            top + 2: SpecialValue.RESERVED,
        }
        self.codes = {special: raw for raw, special in self.specials.items()}
        # With exponent 0 these mantissas spell special values, so numbers must avoid them.
        self.special_mantissas = frozenset(_signed(raw, mantissa_bits) for raw in self.specials)


def _signed(raw: int, bits: int) -> int:
    return raw - (1 << bits) if raw & (1 << (bits - 1)) else raw


_SFLOAT = _Format("SFLOAT", mantissa_bits=12, exponent_bits=4)
_FLOAT = _Format("FLOAT", mantissa_bits=24, exponent_bits=8)


def _decode(fmt: _Format, raw: int, shift: int) -> float | SpecialValue:
    if not 0 <= raw < (1 << fmt.total_bits):
        limit = (1 << fmt.total_bits) - 1
        raise ValueError(f"{fmt.name} raw value {raw:#x} is outside 0..{limit:#x}")
    special = fmt.specials.get(raw)
    if special is not None:
        return special
    mantissa = _signed(raw & ((1 << fmt.mantissa_bits) - 1), fmt.mantissa_bits)
    exponent = _signed(raw >> fmt.mantissa_bits, fmt.exponent_bits) + shift
    if exponent >= 0:
        return float(mantissa * 10**exponent)
    # Integer true division is correctly rounded, unlike mantissa * 10.0**exponent.
    return mantissa / 10**-exponent


def _encode(fmt: _Format, value: float | SpecialValue, shift: int) -> int:
    if isinstance(value, SpecialValue):
        return fmt.codes[value]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{fmt.name} cannot encode {value!r}: not a number")
    if math.isnan(value):
        return fmt.codes[SpecialValue.NAN]
    if math.isinf(value):
        return fmt.codes[SpecialValue.PLUS_INFINITY if value > 0 else SpecialValue.MINUS_INFINITY]
    # The shortest repr is the decimal the caller meant (36.6, not 36.600000000000001421...).
    number = Decimal(repr(value) if isinstance(value, float) else value).scaleb(-shift)
    if number == 0:
        return 0
    # Start a couple of exponents below the one that just fits, then walk up to the first that does.
    digits = len(str(fmt.mantissa_max))
    exponent = max(fmt.exponent_min, number.adjusted() - digits)
    while exponent <= fmt.exponent_max:
        mantissa = int(number.scaleb(-exponent).to_integral_value(rounding=ROUND_HALF_EVEN))
        fits = fmt.mantissa_min <= mantissa <= fmt.mantissa_max
        if fits and not (exponent == 0 and mantissa in fmt.special_mantissas):
            break
        exponent += 1
    else:
        raise ValueError(f"{value!r} is too large in magnitude for IEEE-11073 {fmt.name}")
    # Strip zeros in the caller's unit: 100 mg/dL stays 100e-5 kg/L, as meters send it.
    while mantissa != 0 and mantissa % 10 == 0 and exponent + shift < 0:
        mantissa //= 10
        exponent += 1
    if mantissa == 0:
        return 0
    mantissa_mask = (1 << fmt.mantissa_bits) - 1
    exponent_mask = (1 << fmt.exponent_bits) - 1
    return ((exponent & exponent_mask) << fmt.mantissa_bits) | (mantissa & mantissa_mask)


def decode_sfloat(raw: int, shift: int = 0) -> float | SpecialValue:
    """Decode a 16-bit SFLOAT (unsigned int) into a float times ``10**shift``, or a special."""
    return _decode(_SFLOAT, raw, shift)


def encode_sfloat(value: float | SpecialValue, shift: int = 0) -> int:
    """Encode ``value / 10**shift`` as a 16-bit SFLOAT; float NaN/inf map to the special values.

    Raises ValueError when the magnitude exceeds 2047e7 (after the shift).
    """
    return _encode(_SFLOAT, value, shift)


def decode_float(raw: int, shift: int = 0) -> float | SpecialValue:
    """Decode a 32-bit FLOAT (unsigned int) into a float times ``10**shift``, or a special."""
    return _decode(_FLOAT, raw, shift)


def encode_float(value: float | SpecialValue, shift: int = 0) -> int:
    """Encode ``value / 10**shift`` as a 32-bit FLOAT; float NaN/inf map to the special values.

    Raises ValueError when the magnitude exceeds (2**23 - 1) * 10**127 (after the shift).
    """
    return _encode(_FLOAT, value, shift)
