"""Per-model quirks (devices.gatt.quirks): the bytes real devices send, decoded as they mean them.

The Beurer BM85 captures are those of derdilla/blood-pressure-monitor-fl
(app/test/features/bluetooth/logic/characteristics/ble_measurement_data_test.dart, commit
17aba3d00f2e995c88f094702344adf494c5f031); the corpus test checks every stated value, these tests
check the rules around them.
"""

from __future__ import annotations

from datetime import datetime

import pytest

from devices.gatt import DecodeError, EncodeError, decode, encode
from devices.gatt.quirks import QUIRKS, model_for_name
from devices.models import Measurement, Quantity

# User 1, pulse 87 (big-endian 0x0057), status 0x0040 big-endian (a reserved status bit).
BM85_USER_1 = bytes.fromhex("56 7700 4600 0000 ea07080b143900 0057 01 0040")
# User 0, irregular pulse: status 0x0004 big-endian.
BM85_IRREGULAR = bytes.fromhex("56 7600 5000 0000 ea07080b141b00 003c 00 0004")


def test_a_bm85_reading_decodes_with_its_user_pulse_and_status_where_the_cuff_puts_them() -> None:
    m = decode("2a35", BM85_USER_1, model="beurer-bm85")
    assert m.values == {
        "systolic": Quantity(value=119, unit="mm[Hg]"),
        "diastolic": Quantity(value=70, unit="mm[Hg]"),
        "pulse_rate": Quantity(value=87, unit="/min"),
    }
    assert m.user_index == 1
    assert m.measured_at == datetime(2026, 8, 11, 20, 57)
    assert m.status["special_values"] == {"mean_arterial_pressure": "nan"}
    assert m.status["reserved_flags"] == 0x40
    assert decode("2a35", BM85_IRREGULAR, model="beurer-bm85").status["irregular_pulse"] is True


def test_without_its_model_a_bm85_reading_is_refused_not_misread() -> None:
    with pytest.raises(DecodeError, match=r"pulse_rate = .* is impossible.*configure its model"):
        decode("2a35", BM85_IRREGULAR)


def test_model_names_are_case_insensitive_and_unknown_models_get_the_specification() -> None:
    assert decode("2a35", BM85_USER_1, model=" Beurer-BM85 ") == decode(
        "2a35", BM85_USER_1, model="beurer-bm85"
    )
    standard = bytes.fromhex("1e 7800 5000 5a00 e4070c1f0a0b0c 4800 01 0500")
    assert decode("2a35", standard, model="omron-hem-7150t") == decode("2a35", standard)


def test_every_sibling_shares_the_bm85_quirks_and_the_table_keys_are_lower_case() -> None:
    for key in ("beurer-bm48", "beurer-bm59", "beurer-elite900"):
        assert QUIRKS[key] is QUIRKS["beurer-bm85"]
    assert all(key == key.lower().strip() for key in QUIRKS)


def test_the_quirk_encoder_sends_what_a_bm85_sends() -> None:
    m = decode("2a35", BM85_IRREGULAR, model="beurer-bm85")
    assert encode("2a35", m, model="beurer-bm85") == BM85_IRREGULAR
    # The specification's encoder would flag the user id and send little-endian fields.
    assert encode("2a35", m) != BM85_IRREGULAR


def test_the_quirk_encoder_refuses_a_zero_mean_pressure_it_could_not_tell_from_no_value() -> None:
    m = Measurement(
        kind="blood_pressure",
        values={
            "systolic": Quantity(value=120, unit="mm[Hg]"),
            "diastolic": Quantity(value=80, unit="mm[Hg]"),
            "mean_arterial_pressure": Quantity(value=0, unit="mm[Hg]"),
        },
    )
    with pytest.raises(EncodeError, match="0 means 'no value'"):
        encode("2a35", m, model="beurer-bm85")


def test_a_taidoc_meter_reading_says_its_sequence_number_cannot_identify_it() -> None:
    data = bytes.fromhex("06 0700 e8070315 0e1e2d 37c0 f1")
    m = decode("2a18", data, model="taidoc-dm30b")
    assert m.status["sequence_number_reliable"] is False
    assert "sequence_number_reliable" not in decode("2a18", data).status


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("Beurer BM85", "beurer-bm85"),
        ("BM 59", "beurer-bm59"),
        ("Elite 900", "beurer-elite900"),
        ("Beurer BM96", None),
        (None, None),
    ],
)
def test_advertised_names_map_to_model_keys_as_the_public_source_matches_them(
    name: str | None, key: str | None
) -> None:
    assert model_for_name(name) == key
