"""One driver per device family; ``driver_for`` picks the one for a connected device.

* ``standard.StandardDriver``: devices that follow their SIG health profile.
* ``glucose.GlucoseDriver``: glucose meters, stored records through RACP.
* ``uds.UdsScaleDriver``: scales behind the User Data Service (consent code first).
* ``broadcast.BroadcastListener``: broadcast-only scales (advertisements, no connection).

Every driver gets the base's battery, clock (Current Time or Date Time) and pairing steps.
Adding a device family is adding a driver module, its entry here, and its simulator.
"""

from __future__ import annotations

from bleak.backends.service import BleakGATTServiceCollection

from devices.drivers.base import Driver
from devices.drivers.glucose import GlucoseDriver
from devices.drivers.standard import StandardDriver
from devices.drivers.uds import UdsScaleDriver
from devices.profiles import USER_DATA_SERVICE, Profile

__all__ = ["Driver", "driver_for"]

_SCALES = frozenset({"weight", "body_composition"})


def driver_for(profile: Profile, services: BleakGATTServiceCollection) -> type[Driver]:
    """The driver for a device of ``profile`` that offers ``services`` (known once connected)."""
    if profile.name in _SCALES and services.get_service(USER_DATA_SERVICE) is not None:
        return UdsScaleDriver
    if profile.record_access_control_point is not None and profile.name == "glucose":
        return GlucoseDriver
    return StandardDriver
