"""The BLE source: finds configured devices, keeps them connected, hands on complete readings.

This is the code a Raspberry Pi runs against bluetoothd through bleak; tests and the demo run
the very same code against the simulated BlueZ (``devices.sim``). It never learns which one it
talks to. It is a connection manager; what to do on a connection is the device family's driver
(``devices.drivers``), and broadcast-only scales are listened to, never connected
(``devices.drivers.broadcast``).

Finding. One shared scanner (``devices.finder``) runs while any device is being looked for or
listened to. A device BlueZ still holds a link to (after a gateway crash) is adopted without a
scan.

Connecting. Attempts are bounded (``max_concurrent_connects``, default 1: bluetoothd handles
one LE connection procedure well, several at once poorly); established connections run side by
side, as many as the adapter allows. Each attempt goes through ``bleak-retry-connector``'s
``establish_connection``, which we evaluated against the simulated BlueZ and use: it retries
the transient BlueZ failures (``le-connection-abort-by-local``, a device object that vanished,
a services cache gone stale, out-of-slots answers) a few times with the short, error-specific
pauses bluetoothd needs, and swaps in a link BlueZ already holds. What it does not do is wait
between sessions: a failed or lost device is retried here with exponential backoff and full
jitter, reset after each successful connection; a device that is simply not advertising is
looked for without pause (health devices advertise only briefly, after a measurement).

On every connection the driver the device's family needs (``devices.drivers.driver_for``)
sets it up: battery, clock, subscriptions, then its family's own steps (stored records, user
consent). ``on_reading`` receives only complete readings, as each completes, so a device that
vanishes mid-transfer loses nothing already received.

Logs name a device only by its ``ref``: a BLE address is personal data, and so are payloads and
reading values.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Sequence
from pathlib import Path

import structlog
from bleak import BleakAdapter, BleakClient
from bleak.backends.device import BLEDevice
from bleak_retry_connector import establish_connection

from devices.drivers import Driver, driver_for
from devices.drivers.base import (
    LINK_ERRORS,
    DeviceRecord,
    PairingFailed,
    ProfileMismatch,
    SourceHooks,
    describe,
    now_utc,
)
from devices.drivers.broadcast import BroadcastListener
from devices.finder import Finder, NotFound
from devices.profiles import BROADCAST_PROFILES, Profile, profile
from devices.state import DeviceMemory
from devices.targets import DeviceStatus, DeviceTarget, Received, StatusPredicate, UdsUser

__all__ = [
    "BleSource",
    "DeviceStatus",
    "DeviceTarget",
    "Received",
    "StatusPredicate",
    "UdsUser",
]

log = structlog.get_logger(__name__)

_DISCONNECT_TIMEOUT_S = 5.0
# Stands in for a broadcast scale's GATT profile in its record: it has none.
_NO_GATT = Profile(name="broadcast", service="", measurements=(), default_units={})


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


class BleSource:
    """Keeps every target connected (or listened to) and reports each complete reading.

    ``on_reading`` is called synchronously from the BLE stack's callback; it should only queue
    the reading. ``run()`` runs until cancelled; cancelling disconnects every device cleanly.
    ``state_dir`` keeps per-device memory across restarts (the last glucose record, the
    weighings of a broadcast scale handed over, recent weights); None keeps it in memory only.
    """

    def __init__(
        self,
        targets: Sequence[DeviceTarget],
        on_reading: Callable[[Received], asyncio.Future[bool] | None],
        *,
        scan_timeout: float = 10.0,
        backoff_initial: float = 1.0,
        backoff_max: float = 60.0,
        connect_timeout: float = 20.0,
        state_dir: Path | None = None,
        max_concurrent_connects: int = 1,
        connect_attempts: int = 3,
        racp_timeout: float = 30.0,
    ) -> None:
        if scan_timeout <= 0 or connect_timeout <= 0 or racp_timeout <= 0:
            raise ValueError("scan_timeout, connect_timeout and racp_timeout must be positive")
        if backoff_initial <= 0 or backoff_max < backoff_initial:
            raise ValueError("need 0 < backoff_initial <= backoff_max")
        if max_concurrent_connects < 1 or connect_attempts < 1:
            raise ValueError("max_concurrent_connects and connect_attempts must be at least 1")
        self._devices: list[DeviceRecord] = []
        seen: set[str] = set()
        for target in targets:
            key = target.address.upper()
            if key in seen:
                raise ValueError(f"device {target.ref!r}: the same address is configured twice")
            seen.add(key)
            if target.profile in BROADCAST_PROFILES:
                prof = _NO_GATT
            else:
                try:
                    prof = profile(target.profile)
                except KeyError as exc:
                    raise ValueError(f"device {target.ref!r}: {exc.args[0]}") from None
            path = None if state_dir is None else state_dir / f"{key.replace(':', '')}.json"
            self._devices.append(DeviceRecord(target, prof, DeviceMemory(path, target.ref)))
        self._hooks = SourceHooks(on_reading, self._changed, racp_timeout)
        self._scan_timeout = scan_timeout
        self._connect_timeout = connect_timeout
        self._connect_attempts = connect_attempts
        self._backoff_initial = backoff_initial
        self._backoff_max = backoff_max
        self._connect_slot = asyncio.Semaphore(max_concurrent_connects)
        self._finder = Finder(seen)
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
                    keep = (
                        self._keep_listening
                        if device.target.profile in BROADCAST_PROFILES
                        else self._keep_connected
                    )
                    tasks.create_task(keep(device), name=f"ble {device.target.ref}")
        finally:
            self._running = False

    async def _keep_listening(self, device: DeviceRecord) -> None:
        """A broadcast-only device: listen to its advertisements for as long as we run."""
        listener = BroadcastListener(self._hooks, device, BROADCAST_PROFILES[device.target.profile])
        try:
            with self._finder.listening(device.target.address, listener.on_advertisement):
                log.info("ble.listening", device=device.target.ref)
                await asyncio.Event().wait()  # until cancelled
        finally:
            listener.flush()

    async def _keep_connected(self, device: DeviceRecord) -> None:
        ref = device.target.ref
        backoff = _Backoff(self._backoff_initial, self._backoff_max)
        while True:
            try:
                await self._session(device, backoff)
            except NotFound as exc:
                # The usual state of a cuff or scale: it advertises only for a while after a
                # measurement. Keep listening (no backoff), or that window could be missed.
                device.last_error = str(exc)
                log.debug("ble.not_found", device=ref, scan_timeout_s=self._scan_timeout)
                self._changed()
                continue
            except (*LINK_ERRORS, ProfileMismatch, PairingFailed) as exc:
                device.last_error = describe(exc)
                log.warning("ble.connect_failed", device=ref, error=device.last_error)
                self._changed()
            delay = backoff.next_delay()
            log.debug("ble.reconnect_scheduled", device=ref, delay_s=round(delay, 3))
            await asyncio.sleep(delay)

    async def _session(self, device: DeviceRecord, backoff: _Backoff) -> None:
        """Find, connect, set up, and wait for the link to drop (returns) or fail (raises)."""
        ref = device.target.ref
        found = await self._connected_already(device) or await self._finder.find(
            device.target.address, self._scan_timeout
        )
        device.last_seen = now_utc()
        self._changed()
        lost = asyncio.Event()
        client = await self._connect(device, found, lost)
        driver: Driver | None = None
        failed = False
        try:
            driver_class = driver_for(device.profile, client.services, device.target.model)
            driver = driver_class(self._hooks, device, client, lost, found.name)
            device.connected = True
            device.connects += 1
            device.last_error = None
            backoff.reset()
            log.info("ble.connected", device=ref, driver=driver_class.__name__)
            self._changed()
            await driver.set_up()
            await lost.wait()
        except (*LINK_ERRORS, ProfileMismatch, PairingFailed):
            failed = True
            raise
        finally:
            was_connected, device.connected = device.connected, False
            dropped = lost.is_set()
            if driver is not None:
                driver.close()
            await self._release(client, device)
            if was_connected:
                if dropped:
                    reason = "disconnected by device"
                else:
                    reason = "set-up failed" if failed else "closed by gateway"
                log.info("ble.disconnected", device=ref, reason=reason)
            self._changed()

    async def _connect(
        self, device: DeviceRecord, found: BLEDevice, lost: asyncio.Event
    ) -> BleakClient:
        """One bounded connection attempt (``establish_connection`` retries transient errors)."""
        async with self._connect_slot:
            async with asyncio.timeout(self._connect_timeout):
                return await establish_connection(
                    BleakClient,
                    found,
                    device.target.ref,
                    disconnected_callback=lambda _client: lost.set(),
                    max_attempts=self._connect_attempts,
                    timeout=self._connect_timeout,
                )

    async def _connected_already(self, device: DeviceRecord) -> BLEDevice | None:
        """A device BlueZ still holds a connection to (e.g. after a gateway crash) needs no scan."""
        try:
            adapter = await BleakAdapter.get()
            connected = await adapter.get_connected_devices([device.profile.service])
        except (*LINK_ERRORS, NotImplementedError):
            return None
        wanted = device.target.address.upper()
        return next((d for d in connected if d.address.upper() == wanted), None)

    async def _release(self, client: BleakClient, device: DeviceRecord) -> None:
        """Disconnect (also after a lost link: it frees bleak's per-connection D-Bus socket)."""
        try:
            async with asyncio.timeout(_DISCONNECT_TIMEOUT_S):
                await client.disconnect()
        except LINK_ERRORS as exc:
            log.debug("ble.disconnect_failed", device=device.target.ref, error=describe(exc))
