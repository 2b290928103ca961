"""Where bleak finds BlueZ: the system bus address, and its answer to bleak's version check.

Light on purpose (no simulator in it): the gateway process imports it when the simulated radio
runs in a process of its own (``simulator_process``).
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator

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
