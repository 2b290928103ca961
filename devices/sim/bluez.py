"""A simulated BlueZ: the part of ``org.bluez`` that bleak's Linux backend uses, on any D-Bus.

It owns the name ``org.bluez`` on the given bus and exports one adapter at /org/bluez/hci0.
Peripheral models (:class:`devices.sim.peripheral.Peripheral`) are attached with
:meth:`SimulatedBlueZ.add_peripheral`; this module adapts them to D-Bus:

* A device object (``org.bluez.Device1``) appears with ``InterfacesAdded`` on the first
  advertisement seen while discovery is on, and every advertising interval after that its
  ``RSSI`` changes, as bluetoothd reports advertisements. Bleak reports devices only from
  those signals, so a device that merely exists is never "found".
* ``Connect``: ``Connected`` -> true, the GATT objects are exported (service, then each
  characteristic followed by its CCCD), then ``ServicesResolved`` -> true. A disconnect, from
  either side, runs the reverse: ``ServicesResolved`` -> false, GATT objects unexported,
  ``Connected`` -> false. D-Bus keeps the order of messages from one sender, so clients see
  exactly this sequence.
* Object paths follow bluetoothd's layout (``dev_XX_XX_XX_XX_XX_XX/serviceXXXX/charYYYY/
  descZZZZ``, 4 hex digits of the attribute handle): bleak parses handles out of them and
  finds the device of a notification by cutting a fixed length off the characteristic path.
* Notifications are ``PropertiesChanged(Value)`` on the characteristic, broadcast.
* ATT errors from a model reach the client as bluetoothd words them (``create_gatt_dbus_error``
  in bluetoothd): 0x05/0x0C/0x0F as ``NotPermitted: Not paired``, 0x08 as ``NotAuthorized``,
  the rest as ``Failed: Operation failed with ATT error: 0xNN``.
* ``Pair`` is Just Works (bleak registers no agent); a model that is not in pairing mode
  (``accepts_pairing`` False) makes it fail with ``AuthenticationFailed``. A model with
  ``discovery_delay_s`` resolves its services that much after ``Connected`` (a slow device);
  a disconnect during that time cancels the discovery.

Discovery and notification sessions are kept per D-Bus client, as bluetoothd keeps them:
``StartDiscovery`` twice from one client is one session, ``StopDiscovery`` without one is an
error, and a client leaving the bus ends its sessions. The methods that need to know the
caller (``StartDiscovery``, ``StopDiscovery``, ``SetDiscoveryFilter``, ``StartNotify``,
``StopNotify``) are answered from a message handler, because dbus-fast service methods are
not told who called them; everything else is a dbus-fast ``ServiceInterface``.

Known gaps: ``GetAll`` still returns ``RSSI``/``TxPower`` after discovery stops (the signal
invalidates them correctly), a characteristic's ``Value`` exists before the first read, there
are no temporary-device timeouts, and a device's GATT objects do not survive a disconnect
(bluetoothd keeps them for bonded devices).
"""

import asyncio
import contextlib
import itertools
from collections.abc import Awaitable, Iterator
from typing import Annotated, Any

import structlog
from dbus_fast import DBusError, Message, MessageType, Variant
from dbus_fast.aio import MessageBus
from dbus_fast.annotations import (
    DBusBool,
    DBusBytes,
    DBusDict,
    DBusObjectPath,
    DBusSignature,
    DBusStr,
    DBusUInt16,
    DBusUInt32,
)
from dbus_fast.constants import NameFlag, PropertyAccess, RequestNameReply
from dbus_fast.service import ServiceInterface, dbus_method, dbus_property

from devices.sim.peripheral import AttError, Characteristic, Peripheral

__all__ = ["ADAPTER_PATH", "BLUEZ_SERVICE", "BlueZNameTaken", "SimulatedBlueZ", "SimulatorError"]

log = structlog.get_logger(__name__)

BLUEZ_SERVICE = "org.bluez"
ADAPTER_PATH = "/org/bluez/hci0"
ADAPTER_IFACE = "org.bluez.Adapter1"
DEVICE_IFACE = "org.bluez.Device1"
SERVICE_IFACE = "org.bluez.GattService1"
CHARACTERISTIC_IFACE = "org.bluez.GattCharacteristic1"
DESCRIPTOR_IFACE = "org.bluez.GattDescriptor1"
PROPERTIES_IFACE = "org.freedesktop.DBus.Properties"
CCCD_UUID = "00002902-0000-1000-8000-00805f9b34fb"

