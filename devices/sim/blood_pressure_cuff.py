"""A simulated blood-pressure cuff (Blood Pressure Service 0x1810).

Like a real cuff it keeps readings in memory and hands them over once a central enables
indications on Blood Pressure Measurement (0x2A35); a reading handed over is gone from the
cuff. With a state file, how many scripted readings have been handed over survives restarts,
so a restarted gateway and simulator continue where they stopped instead of replaying.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import tempfile
from datetime import datetime, timedelta
from pathlib import Path

from devices.gatt import encode
from devices.profiles import (
    BLOOD_PRESSURE_FEATURE,
    BLOOD_PRESSURE_MEASUREMENT,
    BLOOD_PRESSURE_SERVICE,
)
from devices.sim.peripheral import Characteristic, Peripheral, Service
from gateway.models import Measurement, Quantity

_MMHG = "mm[Hg]"
# Blood Pressure Feature: no optional status detection is claimed.
_FEATURES = b"\x00\x00"


class SimulatedBloodPressureCuff(Peripheral):
    """A cuff with a script of stored readings, or (``readings=None``) endless random ones.

    Readings go out one per ``interval_s`` while the central is subscribed, the first right
    after it subscribes. A reading without ``measured_at`` is stamped with the cuff's own clock
    (local time, ``clock_offset_s`` off), one without a mean arterial pressure gets the one a
    cuff computes. When the script is done the cuff stays connected and silent.
    """

    def __init__(
        self,
        address: str,
        name: str,
        readings: list[Measurement] | None,
        interval_s: float,
        state_file: Path | None,
        clock_offset_s: float = 0.0,
        *,
        seed: int | None = None,
    ) -> None:
        super().__init__(
            address,
            name,
            [
                Service(
                    BLOOD_PRESSURE_SERVICE,
                    (
                        Characteristic(BLOOD_PRESSURE_MEASUREMENT, ("indicate",)),
                        Characteristic(BLOOD_PRESSURE_FEATURE, ("read",), _FEATURES),
                    ),
                )
            ],
        )
        if interval_s < 0:
            raise ValueError("interval_s must not be negative")
        self.interval_s = interval_s
        self.clock_offset_s = clock_offset_s
        self._script = None if readings is None else [self._complete(r) for r in readings]
        if self._script is not None:
            for reading in self._script:
                # Fail at construction, not mid-transfer, for readings the cuff cannot send.
                encode(BLOOD_PRESSURE_MEASUREMENT, self._stamped(reading))
        self._state_file = state_file
        self._delivered = self._load_delivered()
        self._sent_now = 0
        self._random = random.Random(seed)
        self._sender: asyncio.Task[None] | None = None
        self._own_send = False
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []

    # what tests and the demo look at ----------

    @property
    def delivered(self) -> int:
        """Scripted readings handed over so far, across restarts (random mode: this run)."""
        return self._delivered if self._script is not None else self._sent_now

    @property
    def pending(self) -> int | None:
        """Scripted readings still stored in the cuff; None in random mode (never runs out)."""
        return None if self._script is None else len(self._script) - self._delivered

    async def wait_delivered(self, count: int) -> None:
        """Wait until ``delivered >= count``. Wrap in ``asyncio.wait_for`` for a deadline."""
        if self.delivered >= count:
            return
        waiter = asyncio.get_running_loop().create_future()
        entry = (count, waiter)
        self._waiters.append(entry)
        try:
            await waiter
        finally:
            self._waiters.remove(entry)

    def clock(self) -> datetime:
        """The cuff's clock: naive local time, ``clock_offset_s`` off, whole seconds."""
        now = datetime.now() + timedelta(seconds=self.clock_offset_s)
        return now.replace(microsecond=0)

    # Peripheral hooks ----------

    def on_notify_started(self, char_uuid: str) -> None:
        if char_uuid == BLOOD_PRESSURE_MEASUREMENT and self._sender is None:
            self._sender = self.spawn(self._send_readings(), "send readings")

    def on_notify_stopped(self, char_uuid: str) -> None:
        if char_uuid == BLOOD_PRESSURE_MEASUREMENT:
            self._stop_sender()

    def on_disconnected(self) -> None:
        self._stop_sender()

    def on_value_sent(self, char_uuid: str, data: bytes) -> None:
        # Only the cuff's own readings count; bytes a test injects through notify() do not.
        if not self._own_send:
            return
        self._own_send = False
        self._sent_now += 1
        if self._script is not None:
            self._delivered += 1
            self._save_delivered()
        for count, waiter in self._waiters:
            if self.delivered >= count and not waiter.done():
                waiter.set_result(None)

    # behaviour ----------

    def _stop_sender(self) -> None:
        sender, self._sender = self._sender, None
        if sender is not None:
            sender.cancel()

    async def _send_readings(self) -> None:
        first = True
        while True:
            reading = self._next_reading()
            if reading is None:
                return
            if not first:
                await asyncio.sleep(self.interval_s)
            first = False
            data = encode(BLOOD_PRESSURE_MEASUREMENT, self._stamped(reading))
            # notify() hands the value over (and calls on_value_sent) before it first yields,
            # so nothing else can send in between.
            self._own_send = True
            try:
                if not await self.notify(BLOOD_PRESSURE_MEASUREMENT, data):
                    return
            finally:
                self._own_send = False

    def _next_reading(self) -> Measurement | None:
        if self._script is None:
            return self._random_reading()
        if self._delivered >= len(self._script):
            return None
        return self._script[self._delivered]

    def _random_reading(self) -> Measurement:
        rng = self._random
        systolic = rng.randint(110, 150)
        diastolic = min(rng.randint(65, 95), systolic - 20)
        return self._complete(
            Measurement(
                kind="blood_pressure",
                values={
                    "systolic": Quantity(value=systolic, unit=_MMHG),
                    "diastolic": Quantity(value=diastolic, unit=_MMHG),
                    "pulse_rate": Quantity(value=rng.randint(55, 95), unit="/min"),
                },
            )
        )

    def _stamped(self, reading: Measurement) -> Measurement:
        if reading.measured_at is not None:
            return reading
        return reading.model_copy(update={"measured_at": self.clock()})

    @staticmethod
    def _complete(reading: Measurement) -> Measurement:
        """Add the mean arterial pressure a cuff derives when the reading does not carry one."""
        values = reading.values
        if "mean_arterial_pressure" in values or not {"systolic", "diastolic"} <= set(values):
            return reading
        systolic, diastolic = values["systolic"], values["diastolic"]
        if systolic.unit != diastolic.unit:
            return reading
        mean = diastolic.value + (systolic.value - diastolic.value) / 3
        digits = 0 if systolic.unit == _MMHG else 1
        return reading.model_copy(
            update={
                "values": {
                    **values,
                    "mean_arterial_pressure": Quantity(
                        value=round(mean, digits), unit=systolic.unit
                    ),
                }
            }
        )

    # memory of what was handed over ----------

    def _load_delivered(self) -> int:
        if self._state_file is None or self._script is None:
            return 0
        try:
            state = json.loads(self._state_file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return 0
        except (OSError, ValueError) as exc:
            raise ValueError(f"unreadable cuff state file {self._state_file}: {exc}") from exc
        delivered = state.get("delivered") if isinstance(state, dict) else None
        if isinstance(delivered, bool) or not isinstance(delivered, int) or delivered < 0:
            raise ValueError(f"cuff state file {self._state_file} has no valid 'delivered' count")
        return min(delivered, len(self._script))

    def _save_delivered(self) -> None:
        """Atomically replace the state file (write a sibling, then rename over it)."""
        if self._state_file is None:
            return
        path = self._state_file
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                json.dump({"delivered": self._delivered}, out)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
