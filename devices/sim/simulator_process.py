"""The simulated BlueZ and its devices in a process of their own, as bluetoothd is on a hub.

On a Raspberry Pi the radio's side of BLE (bluetoothd, the system bus) runs in processes apart
from the gateway. ``SimulatorProcess`` gives a simulated radio the same shape: a private
dbus-daemon and a child Python process that owns ``org.bluez`` on it, so the gateway's
process holds only the gateway (what its memory and CPU figures should measure), and a
simulator that misbehaves cannot stall the gateway's event loop. bleak in this process talks
to the child exactly as it talks to bluetoothd (``radio.SimulatedRadio`` is the same radio
inside the calling process, for tests that drive the devices themselves).

The protocol between the two processes, both sides of it here:

* the child runs ``python -m MODULE PARENT_PID`` with ``DBUS_SYSTEM_BUS_ADDRESS`` set; it
  first asks to die with its parent (``lifeline``), then reads one line of JSON (the spec,
  which only ``MODULE`` understands) from stdin;
* once its ``org.bluez`` is on the bus it writes ``ready`` on stdout, and writes nothing
  more there (later output goes to the log file);
* it stops (detaching the devices, which save their state) when stdin closes: when the
  parent closes it to stop the simulation, or when the parent is gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from devices.sim.dbus_daemon import PrivateDbusDaemon
from devices.sim.lifeline import die_with_parent
from devices.sim.system_bus import SYSTEM_BUS_ENV, simulated_bluez_version, system_bus_address

if TYPE_CHECKING:
    from devices.sim.peripheral import Peripheral

READY = b"ready\n"
LOG_NAME = "simulator.log"
_START_TIMEOUT_S = 60.0  # a cold Python start with its imports, on a busy 2-core Pi
_STOP_TIMEOUT_S = 10.0


class SimulatorProcessError(RuntimeError):
    """The simulator process did not start (its log's last line says why)."""


class SimulatorProcess:
    """Private dbus-daemon + simulator child running ``module``, as an async context manager.

    Inside the ``async with`` block ``DBUS_SYSTEM_BUS_ADDRESS`` points at the private bus and
    bleak's BlueZ version check is answered for the simulator (as ``SimulatedRadio`` does).
    The child's stderr goes to ``workdir/simulator.log``.
    """

    def __init__(self, workdir: Path, module: str, spec: bytes) -> None:
        if b"\n" in spec:
            raise ValueError("the spec must be one line")
        self._workdir = Path(workdir)
        self._module = module
        self._spec = spec
        self._stack: contextlib.AsyncExitStack | None = None
        self._process: asyncio.subprocess.Process | None = None

    @property
    def pid(self) -> int:
        if self._process is None:
            raise RuntimeError("the simulator process is not running")
        return self._process.pid

    async def __aenter__(self) -> SimulatorProcess:
        async with contextlib.AsyncExitStack() as stack:
            daemon = await stack.enter_async_context(PrivateDbusDaemon(self._workdir))
            stack.push_async_callback(self._stop_child)
            await self._start_child(daemon.address)
            stack.enter_context(system_bus_address(daemon.address))
            stack.enter_context(simulated_bluez_version())
            self._stack = stack.pop_all()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        stack, self._stack = self._stack, None
        if stack is not None:
            await stack.aclose()

    async def _start_child(self, bus_address: str) -> None:
        log_path = self._workdir / LOG_NAME
        with log_path.open("ab") as log:
            # Started from this (the event loop's) thread: the child's parent-death signal is
            # tied to the thread that forks it.
            self._process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                self._module,
                str(os.getpid()),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=log,
                env={**os.environ, SYSTEM_BUS_ENV: bus_address},
            )
        process = self._process
        assert process.stdin is not None and process.stdout is not None
        process.stdin.write(self._spec + b"\n")
        line = b""
        with contextlib.suppress(TimeoutError, ConnectionError):
            async with asyncio.timeout(_START_TIMEOUT_S):
                await process.stdin.drain()
                line = await process.stdout.readline()
        if line != READY:
            raise SimulatorProcessError(
                "the simulator process did not start: " + _last_line(log_path)
            )

    async def _stop_child(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        if process.stdin is not None:
            process.stdin.close()  # the child's signal to stop
            with contextlib.suppress(ConnectionError):
                await process.stdin.wait_closed()
        try:
            async with asyncio.timeout(_STOP_TIMEOUT_S):
                await process.wait()
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
        if process.stdout is not None:
            await process.stdout.read()  # release the pipe's transport now


def _last_line(path: Path) -> str:
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").strip().splitlines()
    except OSError:
        return "(no log)"
    return lines[-1] if lines else "(nothing logged)"


# -- the child's side ---------------------------------------------------------------------------


def run_child(
    build: Callable[[bytes], Sequence[Peripheral]], *, advertising_interval_s: float = 0.05
) -> None:
    """The child's ``main``: ``build`` turns the spec into the devices to put in range."""
    die_with_parent(int(sys.argv[1]))
    # Ctrl-C in a terminal reaches the whole process group; the parent decides when the
    # simulation stops (it closes stdin), so the devices are not cut off before it has.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    spec = sys.stdin.buffer.readline()
    peripherals = build(spec)
    asyncio.run(_serve(peripherals, advertising_interval_s))


async def _serve(peripherals: Sequence[Peripheral], advertising_interval_s: float) -> None:
    # Imported here: the parent's side of this module must not load the simulator.
    from devices.sim.bluez import SimulatedBlueZ

    address = os.environ[SYSTEM_BUS_ENV]
    bluez = SimulatedBlueZ(address, advertising_interval_s=advertising_interval_s)
    for peripheral in peripherals:
        bluez.add_peripheral(peripheral)
    await bluez.start()
    try:
        os.write(sys.stdout.fileno(), READY)
        # Nothing else goes to the parent's pipe: later prints land in the log.
        os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
        await _until_stdin_closes()
    finally:
        await bluez.stop()


async def _until_stdin_closes() -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    transport, _ = await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), sys.stdin.buffer
    )
    try:
        while await reader.read(4096):
            pass
    finally:
        transport.close()
