"""The BLE source: finds configured devices, keeps them connected, turns indications into readings.

This is the code a Raspberry Pi runs against bluetoothd through bleak; tests and the demo run
the very same code against the simulated BlueZ (``devices.sim``). It never learns which one it
talks to.

* One shared scanner runs while any device is being looked for. BlueZ keeps discovery sessions
  per D-Bus client and bleak shares one D-Bus connection per process, so two bleak scanners in
  one process share one session: the first to stop ends discovery for the other and the second
  stop fails. One scanner for all devices avoids that.
* Connection attempts go one at a time (bluetoothd handles one LE connection procedure well,
  several at once poorly); established connections run side by side.
* Each device's measurement characteristics are subscribed to; every value is decoded with
  ``devices.gatt.decode`` and handed to ``on_reading``. A value that does not decode is counted,
  logged without personal data and skipped; the connection stays up.
* A lost link or a failed attempt is retried with exponential backoff and full jitter, reset
  after each successful connection. A device that is simply not advertising is looked for
  without pause: health devices advertise only briefly, after a measurement.

Logs name a device only by its ``ref``: a BLE address is personal data, and so are payloads and
reading values.
"""

from __future__ import annotations

import asyncio
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial

import structlog
from bleak import BleakAdapter, BleakClient, BleakScanner
from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData
from bleak.exc import BleakError
from dbus_fast import DBusError

from devices.gatt import DecodeError, decode
from devices.profiles import Profile, profile
from gateway.models import Measurement

__all__ = ["BleSource", "DeviceStatus", "DeviceTarget", "Received", "StatusPredicate"]

log = structlog.get_logger(__name__)

_ADDRESS_PATTERN = re.compile(r"(?:[0-9A-Fa-f]{2}[:_-]){5}[0-9A-Fa-f]{2}")
_DISCONNECT_TIMEOUT_S = 5.0

# What the BLE stack raises for conditions outside our control: radio or bus trouble, a device
# out of range, a GATT error. They end one connection attempt, never the source.
_LINK_ERRORS = (BleakError, DBusError, TimeoutError, OSError, EOFError)


@dataclass(frozen=True, slots=True)
class DeviceTarget:
    """A device to keep connected: ``ref`` labels it in logs, ``address`` never appears there."""

    ref: str
    address: str
    profile: str  # key of devices.profiles.PROFILES


@dataclass(frozen=True, slots=True)
class Received:
    """One decoded value as it arrived."""

    target: DeviceTarget
    characteristic: str  # full 128-bit UUID
    measurement: Measurement
    received_at: datetime  # timezone-aware UTC, when the gateway got it
    # How far the device's clock is ahead of the gateway's (device - gateway, seconds), when
    # known from a Current Time sync on connect; None when the device has no clock service.
    clock_offset_s: float | None = None


@dataclass(frozen=True, slots=True)
class DeviceStatus:
    ref: str
    address: str
    profile: str
    connected: bool
    last_seen: datetime | None  # UTC: last advertisement seen or value received
    readings: int
    decode_errors: int
    connects: int
    last_error: str | None  # why the last connection attempt or link failed (address-free)


StatusPredicate = Callable[[list[DeviceStatus]], bool]


class _NotFound(Exception):
    """The device was not heard within the scan timeout."""


class _ProfileMismatch(Exception):
    """The device lacks a characteristic its profile requires."""


@dataclass(slots=True)
class _Device:
    target: DeviceTarget
    profile: Profile
    connected: bool = False
    last_seen: datetime | None = None
    readings: int = 0
    decode_errors: int = 0
    connects: int = 0
    last_error: str | None = None

    def status(self) -> DeviceStatus:
        t = self.target
        return DeviceStatus(
            ref=t.ref,
            address=t.address,
            profile=t.profile,
            connected=self.connected,
            last_seen=self.last_seen,
            readings=self.readings,
            decode_errors=self.decode_errors,
            connects=self.connects,
            last_error=self.last_error,
        )


class _Backoff:
    """Exponential backoff with full jitter: a delay drawn from [0, min(max, initial * 2^n)]."""

    def __init__(self, initial: float, maximum: float) -> None:
        self._initial = initial
        self._maximum = maximum
        self._attempt = 0
        self._random = random.Random()

    def reset(self) -> None:
        self._attempt = 0

    def next_delay(self) -> float:
        ceiling = min(self._maximum, self._initial * 2.0 ** min(self._attempt, 32))
        self._attempt += 1
        return self._random.uniform(0.0, ceiling)


