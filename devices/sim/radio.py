"""The simulated radio: a private D-Bus with a simulated BlueZ on it, for bleak in this process.

Used by the gateway when the configured devices are simulated, and by the demo. Inside the
``async with`` block, bleak (which reads ``DBUS_SYSTEM_BUS_ADDRESS`` each time it connects to
the system bus) talks to the simulator exactly as it talks to bluetoothd on a Pi. Enter it
before anything in the event loop uses bleak: bleak keeps one BlueZ connection per loop.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import TracebackType

from devices.sim.bluez import SimulatedBlueZ
from devices.sim.dbus_daemon import PrivateDbusDaemon
from devices.sim.peripheral import Peripheral

SYSTEM_BUS_ENV = "DBUS_SYSTEM_BUS_ADDRESS"


@contextlib.contextmanager
def simulated_bluez_version() -> Iterator[None]:
    """Tell bleak which BlueZ version it is talking to: the simulator's, not the machine's.

    Before its first connection bleak runs ``bluetoothctl --version`` to learn the BlueZ
    version. That asks the wrong party: the answer describes the machine's BlueZ installation,
    not the service on the bus, which here is the simulator. Without bluetoothctl (the usual
    case on a dev machine or in CI) bleak logs a warning and assumes a recent BlueZ; with an
    old one (< 5.55) installed, bleak refuses to connect to a simulator that would work fine.

    Options were: a fake ``bluetoothctl`` script prepended to PATH (changes what every
    subprocess of the gateway sees, and a file to manage), or doing nothing (a spurious warning
    or a refusal depending on the machine). We instead record the answer in bleak's own cache
    of the check, ``BlueZFeatures.checked_bluez_version``/``supported_version``, which bleak
    consults before running the subprocess, and put the previous values back on exit. The
    simulator implements the BlueZ >= 5.55 D-Bus API, so "supported" is the true answer. If a
    future bleak drops that cache, this does nothing and bleak falls back to its own check.
    """
    features = _bluez_features()
    if features is None:
        yield
        return
    saved = (features.checked_bluez_version, features.supported_version)
    features.checked_bluez_version = True
    features.supported_version = True
    try:
        yield
    finally:
        features.checked_bluez_version, features.supported_version = saved


def _bluez_features() -> type | None:
    if sys.platform != "linux":
        return None
    try:
        from bleak.backends.bluezdbus.version import BlueZFeatures
    except ImportError:
        return None
    if not all(
        hasattr(BlueZFeatures, name) for name in ("checked_bluez_version", "supported_version")
    ):
        return None
    return BlueZFeatures


@contextlib.contextmanager
def system_bus_address(address: str) -> Iterator[None]:
    """Point ``DBUS_SYSTEM_BUS_ADDRESS`` at ``address``; restore (or unset) it on exit."""
    saved = os.environ.get(SYSTEM_BUS_ENV)
    os.environ[SYSTEM_BUS_ENV] = address
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop(SYSTEM_BUS_ENV, None)
        else:
            os.environ[SYSTEM_BUS_ENV] = saved


class SimulatedRadio:
    """Private dbus-daemon + simulated BlueZ with ``peripherals`` in range, as a context manager."""

    def __init__(
        self,
        workdir: Path,
        peripherals: Sequence[Peripheral],
        *,
        advertising_interval_s: float = 0.05,
    ) -> None:
        self._workdir = Path(workdir)
        self._peripherals = list(peripherals)
        self._interval = advertising_interval_s
        self._stack: contextlib.AsyncExitStack | None = None
        self._bluez: SimulatedBlueZ | None = None
        self._address: str | None = None

    @property
    def bluez(self) -> SimulatedBlueZ:
        if self._bluez is None:
            raise RuntimeError("the simulated radio is not running")
        return self._bluez

    @property
    def address(self) -> str:
        """The private bus address (also in ``DBUS_SYSTEM_BUS_ADDRESS`` while running)."""
        if self._address is None:
            raise RuntimeError("the simulated radio is not running")
        return self._address

    async def __aenter__(self) -> SimulatedRadio:
        async with contextlib.AsyncExitStack() as stack:
            daemon = await stack.enter_async_context(PrivateDbusDaemon(self._workdir))
            stack.enter_context(system_bus_address(daemon.address))
            stack.enter_context(simulated_bluez_version())
            bluez = SimulatedBlueZ(daemon.address, advertising_interval_s=self._interval)
            for peripheral in self._peripherals:
                bluez.add_peripheral(peripheral)
            await bluez.start()
            stack.push_async_callback(bluez.stop)
            self._bluez = bluez
            self._address = daemon.address
            self._stack = stack.pop_all()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        stack, self._stack = self._stack, None
        self._bluez = None
        self._address = None
        if stack is not None:
            await stack.aclose()