# bluetoothd does not export the GAP and GATT services, which occupy the first handles.
_FIRST_EXPORTED_HANDLE = 0x000A

DBusStrList = Annotated[list[str], DBusSignature("as")]
DBusPathList = Annotated[list[str], DBusSignature("ao")]
DBusInt16 = Annotated[int, DBusSignature("n")]
DBusManufacturerData = Annotated[dict[int, Variant], DBusSignature("a{qv}")]

_ERR_FAILED = "org.bluez.Error.Failed"
_ERR_NOT_READY = "org.bluez.Error.NotReady"
_ERR_INVALID_ARGS = "org.bluez.Error.InvalidArguments"
_ERR_NOT_PERMITTED = "org.bluez.Error.NotPermitted"
_ERR_NOT_SUPPORTED = "org.bluez.Error.NotSupported"
_ERR_DOES_NOT_EXIST = "org.bluez.Error.DoesNotExist"
_ERR_ALREADY_EXISTS = "org.bluez.Error.AlreadyExists"
_ERR_NOT_AUTHORIZED = "org.bluez.Error.NotAuthorized"
_ERR_AUTHENTICATION_FAILED = "org.bluez.Error.AuthenticationFailed"

# ATT errors bluetoothd reports as "Not paired" (create_gatt_dbus_error in src/gatt-client.c).
_NOT_PAIRED_ATT_ERRORS = frozenset({0x05, 0x0C, 0x0F})
_ATT_INSUFFICIENT_AUTHORIZATION = 0x08

_DISCOVERY_FILTER_KEYS = {
    "UUIDs",
    "RSSI",
    "Pathloss",
    "Transport",
    "DuplicateData",
    "Discoverable",
    "Pattern",
}


class SimulatorError(RuntimeError):
    """The simulated BlueZ could not do what was asked."""


class BlueZNameTaken(SimulatorError):
    """Another process (a real bluetoothd or a second simulator) already owns ``org.bluez``."""


def _device_path(address: str) -> str:
    return f"{ADAPTER_PATH}/dev_{address.replace(':', '_')}"


class _AdapterInterface(ServiceInterface):
    """``org.bluez.Adapter1``; discovery calls are answered by SimulatedBlueZ._on_message."""

    def __init__(self, sim: "SimulatedBlueZ", address: str) -> None:
        super().__init__(ADAPTER_IFACE)
        self._sim = sim
        self._address = address
        self.discovering = False

    @dbus_property(access=PropertyAccess.READ)
    def Address(self) -> DBusStr:
        return self._address

    @dbus_property(access=PropertyAccess.READ)
    def AddressType(self) -> DBusStr:
        return "public"

    @dbus_property(access=PropertyAccess.READ)
    def Name(self) -> DBusStr:
        return "hci0-sim"

    @dbus_property(access=PropertyAccess.READ)
    def Alias(self) -> DBusStr:
        return "hci0-sim"

    @dbus_property(access=PropertyAccess.READ)
    def Class(self) -> DBusUInt32:
        return 0

    @dbus_property(access=PropertyAccess.READ)
    def Powered(self) -> DBusBool:
        return True

    @dbus_property(access=PropertyAccess.READ)
    def Discoverable(self) -> DBusBool:
        return False

    @dbus_property(access=PropertyAccess.READ)
    def Pairable(self) -> DBusBool:
        return True

    @dbus_property(access=PropertyAccess.READ)
    def Discovering(self) -> DBusBool:
        return self.discovering

    @dbus_property(access=PropertyAccess.READ)
    def UUIDs(self) -> DBusStrList:
        return []

    @dbus_property(access=PropertyAccess.READ)
    def Modalias(self) -> DBusStr:
        return "usb:v1D6Bp0246d0542"

    @dbus_property(access=PropertyAccess.READ)
    def Roles(self) -> DBusStrList:
        return ["central", "peripheral"]

    @dbus_method()
    def RemoveDevice(self, device: DBusObjectPath) -> None:
        self._sim._remove_device(device)

    @dbus_method()
    def GetDiscoveryFilters(self) -> DBusStrList:
        return sorted(_DISCOVERY_FILTER_KEYS)


