"""Body Composition Measurement (0x2A9C), its multiple-packet split and the assembler.

Byte vectors follow the Body Composition Service 1.0 section 3.2 / GATT Specification Supplement
"Body Composition Measurement" layout: flags uint16, body fat percentage uint16 (0.1 %), then in
flag-bit order time stamp, user id, basal metabolism (kJ), muscle percentage (0.1 %), muscle mass,
fat free mass, soft lean mass, body water mass (0.005 kg | 0.01 lb), impedance (0.1 Ohm), weight
and height (0.001 m | 0.1 in); flag bit 12 marks a multiple-packet measurement.
"""

from __future__ import annotations

from datetime import datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from devices.gatt import (
    BodyCompositionAssembler,
    DecodeError,
    EncodeError,
    decode,
    encode,
    split_body_composition,
)
from gateway.models import Measurement, Quantity

FULL = bytes.fromhex(
    "fe0f"  # every optional field, SI, single packet
    "d200"  # 21.0 %
    "e8070315 0e1e2d"  # 2024-03-21 14:30:45
    "01"  # user 1
    "2e1a"  # 6702 kJ
    "8501"  # 38.9 %
    "7017"  # 6000 * 0.005 = 30.0 kg
    "f02b"  # 11248 * 0.005 = 56.24 kg
    "d427"  # 10196 * 0.005 = 50.98 kg
    "3c1e"  # 7740 * 0.005 = 38.7 kg
    "9c12"  # 476.4 Ohm
    "d036"  # 14032 * 0.005 = 70.16 kg
    "ca06"  # 1.738 m
)


def kg(value: float) -> Quantity:
    return Quantity(value=value, unit="kg")


def test_body_fat_only() -> None:
    m = decode("2a9c", bytes.fromhex("0000 d200"))
    assert m.kind == "body_composition"
    assert m.values == {"body_fat_percentage": Quantity(value=21.0, unit="%")}
    assert m.status == {}


def test_every_field_si() -> None:
    m = decode("2a9c", FULL)
    assert m.values == {
        "body_fat_percentage": Quantity(value=21.0, unit="%"),
        "basal_metabolism": Quantity(value=6702, unit="kJ"),
        "muscle_percentage": Quantity(value=38.9, unit="%"),
        "muscle_mass": kg(30.0),
        "fat_free_mass": kg(56.24),
        "soft_lean_mass": kg(50.98),
        "body_water_mass": kg(38.7),
        "impedance": Quantity(value=476.4, unit="Ohm"),
        "body_weight": kg(70.16),
        "height": Quantity(value=1.738, unit="m"),
    }
    assert m.measured_at == datetime(2024, 3, 21, 14, 30, 45)
    assert m.user_index == 1
    assert m.status == {}
    assert encode("2a9c", m) == FULL


def test_imperial_units() -> None:
    data = bytes.fromhex("210c d200 b80b 483c ad02")  # lb masses (0.01 lb), inches (0.1 in)
    m = decode("2a9c", data)
    assert m.values["muscle_mass"] == Quantity(value=30.0, unit="[lb_av]")
    assert m.values["body_weight"] == Quantity(value=154.32, unit="[lb_av]")
    assert m.values["height"] == Quantity(value=68.5, unit="[in_i]")
    assert encode("2a9c", m) == data


def test_unsuccessful_and_multiple_packet_flag() -> None:
    data = bytes.fromhex("0410 ffff 02")
    m = decode("2a9c", data)
    assert m.values == {}
    assert m.user_index == 2
    assert m.status == {
        "multiple_packet": True,
        "special_values": {"body_fat_percentage": "unsuccessful"},
    }
    assert encode("2a9c", m) == data


@pytest.mark.parametrize("length", range(len(FULL)))
def test_truncation(length: int) -> None:
    with pytest.raises(DecodeError, match=r"Body Composition Measurement \(0x2A9C\): field"):
        decode("2a9c", FULL[:length])


def test_reserved_flag_bits_are_ignored_and_recorded() -> None:
    m = decode("2a9c", bytes.fromhex("0080 d200"))
    assert m == decode("2a9c", bytes.fromhex("0000 d200")).model_copy(
        update={"status": {"reserved_flags": 0x8000}}
    )


def test_mixed_unit_systems_cannot_be_encoded() -> None:
    m = Measurement(
        kind="body_composition",
        values={
            "body_fat_percentage": Quantity(value=20, unit="%"),
            "muscle_mass": kg(30),
            "body_weight": Quantity(value=150, unit="[lb_av]"),
        },
    )
    with pytest.raises(EncodeError, match="must all be SI"):
        encode("2a9c", m)


