"""Blood Pressure Measurement (0x2A35) and Intermediate Cuff Pressure (0x2A36).

Byte vectors are built from the field layout of the Blood Pressure Service 1.1 (section 3.2) /
GATT Specification Supplement 3.31 "Blood Pressure Measurement": flags uint8 (bit 0 kPa, 1 time
stamp, 2 pulse rate, 3 user id, 4 measurement status), three SFLOAT pressures, Date Time (7 octets,
year little-endian), SFLOAT pulse rate, uint8 user id, uint16 measurement status. An all-fields
120/80/90 mmHg reading like the one below (``1E 78 00 50 00 5A 00 ...``) is what an A&D UA-651BLE
or Omron cuff indicates; note SFLOAT 120 is ``78 00`` (exponent 0), not ``78 80``.
"""

from __future__ import annotations

import struct
import uuid
from datetime import datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from devices.gatt import DecodeError, EncodeError, characteristic_uuid16, decode, encode
from gateway.models import Measurement, Quantity

FULL = bytes.fromhex(
    "1e"  # flags: time stamp, pulse rate, user id, measurement status; mmHg
    "7800"  # systolic 120
    "5000"  # diastolic 80
    "5a00"  # MAP 90
    "e4070c1f0a0b0c"  # 2020-12-31 10:11:12
    "4800"  # pulse 72
    "01"  # user 1
    "0500"  # body movement + irregular pulse
)


def mmhg(value: float) -> Quantity:
    return Quantity(value=value, unit="mm[Hg]")


def test_minimal_reading_mmhg() -> None:
    m = decode("2a35", bytes.fromhex("00 7800 5000 5a00"))
    assert m.kind == "blood_pressure"
    assert m.values == {
        "systolic": mmhg(120),
        "diastolic": mmhg(80),
        "mean_arterial_pressure": mmhg(90),
    }
    assert m.measured_at is None
    assert m.user_index is None
    assert m.status == {}


def test_kpa_reading_with_decimal_exponent() -> None:
    # 16.0 / 10.7 / 12.5 kPa as SFLOAT with exponent -1: 0xF0A0, 0xF06B, 0xF07D
    m = decode(0x2A35, bytes.fromhex("01 a0f0 6bf0 7df0"))
    assert m.values["systolic"] == Quantity(value=16.0, unit="kPa")
    assert m.values["diastolic"] == Quantity(value=10.7, unit="kPa")
    assert m.values["mean_arterial_pressure"] == Quantity(value=12.5, unit="kPa")


def test_all_fields() -> None:
    m = decode("0x2A35", FULL)
    assert m.values["systolic"] == mmhg(120)
    assert m.values["pulse_rate"] == Quantity(value=72, unit="/min")
    assert m.measured_at == datetime(2020, 12, 31, 10, 11, 12)
    assert m.user_index == 1
    assert m.status == {
        "body_movement": True,
        "cuff_fit_loose": False,
        "irregular_pulse": True,
        "improper_measurement_position": False,
        "pulse_rate_range": "within",
    }
    assert encode("2a35", m) == FULL


@pytest.mark.parametrize(
    ("status", "key", "expected"),
    [
        (0x0002, "cuff_fit_loose", True),
        (0x0008, "pulse_rate_range", "exceeds_upper"),
        (0x0010, "pulse_rate_range", "below_lower"),
        (0x0018, "pulse_rate_range", "reserved"),
        (0x0020, "improper_measurement_position", True),
        (0xFFC0, "body_movement", False),  # reserved bits 6..15 are ignored
    ],
)
def test_measurement_status_bits(status: int, key: str, expected: object) -> None:
    m = decode("2a35", bytes.fromhex("10 7800 5000 5a00") + struct.pack("<H", status))
    assert m.status[key] == expected


def test_unknown_user_is_not_a_user_index() -> None:
    m = decode("2a35", bytes.fromhex("08 7800 5000 5a00 ff"))
    assert m.user_index is None
    assert m.status == {"unknown_user": True}
    assert encode("2a35", m) == bytes.fromhex("08 7800 5000 5a00 ff")


def test_special_values_go_to_status() -> None:
    # systolic NaN, MAP NRes, pulse +INF: the values are left out, the reasons kept.
    data = bytes.fromhex("04 ff07 5000 0008 fe07")
    m = decode("2a35", data)
    assert m.values == {"diastolic": mmhg(80)}
    assert m.status["special_values"] == {
        "systolic": "nan",
        "mean_arterial_pressure": "nres",
        "pulse_rate": "+inf",
    }
    assert encode("2a35", m) == data