class _DeviceInterface(ServiceInterface):
    """``org.bluez.Device1`` of one attached peripheral."""

    def __init__(self, device: "_SimDevice") -> None:
        super().__init__(DEVICE_IFACE)
        self._device = device
        p = device.peripheral
        self._peripheral = p
        self.connected = False
        self.services_resolved = False
        self.paired = False
        self.trusted = False
        self.blocked = False
        self.rssi = p.rssi

    @dbus_property(access=PropertyAccess.READ)
    def Address(self) -> DBusStr:
        return self._peripheral.address

    @dbus_property(access=PropertyAccess.READ)
    def AddressType(self) -> DBusStr:
        return "public"

    @dbus_property(access=PropertyAccess.READ)
    def Name(self) -> DBusStr:
        return self._peripheral.name

    @dbus_property(access=PropertyAccess.READ)
    def Alias(self) -> DBusStr:
        return self._peripheral.name

    @dbus_property(access=PropertyAccess.READ)
    def Paired(self) -> DBusBool:
        return self.paired

    @dbus_property(access=PropertyAccess.READ)
    def Bonded(self) -> DBusBool:
        return self.paired

    @dbus_property()
    def Trusted(self) -> DBusBool:
        return self.trusted

    @Trusted.setter
    def Trusted(self, value: DBusBool) -> None:
        if value != self.trusted:
            self.trusted = value
            self.emit_properties_changed({"Trusted": value})

    @dbus_property()
    def Blocked(self) -> DBusBool:
        return self.blocked

    @Blocked.setter
    def Blocked(self, value: DBusBool) -> None:
        if value != self.blocked:
            self.blocked = value
            self.emit_properties_changed({"Blocked": value})
            if value:
                self._device.disconnect()

    @dbus_property(access=PropertyAccess.READ)
    def LegacyPairing(self) -> DBusBool:
        return False

    @dbus_property(access=PropertyAccess.READ)
    def RSSI(self) -> DBusInt16:
        return self.rssi

    @dbus_property(access=PropertyAccess.READ)
    def TxPower(self) -> DBusInt16:
        return self._peripheral.tx_power

    @dbus_property(access=PropertyAccess.READ)
    def Connected(self) -> DBusBool:
        return self.connected

    @dbus_property(access=PropertyAccess.READ)
    def UUIDs(self) -> DBusStrList:
        return list(self._peripheral.advertised_uuids)

    @dbus_property(access=PropertyAccess.READ)
    def Adapter(self) -> DBusObjectPath:
        return ADAPTER_PATH

    @dbus_property(access=PropertyAccess.READ)
    def ManufacturerData(self) -> DBusManufacturerData:
        return {k: Variant("ay", v) for k, v in self._peripheral.manufacturer_data.items()}

    @dbus_property(access=PropertyAccess.READ)
    def ServiceData(self) -> DBusDict:
        return {k: Variant("ay", v) for k, v in self._peripheral.service_data.items()}

    @dbus_property(access=PropertyAccess.READ)
    def ServicesResolved(self) -> DBusBool:
        return self.services_resolved

    @dbus_method()
    def Connect(self) -> None:
        self._device.connect()

    @dbus_method()
    def Disconnect(self) -> None:
        self._device.disconnect()

    @dbus_method()
    def Pair(self) -> None:
        if self.paired:
            raise DBusError(_ERR_ALREADY_EXISTS, "Already Exists")
        self._device.connect()
        if not self._peripheral.accepts_pairing:
            # The device is not in pairing mode: it rejects the pairing request.
            raise DBusError(_ERR_AUTHENTICATION_FAILED, "Authentication Failed")
        # Just Works: no agent is involved, as bleak registers none.
        self.paired = True
        self.emit_properties_changed({"Paired": True, "Bonded": True})
        self._peripheral.handle_paired(True)

    @dbus_method()
    def CancelPairing(self) -> None:
        raise DBusError(_ERR_DOES_NOT_EXIST, "Does Not Exist")


class _GattServiceInterface(ServiceInterface):
    def __init__(self, uuid: str, primary: bool, device_path: str, handle: int) -> None:
        super().__init__(SERVICE_IFACE)
        self._uuid = uuid
        self._primary = primary
        self._device_path = device_path
        self._handle = handle

    @dbus_property(access=PropertyAccess.READ)
    def UUID(self) -> DBusStr:
        return self._uuid

    @dbus_property(access=PropertyAccess.READ)
    def Primary(self) -> DBusBool:
        return self._primary

    @dbus_property(access=PropertyAccess.READ)
    def Device(self) -> DBusObjectPath:
        return self._device_path

    @dbus_property(access=PropertyAccess.READ)
    def Includes(self) -> DBusPathList:
        return []

    @dbus_property(access=PropertyAccess.READ)
    def Handle(self) -> DBusUInt16:
        return self._handle


