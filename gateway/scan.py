"""``health-gateway scan``: nearby BLE devices that advertise a health service.

Discovery is filtered by the health services' UUIDs (``devices.profiles``), so only devices that
put one of them in their advertisement are listed, each with the profile to configure it as and
the signal strength of its last advertisement. A device that advertises several health services
(a body-composition scale usually advertises the Weight Scale Service too) gets the most specific
profile first; ``profiles`` lists them all.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from bleak import BleakScanner

from devices.adapter import check_bluetooth
from devices.profiles import PROFILES

# When a device advertises several health services: the profile that reads the most first.
_PREFERENCE = ("body_composition", "weight", "blood_pressure", "glucose", "spo2", "temperature")


def _rank(profile: str) -> int:
    return _PREFERENCE.index(profile) if profile in _PREFERENCE else len(_PREFERENCE)


class BluetoothUnavailable(Exception):
    """Scanning cannot start; the message says why and what to do, in one line."""


@dataclass(frozen=True, slots=True)
class ScannedDevice:
    address: str
    name: str | None
    profile: str  # the profile to put in [[devices]]
    rssi: int | None  # dBm, of the last advertisement heard
    profiles: tuple[str, ...] = ()  # every health profile it advertises, ``profile`` first

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


async def scan(timeout_s: float) -> list[ScannedDevice]:
    """Listen for ``timeout_s`` seconds; the health devices heard, strongest signal first."""
    if timeout_s <= 0:
        raise ValueError("timeout_s must be positive")
    # Asked first so that a hub without a working radio gets one sentence, not bleak's traceback.
    bluetooth = await check_bluetooth()
    if not bluetooth.ok:
        raise BluetoothUnavailable(f"Bluetooth is not working: {bluetooth.reason}")
    by_service = {profile.service: name for name, profile in PROFILES.items()}
    found = await BleakScanner.discover(
        timeout=timeout_s, return_adv=True, service_uuids=list(by_service)
    )
    devices = []
    for device, advertisement in found.values():
        profiles = sorted(
            {by_service[u.lower()] for u in advertisement.service_uuids if u.lower() in by_service},
            key=lambda name: (_rank(name), name),
        )
        if profiles:
            devices.append(
                ScannedDevice(
                    device.address,
                    advertisement.local_name or device.name,
                    profiles[0],
                    advertisement.rssi,
                    tuple(profiles),
                )
            )
    return sorted(devices, key=lambda d: (d.rssi is None, -(d.rssi or 0), d.address))
