"""The gateway's side of its simulated devices: start them in a process of their own.

Light on purpose: the gateway's process loads neither the device models nor the simulated
BlueZ (``gateway.simulation``, loaded by the simulator process, ``gateway.simulation_host``),
so with simulated devices it holds what it holds on a hub with real ones.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import orjson

from devices.sim.simulator_process import SimulatorProcess
from gateway.settings import Settings


def simulation_spec(settings: Settings, state_dir: Path) -> bytes:
    """What the simulator process needs to play the simulated devices, as one line of JSON.

    Only what ``gateway.simulation.peripheral_for`` reads: no subject ids or other personal
    settings cross over.
    """
    devices = [
        {
            "index": index,
            "address": device.address,
            "profile": device.profile,
            "name": device.name,
            "simulation": device.simulation.model_dump(mode="json") if device.simulation else None,
        }
        for index, device in enumerate(settings.devices)
        if device.simulated
    ]
    return orjson.dumps({"state_dir": str(state_dir), "devices": devices})


@contextlib.asynccontextmanager
async def simulated_radio(settings: Settings, state_dir: Path) -> AsyncIterator[SimulatorProcess]:
    """The simulated devices of ``settings`` in range of bleak, while inside the block."""
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    spec = simulation_spec(settings, state_dir)
    async with SimulatorProcess(state_dir, "gateway.simulation_host", spec) as radio:
        try:
            yield radio
        finally:
            # Stopping the simulated bus makes bleak's BlueZ manager report "D-Bus connection to
            # BlueZ was lost"; here that is the expected end of the simulation, not a fault.
            logging.getLogger("bleak.backends.bluezdbus.manager").setLevel(logging.ERROR)
