"""What every benchmark needs: the receiver process, the gateway in-process or as a process,
the injector that plays the BLE callback, and /proc readings."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from unittest import mock

import orjson

import gateway.app as app_module
import gateway.trouble as trouble_module
from bench.workload import BLOOD_PRESSURE_MEASUREMENT
from devices.adapter import BluetoothState
from devices.gatt import decode
from devices.source import DeviceTarget, Received
from gateway.app import Gateway
from gateway.delivery.worker import DeliveryWorker
from gateway.settings import ConfigError, Settings, parse_settings
from gateway.trouble import NOT_USED

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
REPO = Path(__file__).resolve().parent.parent


# /proc ---------------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
        fields = handle.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime


def memory_kib(pid: int) -> dict[str, int]:
    """VmRSS (resident now), VmHWM (peak resident) in KiB, and VmRSS's two main parts:
    RssAnon (the process's own heap and stacks) and RssFile (mapped files, mostly the shared
    libraries' pages in use, which other processes of the same libraries share)."""
    values: dict[str, int] = {}
    with open(f"/proc/{pid}/status", encoding="ascii") as handle:
        for line in handle:
            name, _, rest = line.partition(":")
            if name in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
                values[name] = int(rest.split()[0])
    return values


def thread_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/task"))


def children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children", encoding="ascii") as handle:
            return [int(p) for p in handle.read().split()]
    except FileNotFoundError:
        return []


def command_name(pid: int) -> str:
    with open(f"/proc/{pid}/comm", encoding="ascii") as handle:
        return handle.read().strip()


# the receiver ----------------------------------------------------------------------------------


@dataclass(slots=True)
class Hook:
    received_ns: int
    measured_at: str
    type: str


@dataclass(slots=True)
class ReceiverCounts:
    fhir_requests: int = 0
    fhir_readings: int = 0
    fhir_bytes: int = 0
    hooks: list[Hook] = field(default_factory=list)
    raised: int = 0  # hooks of type alert.raised
    analytics_requests: int = 0
    analytics_events: int = 0
    first_ns: int | None = None
    last_ns: int | None = None


class ReceiverProcess:
    """``bench.receiver`` as a subprocess; counts what it accepted, line by line."""

    def __init__(self, secret_file: Path) -> None:
        self.secret_file = secret_file
        self.counts = ReceiverCounts()
        self.url = ""
        self.process: asyncio.subprocess.Process | None = None
        self._changed = asyncio.Condition()
        self._reader: asyncio.Task[None] | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    async def start(self) -> ReceiverProcess:
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.receiver",
            "--secret-file",
            str(self.secret_file),
            "--max-seconds",
            "1800",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            cwd=REPO,
        )
        assert self.process.stdout is not None
        first = await asyncio.wait_for(self.process.stdout.readline(), 30)
        word, _, port = first.decode().partition(" ")
        if word != "ready":
            raise RuntimeError(f"receiver did not start: {first!r}")
        self.url = f"http://127.0.0.1:{int(port)}"
        self._reader = asyncio.create_task(self._read(), name="receiver-lines")
        return self

    async def _read(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        async for raw in self.process.stdout:
            counts = self.counts  # ``reset`` replaces it
            kind, *parts = raw.decode().split()
            now = int(parts[0])
            counts.first_ns = now if counts.first_ns is None else counts.first_ns
            counts.last_ns = now
            if kind == "fhir":
                counts.fhir_requests += 1
                counts.fhir_readings += int(parts[1])
                counts.fhir_bytes += int(parts[3])
            elif kind == "hook":
                counts.hooks.append(Hook(now, parts[1], parts[2]))
                counts.raised += parts[2] == "alert.raised"
            elif kind == "analytics":
                counts.analytics_requests += 1
                counts.analytics_events += int(parts[1])
            async with self._changed:
                self._changed.notify_all()

    async def wait_for(self, predicate: Callable[[ReceiverCounts], bool], within_s: float) -> None:
        async def until() -> None:
            async with self._changed:
                await self._changed.wait_for(lambda: predicate(self.counts))

        await asyncio.wait_for(until(), within_s)

    def reset(self) -> None:
        self.counts = ReceiverCounts()

    async def stop(self) -> None:
        if self.process is None:
            return
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            await asyncio.wait_for(self.process.wait(), 10)
        except TimeoutError:
            self.process.kill()
            await self.process.wait()
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)


# the gateway in this process -------------------------------------------------------------------


class InjectedSource:
    """Stands in for ``BleSource`` in-process: no radio; readings come from an ``Injector``."""

    def __init__(
        self,
        targets: list[DeviceTarget],
        on_reading: Callable[[Received], None],
        **_options: Any,  # BleSource's options (state directory, ...): nothing to keep here
    ) -> None:
        self.targets = targets
        self.on_reading = on_reading

    async def run(self) -> None:
        await asyncio.Event().wait()

    def status(self) -> list[Any]:
        return []


