"""One scanner for every device: it runs while anyone is looking or listening.

BlueZ keeps discovery sessions per D-Bus client and bleak shares one D-Bus connection per
process, so two bleak scanners in one process share one session: the first to stop ends
discovery for the other and the second stop fails. One scanner for all devices avoids that.

* ``find(address)``: a connected device's driver waits for its advertisement, then connects.
* ``listening(address, callback)``: a broadcast-only device (a scale that puts each weighing in
  its advertisements) is listened to for as long as the block runs; every advertisement heard
  goes to the callback.

Devices are matched by their configured address; a device that advertises a health service but
is not configured is logged once (by profile, never by address) so a user knows to run
``health-gateway scan``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator

import structlog
from bleak import BleakScanner
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData

from devices.drivers.link import LINK_ERRORS, describe
from devices.profiles import PROFILES

log = structlog.get_logger(__name__)

AdvertisementCallback = Callable[[BLEDevice, AdvertisementData], None]


class NotFound(Exception):
    """The device was not heard within the scan timeout."""


class Finder:
    """Owns the scanner: starts it when wanted, stops it when nobody is looking or listening."""

    def __init__(self, configured: set[str]) -> None:
        self._waiters: dict[str, list[asyncio.Future[BLEDevice]]] = {}
        self._listeners: dict[str, list[AdvertisementCallback]] = {}
        self._wanted = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._configured = configured
        self._by_service = {p.service: name for name, p in PROFILES.items()}
        self._reported: set[str] = set()

    async def find(self, address: str, within_s: float) -> BLEDevice:
        """The device as soon as it advertises; NotFound after ``within_s`` seconds."""
        key = address.upper()
        waiter: asyncio.Future[BLEDevice] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(key, []).append(waiter)
        self._update()
        try:
            async with asyncio.timeout(within_s):
                return await waiter
        except TimeoutError:
            raise NotFound(f"not heard within {within_s:g} s") from None
        finally:
            waiters = self._waiters.get(key, [])
            if waiter in waiters:
                waiters.remove(waiter)
            if not waiters:
                self._waiters.pop(key, None)
            self._update()

    @contextlib.contextmanager
    def listening(self, address: str, callback: AdvertisementCallback) -> Iterator[None]:
        """Every advertisement of ``address`` goes to ``callback`` while the block runs."""
        key = address.upper()
        self._listeners.setdefault(key, []).append(callback)
        self._update()
        try:
            yield
        finally:
            callbacks = self._listeners.get(key, [])
            if callback in callbacks:
                callbacks.remove(callback)
            if not callbacks:
                self._listeners.pop(key, None)
            self._update()

    async def run(self) -> None:
        while True:
            await self._wanted.wait()
            try:
                async with BleakScanner(detection_callback=self._on_advertisement):
                    await self._idle.wait()
            except LINK_ERRORS as exc:
                # Hand the failure to whoever is looking; each retries on its own schedule,
                # and the scanner starts again when someone looks again. Listeners stay: the
                # scanner restarts for them after a pause.
                log.warning("ble.scan_failed", error=describe(exc))
                self._fail_waiters(exc)
                if self._listeners:
                    await asyncio.sleep(1.0)

    def _on_advertisement(self, device: BLEDevice, adv: AdvertisementData) -> None:
        key = device.address.upper()
        for waiter in self._waiters.get(key, ()):
            if not waiter.done():
                waiter.set_result(device)
        for callback in list(self._listeners.get(key, ())):
            callback(device, adv)
        if key in self._configured or key in self._reported:
            return
        profiles = [self._by_service[u] for u in adv.service_uuids if u in self._by_service]
        if profiles:
            self._reported.add(key)
            log.info(
                "ble.unconfigured_device",
                profile=profiles[0],
                hint="a health device nearby is not configured; `health-gateway scan` shows "
                "its address for a [[devices]] entry",
            )

    def _fail_waiters(self, exc: BaseException) -> None:
        for waiters in list(self._waiters.values()):
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_exception(exc)
        self._waiters.clear()
        self._update()

    def _update(self) -> None:
        if self._waiters or self._listeners:
            self._idle.clear()
            self._wanted.set()
        else:
            self._wanted.clear()
            self._idle.set()
