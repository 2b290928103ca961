"""Operational failures an operator can act on, turned into one line each."""

from __future__ import annotations

import sqlite3

from bleak.exc import BleakDBusError, BleakError

from devices.sim.dbus_daemon import DbusDaemonMissing
from gateway.scan import BluetoothUnavailable
from gateway.storage.database import StoreError
from gateway.storage.space import is_disk_full


class GatewayError(Exception):
    """The service could not keep running; the message says which part failed and why."""


def describe(exc: BaseException) -> str | None:
    """One line for a known operational failure; None for a bug (which should show a traceback)."""
    if isinstance(exc, DbusDaemonMissing | StoreError | GatewayError | BluetoothUnavailable):
        return str(exc)
    if isinstance(exc, BleakDBusError):
        return (
            f"Bluetooth: BlueZ answered {exc.dbus_error}; is bluetoothd running? "
            "(sudo systemctl status bluetooth)"
        )
    if isinstance(exc, BleakError):
        return f"Bluetooth: {exc}"
    if isinstance(exc, FileNotFoundError) and "system_bus_socket" in str(exc):
        return "Bluetooth: the D-Bus system bus is not running; install and start dbus and bluez"
    if is_disk_full(exc):
        return "the disk of gateway.data_dir is full; free space there and start again"
    if isinstance(exc, sqlite3.DatabaseError):
        # A damaged page surfaces at whichever query first reads it, often during the start.
        return (
            f"database: {exc}; gateway.db in gateway.data_dir is damaged. Stop the gateway,"
            " keep a copy of the file, and restore it from a backup (or try sqlite3's .recover)"
        )
    if isinstance(exc, PermissionError):
        return f"permission denied: {exc.filename}; run as the gateway's service user"
    return None