def test_unknown_time_stamp() -> None:
    data = bytes.fromhex("02 7800 5000 5a00 00000000000000")
    m = decode("2a35", data)
    assert m.measured_at is None
    assert m.status == {"time_stamp_unknown": True}
    assert encode("2a35", m) == data


def test_intermediate_cuff_pressure() -> None:
    data = bytes.fromhex("04 9600 ff07 ff07 4600")  # 150 mmHg in the cuff, pulse 70
    m = decode(0x2A36, data)
    assert m.kind == "cuff_pressure"
    assert m.values == {"cuff_pressure": mmhg(150), "pulse_rate": Quantity(value=70, unit="/min")}
    assert m.status == {}
    assert encode(0x2A36, m) == data


def test_cuff_pressure_ignores_unused_slots() -> None:
    m = decode(0x2A36, bytes.fromhex("01 1e00 1234 5678"))
    assert m.values == {"cuff_pressure": Quantity(value=30, unit="kPa")}


def test_a_pressure_or_pulse_no_cuff_can_measure_raises() -> None:
    # A Beurer BM85's big-endian pulse rate (63/min) read little-endian is -256000/min.
    with pytest.raises(DecodeError, match=r"pulse_rate = -256000 /min is impossible"):
        decode("2a35", bytes.fromhex("04 6a00 4700 5500 003f"))
    with pytest.raises(DecodeError, match=r"systolic = 300 kPa is impossible"):
        decode("2a35", bytes.fromhex("01 2c01 1e00 1e00"))
    # 130/min sent big-endian (0x0082) reads little-endian as 512e-8/min.
    with pytest.raises(DecodeError, match=r"pulse_rate = 5.12e-06 /min is impossible"):
        decode("2a35", bytes.fromhex("04 6a00 4700 5500 0082"))
    assert decode("2a35", bytes.fromhex("04 6a00 4700 5500 0000")).values["pulse_rate"].value == 0


@pytest.mark.parametrize(
    "characteristic",
    [
        "2a35",
        "2A35",
        "0x2A35",
        " 0x2a35 ",
        0x2A35,
        "00002a35-0000-1000-8000-00805f9b34fb",
        uuid.UUID("00002A35-0000-1000-8000-00805F9B34FB"),
    ],
)
def test_characteristic_forms(characteristic: str | int | uuid.UUID) -> None:
    assert characteristic_uuid16(characteristic) == 0x2A35
    assert decode(characteristic, FULL).kind == "blood_pressure"


@pytest.mark.parametrize(
    ("characteristic", "message"),
    [
        ("2a00", "unknown characteristic 0x2A00"),
        (0x12345, "outside"),
        ("not-a-uuid", "not a characteristic UUID"),
        ("12345678-1234-5678-1234-567812345678", "not a Bluetooth SIG 16-bit UUID"),
        (True, "not a characteristic UUID"),
        (None, "not a characteristic UUID"),
    ],
)
def test_unknown_characteristics(characteristic: object, message: str) -> None:
    with pytest.raises(DecodeError, match=message):
        decode(characteristic, FULL)  # type: ignore[arg-type]


@pytest.mark.parametrize("length", range(len(FULL)))
def test_every_truncation_names_the_field(length: int) -> None:
    with pytest.raises(DecodeError, match=r"at offset \d+: expected \d byte\(s\), got \d"):
        decode("2a35", FULL[:length])


def test_truncation_message_is_precise() -> None:
    with pytest.raises(DecodeError) as info:
        decode("2a35", FULL[:15])
    assert str(info.value) == (
        "Blood Pressure Measurement (0x2A35): field 'pulse_rate' at offset 14: "
        "expected 2 byte(s), got 1 (payload is 15 bytes)"
    )


@pytest.mark.parametrize(
    ("length", "part", "offset"),
    [
        (7, "year", 7),
        (8, "year", 7),
        (9, "month", 9),
        (11, "hours", 11),
        (12, "minutes", 12),
        (13, "seconds", 13),
    ],
)
def test_truncated_time_stamp_names_the_missing_part(length: int, part: str, offset: int) -> None:
    with pytest.raises(DecodeError) as info:
        decode("2a35", FULL[:length])
    assert f"field 'time_stamp.{part}' at offset {offset}:" in str(info.value)


