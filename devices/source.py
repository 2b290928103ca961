"""The BLE source: finds configured devices, connects, reads them the way each profile needs.

This is the code a Raspberry Pi runs against bluetoothd through bleak; tests and the demo run
the very same code against the simulated BlueZ (``devices.sim``). It never learns which one it
talks to.

Finding. One shared scanner runs while any device is being looked for. BlueZ keeps discovery
sessions per D-Bus client and bleak shares one D-Bus connection per process, so two bleak
scanners in one process share one session: the first to stop ends discovery for the other and
the second stop fails. One scanner for all devices avoids that. Devices are matched by their
configured address; a device that advertises a health service but is not configured is logged
once (by profile, never by address) so a user knows to run ``health-gateway scan``. A device
BlueZ still holds a link to (after a gateway crash) is adopted without a scan.

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

On every connection, in this order:

1. Battery Level (0x2A19) is read when present (``DeviceStatus.battery_level``) and followed
   when it notifies.
2. Current Time (0x2A2B), when the device has the Current Time Service: the device clock is
   read, its offset from the gateway's local clock (device minus gateway, whole seconds) noted,
   the gateway's time written, and the clock read back. Every ``Received`` carries the offset
   of the clock that stamped it: readings stamped before the sync (the stored burst that
   follows) carry the offset read before it; readings stamped by the corrected clock carry the
   residual (about 0). A reading counts as stamped after the sync when the gateway time its
   stamp implies lies between the sync and its arrival (a reading cannot arrive before it was
   taken). Only a stored reading taken almost exactly "offset" seconds before the sync can be
   misjudged that way, and only when the device clock was ahead.
3. The measurement characteristics of the profile are subscribed to. Intermediate values (cuff
   pressure during inflation) are not: they are never readings.
4. Glucose meters: stored records through the Record Access Control Point (0x2A52), asking for
   records newer than the last sequence number handed over, which is kept in ``state_dir``
   across restarts. "No records found" is the normal answer when nothing is new; a meter that
   refuses the filter is asked for all records and the known ones are skipped; a procedure
   that goes quiet for ``racp_timeout`` is aborted. Each measurement is held until its
   Glucose Measurement Context (0x2A34) arrives and the two go on as one ``glucose`` reading.
   If the link drops in between, the measurement is not passed on and not counted as seen, so
   the next download brings it again with its context.
5. A device that demands pairing (ATT "Insufficient Authentication"/"Encryption", which
   bluetoothd reports as ``NotPermitted: Not paired``) is paired with ``BleakClient.pair()``
   and the step retried; a log line ``ble.pairing_required`` says what the user must do, and
   ``ble.pairing_failed`` when the device would not pair (not in pairing mode).

Values. Every value is decoded with ``devices.gatt.decode``. One that does not decode is
counted, logged without personal data (device ref, characteristic, length, the codec's
message) and skipped; the connection stays up. Multi-packet body-composition values are joined
(``BodyCompositionAssembler``). ``on_reading`` receives only complete readings: never
``cuff_pressure``, never a bare ``glucose_context``, never a glucose record seen before. It is
called as each reading completes, so a device that vanishes mid-transfer loses nothing already
received. What was only half received when the link went (a body-composition measurement whose
second packet, a glucose record whose context did not come) is not passed on: the device
counts it as delivered only when its last value is acknowledged and sends it whole next time,
and passing the half on would make the pipeline, which recognises a reading by its device time
stamp or sequence number, keep the half and drop the whole as a duplicate.

Logs name a device only by its ``ref``: a BLE address is personal data, and so are payloads and
reading values.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import TypeVar

import structlog
from bleak import BleakAdapter, BleakClient, BleakScanner
from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData
from bleak.exc import BleakDBusError, BleakError, BleakGATTProtocolError
from bleak_retry_connector import establish_connection
from dbus_fast import DBusError

from devices.gatt import (
    BodyCompositionAssembler,
    DecodeError,
    GlucoseContextJoiner,
    decode,
    decode_battery_level,
    decode_current_time,
    encode_current_time,
)
from devices.gatt.racp import (
    RacpRequest,
    RacpResponse,
    RacpResponseCode,
    abort_operation,
    decode_racp_response,
    encode_racp_request,
    report_all_records,
    report_records_from,
)
from devices.gatt.temperature import TEMPERATURE_TYPES
from devices.profiles import (
    BATTERY_LEVEL,
    CURRENT_TIME,
    GLUCOSE_MEASUREMENT,
    INTERMEDIATE_CUFF_PRESSURE,
    PROFILES,
    Profile,
    profile,
)
from devices.state import write_json_atomically
from gateway.models import Measurement

__all__ = ["BleSource", "DeviceStatus", "DeviceTarget", "Received", "StatusPredicate"]

log = structlog.get_logger(__name__)

_ADDRESS_PATTERN = re.compile(r"(?:[0-9A-Fa-f]{2}[:_-]){5}[0-9A-Fa-f]{2}")
_DISCONNECT_TIMEOUT_S = 5.0

# What the BLE stack raises for conditions outside our control: radio or bus trouble, a device
# out of range, a GATT error. They end one connection attempt, never the source.
_LINK_ERRORS = (BleakError, DBusError, TimeoutError, OSError, EOFError)

# Characteristics that carry intermediate values, never readings: not subscribed to.
_INTERMEDIATE = frozenset({INTERMEDIATE_CUFF_PRESSURE})
# Kinds that are never passed on even if a device sends them (the pipeline drops them too).
_TRANSIENT_KINDS = frozenset({"cuff_pressure", "glucose_context"})
# ATT errors a bond cures: Insufficient Authentication, Encryption Key Size, Encryption.
_PAIRING_ATT_ERRORS = frozenset({0x05, 0x0C, 0x0F})
_BLUEZ_NOT_PERMITTED = "org.bluez.Error.NotPermitted"
# How far a device time stamp may stray from the gateway time it implies (1 s resolution).
_STAMP_SLACK = timedelta(seconds=2)
# RACP response codes that mean "I do not do that filter"; answered by asking for everything.
_FILTER_REFUSED = frozenset(
    {
        RacpResponseCode.INVALID_OPERATOR,
        RacpResponseCode.OPERATOR_NOT_SUPPORTED,
        RacpResponseCode.INVALID_OPERAND,
        RacpResponseCode.OPERAND_NOT_SUPPORTED,
    }
)
_SEQUENCE_MAX = 0xFFFF

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class DeviceTarget:
    """A device to keep connected: ``ref`` labels it in logs, ``address`` never appears there."""

    ref: str
    address: str
    profile: str  # key of devices.profiles.PROFILES


@dataclass(frozen=True, slots=True)
class Received:
    """One decoded, complete reading as it arrived."""

    target: DeviceTarget
    characteristic: str  # full 128-bit UUID
    measurement: Measurement
    received_at: datetime  # timezone-aware UTC, when the gateway got it
    # How far the clock that stamped this reading was ahead of the gateway's (device -
    # gateway, whole seconds), when known from a Current Time read on connect; None when the
    # device has no clock service.
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
    battery_level: int | None = None  # percent, from the last connection's read or notification
    clock_offset_s: float | None = None  # device clock - gateway clock now, when known
    pairing_required: bool = False  # the device demands pairing and has not paired yet
    dropped: int = 0  # values not passed on: intermediate, orphan contexts, records seen before


StatusPredicate = Callable[[list[DeviceStatus]], bool]


class _NotFound(Exception):
    """The device was not heard within the scan timeout."""


class _ProfileMismatch(Exception):
    """The device lacks a characteristic its profile requires."""


def _advance_when_stored(state: _DeviceState, sequence: int, stored: asyncio.Future[bool]) -> None:
    """Move the download mark past a record only once the consumer has it on disk."""
    if not stored.cancelled() and stored.exception() is None and stored.result():
        state.advance(sequence)


class _PairingFailed(Exception):
    """The device demands pairing and would not pair."""


class _DeviceState:
    """What must survive a restart for one device: the last glucose record handed over."""

    def __init__(self, path: Path | None, ref: str) -> None:
        self._path = path
        self.last_sequence: int | None = None
        if path is None:
            return
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return
        except (OSError, ValueError) as exc:
            # Start afresh: the meter sends its records again, and the pipeline recognises the
            # ones it has by their sequence numbers.
            log.warning("ble.state_unreadable", device=ref, error=type(exc).__name__)
            return
        value = data.get("last_sequence") if isinstance(data, dict) else None
        if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 0xFFFF:
            self.last_sequence = value

    def seen(self, sequence: int) -> bool:
        return self.last_sequence is not None and sequence <= self.last_sequence

    def advance(self, sequence: int) -> None:
        if self.seen(sequence):
            return
        self.last_sequence = sequence
        if self._path is not None:
            write_json_atomically(self._path, {"last_sequence": sequence})


@dataclass(slots=True)
class _Device:
    target: DeviceTarget
    profile: Profile
    state: _DeviceState
    connected: bool = False
    last_seen: datetime | None = None
    readings: int = 0
    decode_errors: int = 0
    connects: int = 0
    last_error: str | None = None
    battery_level: int | None = None
    clock_offset_s: float | None = None
    pairing_required: bool = False
    dropped: int = 0

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
            battery_level=self.battery_level,
            clock_offset_s=self.clock_offset_s,
            pairing_required=self.pairing_required,
            dropped=self.dropped,
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

    def __init__(self, configured: set[str]) -> None:
        self._waiters: dict[str, list[asyncio.Future[BLEDevice]]] = {}
        self._wanted = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._configured = configured
        self._by_service = {p.service: name for name, p in PROFILES.items()}
        self._reported: set[str] = set()

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

    def _on_advertisement(self, device: BLEDevice, adv: AdvertisementData) -> None:
        key = device.address.upper()
        for waiter in self._waiters.get(key, ()):
            if not waiter.done():
                waiter.set_result(device)
        if key in self._configured or key in self._reported:
            return
        profiles = [self._by_service[u] for u in adv.service_uuids if u in self._by_service]
        if profiles:
            self._reported.add(key)
            log.info(
                "ble.unconfigured_device",
                profile=profiles[0],
                hint="a health device nearby is not configured; `health-gateway scan` shows "
                "its address for a [[devices]] entry",
            )

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


@dataclass(slots=True)
class _ClockOffsets:
    """The device clock's offset before and after this connection's Current Time sync."""

    before: float | None = None
    after: float | None = None
    synced_at: datetime | None = None  # gateway local time when the time was written

    def now(self) -> float | None:
        return self.after if self.synced_at is not None else self.before

    def stamped_by(self, measured_at: datetime | None, arrived: datetime) -> float | None:
        """The offset of the clock that stamped a reading that arrived at ``arrived``."""
        if self.synced_at is None:
            return self.before
        if measured_at is None:
            return self.after
        try:
            implied = measured_at - timedelta(seconds=self.after or 0.0)
        except OverflowError:  # a stamp near year 1 or 9999: not one the synced clock made
            return self.before
        if self.synced_at - _STAMP_SLACK <= implied <= arrived + _STAMP_SLACK:
            return self.after
        return self.before


class BleSource:
    """Keeps every target connected and reports each complete reading through ``on_reading``.

    ``on_reading`` is called synchronously from the BLE stack's callback; it should only queue
    the reading. It may return a future that is set True once the reading is stored: a
    glucose record then counts as handed over (the mark the next download starts after) only
    when it is on disk, not when it was merely queued. ``run()`` runs until cancelled;
    cancelling disconnects every device cleanly. ``state_dir`` keeps per-device memory across
    restarts (the last glucose record seen); None keeps it in memory only.
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
        self._devices: list[_Device] = []
        seen: set[str] = set()
        for target in targets:
            key = target.address.upper()
            if key in seen:
                raise ValueError(f"device {target.ref!r}: the same address is configured twice")
            seen.add(key)
            try:
                prof = profile(target.profile)
            except KeyError as exc:
                raise ValueError(f"device {target.ref!r}: {exc.args[0]}") from None
            path = None if state_dir is None else state_dir / f"{key.replace(':', '')}.json"
            self._devices.append(_Device(target, prof, _DeviceState(path, target.ref)))
        self._on_reading = on_reading
        self._scan_timeout = scan_timeout
        self._connect_timeout = connect_timeout
        self._connect_attempts = connect_attempts
        self._racp_timeout = racp_timeout
        self._backoff_initial = backoff_initial
        self._backoff_max = backoff_max
        self._connect_slot = asyncio.Semaphore(max_concurrent_connects)
        self._finder = _Finder(seen)
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
            except (*_LINK_ERRORS, _ProfileMismatch, _PairingFailed) as exc:
                device.last_error = _describe(exc)
                log.warning("ble.connect_failed", device=ref, error=device.last_error)
                self._changed()
            delay = backoff.next_delay()
            log.debug("ble.reconnect_scheduled", device=ref, delay_s=round(delay, 3))
            await asyncio.sleep(delay)

    async def _session(self, device: _Device, backoff: _Backoff) -> None:
        """Find, connect, set up, and wait for the link to drop (returns) or fail (raises)."""
        ref = device.target.ref
        found = await self._connected_already(device) or await self._finder.find(
            device.target.address, self._scan_timeout
        )
        device.last_seen = _now()
        self._changed()
        lost = asyncio.Event()
        client = await self._connect(device, found, lost)
        session = _Session(self, device, client, lost)
        failed = False
        try:
            device.connected = True
            device.connects += 1
            device.last_error = None
            backoff.reset()
            log.info("ble.connected", device=ref)
            self._changed()
            await session.set_up()
            await lost.wait()
        except (*_LINK_ERRORS, _ProfileMismatch, _PairingFailed):
            failed = True
            raise
        finally:
            was_connected, device.connected = device.connected, False
            dropped = lost.is_set()
            session.close()
            await self._release(client, device)
            if was_connected:
                if dropped:
                    reason = "disconnected by device"
                else:
                    reason = "set-up failed" if failed else "closed by gateway"
                log.info("ble.disconnected", device=ref, reason=reason)
            self._changed()

    async def _connect(self, device: _Device, found: BLEDevice, lost: asyncio.Event) -> BleakClient:
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

    async def _connected_already(self, device: _Device) -> BLEDevice | None:
        """A device BlueZ still holds a connection to (e.g. after a gateway crash) needs no scan."""
        try:
            adapter = await BleakAdapter.get()
            connected = await adapter.get_connected_devices([device.profile.service])
        except (*_LINK_ERRORS, NotImplementedError):
            return None
        wanted = device.target.address.upper()
        return next((d for d in connected if d.address.upper() == wanted), None)

    async def _release(self, client: BleakClient, device: _Device) -> None:
        """Disconnect (also after a lost link: it frees bleak's per-connection D-Bus socket)."""
        try:
            async with asyncio.timeout(_DISCONNECT_TIMEOUT_S):
                await client.disconnect()
        except _LINK_ERRORS as exc:
            log.debug("ble.disconnect_failed", device=device.target.ref, error=_describe(exc))


