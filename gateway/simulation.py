"""Simulated devices for the demo and tests: config -> device models on a simulated BlueZ.

The gateway's BLE code is not told about any of this: ``SimulatedRadio`` points the system bus
at a private dbus-daemon that hosts a simulated BlueZ, and bleak talks to it as to the real one.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path

from devices.sim.blood_pressure_cuff import SimulatedBloodPressureCuff
from devices.sim.peripheral import Peripheral
from devices.sim.radio import SimulatedRadio
from devices.sim.script import script_to_measurements
from gateway.models import Measurement
from gateway.settings import ConfigError, DeviceSettings, Settings, SimulationSettings

SIMULATORS = {"blood_pressure": SimulatedBloodPressureCuff}


def _simulator(device: DeviceSettings, key: str) -> type[SimulatedBloodPressureCuff]:
    simulator = SIMULATORS.get(device.profile)
    if simulator is None:
        raise ConfigError(
            f"{key}.profile: no simulated {device.profile} device yet; simulated profiles: "
            + ", ".join(sorted(SIMULATORS))
        )
    return simulator


def _script(device: DeviceSettings, key: str) -> list[Measurement] | None:
    simulation = device.simulation or SimulationSettings()
    if simulation.readings is None:
        return None
    try:
        return script_to_measurements(device.profile, simulation.readings)
    except ValueError as exc:
        raise ConfigError(f"{key}.simulation.readings: {exc}") from None


def peripheral_for(device: DeviceSettings, index: int, state_dir: Path) -> Peripheral:
    key = f"devices[{index}]"
    simulation = device.simulation or SimulationSettings()
    return _simulator(device, key)(
        address=device.address,
        name=device.name or f"Simulated {device.profile.replace('_', ' ')}",
        readings=_script(device, key),
        interval_s=simulation.interval_s,
        state_file=state_dir / (device.address.replace(":", "") + ".json"),
        clock_offset_s=simulation.clock_offset_s,
    )


def check_simulation(settings: Settings) -> None:
    """Fail at start, with the key named, for a simulated device the simulator cannot play."""
    for index, device in enumerate(settings.devices):
        if device.simulated:
            _simulator(device, f"devices[{index}]")
            _script(device, f"devices[{index}]")


@contextlib.asynccontextmanager
async def simulated_radio(settings: Settings, state_dir: Path) -> AsyncIterator[SimulatedRadio]:
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    peripherals = [
        peripheral_for(device, index, state_dir)
        for index, device in enumerate(settings.devices)
        if device.simulated
    ]
    async with SimulatedRadio(state_dir, peripherals) as radio:
        try:
            yield radio
        finally:
            # Stopping the simulated bus makes bleak's BlueZ manager report "D-Bus connection to
            # BlueZ was lost"; here that is the expected end of the simulation, not a fault.
            logging.getLogger("bleak.backends.bluezdbus.manager").setLevel(logging.ERROR)
