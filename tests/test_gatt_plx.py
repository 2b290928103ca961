"""PLX Spot-Check (0x2A5E) and PLX Continuous (0x2A5F) Measurements.

Byte vectors follow the Pulse Oximeter Service 1.0 sections 3.1/3.2 / GATT Specification Supplement
layouts: SFLOAT SpO2 and pulse rate, Date Time, uint16 measurement status (bits 5..15), uint24
device and sensor status (bits 0..15), SFLOAT pulse amplitude index; continuous adds the Fast and
Slow SpO2/PR pairs after the Normal pair.
"""

from __future__ import annotations

from datetime import datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from devices.gatt import DecodeError, EncodeError, decode, encode
from devices.gatt.plx import DEVICE_AND_SENSOR_STATUS, MEASUREMENT_STATUS
from gateway.models import Measurement, Quantity

SPOT_FULL = bytes.fromhex(
    "1f"  # time stamp, measurement status, device status, PAI, clock not set
    "6200"  # SpO2 98
    "4800"  # PR 72
    "e4070c1f0a0b0c"
    "a000"  # measurement status bits 5 (ongoing) and 7 (validated)
    "218000"  # device status bits 0, 5, 15
    "37f0"  # PAI 5.5
)
CONTINUOUS_FULL = bytes.fromhex("1f6200 48006100 47006000 46000001000800ff07")


def test_spot_check_minimal() -> None:
    m = decode("2a5e", bytes.fromhex("00 6100 4b00"))
    assert m.kind == "spo2"
    assert m.values == {
        "spo2": Quantity(value=97, unit="%"),
        "pulse_rate": Quantity(value=75, unit="/min"),
    }
    assert m.status == {"device_clock_not_set": False}


def test_spot_check_all_fields() -> None:
    m = decode("2a5e", SPOT_FULL)
    assert m.measured_at == datetime(2020, 12, 31, 10, 11, 12)
    assert m.status["device_clock_not_set"] is True
    assert m.status["pulse_amplitude_index"] == 5.5
    ms = m.status["measurement_status"]
    assert {k for k, v in ms.items() if v} == {"measurement_ongoing", "validated_data"}
    assert set(ms) == set(MEASUREMENT_STATUS.values())
    ds = m.status["device_and_sensor_status"]
    assert {k for k, v in ds.items() if v} == {
        "extended_display_update_ongoing",
        "low_perfusion_detected",
        "sensor_disconnected",
    }
    assert encode("2a5e", m) == SPOT_FULL


def test_continuous_all_fields() -> None:
    m = decode("2a5f", CONTINUOUS_FULL)
    assert m.values == {
        "spo2": Quantity(value=98, unit="%"),
        "pulse_rate": Quantity(value=72, unit="/min"),
    }
    assert m.measured_at is None
    assert m.status["spo2_fast"] == 97
    assert m.status["pulse_rate_fast"] == 71
    assert m.status["spo2_slow"] == 96
    assert m.status["pulse_rate_slow"] == 70
    assert m.status["measurement_status"]["fully_qualified_data"] is True
    assert m.status["device_and_sensor_status"]["sensor_interference_detected"] is False
    assert m.status["device_and_sensor_status"]["sensor_unconnected_to_user"] is True
    assert m.status["special_values"] == {"pulse_amplitude_index": "nan"}
    assert "device_clock_not_set" not in m.status
    assert encode("2a5f", m) == CONTINUOUS_FULL


def test_continuous_slow_only_and_special_values() -> None:
    data = bytes.fromhex("02 ff07 0008 6000 fe07")
    m = decode("2a5f", data)
    assert m.values == {}
    assert m.status == {
        "spo2_slow": 96.0,
        "special_values": {"spo2": "nan", "pulse_rate": "nres", "pulse_rate_slow": "+inf"},
    }
    assert encode("2a5f", m) == data


def test_reserved_status_bits_are_ignored() -> None:
    m = decode("2a5e", bytes.fromhex("06 6100 4b00 1f00 0000ff"))
    assert not any(m.status["measurement_status"].values())
    assert not any(m.status["device_and_sensor_status"].values())


@pytest.mark.parametrize(("uuid", "data"), [("2a5e", SPOT_FULL), ("2a5f", CONTINUOUS_FULL)])
def test_truncation(uuid: str, data: bytes) -> None:
    for length in range(len(data)):
        with pytest.raises(DecodeError, match=r"PLX .* Measurement \(0x2A5[EF]\): field"):
            decode(uuid, data[:length])