class _Session:
    """One connection: the set-up steps, and turning values into complete readings."""

    def __init__(
        self, source: BleSource, device: _Device, client: BleakClient, lost: asyncio.Event
    ) -> None:
        self._source = source
        self._device = device
        self._client = client
        self._lost = lost
        self._ref = device.target.ref
        self._pairing_tried = False
        self._clock = _ClockOffsets()
        self._joiner = GlucoseContextJoiner()
        self._assembler = BodyCompositionAssembler()
        self._temperature_type: str | None = None
        self._racp: BleakGATTCharacteristic | None = None
        self._racp_answer: asyncio.Future[RacpResponse] | None = None
        self._racp_activity = time.monotonic()
        self._records = 0

    # -- set-up on connect ---------------------------------------------------------------------

    async def set_up(self) -> None:
        await self._read_battery()
        await self._sync_time()
        await self._read_temperature_type()
        await self._subscribe()
        if self._racp is not None:
            await self._download_records()

    async def _gatt(self, operation: Callable[[], Awaitable[T]]) -> T:
        """Run a GATT operation; pair and retry once when the device demands a bond."""
        try:
            return await operation()
        except _LINK_ERRORS as exc:
            if self._pairing_tried or not _needs_pairing(exc):
                raise
        await self._pair()
        return await operation()

    async def _pair(self) -> None:
        self._pairing_tried = True
        device = self._device
        device.pairing_required = True
        self._source._changed()
        log.warning(
            "ble.pairing_required",
            device=self._ref,
            action="the device asks to pair: if it has a pairing or Bluetooth button, or shows "
            "a code, put it in pairing mode now",
        )
        try:
            await self._client.pair()
        except _LINK_ERRORS as exc:
            log.error(
                "ble.pairing_failed",
                device=self._ref,
                error=_describe(exc),
                action="put the device in pairing mode (usually: hold its Bluetooth button "
                "until the symbol blinks); the gateway keeps trying by itself",
            )
            raise _PairingFailed(f"pairing failed ({_describe(exc)})") from exc
        device.pairing_required = False
        self._source._changed()
        log.info("ble.paired", device=self._ref)

    async def _read_battery(self) -> None:
        char = self._client.services.get_characteristic(BATTERY_LEVEL)
        if char is None:
            return
        try:
            if "read" in char.properties:
                self._set_battery(await self._gatt(lambda: self._client.read_gatt_char(char)))
            if "notify" in char.properties:
                await self._gatt(lambda: self._client.start_notify(char, self._on_battery))
        except _LINK_ERRORS as exc:
            if self._lost.is_set():
                raise
            log.info("ble.battery_unavailable", device=self._ref, error=_describe(exc))

    def _on_battery(self, _char: BleakGATTCharacteristic, data: bytearray) -> None:
        self._set_battery(data)

    def _set_battery(self, data: bytes | bytearray) -> None:
        try:
            level = decode_battery_level(bytes(data))
        except DecodeError as exc:
            log.info("ble.battery_unreadable", device=self._ref, error=str(exc))
            return
        self._device.battery_level = level
        self._source._changed()
        log.debug("ble.battery", device=self._ref, level=level)

    async def _sync_time(self) -> None:
        char = self._client.services.get_characteristic(CURRENT_TIME)
        if char is None:
            return
        try:
            self._clock.before = await self._read_clock(char)
            self._device.clock_offset_s = self._clock.before
            self._source._changed()
            if "write" not in char.properties:
                log.info("ble.time_not_settable", device=self._ref, offset_s=self._clock.before)
                return
            now = _local_now()
            await self._gatt(
                lambda: self._client.write_gatt_char(char, encode_current_time(now), response=True)
            )
        except _LINK_ERRORS as exc:
            if self._lost.is_set():
                raise
            log.warning("ble.time_sync_failed", device=self._ref, error=_describe(exc))
            return
        # Written: from now on the device stamps with the gateway's time. The read-back only
        # measures how well (a device that keeps whole seconds is up to 1 s behind).
        self._clock.synced_at = now
        self._clock.after = 0.0
        try:
            after = await self._read_clock(char)
        except _LINK_ERRORS as exc:
            if self._lost.is_set():
                raise
            log.info("ble.time_readback_failed", device=self._ref, error=_describe(exc))
            after = None
        if after is not None:
            self._clock.after = after
        self._device.clock_offset_s = self._clock.after
        self._source._changed()
        log.info(
            "ble.time_synced",
            device=self._ref,
            offset_before_s=self._clock.before,
            offset_after_s=self._clock.after,
        )

    async def _read_clock(self, char: BleakGATTCharacteristic) -> float | None:
        """The device clock's offset from the gateway's local clock, or None if unknown."""
        data = await self._gatt(lambda: self._client.read_gatt_char(char))
        arrived = _local_now()
        try:
            device_time = decode_current_time(bytes(data))
        except DecodeError as exc:
            self._decode_failed(CURRENT_TIME, len(data), exc)
            return None
        if device_time is None:
            return None
        # Whole seconds: device time stamps carry no more, and 0.0 means "in step".
        return float(round((device_time - arrived).total_seconds())) + 0.0

    async def _read_temperature_type(self) -> None:
        extra = self._device.profile.extra.get("temperature_type")
        char = None if extra is None else self._client.services.get_characteristic(extra)
        if char is None or "read" not in char.properties:
            return
        try:
            data = await self._gatt(lambda: self._client.read_gatt_char(char))
        except _LINK_ERRORS as exc:
            if self._lost.is_set():
                raise
            log.info("ble.temperature_type_unavailable", device=self._ref, error=_describe(exc))
            return
        if len(data) == 1 and data[0] in TEMPERATURE_TYPES:
            self._temperature_type = TEMPERATURE_TYPES[data[0]]
        else:
            log.info("ble.temperature_type_unreadable", device=self._ref, length=len(data))

    async def _subscribe(self) -> None:
        prof = self._device.profile
        services = self._client.services
        subscribed = 0
        for char_uuid in prof.measurements:
            if char_uuid in _INTERMEDIATE:
                continue
            char = services.get_characteristic(char_uuid)
            if char is None:
                if char_uuid in prof.optional:
                    continue
                raise _ProfileMismatch(f"no characteristic {_short(char_uuid)} on the device")
            callback = partial(self._on_value, char_uuid)
            await self._gatt(partial(self._client.start_notify, char, callback))
            subscribed += 1
            log.debug("ble.subscribed", device=self._ref, characteristic=_short(char_uuid))
        if not subscribed:
            raise _ProfileMismatch(f"no {prof.name} measurement characteristic on the device")
        racp_uuid = prof.record_access_control_point
        racp = None if racp_uuid is None else services.get_characteristic(racp_uuid)
        if racp is not None and prof.name == "glucose":
            await self._gatt(partial(self._client.start_notify, racp, self._on_racp))
            self._racp = racp

    # -- stored records (RACP) -------------------------------------------------------------------

    async def _download_records(self) -> None:
        state = self._device.state
        last = state.last_sequence
        if last is not None and last >= _SEQUENCE_MAX:
            request = report_all_records()  # nothing can be newer; skip what is known
        elif last is None:
            request = report_all_records()
        else:
            request = report_records_from(last + 1)
        log.debug("ble.records_requested", device=self._ref, after=last)
        answer = await self._racp_request(request)
        if answer is not None and answer.response_code in _FILTER_REFUSED and last is not None:
            log.info("ble.racp_filter_unsupported", device=self._ref)
            answer = await self._racp_request(report_all_records())
        if answer is None:
            return
        code = answer.response_code
        if code == RacpResponseCode.SUCCESS:
            log.info("ble.records_downloaded", device=self._ref, records=self._records)
        elif code == RacpResponseCode.NO_RECORDS_FOUND:
            log.debug("ble.no_new_records", device=self._ref)
        else:
            name = code.name if isinstance(code, RacpResponseCode) else f"0x{code:02x}"
            log.warning("ble.racp_failed", device=self._ref, response_code=name)

    async def _racp_request(self, request: RacpRequest) -> RacpResponse | None:
        """Write a request; the device's response, or None (refused, silent, link gone)."""
        assert self._racp is not None
        racp = self._racp
        answer: asyncio.Future[RacpResponse] = asyncio.get_running_loop().create_future()
        self._racp_answer = answer
        data = encode_racp_request(request)
        try:
            await self._gatt(lambda: self._client.write_gatt_char(racp, data, response=True))
        except _LINK_ERRORS as exc:
            if self._lost.is_set():
                raise
            log.warning("ble.racp_refused", device=self._ref, error=_describe(exc))
            return None
        self._racp_activity = time.monotonic()
        if await self._until_answered(answer):
            return answer.result()
        if self._lost.is_set():
            return None
        # The procedure went quiet: abort it, so the next connection can start afresh.
        log.warning("ble.racp_timeout", device=self._ref, idle_s=self._source._racp_timeout)
        aborted: asyncio.Future[RacpResponse] = asyncio.get_running_loop().create_future()
        self._racp_answer = aborted
        abort = encode_racp_request(abort_operation())
        try:
            await self._client.write_gatt_char(racp, abort, response=True)
        except _LINK_ERRORS as exc:
            if self._lost.is_set():
                raise
            log.warning("ble.racp_abort_failed", device=self._ref, error=_describe(exc))
            return None
        self._racp_activity = time.monotonic()
        if await self._until_answered(aborted):
            log.info("ble.racp_aborted", device=self._ref)
        return None

    async def _until_answered(self, answer: asyncio.Future[RacpResponse]) -> bool:
        """Wait for ``answer`` while records keep coming; False after ``racp_timeout`` of
        silence or when the link is lost."""
        lost = asyncio.ensure_future(self._lost.wait())
        try:
            while not answer.done() and not self._lost.is_set():
                idle = time.monotonic() - self._racp_activity
                remaining = self._source._racp_timeout - idle
                if remaining <= 0:
                    return False
                await asyncio.wait(
                    {answer, lost}, timeout=remaining, return_when=asyncio.FIRST_COMPLETED
                )
            return answer.done()
        finally:
            lost.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await lost

    def _on_racp(self, char: BleakGATTCharacteristic, data: bytearray) -> None:
        self._racp_activity = time.monotonic()
        try:
            response = decode_racp_response(bytes(data))
        except DecodeError as exc:
            self._decode_failed(self._racp.uuid if self._racp else char.uuid, len(data), exc)
            return
        answer = self._racp_answer
        if answer is not None and not answer.done():
            answer.set_result(response)

    # -- values -----------------------------------------------------------------------------------

    def _on_value(self, char_uuid: str, _char: BleakGATTCharacteristic, data: bytearray) -> None:
        received_at = _now()
        arrived = _local_now()
        device = self._device
        device.last_seen = received_at
        self._racp_activity = time.monotonic()
        try:
            measurement = decode(char_uuid, bytes(data))
        except DecodeError as exc:
            self._decode_failed(char_uuid, len(data), exc)
            return
        for complete in self._complete(measurement):
            # A glucose reading completed by its context is still a Glucose Measurement.
            char = GLUCOSE_MEASUREMENT if complete.kind == "glucose" else char_uuid
            self._hand_over(char, complete, received_at, arrived)
        self._source._changed()

    def _complete(self, measurement: Measurement) -> list[Measurement]:
        """The complete readings this value finishes (none, one, or a held one and this)."""
        kind = measurement.kind
        if kind == "cuff_pressure":
            self._drop("intermediate value")
            return []
        if kind == "body_composition":
            return self._assembler.feed(measurement)
        if kind == "glucose":
            sequence = measurement.status.get("sequence_number")
            if isinstance(sequence, int) and self._device.state.seen(sequence):
                self._drop("record seen before")
                return []
        if kind in ("glucose", "glucose_context"):
            out = []
            for item in self._joiner.feed(measurement):
                if item.kind == "glucose_context":
                    self._drop("context without its measurement")
                else:
                    out.append(item)
            return out
        if kind == "temperature" and self._temperature_type is not None:
            if "temperature_type" not in measurement.status:
                status = {**measurement.status, "temperature_type": self._temperature_type}
                return [measurement.model_copy(update={"status": status})]
        return [measurement]

    def _hand_over(
        self, char_uuid: str, measurement: Measurement, received_at: datetime, arrived: datetime
    ) -> None:
        device = self._device
        if measurement.kind in _TRANSIENT_KINDS:
            self._drop("intermediate value")
            return
        offset = self._clock.stamped_by(measurement.measured_at, arrived)
        reading = Received(device.target, char_uuid, measurement, received_at, offset)
        try:
            stored = self._source._on_reading(reading)
        except Exception as exc:
            # The consumer's failure must not tear down the BLE stack's callback chain.
            log.error(
                "ble.on_reading_failed",
                device=self._ref,
                characteristic=_short(char_uuid),
                error=type(exc).__name__,
            )
            return
        device.readings += 1
        sequence = measurement.status.get("sequence_number")
        if measurement.kind == "glucose" and isinstance(sequence, int):
            self._records += 1
            if stored is None:
                device.state.advance(sequence)
            else:
                stored.add_done_callback(partial(_advance_when_stored, device.state, sequence))

    def _drop(self, reason: str) -> None:
        self._device.dropped += 1
        log.debug("ble.value_dropped", device=self._ref, reason=reason)

    def _decode_failed(self, char_uuid: str, length: int, exc: DecodeError) -> None:
        self._device.decode_errors += 1
        log.warning(
            "ble.decode_failed",
            device=self._ref,
            characteristic=_short(char_uuid),
            payload_length=length,
            error=str(exc),
        )
        self._source._changed()

    def close(self) -> None:
        """At disconnect: hold back what was half received; the device sends it again whole."""
        now, arrived = _now(), _local_now()
        if self._assembler.flush():
            self._drop("measurement incomplete at disconnect")
        if self._racp is None:
            # Without a record store nothing comes again: pass a held measurement on as is.
            for held in self._joiner.flush():
                self._hand_over(self._device.profile.measurements[0], held, now, arrived)
        elif self._joiner.flush():
            # The context was lost with the link; the meter sends both again next time.
            log.debug("ble.record_deferred", device=self._ref)
        answer = self._racp_answer
        if answer is not None and not answer.done():
            answer.cancel()


def _needs_pairing(exc: BaseException) -> bool:
    """Whether a GATT error says the link needs a bond (bluetoothd: "Not paired")."""
    if isinstance(exc, BleakGATTProtocolError):
        return int(exc.code) in _PAIRING_ATT_ERRORS
    if isinstance(exc, BleakDBusError):
        return exc.dbus_error == _BLUEZ_NOT_PERMITTED and "Not paired" in (
            exc.dbus_error_details or ""
        )
    return False


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


def _local_now() -> datetime:
    """The gateway's local wall-clock time, naive, as devices keep theirs."""
    return datetime.now()
