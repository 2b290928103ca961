"""The BLE link as every driver meets it: its errors, how they are described, its clocks.

Kept apart from the drivers so that the clock step, the finder and every driver share them
without importing one another.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from bleak.exc import BleakDBusError, BleakError, BleakGATTProtocolError
from dbus_fast import DBusError

_ADDRESS_PATTERN = re.compile(r"(?:[0-9A-Fa-f]{2}[:_-]){5}[0-9A-Fa-f]{2}")

# What the BLE stack raises for conditions outside our control: radio or bus trouble, a device
# out of range, a GATT error. They end one connection attempt, never the source.
LINK_ERRORS = (BleakError, DBusError, TimeoutError, OSError, EOFError)

# ATT errors a bond cures: Insufficient Authentication, Encryption Key Size, Encryption.
_PAIRING_ATT_ERRORS = frozenset({0x05, 0x0C, 0x0F})
_BLUEZ_NOT_PERMITTED = "org.bluez.Error.NotPermitted"


class ProfileMismatch(Exception):
    """The device lacks a characteristic its profile requires."""


class PairingFailed(Exception):
    """The device demands pairing and would not pair."""


def needs_pairing(exc: BaseException) -> bool:
    """Whether a GATT error says the link needs a bond (bluetoothd: "Not paired")."""
    if isinstance(exc, BleakGATTProtocolError):
        return int(exc.code) in _PAIRING_ATT_ERRORS
    if isinstance(exc, BleakDBusError):
        return exc.dbus_error == _BLUEZ_NOT_PERMITTED and "Not paired" in (
            exc.dbus_error_details or ""
        )
    return False


def describe(exc: BaseException) -> str:
    """``Type: message`` with any Bluetooth address (also in D-Bus object paths) masked."""
    text = str(exc)
    text = _ADDRESS_PATTERN.sub("<address>", text)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def short(char_uuid: str) -> str:
    """``2a35`` for a SIG UUID, the full UUID otherwise."""
    if char_uuid.startswith("0000") and char_uuid.endswith("-0000-1000-8000-00805f9b34fb"):
        return char_uuid[4:8]
    return char_uuid


def now_utc() -> datetime:
    return datetime.now(UTC)


def local_now() -> datetime:
    """The gateway's local wall-clock time, naive, as devices keep theirs."""
    return datetime.now()
