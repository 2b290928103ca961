"""Weight Measurement (0x2A9D).

Byte vectors follow the Weight Scale Service 1.0 section 3.2 / GATT Specification Supplement
"Weight Measurement" layout: flags uint8 (bit 0 imperial, 1 time stamp, 2 user id, 3 BMI and
height), weight uint16 (0.005 kg | 0.01 lb), Date Time, uint8 user id, BMI uint16 (0.1 kg/m2),
height uint16 (0.001 m | 0.1 in). 0xFFFF as weight is "measurement unsuccessful".
"""

from __future__ import annotations

from datetime import datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from devices.gatt import DecodeError, EncodeError, decode, encode
from gateway.models import Measurement, Quantity

FULL_SI = bytes.fromhex(
    "0e"  # time stamp, user id, BMI and height; SI
    "7c15"  # 5500 * 0.005 = 27.5 kg
    "e4070c1f0a0b0c"  # 2020-12-31 10:11:12
    "02"  # user 2
    "f000"  # BMI 24.0
    "b406"  # 1716 * 0.001 = 1.716 m
)


def test_si_weight_only() -> None:
    m = decode("2a9d", bytes.fromhex("00b036"))  # 14000 * 0.005
    assert m.kind == "weight"
    assert m.values == {"body_weight": Quantity(value=70.0, unit="kg")}
    assert m.status == {}


def test_imperial_weight_resolution() -> None:
    m = decode("2a9d", bytes.fromhex("01483c"))  # 15432 * 0.01
    assert m.values == {"body_weight": Quantity(value=154.32, unit="[lb_av]")}


def test_all_fields_si() -> None:
    m = decode("2a9d", FULL_SI)
    assert m.values == {
        "body_weight": Quantity(value=27.5, unit="kg"),
        "bmi": Quantity(value=24.0, unit="kg/m2"),
        "height": Quantity(value=1.716, unit="m"),
    }
    assert m.measured_at == datetime(2020, 12, 31, 10, 11, 12)
    assert m.user_index == 2
    assert encode("2a9d", m) == FULL_SI


def test_all_fields_imperial() -> None:
    data = bytes.fromhex("0f483ce8070315 0e1e2d00f500ad02")
    m = decode("2a9d", data)
    assert m.values == {
        "body_weight": Quantity(value=154.32, unit="[lb_av]"),
        "bmi": Quantity(value=24.5, unit="kg/m2"),
        "height": Quantity(value=68.5, unit="[in_i]"),  # 685 * 0.1 in
    }
    assert m.user_index == 0
    assert encode("2a9d", m) == data


def test_measurement_unsuccessful() -> None:
    m = decode("2a9d", bytes.fromhex("04ffff03"))
    assert m.values == {}
    assert m.user_index == 3
    assert m.status == {"special_values": {"body_weight": "unsuccessful"}}
    assert encode("2a9d", m) == bytes.fromhex("04ffff03")


def test_unknown_user_and_unknown_time() -> None:
    m = decode("2a9d", bytes.fromhex("06b036 00000000000000 ff"))
    assert m.user_index is None
    assert m.measured_at is None
    assert m.status == {"unknown_user": True, "time_stamp_unknown": True}


def test_encoder_rounds_to_resolution() -> None:
    m = Measurement(kind="weight", values={"body_weight": Quantity(value=70.0031, unit="kg")})
    assert encode("2a9d", m) == bytes.fromhex("00b136")  # 14000.62 -> 14001
    assert decode("2a9d", encode("2a9d", m)).values["body_weight"].value == 70.005


@pytest.mark.parametrize("length", range(len(FULL_SI)))
def test_truncation(length: int) -> None:
    with pytest.raises(DecodeError, match=r"Weight Measurement \(0x2A9D\): field '[a-z_.]+' at"):
        decode("2a9d", FULL_SI[:length])


def test_reserved_flags_and_trailing_bytes_are_ignored_and_recorded() -> None:
    assert decode("2a9d", bytes.fromhex("10b036")).status == {"reserved_flags": 0x10}
    m = decode("2a9d", bytes.fromhex("00b0360000"))
    assert m.values == {"body_weight": Quantity(value=70.0, unit="kg")}
    assert m.status == {"ignored_bytes": 2}


def _weight(**values: Quantity) -> Measurement:
    return Measurement(kind="weight", values=values)


@pytest.mark.parametrize(
    ("measurement", "message"),
    [
        (
            _weight(
                body_weight=Quantity(value=70, unit="kg"),
                bmi=Quantity(value=22, unit="kg/m2"),
                height=Quantity(value=70, unit="[in_i]"),
            ),
            "does not match body_weight",
        ),
        (
            _weight(
                body_weight=Quantity(value=70, unit="kg"), height=Quantity(value=1.8, unit="m")
            ),
            "'bmi' is required",
        ),
        (_weight(body_weight=Quantity(value=400, unit="kg")), "outside the field's range"),
        (_weight(body_weight=Quantity(value=-1, unit="kg")), "outside the field's range"),
        (_weight(body_weight=Quantity(value=70, unit="g")), "'g' is not one of"),
        (_weight(body_weight=Quantity(value=float("nan"), unit="kg")), "not a finite number"),
        (
            Measurement(
                kind="weight", values={}, status={"special_values": {"body_weight": "nan"}}
            ),
            "cannot carry special value 'nan'",
        ),
    ],
)
def test_encode_errors(measurement: Measurement, message: str) -> None:
    with pytest.raises(EncodeError, match=message):
        encode("2a9d", measurement)


_stamps = st.datetimes(min_value=datetime(1582, 1, 1), max_value=datetime(9999, 12, 31)).map(
    lambda d: d.replace(microsecond=0)
)


@st.composite
def weights(draw: st.DrawFn) -> Measurement:
    imperial = draw(st.booleans())
    mass_unit, mass_step = ("[lb_av]", 100) if imperial else ("kg", 200)
    length_unit, length_step = ("[in_i]", 10) if imperial else ("m", 1000)
    values: dict[str, Quantity] = {}
    status: dict[str, object] = {}
    if draw(st.integers(0, 9)):
        values["body_weight"] = Quantity(
            value=draw(st.integers(0, 0xFFFE)) / mass_step, unit=mass_unit
        )
    else:
        status["special_values"] = {"body_weight": "unsuccessful"}
    if draw(st.booleans()):
        values["bmi"] = Quantity(value=draw(st.integers(0, 0xFFFF)) / 10, unit="kg/m2")
        values["height"] = Quantity(
            value=draw(st.integers(0, 0xFFFF)) / length_step, unit=length_unit
        )
    measured_at = None
    if draw(st.booleans()):
        measured_at = draw(st.none() | _stamps)
        if measured_at is None:
            status["time_stamp_unknown"] = True
    user_index = draw(st.none() | st.integers(0, 254))
    if user_index is None and draw(st.booleans()):
        status["unknown_user"] = True
    return Measurement(
        kind="weight", values=values, measured_at=measured_at, user_index=user_index, status=status
    )


@given(weights())
def test_round_trip_every_flag_combination(m: Measurement) -> None:
    data = encode("2a9d", m)
    assert decode("2a9d", data) == m
    flags = data[0]
    assert bool(flags & 0x08) == ("bmi" in m.values)
    assert bool(flags & 0x04) == (m.user_index is not None or "unknown_user" in m.status)
