"""The device model behind a simulated BLE peripheral.

A :class:`Peripheral` knows what a device is (address, name, what it advertises, its GATT
table) and how it behaves (the ``on_*`` hooks a model overrides). It knows nothing about
D-Bus: the simulated BlueZ adapter (``devices.sim.bluez``) attaches a :class:`PeripheralLink`
and drives the ``handle_*`` entry points when a central connects, subscribes, reads or writes.

Two link-level behaviours of real devices live here, so every model has them:

* ``requires_pairing``: until the central has bonded (``Device1.Pair``), every read, write and
  subscription outside the Battery Service is refused with ATT error 0x05 "Insufficient
  Authentication", which bluetoothd reports as ``org.bluez.Error.NotPermitted: Not paired``.
  ``accepts_pairing`` False models a device that is not in pairing mode: ``Pair`` fails.
* ``discovery_delay_s``: how long service discovery takes after the link is up (a slow
  device); ``ServicesResolved`` comes that much later.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Coroutine, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, Protocol

import structlog

from devices.profiles import uuid16

log = structlog.get_logger(__name__)

_ADDRESS = re.compile(r"^[0-9A-F]{2}(:[0-9A-F]{2}){5}$")

# Characteristic property names, spelled as BlueZ spells them in GattCharacteristic1.Flags.
CHARACTERISTIC_FLAGS = frozenset(
    {
        "broadcast",
        "read",
        "write-without-response",
        "write",
        "notify",
        "indicate",
        "authenticated-signed-writes",
        "extended-properties",
        "reliable-write",
        "writable-auxiliaries",
    }
)

# The smallest ATT MTU every LE link supports; a notification carries at most MTU - 3 bytes.
DEFAULT_ATT_MTU = 23

# ATT error "Insufficient Authentication": the attribute needs an authenticated (bonded) link.
ATT_INSUFFICIENT_AUTHENTICATION = 0x05
# Readable without bonding on every device here: the Battery Service.
_UNPROTECTED_SERVICES = frozenset({uuid16(0x180F)})


def normalize_uuid(value: str | int) -> str:
    """A 16-bit int, a 4-hex-digit string or a 128-bit string -> lowercase 128-bit string."""
    if isinstance(value, int):
        return uuid16(value)
    text = value.strip().lower()
    if re.fullmatch(r"(0x)?[0-9a-f]{4}", text):
        return uuid16(int(text.removeprefix("0x"), 16))
    if re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", text):
        return text
    raise ValueError(f"not a Bluetooth UUID: {value!r}")


class AttError(Exception):
    """Raised by a model's ``on_read``/``on_write`` to answer with an ATT error code.

    Common codes: 0x80-0x9F application errors (e.g. 0x80 "Op Code not supported" for a
    Record Access Control Point), 0xFE "Procedure already in progress", 0xFD "CCCD
    improperly configured".
    """

    def __init__(self, code: int, reason: str = "") -> None:
        if not 0 < code <= 0xFF:
            raise ValueError(f"ATT error code out of range: {code}")
        super().__init__(reason or f"ATT error 0x{code:02x}")
        self.code = code


@dataclass(frozen=True, slots=True)
class Characteristic:
    """A GATT characteristic: UUID, BlueZ-style flags and the value before any read or write."""

    uuid: str
    flags: tuple[str, ...]
    value: bytes = b""

    def __post_init__(self) -> None:
        object.__setattr__(self, "uuid", normalize_uuid(self.uuid))
        unknown = set(self.flags) - CHARACTERISTIC_FLAGS
        if unknown:
            raise ValueError(f"unknown characteristic flags {sorted(unknown)} on {self.uuid}")

    @property
    def notifies(self) -> bool:
        """Whether a central can subscribe (it then has a CCCD)."""
        return "notify" in self.flags or "indicate" in self.flags


@dataclass(frozen=True, slots=True)
class Service:
    """A GATT service and its characteristics, in handle order."""

    uuid: str
    characteristics: tuple[Characteristic, ...]
    primary: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "uuid", normalize_uuid(self.uuid))


class PeripheralLink(Protocol):
    """What a peripheral can ask of the radio it is attached to (implemented by bluez.py)."""

    def send_value(self, char_uuid: str, data: bytes) -> Awaitable[object]:
        """Queue a notification/indication for the central now; await the result to flush it."""

    def drop(self) -> None:
        """Tear the connection down from the device side."""

    def advertising_changed(self) -> None:
        """The peripheral started or stopped advertising."""


class Peripheral:
    """Base class of simulated devices.

    Subclasses describe their GATT table through ``services`` and override the ``on_*``
    hooks. Long-running behaviour (sending stored readings, answering a control point) goes
    into tasks started with :meth:`spawn`; they live as long as the connection.
    """

    def __init__(
        self,
        address: str,
        name: str,
        services: Sequence[Service],
        *,
        advertised_uuids: Sequence[str] | None = None,
        manufacturer_data: dict[int, bytes] | None = None,
        service_data: dict[str, bytes] | None = None,
        tx_power: int = 0,
        rssi: int = -60,
        mtu: int = DEFAULT_ATT_MTU,
        requires_pairing: bool = False,
        discovery_delay_s: float = 0.0,
    ) -> None:
        address = address.upper()
        if not _ADDRESS.match(address):
            raise ValueError(f"not a Bluetooth device address: {address!r}")
        if not name:
            raise ValueError("a simulated peripheral needs a name")
        self.address = address
        self.name = name
        self.services = tuple(services)
        self._characteristics: dict[str, Characteristic] = {}
        for char in self.characteristics():
            if char.uuid in self._characteristics:
                raise ValueError(f"characteristic {char.uuid} appears twice in {name!r}")
            self._characteristics[char.uuid] = char
        self.advertised_uuids = tuple(
            normalize_uuid(u)
            for u in (
                advertised_uuids
                if advertised_uuids is not None
                else [s.uuid for s in self.services if s.primary]
            )
        )
        self.manufacturer_data = dict(manufacturer_data or {})
        self.service_data = {normalize_uuid(k): v for k, v in (service_data or {}).items()}
        self.tx_power = tx_power
        self.rssi = rssi
        self.mtu = mtu
        if discovery_delay_s < 0:
            raise ValueError("discovery_delay_s must not be negative")
        self.requires_pairing = requires_pairing
        self.accepts_pairing = True
        self.discovery_delay_s = discovery_delay_s
        self._bonded = False
        self._protected = {
            char.uuid
            for service in self.services
            if service.uuid not in _UNPROTECTED_SERVICES
            for char in service.characteristics
        }
        self._advertising = True
        self._connected = False
        self._notifying: set[str] = set()
        self._link: PeripheralLink | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._background: set[asyncio.Task[None]] = set()

    # -- what the model looks like ------------------------------------------------------------

    def characteristics(self) -> Iterator[Characteristic]:
        """Every characteristic, in handle order."""
        for service in self.services:
            yield from service.characteristics

    def characteristic(self, char_uuid: str | int) -> Characteristic:
        """The characteristic with this UUID; KeyError if the device has none."""
        uuid = normalize_uuid(char_uuid)
        try:
            return self._characteristics[uuid]
        except KeyError:
            raise KeyError(f"{self.name!r} has no characteristic {uuid}") from None

    @property
    def advertising(self) -> bool:
        """Whether the device sends advertisements when it is not connected."""
        return self._advertising

    @property
    def connected(self) -> bool:
        return self._connected

    def is_notifying(self, char_uuid: str | int) -> bool:
        """Whether a central has enabled notifications/indications on this characteristic."""
        return normalize_uuid(char_uuid) in self._notifying

    @property
    def bonded(self) -> bool:
        """Whether the device holds a bond with the central (it paired)."""
        return self._bonded

    # -- hooks a model overrides ----------------------------------------------------------------

    def on_connected(self) -> None:
        """A central connected."""

    def on_disconnected(self) -> None:
        """The link is gone (either side). Link tasks have already been cancelled."""

    def on_notify_started(self, char_uuid: str) -> None:
        """A central enabled notifications/indications on ``char_uuid``."""

    def on_notify_stopped(self, char_uuid: str) -> None:
        """A central disabled notifications/indications on ``char_uuid``."""

    def on_read(self, char_uuid: str) -> bytes:
        """Answer a read; the default returns the characteristic's initial value."""
        return self.characteristic(char_uuid).value

    def on_write(self, char_uuid: str, data: bytes) -> None:
        """Take a write; the default accepts and ignores it."""

    def on_value_sent(self, char_uuid: str, data: bytes) -> None:
        """A notification/indication was handed to the radio (called from :meth:`notify`)."""

    def on_attached(self) -> None:
        """The device is in range of a running radio; start device-lifetime tasks here."""

    def on_paired(self) -> None:
        """A central bonded with the device."""

    def on_advertised(self) -> None:
        """One advertisement of the device was heard by the discovering adapter."""

    # -- actions the model (or a test) takes ------------------------------------------------------

    async def notify(self, char_uuid: str | int, data: bytes) -> bool:
        """Send a notification/indication if a central is subscribed; return whether it was sent."""
        uuid = normalize_uuid(char_uuid)
        if not self.characteristic(uuid).notifies:
            raise ValueError(f"characteristic {uuid} supports neither notify nor indicate")
        if len(data) > self.mtu - 3:
            raise ValueError(f"{len(data)} bytes do not fit one notification at MTU {self.mtu}")
        link = self._link
        if link is None or not self._connected or uuid not in self._notifying:
            return False
        flushed = link.send_value(uuid, bytes(data))
        # Queued: from here on the central gets it even if this task is cancelled while the
        # bytes are flushed, so the model must count it as sent now.
        self.on_value_sent(uuid, bytes(data))
        await flushed
        return True

    def drop_link(self) -> None:
        """Device-side disconnect, as when the radio link is lost. No-op when not connected."""
        if self._link is not None and self._connected:
            self._link.drop()

    def set_advertising(self, advertising: bool) -> None:
        """Start or stop advertising (the user switched the device off, or it went to sleep)."""
        if advertising != self._advertising:
            self._advertising = advertising
            if self._link is not None:
                self._link.advertising_changed()

    def spawn(self, coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        """Run ``coro`` as a task owned by the current connection (cancelled when it ends)."""
        if not self._connected:
            coro.close()
            raise RuntimeError("spawn() needs a connection")
        task = asyncio.get_running_loop().create_task(coro, name=f"{self.name}: {name}")
        self._tasks.add(task)
        task.add_done_callback(partial(self._task_done, self._tasks))
        return task

    def spawn_background(self, coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        """Run ``coro`` as long as the device is attached to a radio (e.g. a measuring timer)."""
        if self._link is None:
            coro.close()
            raise RuntimeError("spawn_background() needs an attached radio")
        task = asyncio.get_running_loop().create_task(coro, name=f"{self.name}: {name}")
        self._background.add(task)
        task.add_done_callback(partial(self._task_done, self._background))
        return task

    def _task_done(self, owner: set[asyncio.Task[None]], task: asyncio.Task[None]) -> None:
        owner.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error(
                "sim.peripheral_task_failed",
                device=self.name,
                task=task.get_name(),
                error=f"{type(exc).__name__}: {exc}",
            )

    # -- entry points for the radio (bluez.py) ------------------------------------------------

    def attach(self, link: PeripheralLink) -> None:
        if self._link is not None:
            raise RuntimeError(f"{self.name!r} is already attached to a radio")
        self._link = link
        self.on_attached()

    async def detach(self) -> None:
        """Forget the radio; the caller has already torn down any connection."""
        self._link = None
        await self.shutdown()

    def handle_connect(self) -> None:
        self._connected = True
        self.on_connected()

    def handle_disconnect(self) -> None:
        if not self._connected:
            return
        self._connected = False
        self._notifying.clear()
        for task in list(self._tasks):
            task.cancel()
        self.on_disconnected()

    def handle_notify(self, char_uuid: str, enabled: bool) -> None:
        uuid = normalize_uuid(char_uuid)
        if enabled and uuid not in self._notifying:
            self._notifying.add(uuid)
            self.on_notify_started(uuid)
        elif not enabled and uuid in self._notifying:
            self._notifying.discard(uuid)
            self.on_notify_stopped(uuid)

    def handle_paired(self, bonded: bool) -> None:
        """The central bonded (True) or forgot the bond (False, e.g. ``RemoveDevice``)."""
        was, self._bonded = self._bonded, bonded
        if bonded and not was:
            self.on_paired()

    def check_access(self, char_uuid: str) -> None:
        """AttError 0x05 for a protected characteristic while the link is not bonded."""
        if (
            self.requires_pairing
            and not self._bonded
            and normalize_uuid(char_uuid) in self._protected
        ):
            raise AttError(ATT_INSUFFICIENT_AUTHENTICATION, "Insufficient Authentication")

    def handle_read(self, char_uuid: str) -> bytes:
        self.check_access(char_uuid)
        return bytes(self.on_read(normalize_uuid(char_uuid)))

    def handle_write(self, char_uuid: str, data: bytes) -> None:
        self.check_access(char_uuid)
        self.on_write(normalize_uuid(char_uuid), bytes(data))

    async def shutdown(self) -> None:
        """Cancel and wait for every task the model started."""
        tasks = [*self._tasks, *self._background]
        for task in tasks:
            task.cancel()
        # Failures were logged by _task_done; here we only wait for the tasks to end.
        await asyncio.gather(*tasks, return_exceptions=True)
