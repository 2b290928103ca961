"""A simulated chest heart-rate strap (Heart Rate Service 0x180D).

It notifies Heart Rate Measurement (0x2A37) about once a second (``interval_s``) while a central
listens: the heart rate, sensor contact, the RR intervals since the last notification (1/1024 s)
and, every tenth notification as the specification suggests, the energy expended so far. Body
Sensor Location (0x2A38) reads "chest"; writing 0x01 to the Heart Rate Control Point (0x2A39)
resets the energy expended. A strap keeps no clock, so it has no Current Time Service and its
readings carry no time stamp. It streams; it does not store, so it has no cycle mode.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

from devices.gatt import encode
from devices.models import Measurement, Quantity
from devices.profiles import (
    BODY_SENSOR_LOCATION,
    HEART_RATE_CONTROL_POINT,
    HEART_RATE_MEASUREMENT,
    HEART_RATE_SERVICE,
)
from devices.sim.health_device import SimulatedHealthDevice
from devices.sim.peripheral import AttError, Characteristic, Service

_CHEST = b"\x01"
_RESET_ENERGY_EXPENDED = b"\x01"
_CONTROL_POINT_NOT_SUPPORTED = 0x80  # Heart Rate Service application error
_ENERGY_EVERY = 10


class SimulatedHeartRateStrap(SimulatedHealthDevice):
    """Scripted heart rates (then silence), or an endless random walk without a script."""

    PROFILE = "heart_rate"
    MEASUREMENT = HEART_RATE_MEASUREMENT
    KEEPS_TIME = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if kwargs.get("mode", "connected") != "connected":
            raise ValueError("a heart-rate strap streams while connected; mode must be connected")
        self._rate = 72.0
        self._last_rate = 0.0
        self._energy_j = 0.0
        super().__init__(*args, **kwargs)

    @property
    def energy_expended_kj(self) -> int:
        return int(self._energy_j // 1000)

    def profile_services(self) -> Sequence[Service]:
        return [
            Service(
                HEART_RATE_SERVICE,
                (
                    Characteristic(HEART_RATE_MEASUREMENT, ("notify",)),
                    Characteristic(BODY_SENSOR_LOCATION, ("read",), _CHEST),
                    Characteristic(HEART_RATE_CONTROL_POINT, ("write",)),
                ),
            )
        ]

    def random_reading(self, rng: random.Random) -> Measurement:
        self._rate = min(175.0, max(48.0, self._rate + rng.uniform(-3.0, 3.0)))
        return Measurement(
            kind="heart_rate", values={"heart_rate": Quantity(value=round(self._rate), unit="/min")}
        )

    def payloads(self, reading: Measurement) -> list[tuple[str, bytes]]:
        rate = reading.values["heart_rate"].value if "heart_rate" in reading.values else 0.0
        status = dict(reading.status)
        status.setdefault("sensor_contact", "detected")
        values = dict(reading.values)
        if rate > 0 and "rr_intervals" not in status:
            beat = 60.0 / rate
            period = max(self.interval_s, beat)
            status["rr_intervals"] = [round(beat, 3)] * max(1, round(period / beat))
        self._last_rate = rate
        if "energy_expended" not in values and (self.delivered + 1) % _ENERGY_EVERY == 0:
            energy = min(self.energy_expended_kj, 0xFFFF)
            values["energy_expended"] = Quantity(value=energy, unit="kJ")
        reading = reading.model_copy(update={"status": status, "values": values})
        return [(HEART_RATE_MEASUREMENT, encode(HEART_RATE_MEASUREMENT, reading))]

    def on_write(self, char_uuid: str, data: bytes) -> None:
        if char_uuid == HEART_RATE_CONTROL_POINT:
            if data != _RESET_ENERGY_EXPENDED:
                raise AttError(_CONTROL_POINT_NOT_SUPPORTED, "Control Point Not Supported")
            self._energy_j = 0.0
            return
        super().on_write(char_uuid, data)

    def on_value_sent(self, char_uuid: str, data: bytes) -> None:
        super().on_value_sent(char_uuid, data)
        if char_uuid == HEART_RATE_MEASUREMENT:
            # About 0.4 kJ per heartbeat-minute of effort: enough to make the counter move.
            minutes = max(self.interval_s, 0.001) / 60
            self._energy_j += self._last_rate * 0.4 * minutes * 1000
