"""GATT health profiles: the service a device advertises and the characteristics carrying readings.

UUIDs and the notify/indicate choice follow each SIG service specification (BLS, WSS, BCS, GLS,
HTS, HRS, PLXS): measurements a device stores and resends are indicated (acknowledged), live
streams are notified.
"""

from __future__ import annotations

from dataclasses import dataclass, field


def uuid16(short: int) -> str:
    """The full 128-bit UUID string of a 16-bit Bluetooth SIG UUID."""
    return f"0000{short:04x}-0000-1000-8000-00805f9b34fb"


@dataclass(frozen=True, slots=True)
class Profile:
    """A health profile: the primary service and the characteristics the gateway subscribes to.

    ``measurements`` are all characteristics that carry readings (decode them with
    ``devices.gatt.decode``); ``optional`` lists those a compliant device may lack, so subscribe to
    the ones present. ``indicated`` are the measurements the server sends as indications (the rest
    are notifications). ``feature`` is the read-only feature characteristic and
    ``record_access_control_point`` the RACP for stored-record download, when the profile has them.
    """

    name: str
    service: str
    measurements: tuple[str, ...]
    default_units: dict[str, str]
    indicated: tuple[str, ...] = ()
    optional: tuple[str, ...] = ()
    feature: str | None = None
    record_access_control_point: str | None = None
    extra: dict[str, str] = field(default_factory=dict)


BLOOD_PRESSURE_SERVICE = uuid16(0x1810)
BLOOD_PRESSURE_MEASUREMENT = uuid16(0x2A35)
INTERMEDIATE_CUFF_PRESSURE = uuid16(0x2A36)
BLOOD_PRESSURE_FEATURE = uuid16(0x2A49)

WEIGHT_SCALE_SERVICE = uuid16(0x181D)
WEIGHT_MEASUREMENT = uuid16(0x2A9D)
WEIGHT_SCALE_FEATURE = uuid16(0x2A9E)

BODY_COMPOSITION_SERVICE = uuid16(0x181B)
BODY_COMPOSITION_MEASUREMENT = uuid16(0x2A9C)
BODY_COMPOSITION_FEATURE = uuid16(0x2A9B)

GLUCOSE_SERVICE = uuid16(0x1808)
GLUCOSE_MEASUREMENT = uuid16(0x2A18)
GLUCOSE_MEASUREMENT_CONTEXT = uuid16(0x2A34)
GLUCOSE_FEATURE = uuid16(0x2A51)
RECORD_ACCESS_CONTROL_POINT = uuid16(0x2A52)

HEALTH_THERMOMETER_SERVICE = uuid16(0x1809)
TEMPERATURE_MEASUREMENT = uuid16(0x2A1C)
TEMPERATURE_TYPE = uuid16(0x2A1D)
INTERMEDIATE_TEMPERATURE = uuid16(0x2A1E)

HEART_RATE_SERVICE = uuid16(0x180D)
HEART_RATE_MEASUREMENT = uuid16(0x2A37)
BODY_SENSOR_LOCATION = uuid16(0x2A38)
HEART_RATE_CONTROL_POINT = uuid16(0x2A39)

PULSE_OXIMETER_SERVICE = uuid16(0x1822)
PLX_SPOT_CHECK_MEASUREMENT = uuid16(0x2A5E)
PLX_CONTINUOUS_MEASUREMENT = uuid16(0x2A5F)
PLX_FEATURES = uuid16(0x2A60)

BATTERY_SERVICE = uuid16(0x180F)
BATTERY_LEVEL = uuid16(0x2A19)
CURRENT_TIME_SERVICE = uuid16(0x1805)
CURRENT_TIME = uuid16(0x2A2B)
# Date Time: the clock of devices without a Current Time Service (A&D, Roche).
DATE_TIME = uuid16(0x2A08)

# User Data Service: scales that keep several people apart (Beurer BF, Sanitas SBF) send a
# person's data only after that person's consent code was written to the User Control Point.
USER_DATA_SERVICE = uuid16(0x181C)
USER_CONTROL_POINT = uuid16(0x2A9F)
DATABASE_CHANGE_INCREMENT = uuid16(0x2A99)
USER_INDEX = uuid16(0x2A9A)
DATE_OF_BIRTH = uuid16(0x2A85)
GENDER = uuid16(0x2A8C)
HEIGHT = uuid16(0x2A8E)

_MASS_SI = "kg"
_LENGTH_SI = "m"

