"""Is Bluetooth usable? Ask BlueZ on the system D-Bus, the way bleak will, and say why not.

bleak fails late and verbosely when the radio is not there: a missing system bus is a bare
``FileNotFoundError`` from deep inside dbus-fast, a stopped bluetoothd a ``BleakDBusError``
at the first scan. ``check_bluetooth`` asks the same bus bleak uses (``DBUS_SYSTEM_BUS_ADDRESS``
or the standard socket) for BlueZ's managed objects and turns each way it can fail into one
sentence an installer can act on, so ``status``, ``/api/status`` and ``scan`` can say it.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from dbus_fast import BusType, Message, MessageType
from dbus_fast.aio import MessageBus
from dbus_fast.errors import AuthError, DBusError, InvalidAddressError

SYSTEM_BUS_ENV = "DBUS_SYSTEM_BUS_ADDRESS"  # what dbus-fast (and so bleak) reads
BLUEZ = "org.bluez"
ADAPTER_INTERFACE = "org.bluez.Adapter1"
OBJECT_MANAGER = "org.freedesktop.DBus.ObjectManager"
_NOT_RUNNING = {
    "org.freedesktop.DBus.Error.ServiceUnknown",
    "org.freedesktop.DBus.Error.NameHasNoOwner",
}
_DENIED = {"org.freedesktop.DBus.Error.AccessDenied"}


@dataclass(frozen=True, slots=True)
class BluetoothState:
    ok: bool
    reason: str | None  # why it is not usable, with the fix; None when it is
    adapter: str | None = None  # the adapter bleak will use (e.g. "hci0"), when there is one

    def as_dict(self) -> dict[str, object]:
        return {"ok": self.ok, "reason": self.reason, "adapter": self.adapter}


async def check_bluetooth(timeout_s: float = 3.0) -> BluetoothState:
    """The state of the system's Bluetooth as bleak would find it; never raises for it."""
    try:
        async with asyncio.timeout(timeout_s):
            return await _ask_bluez()
    except TimeoutError:
        return BluetoothState(
            False, f"no answer from the system D-Bus or BlueZ within {timeout_s:g} s"
        )


async def _ask_bluez() -> BluetoothState:
    try:
        bus = await MessageBus(bus_type=BusType.SYSTEM).connect()
    except (FileNotFoundError, ConnectionRefusedError):
        return BluetoothState(
            False,
            "the system D-Bus is not running (no bus socket); install and start dbus and"
            f" bluez, or check {SYSTEM_BUS_ENV}",
        )
    except PermissionError:
        return BluetoothState(False, "not allowed to open the system D-Bus socket")
    except (AuthError, InvalidAddressError, OSError) as exc:
        return BluetoothState(False, f"cannot use the system D-Bus ({type(exc).__name__})")
    try:
        reply = await bus.call(
            Message(
                destination=BLUEZ, path="/", interface=OBJECT_MANAGER, member="GetManagedObjects"
            )
        )
    except DBusError as exc:  # dbus-fast raises for some error replies
        return _refused(exc.type)
    finally:
        bus.disconnect()
    if reply is None or reply.message_type == MessageType.ERROR:
        return _refused(reply.error_name if reply is not None else None)
    return _from_objects(reply.body[0])


def _refused(error_name: str | None) -> BluetoothState:
    if error_name in _NOT_RUNNING:
        return BluetoothState(
            False, "BlueZ is not running on the system bus; sudo systemctl start bluetooth"
        )
    if error_name in _DENIED:
        return BluetoothState(
            False,
            "BlueZ refused this user; add it to the bluetooth group"
            " (sudo usermod -aG bluetooth health-gateway)",
        )
    return BluetoothState(False, f"BlueZ answered {error_name or 'nothing'}")


def _from_objects(objects: dict[str, dict[str, dict[str, object]]]) -> BluetoothState:
    adapters = sorted(
        (path, interfaces[ADAPTER_INTERFACE])
        for path, interfaces in objects.items()
        if ADAPTER_INTERFACE in interfaces
    )
    if not adapters:
        return BluetoothState(
            False,
            "BlueZ has no Bluetooth adapter; is the radio blocked (rfkill list) or missing?",
        )
    for path, properties in adapters:
        if _value(properties.get("Powered")):
            return BluetoothState(True, None, path.rsplit("/", 1)[-1])
    name = adapters[0][0].rsplit("/", 1)[-1]
    return BluetoothState(
        False,
        f"the Bluetooth adapter {name} is switched off;"
        " sudo rfkill unblock bluetooth && bluetoothctl power on",
        name,
    )


def _value(variant: object) -> object:
    return getattr(variant, "value", variant)