class _GattCharacteristicInterface(ServiceInterface):
    """``org.bluez.GattCharacteristic1``; StartNotify/StopNotify go through _on_message."""

    def __init__(
        self, device: "_SimDevice", char: Characteristic, path: str, service_path: str
    ) -> None:
        super().__init__(CHARACTERISTIC_IFACE)
        self._device = device
        self.char = char
        self.path = path
        self._service_path = service_path
        self.value = char.value
        self.notify_sessions: set[str] = set()

    @dbus_property(access=PropertyAccess.READ)
    def UUID(self) -> DBusStr:
        return self.char.uuid

    @dbus_property(access=PropertyAccess.READ)
    def Service(self) -> DBusObjectPath:
        return self._service_path

    @dbus_property(access=PropertyAccess.READ)
    def Value(self) -> DBusBytes:
        return self.value

    @dbus_property(access=PropertyAccess.READ)
    def Notifying(self) -> DBusBool:
        return bool(self.notify_sessions)

    @dbus_property(access=PropertyAccess.READ)
    def Flags(self) -> DBusStrList:
        return list(self.char.flags)

    @dbus_property(access=PropertyAccess.READ)
    def MTU(self) -> DBusUInt16:
        return self._device.peripheral.mtu

    @dbus_method()
    def ReadValue(self, options: DBusDict) -> DBusBytes:
        if "read" not in self.char.flags:
            raise DBusError(_ERR_NOT_PERMITTED, "Read not permitted")
        offset = _option(options, "offset", 0)
        try:
            data = self._device.peripheral.handle_read(self.char.uuid)
        except AttError as exc:
            raise _att_error(exc) from exc
        if offset > len(data):
            raise DBusError(_ERR_INVALID_ARGS, "Invalid offset")
        # bluetoothd caches what it read in Value and announces it.
        self.value = data
        self.emit_properties_changed({"Value": data})
        return data[offset:]

    @dbus_method()
    def WriteValue(self, value: DBusBytes, options: DBusDict) -> None:
        kind = _option(options, "type", "")
        if not kind:
            kind = "request" if "write" in self.char.flags else "command"
        needed = {"request": "write", "command": "write-without-response", "reliable": "write"}
        if needed.get(kind) not in self.char.flags:
            raise DBusError(_ERR_NOT_PERMITTED, "Write not permitted")
        if len(value) > 512:
            raise DBusError(_ERR_INVALID_ARGS, "Invalid Length")
        try:
            self._device.peripheral.handle_write(self.char.uuid, bytes(value))
        except AttError as exc:
            raise _att_error(exc) from exc


class _GattDescriptorInterface(ServiceInterface):
    """The Client Characteristic Configuration descriptor of a notifying characteristic."""

    def __init__(self, char: _GattCharacteristicInterface) -> None:
        super().__init__(DESCRIPTOR_IFACE)
        self._char = char

    @dbus_property(access=PropertyAccess.READ)
    def UUID(self) -> DBusStr:
        return CCCD_UUID

    @dbus_property(access=PropertyAccess.READ)
    def Characteristic(self) -> DBusObjectPath:
        return self._char.path

    @dbus_property(access=PropertyAccess.READ)
    def Value(self) -> DBusBytes:
        return self._cccd()

    @dbus_property(access=PropertyAccess.READ)
    def Flags(self) -> DBusStrList:
        return ["read", "write"]

    @dbus_method()
    def ReadValue(self, options: DBusDict) -> DBusBytes:
        return self._cccd()[_option(options, "offset", 0) :]

    @dbus_method()
    def WriteValue(self, value: DBusBytes, options: DBusDict) -> None:
        # bluetoothd owns the CCCD; clients use StartNotify/StopNotify.
        raise DBusError(_ERR_NOT_PERMITTED, "Write not permitted")

    def _cccd(self) -> bytes:
        if not self._char.notify_sessions:
            return b"\x00\x00"
        return b"\x01\x00" if "notify" in self._char.char.flags else b"\x02\x00"


def _att_error(exc: AttError) -> DBusError:
    """The D-Bus error bluetoothd answers with for this ATT error code."""
    if exc.code in _NOT_PAIRED_ATT_ERRORS:
        return DBusError(_ERR_NOT_PERMITTED, "Not paired")
    if exc.code == _ATT_INSUFFICIENT_AUTHORIZATION:
        return DBusError(_ERR_NOT_AUTHORIZED, "Not Authorized")
    # bleak turns this exact text back into a BleakGATTProtocolError with the code.
    return DBusError(_ERR_FAILED, f"Operation failed with ATT error: 0x{exc.code:02x}")