@pytest.mark.parametrize("uuid", ["2a5e", "2a5f"])
def test_reserved_flags_and_trailing_bytes_are_ignored(uuid: str) -> None:
    plain = decode(uuid, bytes.fromhex("00 6100 4b00"))
    flagged = decode(uuid, bytes.fromhex("80 6100 4b00"))
    assert flagged.values == plain.values
    assert flagged.status == {**plain.status, "reserved_flags": 0x80}
    longer = decode(uuid, bytes.fromhex("00 6100 4b00 00"))
    assert longer.status == {**plain.status, "ignored_bytes": 1}


def _spo2(status: dict[str, object]) -> Measurement:
    values = {"spo2": Quantity(value=97, unit="%"), "pulse_rate": Quantity(value=60, unit="/min")}
    return Measurement(kind="spo2", values=values, status=status)


@pytest.mark.parametrize(
    ("uuid", "status", "message"),
    [
        ("2a5f", {"spo2_fast": 97.0}, r"status\['pulse_rate_fast'\] must be a number"),
        ("2a5e", {"measurement_status": {"bogus": True}}, "unknown flags"),
        ("2a5e", {"device_and_sensor_status": []}, "must be a mapping"),
        ("2a5e", {"pulse_amplitude_index": "high"}, "must be a number"),
    ],
)
def test_encode_errors(uuid: str, status: dict[str, object], message: str) -> None:
    with pytest.raises(EncodeError, match=message):
        encode(uuid, _spo2(status))


_specials = st.sampled_from(["nan", "nres", "+inf", "-inf", "reserved"])
_numbers = st.integers(0, 2000).map(float) | st.decimals(0, "204.7", places=1).map(float)
_stamps = st.datetimes(min_value=datetime(1582, 1, 1), max_value=datetime(9999, 12, 31)).map(
    lambda d: d.replace(microsecond=0)
)


def _flag_dict(names: dict[int, str]) -> st.SearchStrategy[dict[str, bool]]:
    return st.fixed_dictionaries({name: st.booleans() for name in names.values()})


@st.composite
def oximetry(draw: st.DrawFn, continuous: bool) -> Measurement:
    values: dict[str, Quantity] = {}
    status: dict[str, object] = {}
    specials: dict[str, str] = {}
    units = {"spo2": "%", "pulse_rate": "/min"}
    for name, unit in units.items():
        if draw(st.integers(0, 9)):
            values[name] = Quantity(value=draw(_numbers), unit=unit)
        else:
            specials[name] = draw(_specials)
    status_numbers: list[str] = []
    if continuous:
        for variant in ("fast", "slow"):
            if draw(st.booleans()):
                status_numbers += [f"spo2_{variant}", f"pulse_rate_{variant}"]
    if draw(st.booleans()):
        status_numbers.append("pulse_amplitude_index")
    for name in status_numbers:
        if draw(st.integers(0, 9)):
            status[name] = draw(_numbers)
        else:
            specials[name] = draw(_specials)
    if draw(st.booleans()):
        status["measurement_status"] = draw(_flag_dict(MEASUREMENT_STATUS))
    if draw(st.booleans()):
        status["device_and_sensor_status"] = draw(_flag_dict(DEVICE_AND_SENSOR_STATUS))
    measured_at = None
    if not continuous:
        status["device_clock_not_set"] = draw(st.booleans())
        if draw(st.booleans()):
            measured_at = draw(st.none() | _stamps)
            if measured_at is None:
                status["time_stamp_unknown"] = True
    if specials:
        status["special_values"] = specials
    return Measurement(kind="spo2", values=values, measured_at=measured_at, status=status)


@given(oximetry(continuous=False))
def test_spot_check_round_trip(m: Measurement) -> None:
    assert decode("2a5e", encode("2a5e", m)) == m


@given(oximetry(continuous=True))
def test_continuous_round_trip(m: Measurement) -> None:
    data = encode("2a5f", m)
    assert decode("2a5f", data) == m
    specials = m.status.get("special_values", {})
    assert bool(data[0] & 0x01) == ("spo2_fast" in m.status or "spo2_fast" in specials)
