"""Setting a device's clock on connect, and knowing which clock stamped each reading.

Two ways exist in the wild:

* **Current Time** (0x2A2B, Current Time Service 0x1805): most devices. The clock is read, its
  offset from the gateway's local clock (device minus gateway, whole seconds) noted, the
  gateway's time written, and the clock read back.
* **Date Time** (0x2A08) without a Current Time Service: A&D Medical cuffs and scales
  (UA-651BLE, UC-352BLE) and Roche Accu-Chek meters carry a writable Date Time characteristic
  in their health service and stamp readings with it; a cuff whose clock was never set stamps
  them in 2000 (the clock starts at its reset value). Same steps: read when readable, write
  the gateway's time, read back.

Every ``Received`` carries the offset of the clock that stamped it: readings stamped before
the sync (the stored burst that follows) carry the offset read before it; readings stamped by
the corrected clock carry the residual (about 0). A reading counts as stamped after the sync
when the gateway time its stamp implies lies between the sync and its arrival (a reading cannot
arrive before it was taken). Only a stored reading taken almost exactly "offset" seconds before
the sync can be misjudged that way, and only when the device clock was ahead.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import structlog
from bleak.backends.characteristic import BleakGATTCharacteristic

from devices.drivers.date_time import decode_date_time, encode_date_time
from devices.drivers.link import LINK_ERRORS, describe, local_now
from devices.gatt import DecodeError, decode_current_time, encode_current_time
from devices.profiles import CURRENT_TIME, DATE_TIME

if TYPE_CHECKING:
    from devices.drivers.base import Driver

log = structlog.get_logger(__name__)

# How far a device time stamp may stray from the gateway time it implies (1 s resolution).
_STAMP_SLACK = timedelta(seconds=2)


@dataclass(slots=True)
class ClockOffsets:
    """The device clock's offset before and after this connection's sync."""

    before: float | None = None
    after: float | None = None
    synced_at: datetime | None = None  # gateway local time when the time was written

    def now(self) -> float | None:
        return self.after if self.synced_at is not None else self.before

    def stamped_by(self, measured_at: datetime | None, arrived: datetime) -> float | None:
        """The offset of the clock that stamped a reading that arrived at ``arrived``."""
        if self.synced_at is None:
            return self.before
        if measured_at is None:
            return self.after
        try:
            implied = measured_at - timedelta(seconds=self.after or 0.0)
        except OverflowError:  # a stamp near year 1 or 9999: not one the synced clock made
            return self.before
        if self.synced_at - _STAMP_SLACK <= implied <= arrived + _STAMP_SLACK:
            return self.after
        return self.before


@dataclass(frozen=True, slots=True)
class _ClockCodec:
    uuid: str
    encode: Callable[[datetime], bytes]
    decode: Callable[[bytes], datetime | None]


_CURRENT_TIME = _ClockCodec(CURRENT_TIME, encode_current_time, decode_current_time)
_DATE_TIME = _ClockCodec(DATE_TIME, encode_date_time, decode_date_time)


class ClockSync:
    """One connection's clock step and the offsets it learned."""

    def __init__(self, driver: Driver) -> None:
        self._driver = driver
        self.offsets = ClockOffsets()
        self.method: str | None = None  # "current_time" or "date_time" once found

    def _clock(self) -> tuple[_ClockCodec, BleakGATTCharacteristic] | None:
        # Current Time first: a device with both keeps its clock there.
        for codec in (_CURRENT_TIME, _DATE_TIME):
            char = self._driver.characteristic(codec.uuid)
            if char is not None:
                return codec, char
        return None

    async def sync(self) -> None:
        found = self._clock()
        if found is None:
            return
        codec, char = found
        self.method = "current_time" if codec is _CURRENT_TIME else "date_time"
        driver = self._driver
        device = driver.device
        offsets = self.offsets
        try:
            if "read" in char.properties:
                offsets.before = await self._read(codec, char)
                device.clock_offset_s = offsets.before
                driver.hooks.changed()
            if "write" not in char.properties:
                log.info("ble.time_not_settable", device=driver.ref, offset_s=offsets.before)
                return
            now = local_now()
            data = codec.encode(now)
            await driver.gatt(lambda: driver.client.write_gatt_char(char, data, response=True))
        except LINK_ERRORS as exc:
            if driver.link_lost():
                raise
            log.warning("ble.time_sync_failed", device=driver.ref, error=describe(exc))
            return
        # Written: from now on the device stamps with the gateway's time. The read-back only
        # measures how well (a device that keeps whole seconds is up to 1 s behind).
        offsets.synced_at = now
        offsets.after = 0.0
        after = None
        if "read" in char.properties:
            try:
                after = await self._read(codec, char)
            except LINK_ERRORS as exc:
                if driver.link_lost():
                    raise
                log.info("ble.time_readback_failed", device=driver.ref, error=describe(exc))
        if after is not None:
            offsets.after = after
        device.clock_offset_s = offsets.after
        driver.hooks.changed()
        log.info(
            "ble.time_synced",
            device=driver.ref,
            method=self.method,
            offset_before_s=offsets.before,
            offset_after_s=offsets.after,
        )

    async def _read(self, codec: _ClockCodec, char: BleakGATTCharacteristic) -> float | None:
        """The device clock's offset from the gateway's local clock, or None if unknown."""
        driver = self._driver
        data = await driver.gatt(lambda: driver.client.read_gatt_char(char))
        arrived = local_now()
        try:
            device_time = codec.decode(bytes(data))
        except DecodeError as exc:
            driver.decode_failed(codec.uuid, len(data), exc)
            return None
        if device_time is None:
            return None
        # Whole seconds: device time stamps carry no more, and 0.0 means "in step".
        return float(round((device_time - arrived).total_seconds())) + 0.0
