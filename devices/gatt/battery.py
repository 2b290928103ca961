"""Battery Level (0x2A19): one uint8, the remaining charge in percent (Battery Service 1.0, 3.1)."""

from __future__ import annotations

from devices.gatt.errors import DecodeError, EncodeError

BATTERY_LEVEL = 0x2A19
_LABEL = "Battery Level (0x2A19)"


def decode_battery_level(data: bytes) -> int:
    """The level in percent (0..100); DecodeError when empty or above 100 (bytes after the first
    are ignored, as a receiver must)."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise DecodeError(f"{_LABEL}: expected bytes, got {type(data).__name__}")
    if not data:
        raise DecodeError(f"{_LABEL}: expected 1 byte, got 0")
    level = data[0]
    if level > 100:
        raise DecodeError(f"{_LABEL}: field 'level' at offset 0: {level} is reserved (0..100)")
    return level


def encode_battery_level(level: int) -> bytes:
    if isinstance(level, bool) or not isinstance(level, int) or not 0 <= level <= 100:
        raise EncodeError(f"{_LABEL}: level must be an int in 0..100, got {level!r}")
    return bytes((level,))
