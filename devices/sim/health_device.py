"""What every simulated home measuring device has in common: a clock, a memory, a way to behave.

:class:`SimulatedHealthDevice` is the base of the per-profile models (``blood_pressure_cuff``,
``weight_scale``, ``glucose_meter``, ...). A model says what its GATT table is, what a random
reading looks like and which bytes a reading becomes (always through the ``devices.gatt``
encoders); the base class does the rest the way real devices do it:

* **A clock that is off.** :class:`DeviceClock` runs ``clock_offset_s`` ahead of (or, negative,
  behind) the host's local wall clock. Readings without a scripted ``measured_at`` are stamped
  with it, in whole seconds, as a device stamps them. With ``current_time_service`` (the
  default for devices that keep time) the device has the Current Time Service (0x1805): a read
  of Current Time (0x2A2B) returns its clock, a write sets it.
* **A Battery Service** (0x180F) with Battery Level (0x2A19) unless ``battery_level`` is None.
* **Two ways to behave** (``mode``):

  - ``"connected"`` (the default): the device advertises whenever it is not connected and, once
    a central subscribes to its measurement characteristic, sends its scripted readings one per
    ``interval_s`` (endless random ones without a script), each stamped when it is sent. The
    link stays up.
  - ``"cycle"``: what a real cuff, scale or thermometer does. It sleeps (no advertising) until
    it takes a measurement (every ``interval_s``, or when a test calls :meth:`measure`), stamps
    and stores it, then advertises for ``advertise_s``. A central that connects and subscribes
    gets every stored reading in one burst; ``linger_s`` after the last exchange the device
    drops the link and goes back to sleep. Readings it could not hand over stay stored for the
    next time.

* **Faults** (:class:`Faults`): drop the link after a number of values of a burst (once), send
  a malformed (truncated) copy before every n-th value, take ``discovery_delay_s`` to resolve
  services, demand pairing before anything but the battery level may be read.

A reading counts as handed over when its value is queued for the radio (as the cuff's memory
does); with a ``state_file`` the number of scripted readings handed over survives restarts,
so a restarted simulator does not replay them.
"""

from __future__ import annotations

import abc
import asyncio
import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import ClassVar, Literal

from devices.gatt import decode_current_time, encode, encode_battery_level, encode_current_time
from devices.gatt.errors import DecodeError
from devices.models import Measurement
from devices.profiles import (
    BATTERY_LEVEL,
    BATTERY_SERVICE,
    CURRENT_TIME,
    CURRENT_TIME_SERVICE,
    Profile,
    profile,
)
from devices.sim.peripheral import AttError, Characteristic, Peripheral, Service
from devices.state import write_json_atomically

Mode = Literal["connected", "cycle"]
MODES: tuple[Mode, ...] = ("connected", "cycle")

# ATT error for a write whose value has the wrong length / is out of range.
_ATT_VALUE_NOT_ALLOWED = 0x13  # "Value Not Allowed" (Core Supplement, common profile errors)
_ATT_INVALID_LENGTH = 0x0D


class DeviceClock:
    """A device's wall clock: the host's local time plus ``offset_s``; writing it sets it."""

    def __init__(self, offset_s: float = 0.0) -> None:
        self.offset_s = float(offset_s)
        self._last_stamp: datetime | None = None

    def now(self) -> datetime:
        """The device's current time, naive (devices keep local time), with microseconds."""
        return datetime.now() + timedelta(seconds=self.offset_s)

    def stamp(self) -> datetime:
        """A measurement time stamp: whole seconds, as the Date Time field carries it.

        A real device cannot take two measurements within one second, and the gateway rightly
        treats two readings of one device with the same stamp as one reading sent twice; so a
        simulation that measures faster than that gets strictly increasing stamps.
        """
        stamp = self.now().replace(microsecond=0)
        if self._last_stamp is not None and stamp <= self._last_stamp:
            stamp = self._last_stamp + timedelta(seconds=1)
        self._last_stamp = stamp
        return stamp

    def set(self, device_time: datetime) -> None:
        """The central wrote ``device_time``: from now on the clock shows that (and runs on)."""
        self.offset_s = (device_time - datetime.now()).total_seconds()
        self._last_stamp = None


@dataclass(frozen=True, slots=True, eq=False)
class _Stored:
    """A stamped reading in the device's memory; ``scripted`` if it came from the script."""

    reading: Measurement
    scripted: bool


