"""The standard GATT health profiles: subscribe to the measurements, pass each reading on.

Blood pressure, weight, body composition, thermometers, heart rate and pulse oximeters that
follow their SIG profile. Intermediate values (cuff pressure during inflation) are not
subscribed to: they are never readings. Multi-packet body-composition values are joined
(``BodyCompositionAssembler``); what was half received when the link went is not passed on: the
device counts a measurement as delivered only when its last value is acknowledged and sends it
whole next time, and passing the half on would make the pipeline, which recognises a reading by
its device time stamp, keep the half and drop the whole as a duplicate. A thermometer's
Temperature Type characteristic, read once, fills in readings that do not carry their own. A
scale shared by people it does not tell apart (no user index in its weighings) has its
weighings given to a person by weight (``devices.drivers.people``), as broadcast scales do.
"""

from __future__ import annotations

import asyncio
from functools import partial

import structlog
from bleak import BleakClient

from devices.drivers.base import (
    LINK_ERRORS,
    DeviceRecord,
    Driver,
    ProfileMismatch,
    SourceHooks,
    describe,
    short,
)
from devices.drivers.people import PersonFinder
from devices.gatt import BodyCompositionAssembler
from devices.gatt.temperature import TEMPERATURE_TYPES
from devices.models import Measurement
from devices.profiles import INTERMEDIATE_CUFF_PRESSURE

log = structlog.get_logger(__name__)

# Characteristics that carry intermediate values, never readings: not subscribed to.
_INTERMEDIATE = frozenset({INTERMEDIATE_CUFF_PRESSURE})


class StandardDriver(Driver):
    """A device that follows its SIG health profile."""

    def __init__(
        self,
        hooks: SourceHooks,
        device: DeviceRecord,
        client: BleakClient,
        lost: asyncio.Event,
        advertised_name: str | None = None,
    ) -> None:
        super().__init__(hooks, device, client, lost, advertised_name)
        self._assembler = BodyCompositionAssembler()
        self._temperature_type: str | None = None
        people = device.target.people
        self._people = None if people is None else PersonFinder(device, people)

    async def set_up(self) -> None:
        await super().set_up()
        await self._read_temperature_type()
        await self.subscribe()

    async def subscribe(self) -> int:
        """Subscribe to every measurement characteristic present; ProfileMismatch if none."""
        prof = self.device.profile
        subscribed = 0
        for char_uuid in prof.measurements:
            if char_uuid in _INTERMEDIATE:
                continue
            char = self.characteristic(char_uuid)
            if char is None:
                if char_uuid in prof.optional:
                    continue
                raise ProfileMismatch(f"no characteristic {short(char_uuid)} on the device")
            callback = partial(self.on_value, char_uuid)
            await self.gatt(partial(self.client.start_notify, char, callback))
            subscribed += 1
            log.debug("ble.subscribed", device=self.ref, characteristic=short(char_uuid))
        if not subscribed:
            raise ProfileMismatch(f"no {prof.name} measurement characteristic on the device")
        return subscribed

    async def _read_temperature_type(self) -> None:
        extra = self.device.profile.extra.get("temperature_type")
        char = None if extra is None else self.characteristic(extra)
        if char is None or "read" not in char.properties:
            return
        try:
            data = await self.gatt(lambda: self.client.read_gatt_char(char))
        except LINK_ERRORS as exc:
            if self.link_lost():
                raise
            log.info("ble.temperature_type_unavailable", device=self.ref, error=describe(exc))
            return
        if len(data) == 1 and data[0] in TEMPERATURE_TYPES:
            self._temperature_type = TEMPERATURE_TYPES[data[0]]
        else:
            log.info("ble.temperature_type_unreadable", device=self.ref, length=len(data))

    def complete(self, char_uuid: str, measurement: Measurement) -> list[tuple[str, Measurement]]:
        kind = measurement.kind
        if kind == "body_composition":
            whole = self._assembler.feed(measurement)
            return [(char_uuid, self._person_of(m)) for m in whole]
        if kind == "weight":
            return [(char_uuid, self._person_of(measurement))]
        if kind == "temperature" and self._temperature_type is not None:
            if "temperature_type" not in measurement.status:
                status = {**measurement.status, "temperature_type": self._temperature_type}
                return [(char_uuid, measurement.model_copy(update={"status": status}))]
        return super().complete(char_uuid, measurement)

    def _person_of(self, measurement: Measurement) -> Measurement:
        """A scale's weighing without user index, given to its person by weight (or held)."""
        if self._people is None or not PersonFinder.applies_to(measurement):
            return measurement
        return self._people.assign(measurement)

    def is_held(self, measurement: Measurement) -> bool:
        return self._people is not None and PersonFinder.is_held(measurement)

    def close(self) -> None:
        if self._assembler.flush():
            self.drop("measurement incomplete at disconnect")
