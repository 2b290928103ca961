"""``health-gateway scan`` against the simulated BlueZ: profile and RSSI of each health device."""

from __future__ import annotations

import asyncio
import os
import sys

import orjson

from devices.profiles import (
    BATTERY_LEVEL,
    BATTERY_SERVICE,
    BODY_COMPOSITION_MEASUREMENT,
    BODY_COMPOSITION_SERVICE,
    WEIGHT_MEASUREMENT,
    WEIGHT_SCALE_SERVICE,
)
from devices.sim.blood_pressure_cuff import SimulatedBloodPressureCuff
from devices.sim.bluez import SimulatedBlueZ
from devices.sim.glucose_meter import SimulatedGlucoseMeter
from devices.sim.peripheral import Characteristic, Peripheral, Service
from devices.sim.system_bus import SYSTEM_BUS_ENV
from devices.sim.weight_scale import SimulatedWeightScale
from gateway.scan import ScannedDevice, scan

CUFF = "C4:7C:8D:6A:00:01"
SCALE = "C4:7C:8D:6A:00:02"
BODY = "C4:7C:8D:6A:00:03"
ASLEEP = "C4:7C:8D:6A:00:04"
OTHER = "C4:7C:8D:6A:00:09"


def neighbourhood(bluez: SimulatedBlueZ) -> None:
    cuff = SimulatedBloodPressureCuff(CUFF, "Cuff", None, 1.0)
    cuff.rssi = -48
    scale = SimulatedWeightScale(SCALE, "Scale", None, 1.0)
    scale.rssi = -71
    # A body-composition scale that also advertises the Weight Scale Service, that one first.
    body = Peripheral(
        BODY,
        "Body scale",
        [
            Service(WEIGHT_SCALE_SERVICE, (Characteristic(WEIGHT_MEASUREMENT, ("indicate",)),)),
            Service(
                BODY_COMPOSITION_SERVICE,
                (Characteristic(BODY_COMPOSITION_MEASUREMENT, ("indicate",)),),
            ),
        ],
        rssi=-60,
    )
    asleep = SimulatedGlucoseMeter(ASLEEP, "Meter", None, 0, mode="cycle")  # not advertising
    other = Peripheral(
        OTHER, "Headphones", [Service(BATTERY_SERVICE, (Characteristic(BATTERY_LEVEL, ("read",)),))]
    )
    for peripheral in (cuff, scale, body, asleep, other):
        bluez.add_peripheral(peripheral)


def check(found: list[ScannedDevice]) -> None:
    assert [(d.address, d.name, d.profile) for d in found] == [
        (CUFF, "Cuff", "blood_pressure"),
        (BODY, "Body scale", "body_composition"),
        (SCALE, "Scale", "weight"),
    ]
    assert found[1].profiles == ("body_composition", "weight")
    # The simulator varies RSSI by up to 2 dB per advertisement, as a real radio does.
    for device, rssi in zip(found, (-48, -60, -71), strict=True):
        assert device.rssi is not None and rssi - 2 <= device.rssi <= rssi


async def test_scan_lists_health_devices_with_profile_and_rssi(bluez: SimulatedBlueZ) -> None:
    neighbourhood(bluez)

    check(await scan(0.3))


async def test_scan_command_prints_json(bluez: SimulatedBlueZ, dbus_address: str) -> None:
    neighbourhood(bluez)

    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gateway",
        "scan",
        "--timeout",
        "0.5",
        "--json",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, SYSTEM_BUS_ENV: dbus_address},
    )
    async with asyncio.timeout(30):
        out, err = await process.communicate()

    assert process.returncode == 0, err.decode()
    rows = orjson.loads(out)
    check([ScannedDevice(**{**row, "profiles": tuple(row["profiles"])}) for row in rows])
