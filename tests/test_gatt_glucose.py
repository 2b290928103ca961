"""Glucose Measurement (0x2A18), Glucose Measurement Context (0x2A34) and the joiner.

``NORDIC_MEASUREMENT`` is the frame of NordicSemiconductor/Android-BLE-Common-Library's
GlucoseMeasurementDataCallbackTest (type 0x12 = capillary plasma in the low nibble, finger in the
high nibble; time offset -5 min; status 0x0105). ``NORDIC_CONTEXT`` follows the field values of the
same library's GlucoseMeasurementContextDataCallbackTest (all flags set, extended flags 0xB3,
dinner, casual, health care professional / minor issues, 60 s at 50 %, long acting insulin,
HbA1c 34.5 %), with the SFLOATs written by hand. Everything else follows the Glucose Service 1.0
layouts (sections 3.1 and 3.2).
"""

from __future__ import annotations

from datetime import datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from devices.gatt import (
    DecodeError,
    EncodeError,
    GlucoseContextJoiner,
    attach_context,
    decode,
    encode,
)
from devices.gatt.glucose import SAMPLE_LOCATIONS, SAMPLE_TYPES, SENSOR_STATUS
from gateway.models import Measurement, Quantity

NORDIC_MEASUREMENT = bytes(
    [0b011011, 1, 0, 0xE3, 0x07, 2, 27, 11, 10, 30, 0xFB, 0xFF, 30, 0, 0x12, 0b101, 0b1]
)
NORDIC_CONTEXT = bytes.fromhex(
    "ff"  # every field, medication in liters
    "0000"  # sequence number 0
    "b3"  # extended flags
    "03"
    "64d0"  # dinner, 100e-3 kg (Nordic uses 100 kg; 100 g is what a meter would send)
    "04"  # casual
    "12"  # tester 2 (low nibble), health 1 (high nibble)
    "3c00"
    "32"  # 60 s at 50 %
    "04"
    "d3f4"  # long acting insulin, 1235e-1 L
    "59f1"  # HbA1c 345e-1 %
)


def test_nordic_measurement() -> None:
    m = decode("2a18", NORDIC_MEASUREMENT)
    assert m.kind == "glucose"
    assert m.measured_at == datetime(2019, 2, 27, 11, 5, 30)  # base time - 5 min
    assert m.values == {"glucose": Quantity(value=3_000_000.0, unit="mg/dL")}  # 30 kg/L
    status = m.status
    assert status["sequence_number"] == 1
    assert status["time_offset_minutes"] == -5
    assert status["sample_type"] == "capillary_plasma"
    assert status["sample_location"] == "finger"
    assert {k for k, v in status["sensor_status"].items() if v} == {
        "battery_low",
        "sample_size_insufficient",
        "temperature_too_low",
    }
    assert status["context_follows"] is True
    # Nordic's 30e0 kg/L re-encodes at the most precise exponent, 300e-1: other bytes, same value.
    again = encode("2a18", m)
    assert again == NORDIC_MEASUREMENT[:12] + bytes.fromhex("2cf1") + NORDIC_MEASUREMENT[14:]
    assert decode("2a18", again) == m


def test_nordic_measurement_without_time_offset_is_truncated() -> None:
    # Nordic's onInvalidDataReceived frame: flags announce a time offset the payload lacks.
    frame = bytes([0b011011, 0, 0, 0xE2, 0x07, 4, 26, 11, 9, 30, 30, 0, 0x12, 0b101, 0b1])
    with pytest.raises(DecodeError, match="field 'sensor_status_annunciation' at offset 15"):
        decode("2a18", frame)


@pytest.mark.parametrize(
    ("flags", "concentration", "expected"),
    [
        (0x02, "5fb0", Quantity(value=95.0, unit="mg/dL")),  # 95e-5 kg/L
        (0x02, "64b0", Quantity(value=100.0, unit="mg/dL")),  # 100e-5 kg/L as meters send it
        (0x06, "37c0", Quantity(value=5.5, unit="mmol/L")),  # 55e-4 mol/L
    ],
)
def test_concentration_units(flags: int, concentration: str, expected: Quantity) -> None:
    data = bytes([flags]) + bytes.fromhex("0700 e8070315 0e1e2d" + concentration + "f1")
    m = decode("2a18", data)
    assert m.values == {"glucose": expected}
    assert m.status["sample_location"] == "not_available"
    assert m.status["sample_type"] == "capillary_whole_blood"
    assert encode("2a18", m) == data


def test_minimal_record_and_unknown_base_time() -> None:
    m = decode("2a18", bytes.fromhex("00 2a00 00000000000000"))
    assert m.values == {}
    assert m.measured_at is None
    assert m.status == {"sequence_number": 42, "time_stamp_unknown": True, "context_follows": False}