class _Finder:
    """One scanner for every device: it runs while at least one device is being looked for."""

    def __init__(self) -> None:
        self._waiters: dict[str, list[asyncio.Future[BLEDevice]]] = {}
        self._wanted = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()

    async def find(self, address: str, within_s: float) -> BLEDevice:
        """The device as soon as it advertises; _NotFound after ``within_s`` seconds."""
        key = address.upper()
        waiter: asyncio.Future[BLEDevice] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(key, []).append(waiter)
        self._update()
        try:
            async with asyncio.timeout(within_s):
                return await waiter
        except TimeoutError:
            raise _NotFound(f"not heard within {within_s:g} s") from None
        finally:
            waiters = self._waiters.get(key, [])
            if waiter in waiters:
                waiters.remove(waiter)
            if not waiters:
                self._waiters.pop(key, None)
            self._update()

    async def run(self) -> None:
        """Owns the scanner: starts it when wanted, stops it when nobody is looking."""
        while True:
            await self._wanted.wait()
            try:
                async with BleakScanner(detection_callback=self._on_advertisement):
                    await self._idle.wait()
            except _LINK_ERRORS as exc:
                # Hand the failure to whoever is looking; each retries on its own schedule,
                # and the scanner starts again when someone looks again.
                log.warning("ble.scan_failed", error=_describe(exc))
                self._fail_waiters(exc)

    def _on_advertisement(self, device: BLEDevice, _adv: AdvertisementData) -> None:
        for waiter in self._waiters.get(device.address.upper(), ()):
            if not waiter.done():
                waiter.set_result(device)

    def _fail_waiters(self, exc: BaseException) -> None:
        for waiters in list(self._waiters.values()):
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_exception(exc)
        self._waiters.clear()
        self._update()

    def _update(self) -> None:
        if self._waiters:
            self._idle.clear()
            self._wanted.set()
        else:
            self._wanted.clear()
            self._idle.set()


