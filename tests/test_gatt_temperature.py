"""Temperature Measurement (0x2A1C).

Byte vectors follow the Health Thermometer Service 1.0 section 3.1 / GATT Specification Supplement
"Temperature Measurement" layout: flags uint8 (bit 0 Fahrenheit, bit 1 time stamp, bit 2
temperature type), a 32-bit IEEE-11073 FLOAT (e.g. 36.6 = exponent -1, mantissa 366 =
``6e 01 00 ff``), Date Time, uint8 temperature type (2 = body, 9 = tympanum).
"""

from __future__ import annotations

from datetime import datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from devices.gatt import DecodeError, EncodeError, decode, encode
from gateway.models import Measurement, Quantity

FULL = bytes.fromhex("066e0100ffe8070315 0e1e2d09")


def test_celsius_only() -> None:
    m = decode("2a1c", bytes.fromhex("00 6e0100ff"))
    assert m.kind == "temperature"
    assert m.values == {"body_temperature": Quantity(value=36.6, unit="Cel")}
    assert m.measured_at is None
    assert m.status == {}


def test_fahrenheit_with_two_decimals() -> None:
    m = decode("2a1c", bytes.fromhex("01 8a2600fe"))  # 9866e-2
    assert m.values == {"body_temperature": Quantity(value=98.66, unit="[degF]")}


def test_all_fields() -> None:
    m = decode("2a1c", FULL)
    assert m.values["body_temperature"].value == 36.6
    assert m.measured_at == datetime(2024, 3, 21, 14, 30, 45)
    assert m.status == {"temperature_type": "tympanum"}
    assert encode("2a1c", m) == FULL


@pytest.mark.parametrize(
    ("code", "name"),
    [(1, "armpit"), (2, "body"), (3, "ear"), (5, "gastrointestinal_tract"), (0, "reserved")],
)
def test_temperature_types(code: int, name: str) -> None:
    m = decode("2a1c", bytes.fromhex("04 6e0100ff") + bytes([code]))
    assert m.status["temperature_type"] == name


def test_special_value_nan() -> None:
    data = bytes.fromhex("00 ffff7f00")
    m = decode("2a1c", data)
    assert m.values == {}
    assert m.status == {"special_values": {"body_temperature": "nan"}}
    assert encode("2a1c", m) == data


@pytest.mark.parametrize("length", range(len(FULL)))
def test_truncation(length: int) -> None:
    with pytest.raises(DecodeError, match=r"Temperature Measurement \(0x2A1C\): field"):
        decode("2a1c", FULL[:length])


def test_reserved_flag_bits_are_ignored_and_recorded() -> None:
    m = decode("2a1c", bytes.fromhex("08 6e0100ff"))
    assert m.values == decode("2a1c", bytes.fromhex("00 6e0100ff")).values
    assert m.status["reserved_flags"] == 0x08


@pytest.mark.parametrize(
    ("measurement", "message"),
    [
        (
            Measurement(
                kind="temperature",
                values={"body_temperature": Quantity(value=310, unit="K")},
            ),
            "'K' is not supported",
        ),
        (
            Measurement(
                kind="temperature",
                values={"body_temperature": Quantity(value=36.6, unit="Cel")},
                status={"temperature_type": "reserved"},
            ),
            "'reserved' is not one of",
        ),
        (Measurement(kind="temperature", values={}), "'body_temperature' is required"),
    ],
)
def test_encode_errors(measurement: Measurement, message: str) -> None:
    with pytest.raises(EncodeError, match=message):
        encode("2a1c", measurement)


_types = st.sampled_from(
    [
        "armpit",
        "body",
        "ear",
        "finger",
        "gastrointestinal_tract",
        "mouth",
        "rectum",
        "toe",
        "tympanum",
    ]
)
_stamps = st.datetimes(min_value=datetime(1582, 1, 1), max_value=datetime(9999, 12, 31)).map(
    lambda d: d.replace(microsecond=0)
)


@st.composite
def temperatures(draw: st.DrawFn) -> Measurement:
    unit = draw(st.sampled_from(["Cel", "[degF]"]))
    status: dict[str, object] = {}
    values: dict[str, Quantity] = {}
    if draw(st.integers(0, 9)):
        # FLOAT keeps 7 significant digits: a mantissa below 2**23 - 2 with any exponent.
        mantissa = draw(st.integers(-8388600, 8388600))
        value = mantissa / 10 ** draw(st.integers(0, 4))
        values["body_temperature"] = Quantity(value=value, unit=unit)
    else:
        status["special_values"] = {
            "body_temperature": draw(st.sampled_from(["nan", "nres", "+inf", "-inf", "reserved"]))
        }
    if draw(st.booleans()):
        status["temperature_type"] = draw(_types)
    measured_at = None
    if draw(st.booleans()):
        measured_at = draw(st.none() | _stamps)
        if measured_at is None:
            status["time_stamp_unknown"] = True
    return Measurement(kind="temperature", values=values, measured_at=measured_at, status=status)


@given(temperatures())
def test_round_trip_every_flag_combination(m: Measurement) -> None:
    data = encode("2a1c", m)
    assert decode("2a1c", data) == m
    assert bool(data[0] & 0x04) == ("temperature_type" in m.status)