def test_special_and_reserved_values() -> None:
    m = decode("2a18", bytes.fromhex("02 0100 e8070315 0e1e2d ff07 50"))
    assert m.values == {}
    assert m.status["special_values"] == {"glucose": "nan"}
    assert m.status["sample_type"] == "reserved"  # 0
    assert m.status["sample_location"] == "reserved"  # 5
    with pytest.raises(EncodeError, match="'reserved' is not one of"):
        encode("2a18", m)


def test_offset_past_year_9999() -> None:
    with pytest.raises(DecodeError, match=r"outside years 1\.\.9999"):
        decode("2a18", bytes.fromhex("01 0100 0f270c1f173b3b ff7f"))


@pytest.mark.parametrize("length", range(len(NORDIC_MEASUREMENT)))
def test_truncation(length: int) -> None:
    with pytest.raises(DecodeError, match=r"Glucose Measurement \(0x2A18\): field"):
        decode("2a18", NORDIC_MEASUREMENT[:length])


def test_reserved_flag_bits_and_trailing_bytes_are_ignored_and_recorded() -> None:
    plain = decode("2a18", bytes.fromhex("00 0100 e8070315 0e1e2d"))
    m = decode("2a18", bytes.fromhex("e0 0100 e8070315 0e1e2d ffff"))
    assert m.measured_at == plain.measured_at
    assert m.status == {**plain.status, "reserved_flags": 0xE0, "ignored_bytes": 2}


@pytest.mark.parametrize(
    ("status", "message"),
    [
        ({}, r"status\['sequence_number'\] must be an int"),
        ({"sequence_number": 70000}, "16-bit"),
        ({"sequence_number": 1, "time_offset_minutes": 1.5}, "must be an int"),
        ({"sequence_number": 1, "sensor_status": {"on_fire": True}}, "unknown flags"),
    ],
)
def test_encode_errors(status: dict[str, object], message: str) -> None:
    with pytest.raises(EncodeError, match=message):
        encode("2a18", Measurement(kind="glucose", values={}, status=status))


def test_glucose_value_needs_type_and_location() -> None:
    m = Measurement(
        kind="glucose",
        values={"glucose": Quantity(value=90, unit="mg/dL")},
        status={"sequence_number": 1},
    )
    with pytest.raises(EncodeError, match="sample_type"):
        encode("2a18", m)


def test_nordic_context() -> None:
    m = decode("2a34", NORDIC_CONTEXT)
    assert m.kind == "glucose_context"
    assert m.values == {
        "carbohydrate": Quantity(value=100.0, unit="g"),
        "exercise_duration": Quantity(value=60, unit="s"),
        "exercise_intensity": Quantity(value=50, unit="%"),
        "medication": Quantity(value=123_500.0, unit="mL"),
        "hba1c": Quantity(value=34.5, unit="%"),
    }
    assert m.status == {
        "sequence_number": 0,
        "extended_flags": 0xB3,
        "carbohydrate_id": "dinner",
        "meal": "casual",
        "tester": "health_care_professional",
        "health": "minor_health_issues",
        "medication_id": "long_acting_insulin",
    }
    assert encode("2a34", m) == NORDIC_CONTEXT


def test_context_medication_in_milligrams_and_overrun() -> None:
    data = bytes.fromhex("18 0500 ffff 64 01 fbd0")  # overrun, 100 %, rapid acting, 251e-3 kg
    m = decode("2a34", data)
    assert m.values == {
        "exercise_intensity": Quantity(value=100, unit="%"),
        "medication": Quantity(value=251_000.0, unit="mg"),
    }
    assert m.status["special_values"] == {"exercise_duration": "overrun"}
    assert encode("2a34", m) == data


def test_context_nordic_empty_and_truncated() -> None:
    assert decode("2a34", bytes.fromhex("00 0100")).status == {"sequence_number": 1}
    # Nordic's onInvalidDataReceived: all flags, payload cut after 5 bytes.
    with pytest.raises(DecodeError, match=r"field 'carbohydrate' at offset 5: expected 2"):
        decode("2a34", NORDIC_CONTEXT[:5])
    for length in range(len(NORDIC_CONTEXT)):
        with pytest.raises(DecodeError, match=r"Glucose Measurement Context \(0x2A34\): field"):
            decode("2a34", NORDIC_CONTEXT[:length])


def _glucose(sequence: int, follows: bool) -> Measurement:
    return Measurement(
        kind="glucose",
        values={"glucose": Quantity(value=101, unit="mg/dL")},
        status={"sequence_number": sequence, "context_follows": follows},
    )


def _context(sequence: int) -> Measurement:
    return Measurement(
        kind="glucose_context",
        values={"carbohydrate": Quantity(value=45, unit="g")},
        status={"sequence_number": sequence, "meal": "postprandial"},
    )


def test_attach_context() -> None:
    joined = attach_context(_glucose(7, True), _context(7))
    assert joined.values == {"glucose": Quantity(value=101, unit="mg/dL")}
    assert joined.status["context"] == {
        "meal": "postprandial",
        "carbohydrate": {"value": 45.0, "unit": "g"},
    }
    with pytest.raises(ValueError, match="does not match"):
        attach_context(_glucose(7, True), _context(8))


