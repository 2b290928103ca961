"""GATT health profiles: which service a device advertises and which characteristics carry readings."""

from __future__ import annotations

from dataclasses import dataclass


def uuid16(short: int) -> str:
    """The full 128-bit UUID string of a 16-bit Bluetooth SIG UUID."""
    return f"0000{short:04x}-0000-1000-8000-00805f9b34fb"


@dataclass(frozen=True, slots=True)
class Profile:
    """A health profile: the primary service and the characteristics the gateway subscribes to."""

    name: str
    service: str
    measurements: tuple[str, ...]
    default_units: dict[str, str]


BLOOD_PRESSURE_SERVICE = uuid16(0x1810)
BLOOD_PRESSURE_MEASUREMENT = uuid16(0x2A35)
INTERMEDIATE_CUFF_PRESSURE = uuid16(0x2A36)
BLOOD_PRESSURE_FEATURE = uuid16(0x2A49)

PROFILES: dict[str, Profile] = {
    "blood_pressure": Profile(
        name="blood_pressure",
        service=BLOOD_PRESSURE_SERVICE,
        measurements=(BLOOD_PRESSURE_MEASUREMENT,),
        default_units={
            "systolic": "mm[Hg]",
            "diastolic": "mm[Hg]",
            "mean_arterial_pressure": "mm[Hg]",
            "pulse_rate": "/min",
        },
    ),
}


def profile(name: str) -> Profile:
    """Look up a profile by its config name; KeyError names the supported ones."""
    try:
        return PROFILES[name]
    except KeyError:
        raise KeyError(f"unknown profile {name!r}; supported: {', '.join(sorted(PROFILES))}") from None