def _option(options: dict[str, Variant], key: str, default: Any) -> Any:
    variant = options.get(key)
    return default if variant is None else variant.value


class _GattTree:
    """The GATT objects of one connection, in export order, with bluetoothd's paths."""

    def __init__(self, device: "_SimDevice") -> None:
        self.objects: list[tuple[str, ServiceInterface]] = []
        self.characteristics: dict[str, _GattCharacteristicInterface] = {}
        self.by_path: dict[str, _GattCharacteristicInterface] = {}
        handle = _FIRST_EXPORTED_HANDLE
        for service in device.peripheral.services:
            service_path = f"{device.path}/service{handle:04x}"
            self.objects.append(
                (
                    service_path,
                    _GattServiceInterface(service.uuid, service.primary, device.path, handle),
                )
            )
            for char in service.characteristics:
                declaration = handle + 1
                value_handle = declaration + 1
                char_path = f"{service_path}/char{declaration:04x}"
                iface = _GattCharacteristicInterface(device, char, char_path, service_path)
                self.objects.append((char_path, iface))
                self.characteristics[char.uuid] = iface
                self.by_path[char_path] = iface
                handle = value_handle
                if char.notifies:
                    handle += 1
                    self.objects.append(
                        (f"{char_path}/desc{handle:04x}", _GattDescriptorInterface(iface))
                    )
            handle += 1


