"""IEEE 11073-20601 SFLOAT/FLOAT: layouts from Annex F.8 (special values) and the GATT Specification
Supplement's medfloat16/medfloat32; the (exponent, mantissa) examples 12.34 = 1234e-2,
123000 = 123e3 and 0.0000012 = 12e-7 are the ones StanfordSpezi/SpeziBluetooth's MedFloatTests use.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from devices.ieee11073 import (
    SpecialValue,
    decode_float,
    decode_sfloat,
    encode_float,
    encode_sfloat,
)


def sfloat(exponent: int, mantissa: int) -> int:
    return ((exponent & 0xF) << 12) | (mantissa & 0xFFF)


def float32(exponent: int, mantissa: int) -> int:
    return ((exponent & 0xFF) << 24) | (mantissa & 0xFFFFFF)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (0x0078, 120.0),  # a BP cuff's 120 mmHg, exponent 0
        (0xF16E, 36.6),  # 366e-1
        (sfloat(-2, 1234), 12.34),
        (sfloat(3, 123), 123000.0),
        (sfloat(-7, 12), 0.0000012),
        (sfloat(-2, -1234), -12.34),
        (sfloat(7, 2047), 2047e7),
        (sfloat(-8, -2048), -2048e-8),
        (sfloat(1, 2047), 20470.0),  # mantissa 0x7FF is NaN only with exponent 0
        (0x0000, 0.0),
    ],
)
def test_decode_sfloat_numbers(raw: int, expected: float) -> None:
    assert decode_sfloat(raw) == expected


@pytest.mark.parametrize(
    ("raw", "special"),
    [
        (0x07FF, SpecialValue.NAN),
        (0x0800, SpecialValue.NRES),
        (0x07FE, SpecialValue.PLUS_INFINITY),
        (0x0802, SpecialValue.MINUS_INFINITY),
        (0x0801, SpecialValue.RESERVED),
    ],
)
def test_sfloat_special_values(raw: int, special: SpecialValue) -> None:
    assert decode_sfloat(raw) is special
    assert encode_sfloat(special) == raw


@pytest.mark.parametrize(
    ("raw", "special"),
    [
        (0x007FFFFF, SpecialValue.NAN),
        (0x00800000, SpecialValue.NRES),
        (0x007FFFFE, SpecialValue.PLUS_INFINITY),
        (0x00800002, SpecialValue.MINUS_INFINITY),
        (0x00800001, SpecialValue.RESERVED),
    ],
)
def test_float_special_values(raw: int, special: SpecialValue) -> None:
    assert decode_float(raw) is special
    assert encode_float(special) == raw


def test_special_value_names_are_the_status_strings() -> None:
    assert [s.value for s in SpecialValue] == ["nan", "nres", "+inf", "-inf", "reserved"]


def test_float_nan_and_infinity_encode_as_special_values() -> None:
    assert encode_sfloat(math.nan) == 0x07FF
    assert encode_sfloat(math.inf) == 0x07FE
    assert encode_sfloat(-math.inf) == 0x0802
    assert encode_float(math.nan) == 0x007FFFFF


@pytest.mark.parametrize(
    ("value", "raw"),
    [
        (120, 0x0078),  # integers keep exponent 0, as devices send them
        (120.0, 0x0078),
        (36.6, sfloat(-1, 366)),
        (12.34, sfloat(-2, 1234)),
        (0.00095, sfloat(-5, 95)),
        (99.5, sfloat(-1, 995)),
        (123000.0, sfloat(2, 1230)),  # most precision: 1230e2 rather than 123e3
        (-12.34, sfloat(-2, -1234)),
        (0.0, 0x0000),
        (1e-9, 0x0000),  # below the finest step (1e-8): rounds to zero
        (2047.6, sfloat(1, 205)),  # 2048 does not fit the mantissa; one digit coarser
        (2046, sfloat(1, 205)),  # 2046e0 would spell +INFINITY
        (-2048, sfloat(1, -205)),  # -2048e0 would spell NRes
    ],
)
def test_encode_sfloat_chooses_most_precise_exponent(value: float, raw: int) -> None:
    assert encode_sfloat(value) == raw


def test_encode_sfloat_rounds_half_to_even() -> None:
    assert encode_sfloat(0.12345) == sfloat(-4, 1234)  # 1234.5 -> 1234
    assert encode_sfloat(0.12355) == sfloat(-4, 1236)


@pytest.mark.parametrize("value", [2048e7, -2049e7, 1e12])
def test_encode_sfloat_out_of_range(value: float) -> None:
    with pytest.raises(ValueError, match="too large"):
        encode_sfloat(value)


def test_encode_float_out_of_range_and_not_a_number() -> None:
    with pytest.raises(ValueError, match="too large"):
        encode_float(1e140)
    with pytest.raises(ValueError, match="not a number"):
        encode_sfloat("12")  # type: ignore[arg-type]


def test_decode_rejects_raw_values_out_of_width() -> None:
    with pytest.raises(ValueError, match="outside"):
        decode_sfloat(0x10000)
    with pytest.raises(ValueError, match="outside"):
        decode_float(-1)


def test_float32_layout() -> None:
    assert decode_float(float32(-1, 366)) == 36.6
    assert decode_float(0xFF00016E) == 36.6
    assert encode_float(36.6) == float32(-1, 366)
    assert encode_float(98.6) == float32(-1, 986)
    assert encode_float(8388605) == float32(0, 8388605)
    assert encode_float(8388607) == float32(1, 838861)  # 8388607e0 would spell NaN


def test_float32_uses_the_full_mantissa() -> None:
    # 7 significant digits fit a 24-bit mantissa (max 8388607); the eighth rounds away.
    assert encode_float(1234.567) == float32(-3, 1234567)
    assert decode_float(encode_float(1234.5678)) == 1234.568


def test_shift_moves_the_decimal_point_exactly() -> None:
    # Glucose in kg/L -> mg/dL is a shift by 5: 95e-5 kg/L = 95 mg/dL with no binary rounding.
    assert decode_sfloat(sfloat(-5, 95), shift=5) == 95.0
    assert encode_sfloat(95.0, shift=5) == sfloat(-5, 95)
    assert decode_sfloat(sfloat(-4, 55), shift=3) == 5.5
    assert encode_sfloat(5.5, shift=3) == sfloat(-4, 55)


@given(st.integers(min_value=0, max_value=0xFFFF))
def test_sfloat_decode_encode_is_stable(raw: int) -> None:
    value = decode_sfloat(raw)
    assert decode_sfloat(encode_sfloat(value)) == value


@given(st.integers(min_value=0, max_value=0xFFFFFFFF))
def test_float_decode_encode_is_stable(raw: int) -> None:
    value = decode_float(raw)
    assert decode_float(encode_float(value)) == value


@given(
    st.integers(min_value=-2045, max_value=2045),
    st.integers(min_value=-8, max_value=7),
)
def test_sfloat_grid_values_round_trip(mantissa: int, exponent: int) -> None:
    value = decode_sfloat(sfloat(exponent, mantissa))
    assert decode_sfloat(encode_sfloat(value)) == value
