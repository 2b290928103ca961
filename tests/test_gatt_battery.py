"""Battery Level (0x2A19): one uint8 percentage (Battery Service 1.0, 3.1). Nordic's
Android-BLE-Common-Library BatteryLevelDataCallbackTest likewise treats values above 100 and
lengths other than one byte as invalid."""

from __future__ import annotations

import pytest

from devices.gatt import DecodeError, EncodeError, decode_battery_level, encode_battery_level


@pytest.mark.parametrize(("data", "level"), [(b"\x00", 0), (b"\x37", 55), (b"\x64", 100)])
def test_levels(data: bytes, level: int) -> None:
    assert decode_battery_level(data) == level
    assert encode_battery_level(level) == data


@pytest.mark.parametrize(
    ("data", "message"),
    [(b"", "expected 1 byte, got 0"), (b"\x65", "101 is reserved")],
)
def test_invalid(data: bytes, message: str) -> None:
    with pytest.raises(DecodeError, match=message):
        decode_battery_level(data)


@pytest.mark.parametrize("level", [-1, 101, True, 5.0])
def test_encode_invalid(level: object) -> None:
    with pytest.raises(EncodeError, match=r"0\.\.100"):
        encode_battery_level(level)  # type: ignore[arg-type]


def test_bytes_after_the_level_are_ignored() -> None:
    assert decode_battery_level(b"\x10\x00") == 16