class _SimDevice:
    """One attached peripheral as bluetoothd would present it; the peripheral's link."""

    def __init__(self, sim: "SimulatedBlueZ", peripheral: Peripheral) -> None:
        self.sim = sim
        self.peripheral = peripheral
        self.path = _device_path(peripheral.address)
        self.iface = _DeviceInterface(self)
        self.exported = False
        self.gatt: _GattTree | None = None
        self._rssi_steps = itertools.cycle((0, -1, -2, -1))
        self._discovery: asyncio.TimerHandle | None = None
        # The advertising data last announced, to announce only what changed.
        self._service_data: dict[str, bytes] = {}
        self._manufacturer_data: dict[int, bytes] = {}

    # PeripheralLink ----------

    def send_value(self, char_uuid: str, data: bytes) -> Awaitable[object]:
        if self.gatt is None:
            raise SimulatorError(f"{self.peripheral.name!r} is not connected")
        char = self.gatt.characteristics[char_uuid]
        char.value = data
        signal = Message.new_signal(
            path=char.path,
            interface=PROPERTIES_IFACE,
            member="PropertiesChanged",
            signature="sa{sv}as",
            body=[CHARACTERISTIC_IFACE, {"Value": Variant("ay", data)}, []],
        )
        return self.sim.bus.send(signal)

    def drop(self) -> None:
        self.disconnect()

    def advertising_changed(self) -> None:
        # The advertising timer picks the change up on its next tick.
        pass

    # connection ----------

    def connect(self) -> None:
        if self.iface.connected:
            return
        if self.iface.blocked:
            raise DBusError(_ERR_FAILED, "Operation not permitted")
        if not self.peripheral.advertising:
            # Out of range or asleep: the LE connection attempt times out.
            raise DBusError(_ERR_FAILED, "Software caused connection abort")
        self.iface.connected = True
        self.iface.emit_properties_changed({"Connected": True})
        self.sim._connection_started()
        log.debug("sim.connected", device=self.peripheral.name)
        self.peripheral.handle_connect()
        delay = self.peripheral.discovery_delay_s
        if delay > 0:
            self._discovery = asyncio.get_running_loop().call_later(delay, self._resolve_services)
        else:
            self._resolve_services()

    def _resolve_services(self) -> None:
        """Service discovery done: export the GATT objects, then ``ServicesResolved``."""
        self._discovery = None
        if not self.iface.connected or self.gatt is not None:
            return
        self.sim._connection_ended()
        bus = self.sim.bus
        self.gatt = _GattTree(self)
        for path, obj in self.gatt.objects:
            bus.export(path, obj)
        self.iface.services_resolved = True
        self.iface.emit_properties_changed({"ServicesResolved": True})

    def disconnect(self) -> None:
        if not self.iface.connected:
            return
        bus = self.sim.bus
        if self._discovery is not None:
            self._discovery.cancel()
            self._discovery = None
            self.sim._connection_ended()
        if self.iface.services_resolved:
            self.iface.services_resolved = False
            self.iface.emit_properties_changed({"ServicesResolved": False})
        if self.gatt is not None:
            for path, obj in reversed(self.gatt.objects):
                bus.unexport(path, obj)
            self.gatt = None
        self.iface.connected = False
        self.iface.emit_properties_changed({"Connected": False})
        log.debug("sim.disconnected", device=self.peripheral.name)
        self.peripheral.handle_disconnect()

    # notification sessions ----------

    def start_notify(self, char: _GattCharacteristicInterface, sender: str) -> None:
        if not char.char.notifies:
            raise DBusError(_ERR_NOT_SUPPORTED, "Operation is not supported")
        if sender in char.notify_sessions:
            return
        try:
            # Enabling the CCCD is a write the device may refuse on an unbonded link.
            self.peripheral.check_access(char.char.uuid)
        except AttError as exc:
            raise _att_error(exc) from exc
        first = not char.notify_sessions
        char.notify_sessions.add(sender)
        if first:
            char.emit_properties_changed({"Notifying": True})
            self.peripheral.handle_notify(char.char.uuid, True)

    def stop_notify(self, char: _GattCharacteristicInterface, sender: str) -> None:
        if sender not in char.notify_sessions:
            raise DBusError(_ERR_FAILED, "No notify session started")
        char.notify_sessions.discard(sender)
        if not char.notify_sessions:
            char.emit_properties_changed({"Notifying": False})
            self.peripheral.handle_notify(char.char.uuid, False)

    def client_gone(self, sender: str) -> None:
        if self.gatt is None:
            return
        for char in self.gatt.characteristics.values():
            if sender in char.notify_sessions:
                self.stop_notify(char, sender)

    # advertising ----------

    def advertise(self) -> None:
        """One advertisement received while discovering.

        bluetoothd announces each advertisement as an RSSI change, and the advertising data
        it carries (``ServiceData``, ``ManufacturerData``) in the same signal when it differs
        from the last one it reported; broadcast-only devices (scales that put each weighing
        in their service data) are read from exactly those signals.
        """
        p = self.peripheral
        if not self.exported:
            self.iface.rssi = p.rssi
            self._service_data = dict(p.service_data)
            self._manufacturer_data = dict(p.manufacturer_data)
            self.sim.bus.export(self.path, self.iface)
            self.exported = True
            p.on_advertised()
            return
        self.iface.rssi = p.rssi + next(self._rssi_steps)
        changed: dict[str, Any] = {"RSSI": self.iface.rssi, "TxPower": p.tx_power}
        if p.service_data != self._service_data:
            self._service_data = dict(p.service_data)
            changed["ServiceData"] = {k: Variant("ay", v) for k, v in p.service_data.items()}
        if p.manufacturer_data != self._manufacturer_data:
            self._manufacturer_data = dict(p.manufacturer_data)
            changed["ManufacturerData"] = {
                k: Variant("ay", v) for k, v in p.manufacturer_data.items()
            }
        self.iface.emit_properties_changed(changed)
        p.on_advertised()

    def discovery_stopped(self) -> None:
        if self.exported and not self.iface.connected:
            self.iface.emit_properties_changed({}, ["RSSI", "TxPower"])

    def unexport(self) -> None:
        self.disconnect()
        if self.exported:
            self.sim.bus.unexport(self.path, self.iface)
            self.exported = False
        # A removed device comes back as a new object with fresh state; the bond is gone.
        self.iface = _DeviceInterface(self)
        self.peripheral.handle_paired(False)