@dataclass(frozen=True, slots=True)
class Faults:
    """Fault injection. All off by default.

    ``drop_link_after``: the device drops the link after sending this many values in one
    connection, once (a device walking out of range mid-burst). ``malformed_every``: before
    every n-th value the device sends a truncated copy of it (the good value still follows).
    ``discovery_delay_s``: service discovery takes this long after the link is up.
    """

    drop_link_after: int | None = None
    malformed_every: int = 0
    discovery_delay_s: float = 0.0

    def __post_init__(self) -> None:
        if self.drop_link_after is not None and self.drop_link_after < 1:
            raise ValueError("drop_link_after must be at least 1")
        if self.malformed_every < 0:
            raise ValueError("malformed_every must not be negative")
        if self.discovery_delay_s < 0:
            raise ValueError("discovery_delay_s must not be negative")


class SimulatedHealthDevice(Peripheral, abc.ABC):
    """Base of the simulated home measuring devices; see the module docstring.

    Subclasses set ``PROFILE`` (a ``devices.profiles`` name) and ``MEASUREMENT`` (the
    characteristic that carries stored readings) and implement :meth:`profile_services` and
    :meth:`random_reading`; :meth:`payloads` and :meth:`prepare` have defaults.
    """

    PROFILE: ClassVar[str]
    MEASUREMENT: ClassVar[str]
    # Whether the device keeps time (and so, by default, has the Current Time Service).
    KEEPS_TIME: ClassVar[bool] = True

    def __init__(
        self,
        address: str,
        name: str,
        readings: Sequence[Measurement] | None,
        interval_s: float,
        state_file: Path | None = None,
        clock_offset_s: float = 0.0,
        *,
        mode: Mode = "connected",
        advertise_s: float = 10.0,
        linger_s: float = 1.0,
        battery_level: int | None = 100,
        current_time_service: bool | None = None,
        requires_pairing: bool = False,
        faults: Faults | None = None,
        seed: int | None = None,
    ) -> None:
        if interval_s < 0:
            raise ValueError("interval_s must not be negative")
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
        if advertise_s <= 0 or linger_s <= 0:
            raise ValueError("advertise_s and linger_s must be positive")
        self.faults = faults or Faults()
        self.clock = DeviceClock(clock_offset_s)
        self.battery_level = battery_level
        self.has_current_time = (
            self.KEEPS_TIME if current_time_service is None else current_time_service
        )
        services = list(self.profile_services())
        if self.has_current_time:
            services.append(
                Service(
                    CURRENT_TIME_SERVICE,
                    (Characteristic(CURRENT_TIME, ("read", "write", "notify")),),
                )
            )
        if battery_level is not None:
            services.append(
                Service(
                    BATTERY_SERVICE,
                    (
                        Characteristic(
                            BATTERY_LEVEL, ("read", "notify"), encode_battery_level(battery_level)
                        ),
                    ),
                )
            )
        health = self.health_profile()
        super().__init__(
            address,
            name,
            services,
            # Devices advertise their health service, not the utility services.
            advertised_uuids=[health.service],
            requires_pairing=requires_pairing,
            discovery_delay_s=self.faults.discovery_delay_s,
        )
        self.interval_s = interval_s
        self.mode: Mode = mode
        self.advertise_s = advertise_s
        self.linger_s = linger_s
        self.time_writes = 0
        self._random = random.Random(seed)
        self._script = None if readings is None else [self.prepare(r) for r in readings]
        self._state_file = state_file
        self._delivered = self._load_state()  # before payloads(): some models number their values
        if self._script is not None:
            for reading in self._script:
                # Fail at construction, not mid-transfer, for readings the device cannot send.
                self.payloads(self._stamped(reading))
        self._measured = self._delivered  # cycle mode: scripted readings taken into memory
        self._sent_now = 0
        self._stored: list[_Stored] = []  # cycle mode: measured, not yet handed over
        self._own_send: _Stored | None = None
        self._sender: asyncio.Task[None] | None = None
        self._idle: asyncio.TimerHandle | None = None
        self._advertising_off: asyncio.TimerHandle | None = None
        self._values_this_link = 0
        self._values_total = 0
        self._drop_pending = self.faults.drop_link_after
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        if mode == "cycle":
            self.set_advertising(False)

    # -- what a model defines ----------------------------------------------------------------

    @classmethod
    def health_profile(cls) -> Profile:
        return profile(cls.PROFILE)

    @abc.abstractmethod
    def profile_services(self) -> Sequence[Service]:
        """The device's health service(s); Current Time and Battery are added by the base."""

    @abc.abstractmethod
    def random_reading(self, rng: random.Random) -> Measurement:
        """A plausible reading for random mode (no script); no ``measured_at``."""

    def prepare(self, reading: Measurement) -> Measurement:
        """Complete a scripted reading as the device would (e.g. a cuff's mean pressure)."""
        return reading

    def payloads(self, reading: Measurement) -> list[tuple[str, bytes]]:
        """The values (characteristic, bytes) the device sends for one stamped reading."""
        return [(self.MEASUREMENT, encode(self.MEASUREMENT, reading))]

    def starts_transfer(self, char_uuid: str) -> bool:
        """Whether subscribing to ``char_uuid`` makes the device send its readings."""
        return char_uuid == self.MEASUREMENT

    # -- what tests and the demo look at -------------------------------------------------------

    @property
    def delivered(self) -> int:
        """Scripted readings handed over so far, across restarts (random mode: this run)."""
        return self._delivered if self._script is not None else self._sent_now

    @property
    def pending(self) -> int | None:
        """Scripted readings not handed over yet; None in random mode (never runs out)."""
        return None if self._script is None else len(self._script) - self._delivered

    @property
    def stored(self) -> int:
        """Cycle mode: readings measured and waiting in the device's memory."""
        return len(self._stored)

    @property
    def values_sent(self) -> int:
        """Every value the device queued for the radio, malformed copies included."""
        return self._values_total

    async def wait_delivered(self, count: int) -> None:
        """Wait until ``delivered >= count``. Wrap in ``asyncio.wait_for`` for a deadline."""
        if self.delivered >= count:
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (count, waiter)
        self._waiters.append(entry)
        try:
            await waiter
        finally:
            self._waiters.remove(entry)

    def measure(self, reading: Measurement | None = None) -> Measurement | None:
        """Cycle mode: take a measurement now, store it and advertise; None when out of script.

        ``reading`` (a test's own) is used instead of the next scripted or random one.
        """
        if self.mode != "cycle":
            raise RuntimeError("measure() is for cycle mode; a connected device streams")
        scripted = reading is None and self._script is not None
        if reading is None:
            reading = self._next_reading(self._measured)
            if reading is None:
                return None
            if scripted:
                self._measured += 1
        else:
            reading = self.prepare(reading)
        stamped = self._stamped(reading)
        self._stored.append(_Stored(stamped, scripted))
        self.took_measurement(stamped)
        return stamped

    def took_measurement(self, reading: Measurement) -> None:
        """A new reading is in memory: send it if a central is listening, else advertise."""
        if self.connected and self._transfer_ready():
            self._start_sender()
            return
        self._advertise_for(self.advertise_s)

    # -- Peripheral hooks ----------------------------------------------------------------------

    def on_attached(self) -> None:
        if self.mode == "cycle" and self.interval_s > 0:
            self.spawn_background(self._measuring(), "measure")
        if self.mode == "cycle" and self.has_unsent():
            self._advertise_for(self.advertise_s)

    def on_connected(self) -> None:
        self._values_this_link = 0
        self._cancel_advertising_timer()
        self._touch()

    def on_disconnected(self) -> None:
        self._stop_sender()
        if self._idle is not None:
            self._idle.cancel()
            self._idle = None
        if self.mode == "cycle":
            if self.has_unsent():
                # The transfer did not finish: try again for a while, as a real device does.
                self._advertise_for(self.advertise_s)
            else:
                self.set_advertising(False)  # asleep until the next measurement

    def on_notify_started(self, char_uuid: str) -> None:
        self._touch()
        if self.starts_transfer(char_uuid):
            self._start_sender()

    def on_notify_stopped(self, char_uuid: str) -> None:
        if self.starts_transfer(char_uuid):
            self._stop_sender()

    def on_read(self, char_uuid: str) -> bytes:
        self._touch()
        if char_uuid == CURRENT_TIME:
            return encode_current_time(self.clock.now())
        if char_uuid == BATTERY_LEVEL and self.battery_level is not None:
            return encode_battery_level(self.battery_level)
        return super().on_read(char_uuid)

    def on_write(self, char_uuid: str, data: bytes) -> None:
        self._touch()
        if char_uuid == CURRENT_TIME:
            if len(data) != 10:
                raise AttError(_ATT_INVALID_LENGTH, "Current Time is 10 octets")
            try:
                written = decode_current_time(data)
            except DecodeError as exc:
                raise AttError(_ATT_VALUE_NOT_ALLOWED, str(exc)) from exc
            if written is None:
                raise AttError(_ATT_VALUE_NOT_ALLOWED, "date unknown")
            self.clock.set(written)
            self.time_writes += 1
            return
        super().on_write(char_uuid, data)

    def on_value_sent(self, char_uuid: str, data: bytes) -> None:
        self._touch()
        self._values_total += 1
        self._values_this_link += 1
        item, self._own_send = self._own_send, None
        if item is not None:
            self._handed_over(item)
        if self._drop_pending is not None and self._values_this_link >= self._drop_pending:
            self._drop_pending = None
            # The value is queued already (it reaches the central first); then the radio link
            # goes, as when walking out of range, before anything else can be sent.
            self.drop_link()

    # -- sending -------------------------------------------------------------------------------

    def _transfer_ready(self) -> bool:
        return self.is_notifying(self.MEASUREMENT)

    def _start_sender(self) -> None:
        if self._sender is None or self._sender.done():
            self._sender = self.spawn(self._send_readings(), "send readings")

    def _stop_sender(self) -> None:
        sender, self._sender = self._sender, None
        if sender is not None:
            sender.cancel()

    async def _send_readings(self) -> None:
        if self.mode == "cycle":
            # The burst: everything stored, back to back.
            while self._stored:
                if not await self.send_reading(self._stored[0]):
                    return
            return
        first = True
        while True:
            position = self._delivered if self._script is not None else 0
            reading = self._next_reading(position)
            if reading is None:
                return
            if not first:
                await asyncio.sleep(self.interval_s)
            first = False
            item = _Stored(self._stamped(reading), self._script is not None)
            if not await self.send_reading(item):
                return

    async def send_reading(self, item: _Stored) -> bool:
        """Send every value of one reading; it is handed over with its last value."""
        values = self.payloads(item.reading)
        for index, (char_uuid, data) in enumerate(values):
            last = index == len(values) - 1
            if not await self.send_value(char_uuid, data, item if last else None):
                return False
        return True

    async def send_value(self, char_uuid: str, data: bytes, item: _Stored | None = None) -> bool:
        """Notify/indicate one value (with the malformed-payload fault applied).

        ``item`` is the reading this value completes: it counts as handed over once the value
        is queued.
        """
        if self._malformed_now():
            # A truncated copy first; it does not decode. The good value follows.
            await self.notify(char_uuid, data[:-1] if len(data) > 1 else b"\xff")
        self._own_send = item
        try:
            return await self.notify(char_uuid, data)
        finally:
            self._own_send = None

    def _malformed_now(self) -> bool:
        every = self.faults.malformed_every
        return bool(every) and (self._values_total + 1) % every == 0

    def _handed_over(self, item: _Stored) -> None:
        self._sent_now += 1
        if self._stored and self._stored[0] is item:
            self._stored.pop(0)
        if item.scripted:
            self._delivered += 1
            self._save_state()
        self._wake_waiters()

    def _wake_waiters(self) -> None:
        for count, waiter in self._waiters:
            if self.delivered >= count and not waiter.done():
                waiter.set_result(None)

    def busy(self) -> bool:
        """Whether the device is in the middle of sending."""
        return self._sender is not None and not self._sender.done()

    def has_unsent(self) -> bool:
        """Cycle mode: whether something measured has not been handed over yet."""
        return bool(self._stored)

    # -- cycle mode ----------------------------------------------------------------------------

    async def _measuring(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            if self.measure() is None:
                return

    def _advertise_for(self, seconds: float) -> None:
        self._cancel_advertising_timer()
        if self.connected:
            return
        self.set_advertising(True)
        self._advertising_off = asyncio.get_running_loop().call_later(
            seconds, self._stop_advertising
        )

    def _stop_advertising(self) -> None:
        self._advertising_off = None
        if not self.connected:
            self.set_advertising(False)

    def _cancel_advertising_timer(self) -> None:
        if self._advertising_off is not None:
            self._advertising_off.cancel()
            self._advertising_off = None

    def _touch(self) -> None:
        """Cycle mode: an exchange happened; hang up ``linger_s`` after the last one."""
        if self.mode != "cycle" or not self.connected:
            return
        if self._idle is not None:
            self._idle.cancel()
        self._idle = asyncio.get_running_loop().call_later(self.linger_s, self._hang_up)

    def _hang_up(self) -> None:
        self._idle = None
        if self.busy():
            self._touch()  # still sending: wait for the burst to end
            return
        self.drop_link()

    # -- readings --------------------------------------------------------------------------------

    def _next_reading(self, position: int) -> Measurement | None:
        if self._script is None:
            return self.prepare(self.random_reading(self._random))
        if position >= len(self._script):
            return None
        return self._script[position]

    def _stamped(self, reading: Measurement) -> Measurement:
        if reading.measured_at is not None or not self.KEEPS_TIME:
            return reading
        return reading.model_copy(update={"measured_at": self.clock.stamp()})

    # -- memory of what was handed over ----------------------------------------------------------

    def _load_state(self) -> int:
        if self._state_file is None or self._script is None:
            return 0
        try:
            state = json.loads(self._state_file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return 0
        except (OSError, ValueError) as exc:
            raise ValueError(f"unreadable device state file {self._state_file}: {exc}") from exc
        delivered = state.get("delivered") if isinstance(state, dict) else None
        if isinstance(delivered, bool) or not isinstance(delivered, int) or delivered < 0:
            raise ValueError(f"device state file {self._state_file} has no valid 'delivered' count")
        return min(delivered, len(self._script))

    def _save_state(self) -> None:
        """Atomically replace the state file (write a sibling, then rename over it)."""
        if self._state_file is None:
            return
        write_json_atomically(self._state_file, {"delivered": self._delivered})
