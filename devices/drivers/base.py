"""What every connected device's driver does, whatever its family.

A driver is one connection's worth of work for one device family: the set-up steps after the
link is up, and turning values into complete readings. The connection manager
(``devices.source``) finds the device, connects, creates the family's driver (see
``devices.drivers.driver_for``), awaits ``set_up()``, waits for the link to drop and calls
``close()``. The base class here gives every driver:

* ``gatt()``: a GATT operation that pairs and retries once when the device demands a bond
  (ATT "Insufficient Authentication"/"Encryption", which bluetoothd reports as
  ``NotPermitted: Not paired``); ``ble.pairing_required`` says what the user must do and
  ``ble.pairing_failed`` when the device would not pair (not in pairing mode).
* Battery Level (0x2A19), read and followed when present.
* The device clock (``devices.drivers.clock``): Current Time, or Date Time where a device has
  only that, with the offset every ``Received`` carries.
* ``on_value()``: decode (with the model's quirks: the configured ``model``, else the one the
  device's advertised name identifies, ``devices.gatt.quirks.model_for_name``), complete, hand
  over. One value that does not decode is counted, logged without personal data and skipped;
  the link stays up.

Logs name a device only by its ``ref``: a BLE address is personal data, and so are payloads and
reading values.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

import structlog
from bleak import BleakClient
from bleak.backends.characteristic import BleakGATTCharacteristic

from devices.drivers.clock import ClockSync
from devices.drivers.link import (
    LINK_ERRORS,
    PairingFailed,
    ProfileMismatch,
    describe,
    local_now,
    needs_pairing,
    now_utc,
    short,
)
from devices.gatt import DecodeError, decode, decode_battery_level
from devices.gatt.quirks import model_for_name
from devices.models import Measurement
from devices.profiles import BATTERY_LEVEL, Profile
from devices.state import DeviceMemory
from devices.targets import DeviceStatus, DeviceTarget, Received

log = structlog.get_logger(__name__)

T = TypeVar("T")

# Kinds that are never passed on even if a device sends them (the pipeline drops them too).
TRANSIENT_KINDS = frozenset({"cuff_pressure", "glucose_context"})


@dataclass(slots=True)
class DeviceRecord:
    """One configured device as the source keeps it: target, profile, memory and counters."""

    target: DeviceTarget
    profile: Profile
    memory: DeviceMemory
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
    held_ambiguous: int = 0
    held_at: datetime | None = None
    consent_refused: bool = False

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
            held_ambiguous=self.held_ambiguous,
            held_at=self.held_at,
            consent_refused=self.consent_refused,
        )


@dataclass(frozen=True, slots=True)
class SourceHooks:
    """What a driver may ask of the source that runs it."""

    # May return a future set True once the reading is stored (and every one handed over before
    # it): then what the device counts as delivered waits for that, not for the hand-over.
    on_reading: Callable[[Received], asyncio.Future[bool] | None]
    changed: Callable[[], None]  # a status field changed: wake whoever waits on status
    racp_timeout: float  # seconds a stored-record procedure may stay silent


class Driver:
    """One connection to one device; subclasses add their family's steps (see module doc)."""

    def __init__(
        self,
        hooks: SourceHooks,
        device: DeviceRecord,
        client: BleakClient,
        lost: asyncio.Event,
        advertised_name: str | None = None,
    ) -> None:
        self.hooks = hooks
        self.device = device
        self.client = client
        # The consumer's "stored" future for the last reading handed over (None: no promise).
        self.last_stored: asyncio.Future[bool] | None = None
        self.lost = lost  # set when the link drops
        self.ref = device.target.ref
        # The quirks to decode with: configured, or recognised from the advertised name.
        self.model = device.target.model or model_for_name(advertised_name)
        self._pairing_tried = False
        self.clock = ClockSync(self)

    # -- set-up on connect ---------------------------------------------------------------------

    async def set_up(self) -> None:
        """The family's steps after connecting; the base reads the battery and sets the clock."""
        await self.read_battery()
        await self.clock.sync()

    def link_lost(self) -> bool:
        return self.lost.is_set()

    async def gatt(self, operation: Callable[[], Awaitable[T]]) -> T:
        """Run a GATT operation; pair and retry once when the device demands a bond."""
        try:
            return await operation()
        except LINK_ERRORS as exc:
            if self._pairing_tried or not needs_pairing(exc):
                raise
        await self._pair()
        return await operation()

    async def _pair(self) -> None:
        self._pairing_tried = True
        device = self.device
        device.pairing_required = True
        self.hooks.changed()
        log.warning(
            "ble.pairing_required",
            device=self.ref,
            action="the device asks to pair: if it has a pairing or Bluetooth button, or shows "
            "a code, put it in pairing mode now",
        )
        try:
            await self.client.pair()
        except LINK_ERRORS as exc:
            log.error(
                "ble.pairing_failed",
                device=self.ref,
                error=describe(exc),
                action="put the device in pairing mode (usually: hold its Bluetooth button "
                "until the symbol blinks); the gateway keeps trying by itself",
            )
            raise PairingFailed(f"pairing failed ({describe(exc)})") from exc
        device.pairing_required = False
        self.hooks.changed()
        log.info("ble.paired", device=self.ref)

    def characteristic(self, uuid: str) -> BleakGATTCharacteristic | None:
        return self.client.services.get_characteristic(uuid)

    async def read_battery(self) -> None:
        char = self.characteristic(BATTERY_LEVEL)
        if char is None:
            return
        try:
            if "read" in char.properties:
                self._set_battery(await self.gatt(lambda: self.client.read_gatt_char(char)))
            if "notify" in char.properties:
                await self.gatt(lambda: self.client.start_notify(char, self._on_battery))
        except LINK_ERRORS as exc:
            if self.link_lost():
                raise
            log.info("ble.battery_unavailable", device=self.ref, error=describe(exc))

    def _on_battery(self, _char: BleakGATTCharacteristic, data: bytearray) -> None:
        self._set_battery(data)

    def _set_battery(self, data: bytes | bytearray) -> None:
        try:
            level = decode_battery_level(bytes(data))
        except DecodeError as exc:
            log.info("ble.battery_unreadable", device=self.ref, error=str(exc))
            return
        self.device.battery_level = level
        self.hooks.changed()
        log.debug("ble.battery", device=self.ref, level=level)

    # -- values -----------------------------------------------------------------------------------

    def on_value(self, char_uuid: str, _char: BleakGATTCharacteristic, data: bytearray) -> None:
        """A notification or indication: decode, complete, hand over."""
        received_at = now_utc()
        arrived = local_now()
        self.device.last_seen = received_at
        self.value_arrived()
        measurement = self.decode(char_uuid, bytes(data))
        if measurement is not None:
            for char, complete in self.complete(char_uuid, measurement):
                self.hand_over(char, complete, received_at, arrived)
        self.hooks.changed()

    def value_arrived(self) -> None:
        """Hook: any value arrived (the glucose driver keeps its RACP procedure alive)."""

    def decode(self, char_uuid: str, data: bytes) -> Measurement | None:
        """The decoded value with the target's model quirks, or None (counted and logged)."""
        try:
            return decode(char_uuid, data, **self.decode_options())
        except DecodeError as exc:
            self.decode_failed(char_uuid, len(data), exc)
            return None

    def decode_options(self) -> dict[str, str]:
        return {} if self.model is None else {"model": self.model}

    def complete(self, char_uuid: str, measurement: Measurement) -> list[tuple[str, Measurement]]:
        """The complete readings (characteristic, reading) this value finishes; default: itself."""
        if measurement.kind == "cuff_pressure":
            self.drop("intermediate value")
            return []
        return [(char_uuid, measurement)]

    def hand_over(
        self, char_uuid: str, measurement: Measurement, received_at: datetime, arrived: datetime
    ) -> bool:
        """Pass one complete reading on; False if it was not (transient, or the consumer failed)."""
        device = self.device
        if measurement.kind in TRANSIENT_KINDS:
            self.drop("intermediate value")
            return False
        offset = self.clock.offsets.stamped_by(measurement.measured_at, arrived)
        held = self.is_held(measurement)
        reading = Received(device.target, char_uuid, measurement, received_at, offset, held=held)
        try:
            self.last_stored = self.hooks.on_reading(reading)
        except Exception as exc:
            # The consumer's failure must not tear down the BLE stack's callback chain.
            log.error(
                "ble.on_reading_failed",
                device=self.ref,
                characteristic=short(char_uuid),
                error=type(exc).__name__,
            )
            return False
        if not held:  # a held weighing is counted in ``held_ambiguous``, not as a reading
            device.readings += 1
        return True

    def is_held(self, measurement: Measurement) -> bool:
        """Hook: whether this reading is a shared scale's weighing that fits no one person
        (handed over as ``Received.held``); scale drivers with people say so."""
        return False

    async def handed_over_stored(self) -> bool:
        """Whether everything handed over so far is on disk, waiting up to ``racp_timeout`` for
        the consumer to say so (it confirms in order: the last reading's future covers all)."""
        stored = self.last_stored
        if stored is None:
            return True
        try:
            async with asyncio.timeout(self.hooks.racp_timeout):
                return await asyncio.shield(stored)
        except TimeoutError:
            return False

    def drop(self, reason: str) -> None:
        self.device.dropped += 1
        log.debug("ble.value_dropped", device=self.ref, reason=reason)

    def decode_failed(self, char_uuid: str, length: int, exc: DecodeError) -> None:
        self.device.decode_errors += 1
        log.warning(
            "ble.decode_failed",
            device=self.ref,
            characteristic=short(char_uuid),
            payload_length=length,
            error=str(exc),
        )
        self.hooks.changed()

    def close(self) -> None:
        """At disconnect: let go of anything half received (the device sends it again whole)."""


__all__ = [
    "LINK_ERRORS",
    "TRANSIENT_KINDS",
    "DeviceRecord",
    "Driver",
    "PairingFailed",
    "ProfileMismatch",
    "SourceHooks",
    "describe",
    "local_now",
    "needs_pairing",
    "now_utc",
    "short",
]
