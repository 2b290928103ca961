"""Broadcast-only scales: readings from advertisements, never a connection.

A Xiaomi Mi Scale or Mi Body Composition Scale puts each weighing into the service data of its
advertisements and repeats it many times a second for as long as someone stands on it and a
while after (captures: custom-components/ble_monitor issues 366 and 1094, and its
``test_miscale_parser.py``):

1. while the weight settles: frames with ``stabilized`` unset (the weight still moving);
2. the final weight: ``stabilized`` set, the same frame repeated (same scale time stamp; the
   body composition scale adds the impedance once it has measured it);
3. after stepping off: the last weighing repeated with ``load_removed`` set, also right after
   the scale wakes up (ble_monitor issue 366: a stale "weight removed" frame comes first).

The listener hands over exactly one reading per weighing: the first stabilized frame that is
not a "load removed" echo (openScale's ``BluetoothMiScale2`` and ble_monitor take the weight
at the same point). Its repeats are recognised by the weighing's identity (the scale's time
stamp and weight) and not handed over again, also not after a restart: the identities handed
over are kept in the device memory. A scale whose clock is unset sends no usable stamp; then a
weighing ends with the next unsettled or "removed" frame.

The body composition scale publishes a weight as "stabilized" before its impedance is measured
(ble_monitor tells "stabilized weight" from "weight" with impedance; ble-scale-sync's
``tests/scales/mi-scale-2.test.ts`` takes a weighing as complete only with an impedance); a
stabilized frame without
impedance is therefore held until the same weighing comes with its impedance, the person steps
off ("load removed": barefoot contact failed, the weight alone is the reading), or
``IMPEDANCE_WAIT_S`` pass, whichever is first.

A weighing in the scale's object mode (``status["weighing_mode"] == "object"``: luggage, a pet)
is no body weight and is not handed over.

On a scale shared by several people (``DeviceTarget.people``) each weighing is matched to a
person by weight (``devices.drivers.people``); one that fits nobody or several people is handed
over as held (``Received.held``, no user index) and counted (``DeviceStatus.held_ambiguous``),
never guessed.
"""

from __future__ import annotations

import asyncio
from datetime import datetime

import structlog
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData

from devices.broadcast import decode as decode_broadcast
from devices.drivers.base import DeviceRecord, SourceHooks, now_utc, short
from devices.drivers.people import PersonFinder
from devices.gatt import DecodeError
from devices.models import Measurement
from devices.profiles import BroadcastProfile
from devices.targets import Received

log = structlog.get_logger(__name__)

_HANDED = "broadcast_handed"  # identities of the weighings handed over (most recent last)
_KEEP = 32  # identities remembered: far more than a scale repeats within its advertising time
_NO_STAMP = "-"
# How long a body composition weighing without impedance waits for the impedance frame.
IMPEDANCE_WAIT_S = 5.0