class BleSource:
    """Keeps every target connected and reports each decoded value through ``on_reading``.

    ``on_reading`` is called synchronously from the BLE stack's callback; it should only queue
    the reading. ``run()`` runs until cancelled; cancelling disconnects every device cleanly.
    """

    def __init__(
        self,
        targets: Sequence[DeviceTarget],
        on_reading: Callable[[Received], None],
        *,
        scan_timeout: float = 10.0,
        backoff_initial: float = 1.0,
        backoff_max: float = 60.0,
        connect_timeout: float = 20.0,
    ) -> None:
        if scan_timeout <= 0 or connect_timeout <= 0:
            raise ValueError("scan_timeout and connect_timeout must be positive")
        if backoff_initial <= 0 or backoff_max < backoff_initial:
            raise ValueError("need 0 < backoff_initial <= backoff_max")
        self._devices: list[_Device] = []
        seen: set[str] = set()
        for target in targets:
            if target.address.upper() in seen:
                raise ValueError(f"device {target.ref!r}: the same address is configured twice")
            seen.add(target.address.upper())
            try:
                prof = profile(target.profile)
            except KeyError as exc:
                raise ValueError(f"device {target.ref!r}: {exc.args[0]}") from None
            self._devices.append(_Device(target, prof))
        self._on_reading = on_reading
        self._scan_timeout = scan_timeout
        self._connect_timeout = connect_timeout
        self._backoff_initial = backoff_initial
        self._backoff_max = backoff_max
        self._connect_slot = asyncio.Semaphore(1)
        self._finder = _Finder()
        self._running = False
        self._watchers: list[tuple[StatusPredicate, asyncio.Future[list[DeviceStatus]]]] = []

    def status(self) -> list[DeviceStatus]:
        """A snapshot per target, in configuration order."""
        return [device.status() for device in self._devices]

    async def wait_until(self, predicate: StatusPredicate) -> list[DeviceStatus]:
        """Wait until ``predicate(status())`` holds and return that status.

        For health checks and tests; add a deadline with ``asyncio.timeout``.
        """
        current = self.status()
        if predicate(current):
            return current
        future: asyncio.Future[list[DeviceStatus]] = asyncio.get_running_loop().create_future()
        entry = (predicate, future)
        self._watchers.append(entry)
        try:
            return await future
        finally:
            self._watchers.remove(entry)

    def _changed(self) -> None:
        if not self._watchers:
            return
        current = self.status()
        for predicate, future in self._watchers:
            if not future.done() and predicate(current):
                future.set_result(current)

    async def run(self) -> None:
        """Run until cancelled."""
        if self._running:
            raise RuntimeError("BleSource.run() is already running")
        self._running = True
        try:
            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(self._finder.run(), name="ble scanner")
                for device in self._devices:
                    tasks.create_task(self._keep_connected(device), name=f"ble {device.target.ref}")
        finally:
            self._running = False

    async def _keep_connected(self, device: _Device) -> None:
        ref = device.target.ref
        backoff = _Backoff(self._backoff_initial, self._backoff_max)
        while True:
            try:
                await self._session(device, backoff)
            except _NotFound as exc:
                # The usual state of a cuff or scale: it advertises only for a while after a
                # measurement. Keep listening (no backoff), or that window could be missed.
                device.last_error = str(exc)
                log.debug("ble.not_found", device=ref, scan_timeout_s=self._scan_timeout)
                self._changed()
                continue
            except (*_LINK_ERRORS, _ProfileMismatch) as exc:
                device.last_error = _describe(exc)
                log.warning("ble.connect_failed", device=ref, error=device.last_error)
                self._changed()
            delay = backoff.next_delay()
            log.debug("ble.reconnect_scheduled", device=ref, delay_s=round(delay, 3))
            await asyncio.sleep(delay)

    async def _session(self, device: _Device, backoff: _Backoff) -> None:
        """Find, connect, subscribe, and wait for the link to drop (returns) or fail (raises)."""
        ref = device.target.ref
        found = await self._connected_already(device) or await self._finder.find(
            device.target.address, self._scan_timeout
        )
        device.last_seen = _now()
        self._changed()
        lost = asyncio.Event()
        client = BleakClient(found, lambda _c: lost.set(), timeout=self._connect_timeout)
        try:
            async with self._connect_slot:
                await client.connect()
            device.connected = True
            device.connects += 1
            device.last_error = None
            backoff.reset()
            log.info("ble.connected", device=ref)
            self._changed()
            await self._subscribe(client, device)
            await lost.wait()
        finally:
            was_connected, device.connected = device.connected, False
            dropped = lost.is_set()
            await self._release(client, device)
            if was_connected:
                reason = "link lost" if dropped else "closed by gateway"
                log.info("ble.disconnected", device=ref, reason=reason)
            self._changed()
        device.last_error = "link lost"
        self._changed()

    async def _connected_already(self, device: _Device) -> BLEDevice | None:
        """A device BlueZ still holds a connection to (e.g. after a gateway crash) needs no scan."""
        try:
            adapter = await BleakAdapter.get()
            connected = await adapter.get_connected_devices([device.profile.service])
        except (*_LINK_ERRORS, NotImplementedError):
            return None
        wanted = device.target.address.upper()
        return next((d for d in connected if d.address.upper() == wanted), None)

    async def _subscribe(self, client: BleakClient, device: _Device) -> None:
        prof = device.profile
        subscribed = 0
        for char_uuid in prof.measurements:
            char = client.services.get_characteristic(char_uuid)
            if char is None:
                if char_uuid in prof.optional:
                    continue
                raise _ProfileMismatch(f"no characteristic {_short(char_uuid)} on the device")
            await client.start_notify(char, partial(self._on_value, device, char_uuid))
            subscribed += 1
            log.debug("ble.subscribed", device=device.target.ref, characteristic=_short(char_uuid))
        if not subscribed:
            raise _ProfileMismatch(f"no {prof.name} measurement characteristic on the device")

    def _on_value(
        self, device: _Device, char_uuid: str, _char: BleakGATTCharacteristic, data: bytearray
    ) -> None:
        received_at = _now()
        device.last_seen = received_at
        try:
            measurement = decode(char_uuid, bytes(data))
        except DecodeError as exc:
            device.decode_errors += 1
            log.warning(
                "ble.decode_failed",
                device=device.target.ref,
                characteristic=_short(char_uuid),
                payload_length=len(data),
                error=str(exc),
            )
            self._changed()
            return
        reading = Received(device.target, char_uuid, measurement, received_at)
        try:
            self._on_reading(reading)
        except Exception as exc:
            # The consumer's failure must not tear down the BLE stack's callback chain.
            log.error(
                "ble.on_reading_failed",
                device=device.target.ref,
                characteristic=_short(char_uuid),
                error=type(exc).__name__,
            )
            return
        device.readings += 1
        self._changed()

    async def _release(self, client: BleakClient, device: _Device) -> None:
        """Disconnect (also after a lost link: it frees bleak's per-connection D-Bus socket)."""
        try:
            async with asyncio.timeout(_DISCONNECT_TIMEOUT_S):
                await client.disconnect()
        except _LINK_ERRORS as exc:
            log.debug("ble.disconnect_failed", device=device.target.ref, error=_describe(exc))


def _describe(exc: BaseException) -> str:
    """``Type: message`` with any Bluetooth address (also in D-Bus object paths) masked."""
    text = str(exc)
    text = _ADDRESS_PATTERN.sub("<address>", text)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _short(char_uuid: str) -> str:
    """``2a35`` for a SIG UUID, the full UUID otherwise."""
    if char_uuid.startswith("0000") and char_uuid.endswith("-0000-1000-8000-00805f9b34fb"):
        return char_uuid[4:8]
    return char_uuid


def _now() -> datetime:
    return datetime.now(UTC)
