"""Broadcast scales: advertisement service data <-> Measurement (devices.broadcast).

The byte layouts and every capture here come from the public parsers cited in
devices/broadcast/xiaomi.py and tests/vectors/; the corpus test checks the captures' values, these
tests check the rules around them (unit selection, strict encoding, what raises).
"""

from __future__ import annotations

from datetime import datetime

import pytest

from devices.broadcast import decode, encode, service_uuid
from devices.gatt import DecodeError, EncodeError
from devices.models import Measurement, Quantity

# Captures from Bluetooth-Devices/xiaomi-ble tests/test_parser.py (tests/vectors/xiaomi_ble.json).
MI_SCALE_STABILIZED = bytes.fromhex("229e43e507040b101301")
MI_BODY_COMPOSITION_WITH_IMPEDANCE = bytes.fromhex("0226b20705040f0201ac018642")


def test_a_stabilized_mi_scale_advertisement_gives_weight_scale_clock_and_both_flags() -> None:
    m = decode("xiaomi_scale", "181d", MI_SCALE_STABILIZED)
    assert m == Measurement(
        kind="weight",
        values={"body_weight": Quantity(value=86.55, unit="kg")},
        measured_at=datetime(2021, 4, 11, 16, 19, 1),
        status={"stabilized": True, "load_removed": False, "weighing_mode": "person"},
    )


def test_the_service_uuid_may_be_given_in_any_spelling_bleak_or_a_user_uses() -> None:
    for spelling in ("181D", "0x181d", service_uuid("xiaomi_scale"), 0x181D):
        m = decode("xiaomi_scale", spelling, MI_SCALE_STABILIZED)
        assert m.values["body_weight"].value == 86.55


def test_pounds_stay_pounds_and_jin_become_kilograms() -> None:
    pounds = bytes.fromhex("23") + MI_SCALE_STABILIZED[1:]
    assert decode("xiaomi_scale", "181d", pounds).values["body_weight"] == Quantity(
        value=173.1, unit="[lb_av]"
    )
    jin = bytes.fromhex("32") + MI_SCALE_STABILIZED[1:]
    m = decode("xiaomi_scale", "181d", jin)
    assert m.values["body_weight"] == Quantity(value=86.55, unit="kg")
    assert m.status["scale_unit"] == "jin"


def test_pounds_and_jin_at_once_is_impossible_and_raises() -> None:
    both = bytes.fromhex("33") + MI_SCALE_STABILIZED[1:]
    with pytest.raises(DecodeError, match="both pounds and jin"):
        decode("xiaomi_scale", "181d", both)


def test_impedance_is_read_when_its_bit_is_set_over_a_non_zero_field() -> None:
    m = decode("xiaomi_body_composition", "181b", MI_BODY_COMPOSITION_WITH_IMPEDANCE)
    assert m.values["impedance"] == Quantity(value=428.0, unit="Ohm")
    no_bit = bytearray(MI_BODY_COMPOSITION_WITH_IMPEDANCE)
    no_bit[1] &= ~0x02
    assert "impedance" not in decode("xiaomi_body_composition", "181b", bytes(no_bit)).values
    # The "load removed" capture of xiaomi-ble sets the bit over a zero field.
    removed = decode("xiaomi_body_composition", "181b", bytes.fromhex("0282b20705040f020100000000"))
    assert "impedance" not in removed.values


def test_object_mode_weighings_say_so_so_they_are_not_taken_for_a_body_weight() -> None:
    # theengs/decoder tests/BLE/test_ble.cpp: "627607..." and "0624..." are object weighings.
    scale = decode("xiaomi_scale", "181d", bytes.fromhex("627607e607020e10293a"))
    assert scale.status["weighing_mode"] == "object"
    assert scale.values["body_weight"] == Quantity(value=9.55, unit="kg")
    bc = decode("xiaomi_body_composition", "181b", bytes.fromhex("0624e607020e10293a0000fc03"))
    assert bc.status["weighing_mode"] == "object"
    assert encode("xiaomi_body_composition", bc)[0] & 0x04


def test_truncated_service_data_raises_and_trailing_bytes_are_ignored() -> None:
    with pytest.raises(DecodeError, match="expected 1 byte"):
        decode("xiaomi_scale", "181d", MI_SCALE_STABILIZED[:-1])
    longer = decode("xiaomi_scale", "181d", MI_SCALE_STABILIZED + b"\x00\x01")
    assert longer == decode("xiaomi_scale", "181d", MI_SCALE_STABILIZED)


def test_an_impossible_scale_date_raises() -> None:
    bad_month = bytearray(MI_SCALE_STABILIZED)
    bad_month[5] = 13
    with pytest.raises(DecodeError, match="month 13"):
        decode("xiaomi_scale", "181d", bytes(bad_month))


def test_the_wrong_service_or_an_unknown_profile_raises_decode_error() -> None:
    with pytest.raises(DecodeError, match="advertises under 0x181B"):
        decode("xiaomi_body_composition", "181d", MI_BODY_COMPOSITION_WITH_IMPEDANCE)
    with pytest.raises(DecodeError, match="unknown broadcast profile"):
        decode("withings", "181d", MI_SCALE_STABILIZED)
    with pytest.raises(DecodeError, match="expected bytes"):
        decode("xiaomi_scale", "181d", "229e")  # type: ignore[arg-type]


def test_encoding_gives_back_the_captured_bytes() -> None:
    m = decode("xiaomi_scale", "181d", MI_SCALE_STABILIZED)
    assert encode("xiaomi_scale", m) == MI_SCALE_STABILIZED
    bc = decode("xiaomi_body_composition", "181b", MI_BODY_COMPOSITION_WITH_IMPEDANCE)
    assert encode("xiaomi_body_composition", bc) == MI_BODY_COMPOSITION_WITH_IMPEDANCE


def test_the_encoder_refuses_what_the_scale_cannot_send() -> None:
    base = decode("xiaomi_body_composition", "181b", MI_BODY_COMPOSITION_WITH_IMPEDANCE)
    odd_mode = base.model_copy(update={"status": {**base.status, "weighing_mode": "pet"}})
    with pytest.raises(EncodeError, match="must be 'person' or 'object'"):
        encode("xiaomi_body_composition", odd_mode)
    with pytest.raises(EncodeError, match="no user index"):
        encode("xiaomi_body_composition", base.model_copy(update={"user_index": 1}))
    no_flags = base.model_copy(update={"status": {}})
    with pytest.raises(EncodeError, match="must be a bool"):
        encode("xiaomi_body_composition", no_flags)
    stones = base.model_copy(
        update={"values": {"body_weight": Quantity(value=13.4, unit="[stone_av]")}}
    )
    with pytest.raises(EncodeError, match="not kg or"):
        encode("xiaomi_body_composition", stones)
    with pytest.raises(EncodeError, match="carries kind"):
        encode("xiaomi_scale", base)
