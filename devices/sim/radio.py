"""The simulated radio: a private D-Bus with a simulated BlueZ on it, for bleak in this process.

For tests that drive the devices themselves (``radio.bluez``); the gateway runs its simulated
devices in a process of their own (``simulator_process``), as a hub runs bluetoothd. Inside the
``async with`` block, bleak (which reads ``DBUS_SYSTEM_BUS_ADDRESS`` each time it connects to
the system bus) talks to the simulator exactly as it talks to bluetoothd on a Pi. Enter it
before anything in the event loop uses bleak: bleak keeps one BlueZ connection per loop.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

from devices.sim.bluez import SimulatedBlueZ
from devices.sim.dbus_daemon import PrivateDbusDaemon
from devices.sim.peripheral import Peripheral
from devices.sim.system_bus import simulated_bluez_version, system_bus_address


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
