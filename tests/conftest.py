"""Shared fixtures: a private dbus-daemon and a simulated BlueZ on it, per test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from devices.sim.bluez import SimulatedBlueZ
from devices.sim.dbus_daemon import PrivateDbusDaemon
from devices.sim.radio import SYSTEM_BUS_ENV, simulated_bluez_version


@pytest.fixture
async def dbus_address(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[str]:
    """A private dbus-daemon; bleak (via DBUS_SYSTEM_BUS_ADDRESS) uses it as the system bus."""
    async with PrivateDbusDaemon(tmp_path / "bus") as daemon:
        monkeypatch.setenv(SYSTEM_BUS_ENV, daemon.address)
        yield daemon.address


@pytest.fixture
def bluez_version() -> Iterator[None]:
    """Answer bleak's BlueZ version check for the simulator (as SimulatedRadio does)."""
    with simulated_bluez_version():
        yield


@pytest.fixture
async def bluez(dbus_address: str, bluez_version: None) -> AsyncIterator[SimulatedBlueZ]:
    """A started simulated BlueZ on the private bus, stopped after the test."""
    sim = SimulatedBlueZ(dbus_address, advertising_interval_s=0.02)
    await sim.start()
    try:
        yield sim
    finally:
        await sim.stop()
