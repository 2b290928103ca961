"""Current Time (0x2A2B): Date Time, day of week (1 = Monday), fractions of 1/256 s and adjust
reason (Current Time Service 1.1, 3.1; GATT Specification Supplement "Current Time")."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from devices.gatt import DecodeError, EncodeError, decode_current_time, encode_current_time
from devices.gatt.current_time import AdjustReason, parse_current_time


def test_encode_layout() -> None:
    data = encode_current_time(datetime(2024, 3, 21, 14, 30, 45, 500000))
    # 2024-03-21 14:30:45, Thursday (4), 128/256 s, external reference time update
    assert data == bytes.fromhex("e8070315 0e1e2d 04 80 02")


def test_round_trip_and_adjust_reason() -> None:
    now = datetime(2023, 12, 31, 23, 59, 59, 250000)
    data = encode_current_time(now, AdjustReason.MANUAL_TIME_UPDATE | AdjustReason.CHANGE_OF_DST)
    assert data[-1] == 0x09
    parsed = parse_current_time(data)
    assert parsed.time == now
    assert parsed.adjust_reason == AdjustReason.MANUAL_TIME_UPDATE | AdjustReason.CHANGE_OF_DST
    assert decode_current_time(data) == now


def test_aware_datetime_writes_its_wall_clock() -> None:
    aware = datetime(2024, 6, 1, 8, 0, tzinfo=timezone(timedelta(hours=2)))
    assert decode_current_time(encode_current_time(aware)) == datetime(2024, 6, 1, 8, 0)


def test_fractions_resolution() -> None:
    data = encode_current_time(datetime(2024, 1, 1, 0, 0, 0, 999999))
    assert data[8] == 255
    assert decode_current_time(data) == datetime(2024, 1, 1, 0, 0, 0, 996094)


def test_unknown_date() -> None:
    assert decode_current_time(bytes(10)) is None


@pytest.mark.parametrize(
    ("hex_data", "message"),
    [
        ("e8070315 0e1e2d 04 80", r"field 'adjust_reason' at offset 9: expected 1"),
        ("e8070315 0e1e2d 08 80 02", "'day_of_week' at offset 7: 8 is reserved"),
        ("e8070d15 0e1e2d 04 80 02", "month 13 is reserved"),
    ],
)
def test_invalid(hex_data: str, message: str) -> None:
    with pytest.raises(DecodeError, match=message):
        decode_current_time(bytes.fromhex(hex_data))


def test_bytes_after_the_adjust_reason_are_ignored() -> None:
    value = bytes.fromhex("e8070315 0e1e2d 04 80 02")
    assert decode_current_time(value + b"\x00") == decode_current_time(value)


def test_encode_invalid() -> None:
    with pytest.raises(EncodeError, match="expected a datetime"):
        encode_current_time("now")  # type: ignore[arg-type]
    with pytest.raises(EncodeError, match="year 1500"):
        encode_current_time(datetime(1500, 1, 1))