def test_joiner_stream() -> None:
    joiner = GlucoseContextJoiner()
    assert joiner.feed(_glucose(1, False)) == [_glucose(1, False)]
    assert joiner.feed(_glucose(2, True)) == []
    out = joiner.feed(_context(2))
    assert [m.status["sequence_number"] for m in out] == [2]
    assert out[0].status["context"]["meal"] == "postprandial"
    # The context of 3 never comes: 3 is released when 4 arrives, marked context_missing.
    assert joiner.feed(_glucose(3, True)) == []
    out = joiner.feed(_glucose(4, True))
    assert [(m.status["sequence_number"], m.status.get("context_missing")) for m in out] == [
        (3, True)
    ]
    # An orphan context is passed through, and flush releases the waiting measurement.
    assert joiner.feed(_context(9)) == [_context(9)]
    assert [m.status["sequence_number"] for m in joiner.flush()] == [4]
    assert joiner.flush() == []


_stamps = st.datetimes(min_value=datetime(1600, 1, 1), max_value=datetime(9990, 12, 31)).map(
    lambda d: d.replace(microsecond=0)
)
_flags = st.fixed_dictionaries({name: st.booleans() for name in SENSOR_STATUS.values()})


@st.composite
def glucose_records(draw: st.DrawFn) -> Measurement:
    status: dict[str, object] = {"sequence_number": draw(st.integers(0, 0xFFFF))}
    measured_at = draw(st.none() | _stamps)
    if measured_at is None:
        status["time_stamp_unknown"] = True
    if draw(st.booleans()):
        status["time_offset_minutes"] = draw(st.integers(-32768, 32767))
    values: dict[str, Quantity] = {}
    if draw(st.booleans()):
        if draw(st.integers(0, 9)):
            unit = draw(st.sampled_from(["mg/dL", "mmol/L"]))
            places = 0 if unit == "mg/dL" else 1
            value = float(draw(st.decimals(0, "204.7", places=places)))
            values["glucose"] = Quantity(value=value, unit=unit)
        else:
            status["special_values"] = {"glucose": draw(st.sampled_from(["nan", "nres", "+inf"]))}
        status["sample_type"] = draw(st.sampled_from(sorted(SAMPLE_TYPES.values())))
        status["sample_location"] = draw(st.sampled_from(sorted(SAMPLE_LOCATIONS.values())))
    if draw(st.booleans()):
        status["sensor_status"] = draw(_flags)
    status["context_follows"] = draw(st.booleans())
    return Measurement(kind="glucose", values=values, measured_at=measured_at, status=status)


@given(glucose_records())
def test_glucose_round_trip_every_flag_combination(m: Measurement) -> None:
    assert decode("2a18", encode("2a18", m)) == m


@st.composite
def contexts(draw: st.DrawFn) -> Measurement:
    from devices.gatt import glucose_context as gc

    status: dict[str, object] = {"sequence_number": draw(st.integers(0, 0xFFFF))}
    values: dict[str, Quantity] = {}
    specials: dict[str, str] = {}
    if draw(st.booleans()):
        status["extended_flags"] = draw(st.integers(0, 255))
    if draw(st.booleans()):
        status["carbohydrate_id"] = draw(st.sampled_from(sorted(gc.CARBOHYDRATE_IDS.values())))
        values["carbohydrate"] = Quantity(value=draw(st.integers(0, 2000)), unit="g")
    if draw(st.booleans()):
        status["meal"] = draw(st.sampled_from(sorted(gc.MEALS.values())))
    if draw(st.booleans()):
        status["tester"] = draw(st.sampled_from(sorted(gc.TESTERS.values())))
        status["health"] = draw(st.sampled_from(sorted(gc.HEALTH.values())))
    if draw(st.booleans()):
        if draw(st.booleans()):
            values["exercise_duration"] = Quantity(value=draw(st.integers(0, 65534)), unit="s")
        else:
            specials["exercise_duration"] = "overrun"
        values["exercise_intensity"] = Quantity(value=draw(st.integers(0, 100)), unit="%")
    if draw(st.booleans()):
        status["medication_id"] = draw(st.sampled_from(sorted(gc.MEDICATION_IDS.values())))
        unit = draw(st.sampled_from(["mg", "mL"]))
        values["medication"] = Quantity(value=draw(st.integers(0, 2000)), unit=unit)
    if draw(st.booleans()):
        values["hba1c"] = Quantity(value=float(draw(st.decimals(0, "20", places=1))), unit="%")
    if specials:
        status["special_values"] = specials
    return Measurement(kind="glucose_context", values=values, status=status)


@given(contexts())
def test_context_round_trip_every_flag_combination(m: Measurement) -> None:
    assert decode("2a34", encode("2a34", m)) == m