class Injector:
    """Plays the BLE notification callback (``BleSource._on_value``): bytes -> decode ->
    ``Received`` -> ``pipeline.submit``."""

    def __init__(self, gateway: Gateway, targets: list[DeviceTarget]) -> None:
        assert gateway.pipeline is not None
        self._submit = gateway.pipeline.submit
        self._targets = targets

    def notify(self, device: int, data: bytes) -> None:
        received_at = datetime.now(UTC)
        measurement = decode(BLOOD_PRESSURE_MEASUREMENT, data)
        self._submit(
            Received(self._targets[device], BLOOD_PRESSURE_MEASUREMENT, measurement, received_at)
        )


def settings_from(config: dict[str, Any]) -> Settings:
    return parse_settings(config)


def supports_destination_kind(kind: str, config: dict[str, Any]) -> bool:
    """Whether this gateway's settings accept a destination of ``kind`` (analytics is new)."""
    try:
        parse_settings(config)
    except ConfigError as exc:
        if "unknown destination kind" in str(exc) or f"'{kind}'" in str(exc):
            return False
        raise
    return True


async def _no_radio() -> BluetoothState:
    return NOT_USED


@contextlib.asynccontextmanager
async def gateway_in_process(settings: Settings) -> AsyncIterator[Gateway]:
    """``Gateway.run`` in this event loop with ``InjectedSource`` instead of the BLE source."""
    stop = asyncio.Event()
    gateway = Gateway(settings)
    # No radio here, so nothing to watch: the injector stands in for the Bluetooth stack.
    with (
        mock.patch.object(app_module, "BleSource", InjectedSource),
        mock.patch.object(trouble_module, "check_bluetooth", _no_radio),
    ):
        task = asyncio.create_task(gateway.run(stop), name="gateway")
        ready = asyncio.create_task(gateway.ready.wait())
        await asyncio.wait([task, ready], timeout=60, return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            ready.cancel()
            task.result()
            raise RuntimeError("gateway stopped before it was ready")
        if not ready.done():
            ready.cancel()
            raise RuntimeError("gateway was not ready within 60 s")
    try:
        yield gateway
    finally:
        stop.set()
        await asyncio.wait_for(task, 120)


def worker(gateway: Gateway, name: str) -> DeliveryWorker:
    return next(w for w in gateway.workers if w.sink.name == name)


async def wait_until(predicate: Callable[[], bool], within_s: float, step: float = 0.005) -> None:
    """Check ``predicate`` every ``step`` seconds until it holds, for at most ``within_s``."""
    deadline = time.monotonic() + within_s
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"condition not met within {within_s:g} s")
        await asyncio.sleep(step)


# the gateway as a process ----------------------------------------------------------------------


class GatewayProcess:
    """``python -m gateway run --config FILE``; its JSON log lines are kept as they arrive."""

    def __init__(self, config: Path, environment: dict[str, str] | None = None) -> None:
        self.config = config
        self.environment = environment or {}  # on top of this process's own
        self.events: list[dict[str, Any]] = []
        self.lines: list[str] = []
        self.process: asyncio.subprocess.Process | None = None
        self._changed = asyncio.Condition()
        self._reader: asyncio.Task[None] | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    async def start(self) -> None:
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "gateway",
            "run",
            "--config",
            str(self.config),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env={**os.environ, **self.environment, "PYTHONUNBUFFERED": "1"},
            cwd=REPO,
        )
        self._reader = asyncio.create_task(self._read(), name="gateway-lines")

    async def _read(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        async for raw in self.process.stdout:
            line = raw.decode(errors="replace").rstrip("\n")
            async with self._changed:
                self.lines.append(line)
                with contextlib.suppress(orjson.JSONDecodeError):
                    self.events.append(orjson.loads(line))
                self._changed.notify_all()

    async def wait_for(
        self, predicate: Callable[[list[dict[str, Any]]], bool], within_s: float
    ) -> None:
        async def until() -> None:
            async with self._changed:
                await self._changed.wait_for(lambda: predicate(self.events))

        try:
            await asyncio.wait_for(until(), within_s)
        except TimeoutError:
            tail = "\n".join(self.lines[-20:])
            raise TimeoutError(
                f"gateway: condition not met in {within_s:g} s; log:\n{tail}"
            ) from None

    async def stop(self, within_s: float = 60.0) -> int:
        assert self.process is not None
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            code = await asyncio.wait_for(self.process.wait(), within_s)
        except TimeoutError:
            self.process.kill()
            code = await self.process.wait()
        if self._reader is not None:
            await asyncio.wait_for(self._reader, within_s)
        return code


# profiling -----------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def sampled(pid: int, output: Path | None, rate: int = 200) -> AsyncIterator[None]:
    """Sample ``pid`` (all its threads) with py-spy while the block runs, into ``output`` as
    collapsed stacks (``bench.profile`` summarises them). Does nothing when ``output`` is None."""
    if output is None:
        yield
        return
    spy = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).with_name("py-spy")),
        "record",
        "--pid",
        str(pid),
        "--rate",
        str(rate),
        "--format",
        "raw",
        "--output",
        str(output),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        yield
    finally:
        spy.send_signal(signal.SIGINT)  # py-spy writes its output and exits
        try:
            await asyncio.wait_for(spy.wait(), 30)
        except TimeoutError:
            spy.kill()
            await spy.wait()
