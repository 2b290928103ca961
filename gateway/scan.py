"""``health-gateway scan``: nearby BLE devices that advertise a health service.

Discovery is filtered by the health services' UUIDs (``devices.profiles``), so only devices that
put one of them in their advertisement are listed, each with the profile to configure it as and
the signal strength of its last advertisement. A device that advertises several health services
(a body-composition scale usually advertises the Weight Scale Service too) gets the most specific
profile first; ``profiles`` lists them all.

Broadcast-only scales (Xiaomi Mi Scale 2, Mi Body Composition Scale 2) also list the Weight
Scale or Body Composition Service, but carry their weighings in that service's data: a device
whose service data decodes as a broadcast profile (``devices.broadcast``) is listed with that
profile, which is the one to configure (it is never connected).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from bleak import BleakScanner

from devices.adapter import check_bluetooth
from devices.broadcast import DecodeError
from devices.broadcast import decode as decode_broadcast
from devices.profiles import BROADCAST_PROFILES, PROFILES

# When a device advertises several health services: the profile that reads the most first.
_PREFERENCE = (
    *BROADCAST_PROFILES,
    "body_composition",
    "weight",
    "blood_pressure",
    "glucose",
    "spo2",
    "temperature",
)


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
        advertised = {
            by_service[u.lower()] for u in advertisement.service_uuids if u.lower() in by_service
        }
        profiles = sorted(
            advertised | _broadcast_profiles(advertisement.service_data),
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


def _broadcast_profiles(service_data: dict[str, bytes]) -> set[str]:
    """The broadcast profiles whose service data this advertisement carries."""
    found = set()
    for name, broadcast in BROADCAST_PROFILES.items():
        data = service_data.get(broadcast.service)
        if data is None:
            continue
        try:
            decode_broadcast(name, broadcast.service, bytes(data))
        except DecodeError:
            continue  # service data of another format under the same UUID
        found.add(name)
    return found
