"""A simulated fever thermometer (Health Thermometer Service 0x1809), e.g. an ear thermometer.

It indicates Temperature Measurement (0x2A1C) with a time stamp and, as the specification asks
of a device that only ever measures at one body site, tells that site through the Temperature
Type characteristic (0x2A1D) instead of a field in every measurement. Measure, advertise, send,
hang up (``mode = "cycle"``), or stay connected (the default).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

from devices.gatt.temperature import TEMPERATURE_TYPES
from devices.models import Measurement, Quantity
from devices.profiles import (
    HEALTH_THERMOMETER_SERVICE,
    TEMPERATURE_MEASUREMENT,
    TEMPERATURE_TYPE,
)
from devices.sim.health_device import SimulatedHealthDevice
from devices.sim.peripheral import Characteristic, Service

_TYPE_CODES = {name: code for code, name in TEMPERATURE_TYPES.items()}


class SimulatedThermometer(SimulatedHealthDevice):
    """A thermometer measuring at ``site`` (a Temperature Type name, default "ear")."""

    PROFILE = "temperature"
    MEASUREMENT = TEMPERATURE_MEASUREMENT

    def __init__(self, *args: Any, site: str = "ear", **kwargs: Any) -> None:
        if site not in _TYPE_CODES:
            raise ValueError(f"site must be one of {', '.join(_TYPE_CODES)}, not {site!r}")
        self.site = site
        super().__init__(*args, **kwargs)

    def profile_services(self) -> Sequence[Service]:
        return [
            Service(
                HEALTH_THERMOMETER_SERVICE,
                (
                    Characteristic(TEMPERATURE_MEASUREMENT, ("indicate",)),
                    Characteristic(TEMPERATURE_TYPE, ("read",), bytes([_TYPE_CODES[self.site]])),
                ),
            )
        ]

    def random_reading(self, rng: random.Random) -> Measurement:
        # Mostly normal, now and then a fever.
        value = rng.uniform(38.0, 39.4) if rng.random() < 0.2 else rng.uniform(36.2, 37.4)
        return Measurement(
            kind="temperature",
            values={"body_temperature": Quantity(value=round(value, 1), unit="Cel")},
        )