class BroadcastListener:
    """Turns one broadcast scale's advertisements into one reading per weighing."""

    def __init__(self, hooks: SourceHooks, device: DeviceRecord, profile: BroadcastProfile) -> None:
        self.hooks = hooks
        self.device = device
        self.profile = profile
        self.ref = device.target.ref
        self._last_payload: bytes | None = None
        self._waits_for_impedance = profile.name == "xiaomi_body_composition"
        self._held: tuple[str, Measurement, datetime] | None = None
        self._held_timer: asyncio.TimerHandle | None = None
        people = device.target.people
        self._people = None if people is None else PersonFinder(device, people)

    def on_advertisement(self, _device: BLEDevice, adv: AdvertisementData) -> None:
        device = self.device
        device.last_seen = now_utc()
        payload = adv.service_data.get(self.profile.service)
        if payload is None or payload == self._last_payload:
            # An advertisement without our service data, or the same frame again (bluetoothd
            # reports every advertisement through an RSSI change): nothing new to look at.
            self.hooks.changed()
            return
        self._last_payload = payload
        measurement = self._decode(bytes(payload))
        if measurement is not None:
            self._consider(measurement, now_utc())
        self.hooks.changed()

    def _decode(self, payload: bytes) -> Measurement | None:
        try:
            return decode_broadcast(self.profile.name, self.profile.service, payload)
        except DecodeError as exc:
            self.device.decode_errors += 1
            log.warning(
                "ble.decode_failed",
                device=self.ref,
                characteristic=short(self.profile.service),
                payload_length=len(payload),
                error=str(exc),
            )
            return None

    def _consider(self, measurement: Measurement, received_at: datetime) -> None:
        stabilized = bool(measurement.status.get("stabilized"))
        removed = bool(measurement.status.get("load_removed"))
        if not stabilized or removed:
            # Still settling, or the echo after stepping off: a new weighing may come next.
            self.flush()
            self._forget_unstamped()
            return
        identity = _identity(measurement)
        if identity is None:
            self._drop("stabilized frame without a weight")
            return
        if identity in self._handed():
            return  # a repeat of the weighing already handed over
        if measurement.status.get("weighing_mode") == "object":
            # Luggage or a pet in the scale's object mode: no one's body weight.
            self._remember(self._handed(), identity)
            self._drop("object weighing, not a person")
            return
        held = self._held
        if held is not None and held[0] != identity:
            self.flush()  # another weighing began: the held one is complete as it is
        elif held is not None and "impedance" not in measurement.values:
            return  # a repeat of the held frame
        if self._waits_for_impedance and "impedance" not in measurement.values:
            self._hold(identity, measurement, received_at)
            return
        self._cancel_hold()
        self._hand_over(identity, measurement, received_at)

    def _hold(self, identity: str, measurement: Measurement, received_at: datetime) -> None:
        self._held = (identity, measurement, received_at)
        loop = asyncio.get_running_loop()
        self._held_timer = loop.call_later(IMPEDANCE_WAIT_S, self._impedance_wait_over)

    def _impedance_wait_over(self) -> None:
        self._held_timer = None
        self.flush()
        self.hooks.changed()

    def _cancel_hold(self) -> None:
        self._held = None
        if self._held_timer is not None:
            self._held_timer.cancel()
            self._held_timer = None

    def flush(self) -> None:
        """Hand over a weighing held for its impedance as it is (also when listening ends)."""
        held = self._held
        self._cancel_hold()
        if held is not None and held[0] not in self._handed():
            self._hand_over(*held)

    def _hand_over(self, identity: str, measurement: Measurement, received_at: datetime) -> None:
        self._remember(self._handed(), identity)
        held = False
        if self._people is not None and PersonFinder.applies_to(measurement):
            measurement = self._people.assign(measurement)
            held = PersonFinder.is_held(measurement)
        reading = Received(
            self.device.target, self.profile.service, measurement, received_at, held=held
        )
        try:
            self.hooks.on_reading(reading)
        except Exception as exc:
            log.error("ble.on_reading_failed", device=self.ref, error=type(exc).__name__)
            return
        if held:  # counted in ``held_ambiguous``, not as a reading
            return
        self.device.readings += 1
        log.debug("ble.weighing_handed_over", device=self.ref)

    def _handed(self) -> list[str]:
        value = self.device.memory.get(_HANDED)
        return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []

    def _remember(self, handed: list[str], identity: str) -> None:
        self.device.memory.set(_HANDED, [*handed, identity][-_KEEP:])

    def _forget_unstamped(self) -> None:
        handed = self._handed()
        kept = [h for h in handed if not h.startswith(_NO_STAMP + "|")]
        if kept != handed:
            self.device.memory.set(_HANDED, kept)

    def _drop(self, reason: str) -> None:
        self.device.dropped += 1
        log.debug("ble.value_dropped", device=self.ref, reason=reason)


def _identity(measurement: Measurement) -> str | None:
    """What tells one weighing from another: the scale's stamp and the weight it settled on."""
    weight = measurement.values.get("body_weight")
    if weight is None:
        return None
    stamp = _NO_STAMP if measurement.measured_at is None else measurement.measured_at.isoformat()
    return f"{stamp}|{weight.value:g}|{weight.unit}"
