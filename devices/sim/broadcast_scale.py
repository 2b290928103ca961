"""Simulated Xiaomi broadcast scales: each weighing told in advertisements, never connected.

The frames follow captures of real scales (custom-components/ble_monitor, issues 366 and 1094,
``test_miscale_parser.py``; Bluetooth-Devices/xiaomi-ble ``tests/test_parser.py``), encoded by
``devices.broadcast.encode``:

1. The scale wakes when stepped on. It first repeats the "load removed" frame of the previous
   weighing (issue 366: a stale frame comes first after waking).
2. While the weight settles: frames with ``stabilized`` unset, the weight moving towards the
   final one, each stamped with the scale's clock.
3. The final weight: ``stabilized`` set, stamped once at that moment; the body composition
   scale adds the impedance. The very same frame is repeated (issue 1094 shows the repeat).
4. After stepping off: the same weighing with ``load_removed`` set (issue 1094: same stamp and
   weight), repeated, then the scale sleeps (stops advertising).

Each frame is advertised a given number of times: :meth:`weigh` waits until the simulated
BlueZ has reported it that often while discovering, so a listener hears every frame and every
repeat. The scale's clock runs ``clock_offset_s`` off the host's (Xiaomi scales keep their own
and are rarely set: issue 1094's stamps are in 1970).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from devices.broadcast import encode, service_uuid
from devices.models import Measurement, Quantity
from devices.sim.health_device import DeviceClock
from devices.sim.peripheral import Peripheral

# Anhui Huami (Xiaomi's scale maker) company identifier; its manufacturer data is the scale's
# address (ble_monitor captures: ``09FF5701`` + six address octets).
HUAMI_COMPANY_ID = 0x0157
_KINDS = {"xiaomi_scale": "weight", "xiaomi_body_composition": "body_composition"}
_NAMES = {"xiaomi_scale": "MI SCALE2", "xiaomi_body_composition": "MIBFS"}


@dataclass(frozen=True, slots=True)
class Weighing:
    """How one weighing goes: what the frames say and how often each is advertised."""

    weight: float
    unit: str = "kg"
    impedance: float | None = None  # body composition scale: Ohm, with the final frame
    settling: tuple[float, ...] = (0.55, 0.9, 0.98)  # unsettled frames, fractions of weight
    stable_repeats: int = 4
    removed_repeats: int = 3


class SimulatedBroadcastScale(Peripheral):
    """A Mi Scale 2 (``xiaomi_scale``) or a Mi Body Composition Scale 2
    (``xiaomi_body_composition``), asleep until :meth:`weigh`."""

    def __init__(
        self,
        address: str,
        profile: str,
        name: str | None = None,
        *,
        clock_offset_s: float = 0.0,
        rssi: int = -60,
        script: Sequence[Weighing] | None = None,
        interval_s: float = 0.0,
        seed: int | None = None,
    ) -> None:
        """``interval_s`` > 0: someone steps on every ``interval_s`` seconds while a radio is
        listening, with the ``script``'s weighings in turn (then it rests), or random ones."""
        if profile not in _KINDS:
            raise ValueError(f"unknown broadcast scale profile {profile!r}; use {sorted(_KINDS)}")
        self.profile = profile
        self.service = service_uuid(profile)
        address = address.upper()
        super().__init__(
            address,
            name or _NAMES[profile],
            [],
            advertised_uuids=[self.service],
            manufacturer_data={HUAMI_COMPANY_ID: bytes.fromhex(address.replace(":", ""))[::-1]},
            rssi=rssi,
        )
        if interval_s < 0:
            raise ValueError("interval_s must not be negative")
        self.clock = DeviceClock(clock_offset_s)
        self.script = None if script is None else list(script)
        for weighing in self.script or ():
            # Fail at construction, not mid-weighing, for weighings the scale cannot show.
            self._frame(
                self._reading(weighing, weighing.weight, datetime(2026, 1, 1), weighing.impedance),
                stabilized=True,
                removed=False,
            )
        self.interval_s = interval_s
        self._random = random.Random(seed)
        self.weighings = 0
        self._last: Measurement | None = None
        self._heard = asyncio.Event()
        self._heard_count = 0
        self.set_advertising(False)  # asleep until someone steps on

    def on_attached(self) -> None:
        if self.interval_s > 0:
            self.spawn_background(self._weighing_now_and_then(), "weigh")

    async def _weighing_now_and_then(self) -> None:
        played = 0
        while True:
            await asyncio.sleep(self.interval_s)
            if self.script is None:
                weight = round(self._random.uniform(55.0, 95.0), 1)
                impedance = None
                if self.profile == "xiaomi_body_composition":
                    impedance = float(self._random.randint(380, 620))
                weighing = Weighing(weight=weight, impedance=impedance)
            elif played < len(self.script):
                weighing = self.script[played]
            else:
                return
            await self.weigh(weighing)
            played += 1

    def on_advertised(self) -> None:
        self._heard_count += 1
        self._heard.set()

    async def weigh(self, weighing: Weighing) -> Measurement:
        """Play one weighing from waking to sleep; the stabilized frame's reading."""
        self.set_advertising(True)
        try:
            if self._last is not None:
                await self.advertise_frame(
                    self._frame(self._last, stabilized=True, removed=True), 2
                )
            for fraction in weighing.settling:
                unsettled = self._reading(weighing, weighing.weight * fraction, self._now())
                await self.advertise_frame(
                    self._frame(unsettled, stabilized=False, removed=False), 1
                )
            final = self._reading(weighing, weighing.weight, self._now(), weighing.impedance)
            await self.advertise_frame(
                self._frame(final, stabilized=True, removed=False), weighing.stable_repeats
            )
            self._last = final
            await self.advertise_frame(
                self._frame(final, stabilized=True, removed=True), weighing.removed_repeats
            )
        finally:
            self.set_advertising(False)
        self.weighings += 1
        return final

    async def replay(self, frames: Sequence[tuple[bytes, int]]) -> None:
        """Wake, advertise captured service data frames (each ``times`` times), sleep."""
        self.set_advertising(True)
        try:
            for frame, times in frames:
                await self.advertise_frame(frame, times)
        finally:
            self.set_advertising(False)

    async def hold_stable(self, repeats: int) -> None:
        """Advertise the last weighing's stabilized frame again (someone still standing on)."""
        if self._last is None:
            raise RuntimeError("no weighing yet")
        self.set_advertising(True)
        try:
            await self.advertise_frame(
                self._frame(self._last, stabilized=True, removed=False), repeats
            )
        finally:
            self.set_advertising(False)

    def _now(self) -> datetime:
        # Whole seconds, as the frame carries them, and strictly increasing: a real weighing
        # takes seconds, so two weighings never share a stamp.
        return self.clock.stamp()

    def _reading(
        self, weighing: Weighing, weight: float, at: datetime, impedance: float | None = None
    ) -> Measurement:
        step = 0.05 if weighing.unit == "kg" else 0.1  # the display's steps: 50 g, 0.1 lb
        values = {
            "body_weight": Quantity(value=round(round(weight / step) * step, 2), unit=weighing.unit)
        }
        if impedance is not None:
            values["impedance"] = Quantity(value=float(impedance), unit="Ohm")
        return Measurement(kind=_KINDS[self.profile], values=values, measured_at=at)

    def _frame(self, reading: Measurement, *, stabilized: bool, removed: bool) -> bytes:
        values = dict(reading.values)
        if removed:
            values.pop("impedance", None)  # the encoder (like the scale) sends it only while on
        frame = reading.model_copy(
            update={"values": values, "status": {"stabilized": stabilized, "load_removed": removed}}
        )
        return encode(self.profile, frame)

    async def advertise_frame(self, frame: bytes, times: int) -> None:
        """Put ``frame`` in the service data until it was advertised ``times`` times (also for
        replaying captured frames)."""
        self.service_data = {self.service: frame}
        target = self._heard_count + times
        while self._heard_count < target:
            self._heard.clear()
            await self._heard.wait()
