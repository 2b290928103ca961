"""A simulated finger pulse oximeter (Pulse Oximeter Service 0x1822).

Spot-check readings (PLX Spot-Check Measurement 0x2A5E, indicated, time-stamped) are stored
and sent like any other device's. With ``continuous`` the oximeter also streams PLX Continuous
Measurement (0x2A5F) notifications every ``interval_s`` while a central listens, as a clip worn
for monitoring does; those carry no time stamp and are never stored.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence
from typing import Any

from devices.gatt import encode
from devices.models import Measurement, Quantity
from devices.profiles import (
    PLX_CONTINUOUS_MEASUREMENT,
    PLX_FEATURES,
    PLX_SPOT_CHECK_MEASUREMENT,
    PULSE_OXIMETER_SERVICE,
)
from devices.sim.health_device import SimulatedHealthDevice
from devices.sim.peripheral import Characteristic, Service

# PLX Features (uint16): time stamp for spot-check measurements supported (bit 3).
PLX_FEATURE_BITS = (1 << 3).to_bytes(2, "little")


def _spo2_values(rng: random.Random) -> dict[str, Quantity]:
    return {
        "spo2": Quantity(value=rng.randint(93, 99), unit="%"),
        "pulse_rate": Quantity(value=rng.randint(55, 95), unit="/min"),
    }


class SimulatedPulseOximeter(SimulatedHealthDevice):
    """Spot-checks (scripted or random); with ``continuous``, a live stream as well."""

    PROFILE = "spo2"
    MEASUREMENT = PLX_SPOT_CHECK_MEASUREMENT

    def __init__(self, *args: Any, continuous: bool = False, **kwargs: Any) -> None:
        self.continuous = continuous
        self._stream: asyncio.Task[None] | None = None
        super().__init__(*args, **kwargs)

    def profile_services(self) -> Sequence[Service]:
        return [
            Service(
                PULSE_OXIMETER_SERVICE,
                (
                    Characteristic(PLX_SPOT_CHECK_MEASUREMENT, ("indicate",)),
                    Characteristic(PLX_CONTINUOUS_MEASUREMENT, ("notify",)),
                    Characteristic(PLX_FEATURES, ("read",), PLX_FEATURE_BITS),
                ),
            )
        ]

    def random_reading(self, rng: random.Random) -> Measurement:
        return Measurement(kind="spo2", values=_spo2_values(rng))

    def on_notify_started(self, char_uuid: str) -> None:
        super().on_notify_started(char_uuid)
        if char_uuid == PLX_CONTINUOUS_MEASUREMENT and self.continuous and self._stream is None:
            self._stream = self.spawn(self._streaming(), "continuous")

    def on_notify_stopped(self, char_uuid: str) -> None:
        super().on_notify_stopped(char_uuid)
        if char_uuid == PLX_CONTINUOUS_MEASUREMENT:
            self._stop_stream()

    def on_disconnected(self) -> None:
        super().on_disconnected()
        self._stop_stream()

    def _stop_stream(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            stream.cancel()

    async def _streaming(self) -> None:
        while True:
            reading = Measurement(kind="spo2", values=_spo2_values(self._random))
            data = encode(PLX_CONTINUOUS_MEASUREMENT, reading)
            if not await self.send_value(PLX_CONTINUOUS_MEASUREMENT, data):
                return
            await asyncio.sleep(max(self.interval_s, 0.001))