PROFILES: dict[str, Profile] = {
    "blood_pressure": Profile(
        name="blood_pressure",
        service=BLOOD_PRESSURE_SERVICE,
        measurements=(BLOOD_PRESSURE_MEASUREMENT, INTERMEDIATE_CUFF_PRESSURE),
        default_units={
            "systolic": "mm[Hg]",
            "diastolic": "mm[Hg]",
            "mean_arterial_pressure": "mm[Hg]",
            "cuff_pressure": "mm[Hg]",
            "pulse_rate": "/min",
        },
        indicated=(BLOOD_PRESSURE_MEASUREMENT,),
        optional=(INTERMEDIATE_CUFF_PRESSURE,),
        feature=BLOOD_PRESSURE_FEATURE,
    ),
    "weight": Profile(
        name="weight",
        service=WEIGHT_SCALE_SERVICE,
        measurements=(WEIGHT_MEASUREMENT,),
        default_units={"body_weight": _MASS_SI, "bmi": "kg/m2", "height": _LENGTH_SI},
        indicated=(WEIGHT_MEASUREMENT,),
        feature=WEIGHT_SCALE_FEATURE,
    ),
    "body_composition": Profile(
        name="body_composition",
        service=BODY_COMPOSITION_SERVICE,
        measurements=(BODY_COMPOSITION_MEASUREMENT,),
        default_units={
            "body_fat_percentage": "%",
            "basal_metabolism": "kJ",
            "muscle_percentage": "%",
            "muscle_mass": _MASS_SI,
            "fat_free_mass": _MASS_SI,
            "soft_lean_mass": _MASS_SI,
            "body_water_mass": _MASS_SI,
            "impedance": "Ohm",
            "body_weight": _MASS_SI,
            "height": _LENGTH_SI,
        },
        indicated=(BODY_COMPOSITION_MEASUREMENT,),
        feature=BODY_COMPOSITION_FEATURE,
    ),
    "glucose": Profile(
        name="glucose",
        service=GLUCOSE_SERVICE,
        measurements=(GLUCOSE_MEASUREMENT, GLUCOSE_MEASUREMENT_CONTEXT),
        default_units={"glucose": "mg/dL"},
        optional=(GLUCOSE_MEASUREMENT_CONTEXT,),
        feature=GLUCOSE_FEATURE,
        record_access_control_point=RECORD_ACCESS_CONTROL_POINT,
    ),
    "temperature": Profile(
        name="temperature",
        service=HEALTH_THERMOMETER_SERVICE,
        measurements=(TEMPERATURE_MEASUREMENT,),
        default_units={"body_temperature": "Cel"},
        indicated=(TEMPERATURE_MEASUREMENT,),
        extra={"temperature_type": TEMPERATURE_TYPE},
    ),
    "heart_rate": Profile(
        name="heart_rate",
        service=HEART_RATE_SERVICE,
        measurements=(HEART_RATE_MEASUREMENT,),
        default_units={"heart_rate": "/min", "energy_expended": "kJ"},
        extra={
            "body_sensor_location": BODY_SENSOR_LOCATION,
            "heart_rate_control_point": HEART_RATE_CONTROL_POINT,
        },
    ),
    "spo2": Profile(
        name="spo2",
        service=PULSE_OXIMETER_SERVICE,
        measurements=(PLX_SPOT_CHECK_MEASUREMENT, PLX_CONTINUOUS_MEASUREMENT),
        default_units={"spo2": "%", "pulse_rate": "/min"},
        indicated=(PLX_SPOT_CHECK_MEASUREMENT,),
        optional=(PLX_SPOT_CHECK_MEASUREMENT, PLX_CONTINUOUS_MEASUREMENT),
        feature=PLX_FEATURES,
        record_access_control_point=RECORD_ACCESS_CONTROL_POINT,
    ),
}


@dataclass(frozen=True, slots=True)
class BroadcastProfile:
    """A device that sends its readings in advertisements (service data), never connected.

    ``service`` is the UUID its service data is keyed by (``devices.broadcast.decode`` reads
    it); ``names`` the advertised local names seen on real units (for ``scan``).
    """

    name: str
    service: str
    names: tuple[str, ...] = ()


# Xiaomi's scales put each weighing in service data: the Mi Scale (v1, and "Mi Smart Scale 2",
# name MI_SCALE / MI SCALE2) under the Weight Scale Service UUID, the Mi Body Composition Scale
# (and its v2, name MIBCS / MIBFS) under the Body Composition Service UUID. Both also list that
# UUID in the advertisement (captures in custom-components/ble_monitor issues 366 and 1094).
BROADCAST_PROFILES: dict[str, BroadcastProfile] = {
    "xiaomi_scale": BroadcastProfile(
        name="xiaomi_scale", service=WEIGHT_SCALE_SERVICE, names=("MI_SCALE", "MI SCALE2")
    ),
    "xiaomi_body_composition": BroadcastProfile(
        name="xiaomi_body_composition",
        service=BODY_COMPOSITION_SERVICE,
        names=("MIBCS", "MIBFS"),
    ),
}


def is_broadcast(name: str) -> bool:
    return name in BROADCAST_PROFILES


def profile_names() -> list[str]:
    """Every profile a [[devices]] entry may name, connected and broadcast."""
    return sorted([*PROFILES, *BROADCAST_PROFILES])


def profile(name: str) -> Profile:
    """Look up a profile by its config name; KeyError names the supported ones."""
    try:
        return PROFILES[name]
    except KeyError:
        supported = ", ".join(sorted(PROFILES))
        if name in BROADCAST_PROFILES:
            raise KeyError(f"{name!r} is a broadcast profile; it has no connection") from None
        raise KeyError(f"unknown profile {name!r}; supported: {supported}") from None
