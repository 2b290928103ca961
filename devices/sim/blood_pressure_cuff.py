"""A simulated blood-pressure cuff (Blood Pressure Service 0x1810), e.g. an A&D or Omron arm cuff.

Like a real cuff it keeps readings in memory and hands them over once a central enables
indications on Blood Pressure Measurement (0x2A35); a reading handed over is gone from the
cuff. While it measures with a central listening on Intermediate Cuff Pressure (0x2A36) it
notifies the rising cuff pressure first, as cuffs do during inflation. Clock, battery,
connect-measure-disconnect cycles and faults come from
:class:`devices.sim.health_device.SimulatedHealthDevice`.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from devices.gatt import encode
from devices.models import Measurement, Quantity
from devices.profiles import (
    BLOOD_PRESSURE_FEATURE,
    BLOOD_PRESSURE_MEASUREMENT,
    BLOOD_PRESSURE_SERVICE,
    INTERMEDIATE_CUFF_PRESSURE,
)
from devices.sim.health_device import SimulatedHealthDevice
from devices.sim.peripheral import Characteristic, Service

_MMHG = "mm[Hg]"
# Blood Pressure Feature: no optional status detection is claimed.
_FEATURES = b"\x00\x00"
_INFLATION_STEPS = (60.0, 120.0, 170.0)


class SimulatedBloodPressureCuff(SimulatedHealthDevice):
    """A cuff with a script of stored readings, or (``readings=None``) endless random ones.

    A reading without ``measured_at`` is stamped with the cuff's own clock, one without a mean
    arterial pressure gets the one a cuff computes. In connected mode, readings go out one per
    ``interval_s`` while the central is subscribed, the first right after it subscribes; when
    the script is done the cuff stays connected and silent.
    """

    PROFILE = "blood_pressure"
    MEASUREMENT = BLOOD_PRESSURE_MEASUREMENT

    def profile_services(self) -> Sequence[Service]:
        return [
            Service(
                BLOOD_PRESSURE_SERVICE,
                (
                    Characteristic(BLOOD_PRESSURE_MEASUREMENT, ("indicate",)),
                    Characteristic(INTERMEDIATE_CUFF_PRESSURE, ("notify",)),
                    Characteristic(BLOOD_PRESSURE_FEATURE, ("read",), _FEATURES),
                ),
            )
        ]

    def random_reading(self, rng: random.Random) -> Measurement:
        systolic = rng.randint(110, 150)
        diastolic = min(rng.randint(65, 95), systolic - 20)
        return Measurement(
            kind="blood_pressure",
            values={
                "systolic": Quantity(value=systolic, unit=_MMHG),
                "diastolic": Quantity(value=diastolic, unit=_MMHG),
                "pulse_rate": Quantity(value=rng.randint(55, 95), unit="/min"),
            },
        )

    def prepare(self, reading: Measurement) -> Measurement:
        """Add the mean arterial pressure a cuff derives when the reading does not carry one."""
        values = reading.values
        if "mean_arterial_pressure" in values or not {"systolic", "diastolic"} <= set(values):
            return reading
        systolic, diastolic = values["systolic"], values["diastolic"]
        if systolic.unit != diastolic.unit:
            return reading
        mean = diastolic.value + (systolic.value - diastolic.value) / 3
        digits = 0 if systolic.unit == _MMHG else 1
        return reading.model_copy(
            update={
                "values": {
                    **values,
                    "mean_arterial_pressure": Quantity(
                        value=round(mean, digits), unit=systolic.unit
                    ),
                }
            }
        )

    def payloads(self, reading: Measurement) -> list[tuple[str, bytes]]:
        values = []
        if (
            self.mode == "connected"
            and self.connected
            and self.is_notifying(INTERMEDIATE_CUFF_PRESSURE)
        ):
            # Measuring right now, with the central watching the cuff inflate.
            unit = reading.values["systolic"].unit if "systolic" in reading.values else _MMHG
            for pressure in _INFLATION_STEPS:
                pressure_now = pressure if unit == _MMHG else round(pressure * 0.133322, 1)
                values.append(
                    (
                        INTERMEDIATE_CUFF_PRESSURE,
                        encode(
                            INTERMEDIATE_CUFF_PRESSURE,
                            Measurement(
                                kind="cuff_pressure",
                                values={"cuff_pressure": Quantity(value=pressure_now, unit=unit)},
                            ),
                        ),
                    )
                )
        values.append((BLOOD_PRESSURE_MEASUREMENT, encode(BLOOD_PRESSURE_MEASUREMENT, reading)))
        return values
