"""A simulated Beurer BM85-style cuff: the bytes its Blood Pressure Measurements really carry.

Beurer's BM85 (and, by the official app's list, BM48, BM59 and Elite 900) sends the user id
without its flag, pulse rate and measurement status big-endian and a reserved flag bit set
(derdilla/blood-pressure-monitor-fl PRs #735/#737, captures asserted in its
``ble_measurement_data_test.dart``). The bytes come from ``devices.gatt.encode(...,
model=...)``, the quirk table's own encoder; the cuff advertises as ``BM85`` by default, as the
real one does, so the gateway can recognise its model from the name.
"""

from __future__ import annotations

from typing import Any

from devices.gatt import encode
from devices.models import Measurement
from devices.profiles import BLOOD_PRESSURE_MEASUREMENT
from devices.sim.blood_pressure_cuff import SimulatedBloodPressureCuff


class SimulatedBeurerCuff(SimulatedBloodPressureCuff):
    """A blood pressure cuff that sends the bytes of the quirk table's ``model``."""

    def __init__(self, *args: Any, model: str = "beurer-bm85", **kwargs: Any) -> None:
        self.model = model
        super().__init__(*args, **kwargs)

    def payloads(self, reading: Measurement) -> list[tuple[str, bytes]]:
        data = encode(BLOOD_PRESSURE_MEASUREMENT, reading, model=self.model)
        return [(BLOOD_PRESSURE_MEASUREMENT, data)]