def test_reserved_flag_bits_and_trailing_bytes_are_ignored_and_recorded() -> None:
    plain = decode("2a35", bytes.fromhex("00 7800 5000 5a00"))
    flagged = decode("2a35", bytes.fromhex("e0 7800 5000 5a00"))
    assert flagged.values == plain.values
    assert flagged.status == {"reserved_flags": 0xE0}
    longer = decode("2a35", bytes.fromhex("00 7800 5000 5a00 00 01"))
    assert longer.values == plain.values
    assert longer.status == {"ignored_bytes": 2}


def test_flags_0xde_as_a_cuff_sold_as_bm96_sends_them_read_every_announced_field() -> None:
    # Issue 13: flags 0xDE = time stamp, pulse rate, user id, status + reserved bits 6 and 7.
    body = bytes.fromhex("7800 5000 5a00 e4070c1f0a0b0c 4800 01 0400")
    m = decode("2a35", b"\xde" + body)
    assert m == decode("2a35", b"\x1e" + body).model_copy(
        update={"status": {**decode("2a35", b"\x1e" + body).status, "reserved_flags": 0xC0}}
    )
    assert m.user_index == 1 and m.status["irregular_pulse"] is True


def test_a_value_cut_short_still_raises_despite_tolerance() -> None:
    with pytest.raises(DecodeError, match="field 'pulse_rate' at offset 7"):
        decode("2a35", bytes.fromhex("04 7800 5000 5a00 48"))


@pytest.mark.parametrize(
    ("stamp", "message"),
    [
        ("e4070d1f0a0b0c", "month 13 is reserved"),
        ("e407021f0a0b0c", "day 31 does not exist in 2020-02"),
        ("e4070c1f180b0c", "time 24:11:12 is out of range"),
        ("01000c1f0a0b0c", "year 1 is reserved"),
    ],
)
def test_malformed_time_stamp(stamp: str, message: str) -> None:
    with pytest.raises(DecodeError, match=message):
        decode("2a35", bytes.fromhex("02 7800 5000 5a00" + stamp))


def test_not_bytes() -> None:
    with pytest.raises(DecodeError, match="expected bytes"):
        decode("2a35", "00785000")  # type: ignore[arg-type]


def _bp(**kw: object) -> Measurement:
    values = {"systolic": mmhg(120), "diastolic": mmhg(80), "mean_arterial_pressure": mmhg(90)}
    return Measurement(kind="blood_pressure", values=kw.pop("values", values), **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("measurement", "message"),
    [
        (Measurement(kind="weight", values={}), "carries kind 'blood_pressure', not 'weight'"),
        (
            _bp(values={"systolic": mmhg(120), "diastolic": Quantity(value=10, unit="kPa")}),
            "must share one unit",
        ),
        (_bp(values={"systolic": mmhg(120), "diastolic": mmhg(80)}), "'mean_arterial_pressure'"),
        (
            _bp(values={k: Quantity(value=1, unit="psi") for k in ("systolic",)}),
            "unit 'psi' is not supported",
        ),
        (_bp(user_index=255), "user_index 255"),
        (_bp(status={"pulse_rate_range": "high"}), "'high' is not one of"),
        (_bp(status={"special_values": {"systolic": "oops"}}), "'oops' is not one of"),
        (_bp(measured_at=datetime(1500, 1, 1)), "year 1500"),
        (_bp(values={**_bp().values, "pulse_rate": Quantity(value=72, unit="bpm")}), "'/min'"),
        (_bp(values={**_bp().values, "systolic": mmhg(1e12)}), "too large"),
    ],
)
def test_encode_errors(measurement: Measurement, message: str) -> None:
    with pytest.raises(EncodeError, match=message):
        encode("2a35", measurement)


