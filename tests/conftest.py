"""Shared fixtures: a private dbus-daemon and a simulated BlueZ on it, per test; BLE helpers."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import structlog

from devices.sim.bluez import SimulatedBlueZ
from devices.sim.dbus_daemon import PrivateDbusDaemon
from devices.sim.system_bus import SYSTEM_BUS_ENV, simulated_bluez_version
from devices.source import BleSource, Received
from gateway.storage.database import Database
from tests.medplum import Medplum, MedplumServer, MedplumUnavailable
from tests.receivers import Receiver

# Files the tests write (secrets, configs, databases) get the modes the service's own files get:
# the systemd unit runs the gateway with UMask=0077, and secret files must be 0600.
os.umask(0o077)


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


STEP = 5.0  # generous deadline per awaited step; each normally takes milliseconds


class Collector:
    """An ``on_reading`` callback that keeps readings and lets a test wait for them."""

    def __init__(self) -> None:
        self.items: list[Received] = []
        self._changed = asyncio.Event()

    def __call__(self, reading: Received) -> None:
        self.items.append(reading)
        self._changed.set()

    async def wait_for(self, count: int, timeout: float = STEP) -> list[Received]:
        """Wait until at least ``count`` readings are in; return them all."""
        return await self.wait_until(lambda items: len(items) >= count, timeout)

    async def wait_until(
        self, predicate: Callable[[list[Received]], bool], timeout: float = STEP
    ) -> list[Received]:
        async with asyncio.timeout(timeout):
            while not predicate(self.items):
                self._changed.clear()
                await self._changed.wait()
        return self.items

    def of(self, ref: str) -> list[Received]:
        return [r for r in self.items if r.target.ref == ref]

    def values(self, name: str, ref: str | None = None) -> list[float]:
        items = self.items if ref is None else self.of(ref)
        return [r.measurement.values[name].value for r in items]


class SourceRunner:
    """Runs BleSources as tasks; the fixture stops whatever is still running."""

    def __init__(self) -> None:
        self._tasks: list[asyncio.Task[None]] = []

    def start(self, source: BleSource) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(source.run())
        self._tasks.append(task)
        return task

    async def stop(self, task: asyncio.Task[None] | None = None) -> None:
        for running in [task] if task is not None else list(self._tasks):
            running.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await running
            self._tasks.remove(running)


@pytest.fixture
async def sources(bluez: SimulatedBlueZ) -> AsyncIterator[SourceRunner]:
    """Start BleSources against the simulated BlueZ; stopped before the simulator stops."""
    runner = SourceRunner()
    try:
        yield runner
    finally:
        await runner.stop()


class LogWatcher:
    """Captures structlog events (like ``structlog.testing.capture_logs``) and lets a test wait."""

    def __init__(self) -> None:
        self.entries: list[dict[str, Any]] = []
        self._changed = asyncio.Event()

    def __call__(self, _logger: object, method_name: str, event_dict: dict[str, Any]) -> Any:
        event_dict["log_level"] = method_name
        self.entries.append(event_dict)
        self._changed.set()
        raise structlog.DropEvent

    def events(self) -> list[str]:
        return [entry["event"] for entry in self.entries]

    def first(self, event: str) -> dict[str, Any]:
        return next(entry for entry in self.entries if entry["event"] == event)

    async def wait_for(self, event: str, timeout: float = STEP) -> dict[str, Any]:
        """The first entry of ``event``, waiting for it if needed."""
        async with asyncio.timeout(timeout):
            while event not in self.events():
                self._changed.clear()
                await self._changed.wait()
        return self.first(event)


@contextlib.contextmanager
def watch_logs() -> Iterator[LogWatcher]:
    """Route every structlog event to a LogWatcher for the duration of the block."""
    watcher = LogWatcher()
    processors = structlog.get_config()["processors"]
    saved = processors.copy()
    try:
        processors.clear()
        processors.append(watcher)
        structlog.configure(processors=processors)
        yield watcher
    finally:
        processors.clear()
        processors.extend(saved)
        structlog.configure(processors=processors)


@pytest.fixture
async def database(tmp_path: Path) -> AsyncIterator[Database]:
    """The gateway's database, opened on a fresh file (closed after the test)."""
    database = Database(tmp_path / "gateway.db")
    await database.open()
    yield database
    await database.close()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    """A stand-in HTTP receiver on loopback, for fault injection."""
    receiver = await Receiver().start()
    yield receiver
    await receiver.stop()


@pytest.fixture(scope="session")
def medplum_server() -> Iterator[MedplumServer]:
    """One real FHIR server (Medplum under Node) for the session; fails, never skips, without it."""
    try:
        server = MedplumServer().start()
    except MedplumUnavailable as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def medplum(medplum_server: MedplumServer) -> Medplum:
    """The real FHIR server, emptied for this test."""
    client = Medplum(medplum_server)
    await client.reset()
    return client


@dataclass
class CarePlatform:
    """Where a test's FHIR goes: our stand-in receiver alone, or the real FHIR server behind a
    fault-injecting proxy (a ``Receiver`` with an upstream; the same scripts work on both)."""

    name: str
    medplum: Medplum | None

    def receiver(self, **kwargs: Any) -> Receiver:
        if self.medplum is None:
            return Receiver(**kwargs)
        return Receiver(upstream=self.medplum.server.base, **kwargs)


@pytest.fixture(params=["stand-in", "medplum"])
async def care_platform(request: pytest.FixtureRequest) -> CarePlatform:
    """Run the test against the stand-in and against the real FHIR server."""
    if request.param == "stand-in":
        return CarePlatform("stand-in", None)
    client = Medplum(request.getfixturevalue("medplum_server"))
    await client.reset()
    return CarePlatform("medplum", client)
