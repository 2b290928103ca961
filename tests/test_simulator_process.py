"""The simulated BlueZ in a process of its own: bleak finds its devices, a bad start says why,
and a stop leaves no process behind. Real processes: the private dbus-daemon and the
``gateway.simulation_host`` child, with bleak's real BlueZ backend in the test."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from bleak import BleakScanner

from devices.sim.simulator_process import LOG_NAME, SimulatorProcess, SimulatorProcessError
from devices.sim.system_bus import SYSTEM_BUS_ENV
from gateway.settings import parse_settings
from gateway.simulated_radio import simulation_spec
from tests.configs import ADULT, base_config
from tests.test_e2e import simulated_cuff
from tests.test_sim_lifeline import descendants, still_running_after, watching

CUFF = "C4:7C:8D:6A:00:01"


def one_cuff_spec(tmp_path: Path) -> bytes:
    config = base_config(tmp_path / "data", tmp_path / "secret", "http://127.0.0.1:9", "")
    config["destinations"] = []
    config["devices"] = [simulated_cuff(ADULT, [{"systolic": 121, "diastolic": 79}])]
    return simulation_spec(parse_settings(config), tmp_path / "state")


async def test_bleak_finds_the_device_of_a_simulator_in_its_own_process_and_a_stop_ends_it(
    tmp_path: Path,
) -> None:
    (tmp_path / "state").mkdir()
    before = set(descendants(os.getpid()))
    bus_before = os.environ.get(SYSTEM_BUS_ENV)
    radio = SimulatorProcess(tmp_path / "state", "gateway.simulation_host", one_cuff_spec(tmp_path))
    await radio.__aenter__()
    try:
        started = sorted(set(descendants(os.getpid())) - before)
        # The private bus and the simulator: the device is not in this process.
        assert radio.pid in started and len(started) == 2
        assert os.environ[SYSTEM_BUS_ENV].startswith("unix:path=")
        found = await BleakScanner.find_device_by_address(CUFF, timeout=10.0)
        assert found is not None and found.address == CUFF
    finally:
        async with watching(started) as ended:
            await radio.__aexit__(None, None, None)
            assert await still_running_after(ended, 10.0) == []
    assert os.environ.get(SYSTEM_BUS_ENV) == bus_before


async def test_a_simulator_that_cannot_start_says_why_and_leaves_nothing_running(
    tmp_path: Path,
) -> None:
    before = set(descendants(os.getpid()))
    with pytest.raises(SimulatorProcessError) as raised:
        async with SimulatorProcess(tmp_path, "gateway.simulation_host", b"not json"):
            pass
    assert "JSONDecodeError" in str(raised.value)
    assert (tmp_path / LOG_NAME).exists()
    left = sorted(set(descendants(os.getpid())) - before)
    async with watching(left) as ended:
        assert await still_running_after(ended, 10.0) == []
