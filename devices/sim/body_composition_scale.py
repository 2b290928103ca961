"""A simulated body-composition scale (Body Composition Service 0x181B), shared by two users.

A full Body Composition Measurement (0x2A9C) does not fit one indication at the default ATT
MTU (20 octets of payload), so the scale splits it as the specification says, into packets
with the "multiple packet measurement" flag (``devices.gatt.split_body_composition``); the
gateway joins them again. Like the weight scale it tells its users apart by User ID.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from devices.gatt import split_body_composition
from devices.models import Measurement, Quantity
from devices.profiles import (
    BODY_COMPOSITION_FEATURE,
    BODY_COMPOSITION_MEASUREMENT,
    BODY_COMPOSITION_SERVICE,
)
from devices.sim.peripheral import Characteristic, Service
from devices.sim.shared_scale import SharedScale

# Body Composition Feature (uint32): every optional field supported (bits 0-10), mass resolution
# 0.005 kg (value 7 in bits 11-14), height resolution 0.001 m (value 3 in bits 15-17).
BODY_COMPOSITION_FEATURES = (0x7FF | 7 << 11 | 3 << 15).to_bytes(4, "little")

# (weight kg, height m, body fat %) of the people a random-mode scale serves.
_PEOPLE = ((82.4, 1.80, 21.0), (63.1, 1.66, 27.5), (71.0, 1.74, 18.2), (55.2, 1.59, 24.9))


class SimulatedBodyCompositionScale(SharedScale):
    """A body-composition scale shared by ``users`` (default 1 and 2)."""

    PROFILE = "body_composition"
    MEASUREMENT = BODY_COMPOSITION_MEASUREMENT

    def profile_services(self) -> Sequence[Service]:
        return [
            Service(
                BODY_COMPOSITION_SERVICE,
                (
                    Characteristic(BODY_COMPOSITION_MEASUREMENT, ("indicate",)),
                    Characteristic(BODY_COMPOSITION_FEATURE, ("read",), BODY_COMPOSITION_FEATURES),
                ),
            )
        ]

    def random_reading(self, rng: random.Random) -> Measurement:
        position, user = self.next_user()
        weight, height, fat = _PEOPLE[position % len(_PEOPLE)]
        weight = round(weight + rng.uniform(-0.8, 0.8), 2)
        fat = round(fat + rng.uniform(-1.0, 1.0), 1)
        fat_free = round(weight * (1 - fat / 100), 2)
        muscle = round(fat_free * 0.9, 2)

        def kg(value: float) -> Quantity:
            return Quantity(value=value, unit="kg")

        return Measurement(
            kind="body_composition",
            user_index=user,
            values={
                "body_fat_percentage": Quantity(value=fat, unit="%"),
                "basal_metabolism": Quantity(value=round(7000 + rng.uniform(-500, 500)), unit="kJ"),
                "muscle_percentage": Quantity(value=round(muscle / weight * 100, 1), unit="%"),
                "muscle_mass": kg(muscle),
                "fat_free_mass": kg(fat_free),
                "soft_lean_mass": kg(round(fat_free * 0.95, 2)),
                "body_water_mass": kg(round(fat_free * 0.73, 2)),
                "impedance": Quantity(value=round(rng.uniform(450, 600), 1), unit="Ohm"),
                "body_weight": kg(weight),
                "height": Quantity(value=height, unit="m"),
            },
        )

    def payloads(self, reading: Measurement) -> list[tuple[str, bytes]]:
        return [
            (BODY_COMPOSITION_MEASUREMENT, packet)
            for packet in split_body_composition(reading, self.mtu - 3)
        ]
