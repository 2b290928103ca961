"""Heart Rate Measurement (0x2A37).

Vectors marked "polar" are the frames of polarofficial/polar-ble-sdk's BleHrClientTest.kt
(android-communications), which documents each byte against the Heart Rate Service layout; the rest
are built from the GATT Specification Supplement "Heart Rate Measurement" layout (flags: bit 0
uint16 value, bits 1-2 sensor contact, bit 3 energy expended, bit 4 RR intervals in 1/1024 s).
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from devices.gatt import DecodeError, EncodeError, decode, encode
from gateway.models import Measurement, Quantity


def bpm(value: float) -> Quantity:
    return Quantity(value=value, unit="/min")


@pytest.mark.parametrize(
    ("frame", "rate"),
    [
        ("00ff", 255),  # polar: uint8
        ("007f", 127),  # polar
        ("018080", 32896),  # polar: uint16
        ("017f7f", 32639),  # polar
    ],
)
def test_value_formats(frame: str, rate: int) -> None:
    m = decode("2a37", bytes.fromhex(frame))
    assert m.kind == "heart_rate"
    assert m.values == {"heart_rate": bpm(rate)}


@pytest.mark.parametrize(
    ("frame", "contact"),
    [
        ("0600", "detected"),  # polar: supported, in contact
        ("0400", "not_detected"),  # polar: supported, no contact
        ("0200", "not_supported"),  # polar: status bit without support bit
        ("0000", "not_supported"),  # polar
    ],
)
def test_sensor_contact(frame: str, contact: str) -> None:
    assert decode("2a37", bytes.fromhex(frame)).status == {"sensor_contact": contact}


def test_energy_expended() -> None:
    m = decode("2a37", bytes.fromhex("090000ffff"))  # polar: uint16 value + energy
    assert m.values == {"heart_rate": bpm(0), "energy_expended": Quantity(value=65535, unit="kJ")}
    m = decode("2a37", bytes.fromhex("08007f80"))  # polar
    assert m.values["energy_expended"] == Quantity(value=32895, unit="kJ")


def test_rr_intervals_in_seconds() -> None:
    assert decode("2a37", bytes.fromhex("1000ffff")).status["rr_intervals"] == [65535 / 1024]
    m = decode("2a37", bytes.fromhex("110000ffff7f80"))  # polar: two intervals
    assert m.status["rr_intervals"] == [65535 / 1024, 32895 / 1024]
    m = decode("2a37", bytes.fromhex("164800040003"))  # 72 bpm, 1.0 s and 0.75 s
    assert m.values == {"heart_rate": bpm(72)}
    assert m.status == {"sensor_contact": "detected", "rr_intervals": [1.0, 0.75]}
    assert encode("2a37", m) == bytes.fromhex("164800040003")


def test_rr_flag_with_no_intervals() -> None:
    m = decode("2a37", bytes.fromhex("1048"))
    assert m.status["rr_intervals"] == []
    assert encode("2a37", m) == bytes.fromhex("1048")


def test_all_fields_round_trip_bytes() -> None:
    data = bytes.fromhex("1f2c01e80300040002")  # 300 bpm, 1000 kJ, 1 s, 0.5 s
    m = decode("2a37", data)
    assert m.values == {"heart_rate": bpm(300), "energy_expended": Quantity(value=1000, unit="kJ")}
    assert m.status["rr_intervals"] == [1.0, 0.5]
    assert encode("2a37", m) == data


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        ("", r"field 'flags' at offset 0: expected 1 byte\(s\), got 0"),
        ("01", r"field 'heart_rate' at offset 1: expected 2 byte\(s\), got 0"),
        ("0148", r"field 'heart_rate' at offset 1: expected 2 byte\(s\), got 1"),
        ("0848ff", r"field 'energy_expended' at offset 2"),
    ],
)
def test_decode_errors(frame: str, message: str) -> None:
    with pytest.raises(DecodeError, match=message):
        decode("2a37", bytes.fromhex(frame))


def test_an_rr_interval_cut_short_is_truncation() -> None:
    # RR intervals fill the value to its end, so an odd byte there is half an interval.
    with pytest.raises(DecodeError, match=r"field 'rr_intervals' at offset 2: 1 byte\(s\) left"):
        decode("2a37", bytes.fromhex("104800"))


def test_reserved_flags_and_trailing_bytes_are_ignored() -> None:
    flagged = decode("2a37", bytes.fromhex("2048"))
    assert flagged.values == {"heart_rate": bpm(72)}
    assert flagged.status["reserved_flags"] == 0x20
    assert decode("2a37", bytes.fromhex("004800")).status["ignored_bytes"] == 1


def test_encoder_picks_uint16_only_when_needed() -> None:
    small = Measurement(kind="heart_rate", values={"heart_rate": bpm(255)})
    large = Measurement(kind="heart_rate", values={"heart_rate": bpm(256)})
    assert encode("2a37", small) == bytes.fromhex("00ff")
    assert encode("2a37", large) == bytes.fromhex("010001")


@pytest.mark.parametrize(
    ("measurement", "message"),
    [
        (Measurement(kind="heart_rate", values={}), "'heart_rate' is required"),
        (Measurement(kind="heart_rate", values={"heart_rate": bpm(70000)}), "16-bit"),
        (
            Measurement(kind="heart_rate", values={"heart_rate": Quantity(value=1, unit="Hz")}),
            "expected '/min'",
        ),
        (
            Measurement(
                kind="heart_rate",
                values={"heart_rate": bpm(60)},
                status={"sensor_contact": "maybe"},
            ),
            "'maybe' is not one of",
        ),
        (
            Measurement(
                kind="heart_rate", values={"heart_rate": bpm(60)}, status={"rr_intervals": 1.0}
            ),
            "must be a list",
        ),
        (
            Measurement(
                kind="heart_rate", values={"heart_rate": bpm(60)}, status={"rr_intervals": [70.0]}
            ),
            r"rr_intervals\[0\]",
        ),
        (
            Measurement(
                kind="heart_rate",
                values={"heart_rate": bpm(60)},
                status={"special_values": {"energy_expended": "nan"}},
            ),
            "finite number",
        ),
    ],
)
def test_encode_errors(measurement: Measurement, message: str) -> None:
    with pytest.raises(EncodeError, match=message):
        encode("2a37", measurement)


@st.composite
def heart_rates(draw: st.DrawFn) -> Measurement:
    values = {"heart_rate": bpm(draw(st.integers(0, 0xFFFF)))}
    if draw(st.booleans()):
        values["energy_expended"] = Quantity(value=draw(st.integers(0, 0xFFFF)), unit="kJ")
    status: dict[str, object] = {
        "sensor_contact": draw(st.sampled_from(["not_supported", "not_detected", "detected"]))
    }
    if draw(st.booleans()):
        raws = draw(st.lists(st.integers(0, 0xFFFF), max_size=8))
        status["rr_intervals"] = [raw / 1024 for raw in raws]
    return Measurement(kind="heart_rate", values=values, status=status)


@given(heart_rates())
def test_round_trip_every_flag_combination(m: Measurement) -> None:
    data = encode("2a37", m)
    assert decode("2a37", data) == m
    assert bool(data[0] & 0x01) == (m.values["heart_rate"].value > 255)
    assert bool(data[0] & 0x08) == ("energy_expended" in m.values)
    assert bool(data[0] & 0x10) == ("rr_intervals" in m.status)