class SimulatedBlueZ:
    """The fake ``org.bluez`` service: ``await start()`` / ``await stop()`` or ``async with``."""

    def __init__(
        self,
        bus_address: str,
        *,
        adapter_address: str = "00:00:5E:00:53:00",
        advertising_interval_s: float = 0.05,
    ) -> None:
        if advertising_interval_s <= 0:
            raise ValueError("advertising_interval_s must be positive")
        self._bus_address = bus_address
        self._adapter_address = adapter_address
        self._interval = advertising_interval_s
        self._bus: MessageBus | None = None
        self._adapter = _AdapterInterface(self, adapter_address)
        self._devices: dict[str, _SimDevice] = {}
        self._discovery_filters: dict[str, dict[str, Any]] = {}
        self._discovery_sessions: set[str] = set()
        self._advertiser: asyncio.Task[None] | None = None
        self._connecting = 0
        self._connecting_peak = 0

    @property
    def bus(self) -> MessageBus:
        if self._bus is None:
            raise SimulatorError("the simulated BlueZ is not running")
        return self._bus

    @property
    def discovering(self) -> bool:
        return self._adapter.discovering

    @property
    def peripherals(self) -> list[Peripheral]:
        return [d.peripheral for d in self._devices.values()]

    @property
    def connecting_peak(self) -> int:
        """The most connection procedures (``Connect`` until services resolved) at one time."""
        return self._connecting_peak

    def _connection_started(self) -> None:
        self._connecting += 1
        self._connecting_peak = max(self._connecting_peak, self._connecting)

    def _connection_ended(self) -> None:
        self._connecting -= 1

    async def __aenter__(self) -> "SimulatedBlueZ":
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def start(self) -> None:
        """Connect to the bus, export the adapter and claim ``org.bluez``."""
        if self._bus is not None:
            raise SimulatorError("the simulated BlueZ is already running")
        bus = MessageBus(bus_address=self._bus_address)
        await bus.connect()
        try:
            bus.add_message_handler(self._on_message)
            reply = await bus.call(
                Message(
                    destination="org.freedesktop.DBus",
                    path="/org/freedesktop/DBus",
                    interface="org.freedesktop.DBus",
                    member="AddMatch",
                    signature="s",
                    body=[
                        "type='signal',sender='org.freedesktop.DBus',"
                        "interface='org.freedesktop.DBus',member='NameOwnerChanged'"
                    ],
                )
            )
            if reply.message_type is MessageType.ERROR:
                raise SimulatorError(f"AddMatch failed: {reply.error_name}")
            self._bus = bus
            bus.export(ADAPTER_PATH, self._adapter)
            result = await bus.request_name(BLUEZ_SERVICE, NameFlag.DO_NOT_QUEUE)
            if result is not RequestNameReply.PRIMARY_OWNER:
                raise BlueZNameTaken(
                    f"org.bluez is already owned on this bus ({result.name}); "
                    "stop the other BlueZ or simulator, or use a private bus"
                )
        except BaseException:
            self._bus = None
            bus.disconnect()
            await bus.wait_for_disconnect()
            raise
        for device in self._devices.values():
            device.peripheral.attach(device)

    async def stop(self) -> None:
        """Disconnect every device, release ``org.bluez`` and leave the bus. Safe to call twice."""
        bus = self._bus
        if bus is None:
            return
        await self._stop_advertiser()
        for device in list(self._devices.values()):
            device.unexport()
            await device.peripheral.detach()
        self._discovery_sessions.clear()
        self._adapter.discovering = False
        self._bus = None
        bus.disconnect()
        with contextlib.suppress(Exception):
            await bus.wait_for_disconnect()

    def add_peripheral(self, peripheral: Peripheral) -> None:
        """Put a device in range. It is found once discovery runs and it advertises."""
        if peripheral.address in self._devices:
            raise SimulatorError(f"a peripheral named {peripheral.name!r} has that address already")
        device = _SimDevice(self, peripheral)
        self._devices[peripheral.address] = device
        if self._bus is not None:
            peripheral.attach(device)

    async def remove_peripheral(self, peripheral: Peripheral) -> None:
        """Take a device out of range: disconnect it and remove its object."""
        device = self._devices.pop(peripheral.address, None)
        if device is None or device.peripheral is not peripheral:
            raise SimulatorError(f"{peripheral.name!r} is not attached to this simulator")
        if self._bus is not None:
            device.unexport()
            await peripheral.detach()

    # D-Bus calls that depend on the caller ----------------------------------------------------

    def _on_message(self, msg: Message) -> Message | None:
        if msg.message_type is MessageType.SIGNAL:
            if (
                msg.member == "NameOwnerChanged"
                and msg.sender == "org.freedesktop.DBus"
                and msg.body[0].startswith(":")
                and not msg.body[2]
            ):
                self._client_gone(msg.body[0])
            return None
        if msg.message_type is not MessageType.METHOD_CALL or msg.sender is None:
            return None
        if msg.path == ADAPTER_PATH and msg.interface in (ADAPTER_IFACE, None):
            if msg.member == "StartDiscovery" and msg.signature == "":
                self._start_discovery(msg.sender)
                return Message.new_method_return(msg)
            if msg.member == "StopDiscovery" and msg.signature == "":
                self._stop_discovery(msg.sender)
                return Message.new_method_return(msg)
            if msg.member == "SetDiscoveryFilter" and msg.signature == "a{sv}":
                self._set_discovery_filter(msg.sender, msg.body[0])
                return Message.new_method_return(msg)
            return None
        if msg.interface in (CHARACTERISTIC_IFACE, None) and msg.member in (
            "StartNotify",
            "StopNotify",
        ):
            found = self._characteristic(msg.path or "")
            if found is None or msg.signature != "":
                return None
            device, char = found
            if msg.member == "StartNotify":
                device.start_notify(char, msg.sender)
            else:
                device.stop_notify(char, msg.sender)
            return Message.new_method_return(msg)
        return None

    def _characteristic(self, path: str) -> tuple[_SimDevice, _GattCharacteristicInterface] | None:
        for device in self._devices.values():
            if device.gatt is not None and path.startswith(device.path + "/"):
                char = device.gatt.by_path.get(path)
                return None if char is None else (device, char)
        return None

    def _client_gone(self, sender: str) -> None:
        self._discovery_filters.pop(sender, None)
        if sender in self._discovery_sessions:
            self._stop_discovery(sender)
        for device in self._devices.values():
            device.client_gone(sender)

    # discovery ----------

    def _set_discovery_filter(self, sender: str, raw: dict[str, Variant]) -> None:
        unknown = set(raw) - _DISCOVERY_FILTER_KEYS
        if unknown:
            raise DBusError(_ERR_INVALID_ARGS, "Invalid arguments in method call")
        flt = {key: variant.value for key, variant in raw.items()}
        transport = flt.get("Transport", "auto")
        if transport not in ("auto", "le", "bredr"):
            raise DBusError(_ERR_INVALID_ARGS, "Invalid arguments in method call")
        if "UUIDs" in flt:
            flt["UUIDs"] = {u.lower() for u in flt["UUIDs"]}
        if flt:
            self._discovery_filters[sender] = flt
        else:
            self._discovery_filters.pop(sender, None)

    def _start_discovery(self, sender: str) -> None:
        # bluetoothd answers a repeated StartDiscovery from one client with plain success.
        self._discovery_sessions.add(sender)
        if not self._adapter.discovering:
            self._adapter.discovering = True
            self._adapter.emit_properties_changed({"Discovering": True})
            self._advertiser = asyncio.get_running_loop().create_task(
                self._advertise(), name="simulated BlueZ advertising"
            )

    def _stop_discovery(self, sender: str) -> None:
        if sender not in self._discovery_sessions:
            raise DBusError(_ERR_FAILED, "No discovery started")
        self._discovery_sessions.discard(sender)
        if self._discovery_sessions:
            return
        if self._advertiser is not None:
            self._advertiser.cancel()
            self._advertiser = None
        self._adapter.discovering = False
        self._adapter.emit_properties_changed({"Discovering": False})
        for device in self._devices.values():
            device.discovery_stopped()

    async def _stop_advertiser(self) -> None:
        task, self._advertiser = self._advertiser, None
        if task is not None:
            task.cancel()
            await asyncio.wait({task})  # an outer cancel still reaches the caller

    async def _advertise(self) -> None:
        """While discovering: every interval, each visible advertising device is 'heard'."""
        while True:
            for device in self._visible_devices():
                device.advertise()
            await asyncio.sleep(self._interval)

    def _visible_devices(self) -> Iterator[_SimDevice]:
        filters = [self._discovery_filters.get(s, {}) for s in self._discovery_sessions]
        for device in list(self._devices.values()):
            p = device.peripheral
            if not p.advertising or device.iface.connected or device.iface.blocked:
                continue
            if any(_matches(flt, p) for flt in filters):
                yield device

    def _remove_device(self, path: str) -> None:
        for device in self._devices.values():
            if device.path == path and device.exported:
                device.unexport()
                return
        raise DBusError(_ERR_DOES_NOT_EXIST, "Does Not Exist")


def _matches(flt: dict[str, Any], p: Peripheral) -> bool:
    """Whether discovery with this filter reports the peripheral (bluetoothd's rules, LE only)."""
    if flt.get("Transport", "auto") == "bredr":
        return False
    uuids = flt.get("UUIDs")
    if uuids and not uuids.intersection(p.advertised_uuids):
        return False
    if "RSSI" in flt and p.rssi < flt["RSSI"]:
        return False
    pattern = flt.get("Pattern", "")
    return not pattern or p.address.startswith(pattern.upper()) or p.name.startswith(pattern)