@pytest.mark.parametrize("flags", range(32))
def test_every_flag_combination_decodes_and_reencodes(flags: int) -> None:
    data = bytes([flags]) + bytes.fromhex("7d00 5500 6900")  # 125 / 85 / 105
    if flags & 0x02:
        data += bytes.fromhex("e8070315 0e1e2d")  # 2024-03-21 14:30:45
    if flags & 0x04:
        data += bytes.fromhex("3c00")  # 60
    if flags & 0x08:
        data += bytes.fromhex("03")
    if flags & 0x10:
        data += bytes.fromhex("2200")  # cuff fit loose + improper position
    m = decode("2a35", data)
    unit = "kPa" if flags & 0x01 else "mm[Hg]"
    assert m.values["systolic"] == Quantity(value=125, unit=unit)
    assert m.values["mean_arterial_pressure"] == Quantity(value=105, unit=unit)
    assert (m.measured_at == datetime(2024, 3, 21, 14, 30, 45)) == bool(flags & 0x02)
    assert ("pulse_rate" in m.values) == bool(flags & 0x04)
    assert m.user_index == (3 if flags & 0x08 else None)
    assert m.status.get("cuff_fit_loose") == (True if flags & 0x10 else None)
    assert m.status.get("improper_measurement_position") == (True if flags & 0x10 else None)
    assert encode("2a35", m) == data


_units = st.sampled_from(["mm[Hg]", "kPa"])
# SFLOAT holds 4 significant digits with a mantissa up to 2047: 204.7 but not 204.8.
_pressure = st.integers(0, 300).map(float) | st.decimals(0, "204.7", places=1).map(float)
# The decoder refuses pressures no cuff can measure (above 150 kPa, 1000 mmHg).
_kpa = st.integers(0, 150).map(float) | st.decimals(0, "150.0", places=1).map(float)
# ... and pulse rates no heart has (other than 0, none): below 20 or above 300 per minute.
_pulse = (
    st.just(0.0) | st.integers(20, 300).map(float) | st.decimals(20, "204.7", places=1).map(float)
)
_specials = st.sampled_from(["nan", "nres", "+inf", "-inf", "reserved"])
_stamps = st.datetimes(min_value=datetime(1582, 1, 1), max_value=datetime(9999, 12, 31)).map(
    lambda d: d.replace(microsecond=0)
)
_status = st.fixed_dictionaries(
    {
        "body_movement": st.booleans(),
        "cuff_fit_loose": st.booleans(),
        "irregular_pulse": st.booleans(),
        "improper_measurement_position": st.booleans(),
        "pulse_rate_range": st.sampled_from(["within", "exceeds_upper", "below_lower", "reserved"]),
    }
)


@st.composite
def measurements(draw: st.DrawFn, names: tuple[str, ...], kind: str) -> Measurement:
    unit = draw(_units)
    values: dict[str, Quantity] = {}
    specials: dict[str, str] = {}
    optional_pulse = draw(st.booleans())
    for name in (*names, "pulse_rate") if optional_pulse else names:
        if draw(st.integers(0, 9)) == 0:
            specials[name] = draw(_specials)
        else:
            value_unit = "/min" if name == "pulse_rate" else unit
            strategy = {"kPa": _kpa, "/min": _pulse}.get(value_unit, _pressure)
            number = draw(strategy)
            values[name] = Quantity(value=number, unit=value_unit)
    status: dict[str, object] = {}
    if draw(st.booleans()):
        status.update(draw(_status))
    measured_at = None
    if draw(st.booleans()):
        measured_at = draw(st.none() | _stamps)
        if measured_at is None:
            status["time_stamp_unknown"] = True
    user_index = draw(st.none() | st.integers(0, 254))
    if user_index is None and draw(st.booleans()):
        status["unknown_user"] = True
    if specials:
        status["special_values"] = specials
    return Measurement(
        kind=kind, values=values, measured_at=measured_at, user_index=user_index, status=status
    )


@given(measurements(("systolic", "diastolic", "mean_arterial_pressure"), "blood_pressure"))
def test_blood_pressure_round_trip(m: Measurement) -> None:
    data = encode("2a35", m)
    assert decode("2a35", data) == m
    flags = data[0]
    assert bool(flags & 0x02) == ("time_stamp_unknown" in m.status or m.measured_at is not None)
    assert bool(flags & 0x04) == (
        "pulse_rate" in m.values or "pulse_rate" in m.status.get("special_values", {})
    )
    assert bool(flags & 0x10) == ("pulse_rate_range" in m.status)


@given(measurements(("cuff_pressure",), "cuff_pressure"))
def test_cuff_pressure_round_trip(m: Measurement) -> None:
    data = encode("2a36", m)
    assert data[3:7] == bytes.fromhex("ff07ff07")  # unused slots carry NaN
    assert decode("2a36", data) == m
