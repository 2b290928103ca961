"""One driver per device family; ``driver_for`` picks the one for a connected device.

* ``standard.StandardDriver``: devices that follow their SIG health profile.
* ``glucose.GlucoseDriver``: glucose meters, stored records through RACP.
* ``uds.UdsScaleDriver``: scales behind the User Data Service (consent code first).
* ``omron.OmronDriver``: Omron cuffs of a known memory map (stored records from EEPROM).
* ``broadcast.BroadcastListener``: broadcast-only scales (advertisements, no connection).

Every driver gets the base's battery, clock (Current Time or Date Time) and pairing steps.
Adding a device family is adding a driver module, its entry here, and its simulator.
"""

from __future__ import annotations

from bleak.backends.service import BleakGATTServiceCollection

from devices.drivers.base import Driver
from devices.drivers.glucose import GlucoseDriver
from devices.drivers.omron import OmronDriver
from devices.drivers.standard import StandardDriver
from devices.drivers.uds import UdsScaleDriver
from devices.omron import MEMORY_MAPS, OMRON_SERVICE
from devices.profiles import USER_DATA_SERVICE, Profile

__all__ = ["Driver", "driver_for"]

_SCALES = frozenset({"weight", "body_composition"})


def driver_for(
    profile: Profile, services: BleakGATTServiceCollection, model: str | None = None
) -> type[Driver]:
    """The driver for a device of ``profile`` and ``model`` that offers ``services`` (known
    once connected)."""
    if (
        profile.name == "blood_pressure"
        and model in MEMORY_MAPS
        and services.get_service(OMRON_SERVICE) is not None
    ):
        return OmronDriver
    if profile.name in _SCALES and services.get_service(USER_DATA_SERVICE) is not None:
        return UdsScaleDriver
    if profile.record_access_control_point is not None and profile.name == "glucose":
        return GlucoseDriver
    return StandardDriver
