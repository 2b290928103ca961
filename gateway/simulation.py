"""Simulated devices for the demo and tests: config -> device models on a simulated BlueZ.

The gateway's BLE code is not told about any of this: ``gateway.simulated_radio`` points the
system bus at a private dbus-daemon where a process of its own (``gateway.simulation_host``, as
bluetoothd is on a hub) hosts a simulated BlueZ with these models, and bleak talks to it as to
the real one.
Every profile has a model (``SIMULATORS``); ``[devices.simulation]`` (``SimulationSettings``)
sets its script, clock, behaviour and faults.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from devices.profiles import BROADCAST_PROFILES
from devices.sim.blood_pressure_cuff import SimulatedBloodPressureCuff
from devices.sim.body_composition_scale import SimulatedBodyCompositionScale
from devices.sim.broadcast_scale import SimulatedBroadcastScale, Weighing
from devices.sim.glucose_meter import SimulatedGlucoseMeter
from devices.sim.health_device import Faults, SimulatedHealthDevice
from devices.sim.heart_rate_strap import SimulatedHeartRateStrap
from devices.sim.peripheral import Peripheral
from devices.sim.pulse_oximeter import SimulatedPulseOximeter
from devices.sim.script import script_to_measurements
from devices.sim.thermometer import SimulatedThermometer
from devices.sim.weight_scale import SimulatedWeightScale
from gateway.models import Measurement
from gateway.settings import ConfigError, DeviceSettings, Settings, SimulationSettings

SIMULATORS: dict[str, type[SimulatedHealthDevice]] = {
    "blood_pressure": SimulatedBloodPressureCuff,
    "weight": SimulatedWeightScale,
    "body_composition": SimulatedBodyCompositionScale,
    "glucose": SimulatedGlucoseMeter,
    "temperature": SimulatedThermometer,
    "heart_rate": SimulatedHeartRateStrap,
    "spo2": SimulatedPulseOximeter,
}

_MULTI_USER = (SimulatedWeightScale, SimulatedBodyCompositionScale)


def _simulator(device: DeviceSettings, key: str) -> type[SimulatedHealthDevice]:
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


def _options(
    simulator: type[SimulatedHealthDevice], simulation: SimulationSettings
) -> dict[str, Any]:
    """The model's keyword arguments from ``[devices.simulation]``."""
    options: dict[str, Any] = {
        "mode": simulation.mode,
        "advertise_s": simulation.advertise_s,
        "linger_s": simulation.linger_s,
        "battery_level": simulation.battery_level,
        "current_time_service": simulation.current_time and simulator.KEEPS_TIME,
        "requires_pairing": simulation.requires_pairing,
        "faults": Faults(
            drop_link_after=simulation.drop_link_after,
            malformed_every=simulation.malformed_every,
            discovery_delay_s=simulation.discovery_delay_s,
        ),
    }
    if issubclass(simulator, _MULTI_USER):
        options["users"] = simulation.users
    if issubclass(simulator, SimulatedPulseOximeter):
        options["continuous"] = simulation.continuous
    return options


def _weighings(device: DeviceSettings, key: str) -> list[Weighing] | None:
    """A broadcast scale's script: rows of body_weight (unit kg or [lb_av]) and impedance."""
    simulation = device.simulation or SimulationSettings()
    if simulation.readings is None:
        return None
    weighings = []
    for number, row in enumerate(simulation.readings):
        unknown = set(row) - {"body_weight", "unit", "impedance"}
        weight = row.get("body_weight")
        impedance = row.get("impedance")
        if unknown or not isinstance(weight, int | float) or isinstance(weight, bool):
            raise ConfigError(
                f"{key}.simulation.readings[{number}]: a weighing is body_weight (a number), "
                "optionally unit (kg or [lb_av]) and impedance (Ohm)"
            )
        weighings.append(
            Weighing(
                weight=float(weight),
                unit=str(row.get("unit", "kg")),
                impedance=None if impedance is None else float(impedance),
            )
        )
    return weighings


def _broadcast_scale(device: DeviceSettings, key: str) -> SimulatedBroadcastScale:
    simulation = device.simulation or SimulationSettings()
    try:
        return SimulatedBroadcastScale(
            device.address,
            device.profile,
            device.name,
            clock_offset_s=simulation.clock_offset_s,
            script=_weighings(device, key),
            interval_s=simulation.interval_s,
        )
    except ValueError as exc:
        raise ConfigError(f"{key}.simulation: {exc}") from None


def peripheral_for(device: DeviceSettings, index: int, state_dir: Path) -> Peripheral:
    key = f"devices[{index}]"
    if device.profile in BROADCAST_PROFILES:
        return _broadcast_scale(device, key)
    simulation = device.simulation or SimulationSettings()
    simulator = _simulator(device, key)
    try:
        return simulator(
            device.address,
            device.name or f"Simulated {device.profile.replace('_', ' ')}",
            _script(device, key),
            simulation.interval_s,
            state_dir / (device.address.replace(":", "") + ".json"),
            simulation.clock_offset_s,
            **_options(simulator, simulation),
        )
    except ValueError as exc:
        raise ConfigError(f"{key}.simulation: {exc}") from None


def check_simulation(settings: Settings) -> None:
    """Fail at start, with the key named, for a simulated device the simulator cannot play."""
    for index, device in enumerate(settings.devices):
        if device.simulated and device.profile in BROADCAST_PROFILES:
            _broadcast_scale(device, f"devices[{index}]")
        elif device.simulated:
            key = f"devices[{index}]"
            simulator = _simulator(device, key)
            _script(device, key)
            simulation = device.simulation or SimulationSettings()
            try:
                # Builds the model without a radio or state file: the script's bytes are checked.
                simulator(
                    device.address,
                    device.name or device.profile,
                    _script(device, key),
                    simulation.interval_s,
                    None,
                    simulation.clock_offset_s,
                    **_options(simulator, simulation),
                )
            except ValueError as exc:
                raise ConfigError(f"{key}.simulation: {exc}") from None


def peripherals_from_spec(spec: bytes) -> list[Peripheral]:
    """The simulator process's side of ``gateway.simulated_radio.simulation_spec``: the device
    models to put in range.

    The gateway validated the whole device table before it wrote the spec; the device is
    rebuilt from the four fields the models read (its other checks need fields, such as the
    subject, that stay in the gateway), its simulation table parsed as usual.
    """
    loaded = orjson.loads(spec)
    state_dir = Path(loaded["state_dir"])
    peripherals = []
    for device in loaded["devices"]:
        simulation = device["simulation"]
        settings = DeviceSettings.model_construct(
            address=device["address"],
            profile=device["profile"],
            name=device["name"],
            simulated=True,
            simulation=None if simulation is None else SimulationSettings(**simulation),
        )
        peripherals.append(peripheral_for(settings, device["index"], state_dir))
    return peripherals