def test_split_and_assemble_at_default_mtu() -> None:
    whole = decode("2a9c", FULL)
    packets = split_body_composition(whole)
    assert len(packets) == 2
    assert all(len(p) <= 20 for p in packets)
    parts = [decode("2a9c", p) for p in packets]
    assert all(p.status["multiple_packet"] for p in parts)
    assert all(p.values["body_fat_percentage"].value == 21.0 for p in parts)
    assert parts[0].measured_at == whole.measured_at and parts[1].measured_at is None
    assembler = BodyCompositionAssembler()
    assert assembler.feed(parts[0]) == []
    [merged] = assembler.feed(parts[1])
    assert merged.values == whole.values
    assert merged.measured_at == whole.measured_at
    assert merged.user_index == 1
    assert merged.status == {"packets": 2}


def test_split_leaves_a_fitting_value_whole() -> None:
    assert split_body_composition(decode("2a9c", bytes.fromhex("0000 d200"))) == [
        bytes.fromhex("0000 d200")
    ]


def test_assembler_passes_single_packets_and_flushes_partials() -> None:
    single = decode("2a9c", bytes.fromhex("0000 d200"))
    first = decode("2a9c", bytes.fromhex("0810 d200 2e1a"))
    again = decode("2a9c", bytes.fromhex("0810 d200 2f1a"))  # basal metabolism again: new reading
    assembler = BodyCompositionAssembler()
    assert assembler.feed(single) == [single]
    assert assembler.feed(first) == []
    [partial] = assembler.feed(again)
    assert partial.values["basal_metabolism"].value == 6702
    assert partial.status == {"packets": 1, "incomplete": True}
    [flushed] = assembler.feed(single)[:1]
    assert flushed.values["basal_metabolism"].value == 6703
    assert assembler.flush() == []


_stamps = st.datetimes(min_value=datetime(1582, 1, 1), max_value=datetime(9999, 12, 31)).map(
    lambda d: d.replace(microsecond=0)
)
_OPTIONAL = (
    ("basal_metabolism", "kJ", 1),
    ("muscle_percentage", "%", 10),
    ("muscle_mass", "mass", 0),
    ("fat_free_mass", "mass", 0),
    ("soft_lean_mass", "mass", 0),
    ("body_water_mass", "mass", 0),
    ("impedance", "Ohm", 10),
    ("body_weight", "mass", 0),
    ("height", "length", 0),
)


@st.composite
def compositions(draw: st.DrawFn) -> Measurement:
    imperial = draw(st.booleans())
    units = {
        "mass": ("[lb_av]", 100) if imperial else ("kg", 200),
        "length": ("[in_i]", 10) if imperial else ("m", 1000),
    }
    values: dict[str, Quantity] = {}
    status: dict[str, object] = {}
    if draw(st.integers(0, 9)):
        raw = draw(st.integers(0, 0xFFFE))
        values["body_fat_percentage"] = Quantity(value=raw / 10, unit="%")
    else:
        status["special_values"] = {"body_fat_percentage": "unsuccessful"}
    for name, kind, steps in _OPTIONAL:
        if draw(st.booleans()):
            unit, per_unit = units.get(kind, (kind, steps))
            values[name] = Quantity(value=draw(st.integers(0, 0xFFFF)) / per_unit, unit=unit)
    measured_at = None
    if draw(st.booleans()):
        measured_at = draw(st.none() | _stamps)
        if measured_at is None:
            status["time_stamp_unknown"] = True
    user_index = draw(st.none() | st.integers(0, 254))
    if user_index is None and draw(st.booleans()):
        status["unknown_user"] = True
    if draw(st.booleans()):
        status["multiple_packet"] = True
    return Measurement(
        kind="body_composition",
        values=values,
        measured_at=measured_at,
        user_index=user_index,
        status=status,
    )


@given(compositions())
def test_round_trip_every_flag_combination(m: Measurement) -> None:
    assert decode("2a9c", encode("2a9c", m)) == m


@given(compositions().filter(lambda m: "multiple_packet" not in m.status))
def test_split_then_assemble_restores_the_measurement(m: Measurement) -> None:
    packets = split_body_composition(m)
    assert all(len(p) <= 20 for p in packets)
    assembler = BodyCompositionAssembler(packets=len(packets)) if len(packets) > 1 else None
    if assembler is None:
        assert decode("2a9c", packets[0]) == m
        return
    out: list[Measurement] = []
    for packet in packets:
        out += assembler.feed(decode("2a9c", packet))
    [merged] = out
    expected_status = {**m.status, "packets": len(packets)}
    assert merged.values == m.values
    assert merged.measured_at == m.measured_at
    assert merged.user_index == m.user_index
    assert merged.status == expected_status
