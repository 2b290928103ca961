"""A simulated two-user bathroom scale (Weight Scale Service 0x181D), e.g. one a couple shares.

Each Weight Measurement (0x2A9D) carries the User ID of the person who stepped on, which is
how a shared scale tells its users apart; the gateway maps it to a person through the
device's ``[devices.users]`` table. In random mode the scale alternates between ``users``,
each with their own weight and height. A scale measures, advertises for a few seconds and
sends what it stored (``mode = "cycle"``), or stays connected (the default).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

from devices.models import Measurement, Quantity
from devices.profiles import WEIGHT_MEASUREMENT, WEIGHT_SCALE_FEATURE, WEIGHT_SCALE_SERVICE
from devices.sim.peripheral import Characteristic, Service
from devices.sim.shared_scale import SharedScale

# Weight Scale Feature (uint32): time stamp, multiple users and BMI supported (bits 0-2), weight
# resolution 0.005 kg (value 7 in bits 3-6), height resolution 0.001 m (value 3 in bits 7-9).
WEIGHT_SCALE_FEATURES = (0b111 | 7 << 3 | 3 << 7).to_bytes(4, "little")

# (weight kg, height m) of the people a random-mode scale serves, by position in ``users``.
_PEOPLE = ((82.4, 1.80), (63.1, 1.66), (71.0, 1.74), (55.2, 1.59))


def person_reading(
    rng: random.Random, user_index: int | None, weight_kg: float, height_m: float
) -> dict[str, Any]:
    """Values of one weighing of a person around ``weight_kg``: weight, BMI and height."""
    weight = round(weight_kg + rng.uniform(-0.8, 0.8), 2)
    return {
        "user_index": user_index,
        "values": {
            "body_weight": Quantity(value=weight, unit="kg"),
            "bmi": Quantity(value=round(weight / height_m**2, 1), unit="kg/m2"),
            "height": Quantity(value=height_m, unit="m"),
        },
    }


class SimulatedWeightScale(SharedScale):
    """A scale shared by ``users`` (User IDs; default two people, 1 and 2)."""

    PROFILE = "weight"
    MEASUREMENT = WEIGHT_MEASUREMENT

    def profile_services(self) -> Sequence[Service]:
        return [
            Service(
                WEIGHT_SCALE_SERVICE,
                (
                    Characteristic(WEIGHT_MEASUREMENT, ("indicate",)),
                    Characteristic(WEIGHT_SCALE_FEATURE, ("read",), WEIGHT_SCALE_FEATURES),
                ),
            )
        ]

    def random_reading(self, rng: random.Random) -> Measurement:
        position, user = self.next_user()
        weight, height = _PEOPLE[position % len(_PEOPLE)]
        return Measurement(kind="weight", **person_reading(rng, user, weight, height))
