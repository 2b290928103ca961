"""``health-gateway scan``: nearby BLE devices that advertise a health service."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from bleak import BleakScanner

from devices.profiles import PROFILES


@dataclass(frozen=True, slots=True)
class ScannedDevice:
    address: str
    name: str | None
    profile: str
    rssi: int | None

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


async def scan(timeout_s: float) -> list[ScannedDevice]:
    by_service = {profile.service: name for name, profile in PROFILES.items()}
    found = await BleakScanner.discover(
        timeout=timeout_s, return_adv=True, service_uuids=list(by_service)
    )
    devices = []
    for device, advertisement in found.values():
        profiles = [by_service[u] for u in advertisement.service_uuids if u.lower() in by_service]
        if profiles:
            devices.append(
                ScannedDevice(
                    device.address,
                    advertisement.local_name or device.name,
                    profiles[0],
                    advertisement.rssi,
                )
            )
    return sorted(devices, key=lambda d: (d.rssi is None, -(d.rssi or 0)))
