"""Glucose meters: stored records through the Record Access Control Point (0x2A52).

On every connection the meter is asked for the records newer than the last sequence number
handed over, which the device memory keeps across restarts. "No records found" is the normal
answer when nothing is new; a meter that refuses the filter is asked for all records and the
known ones are skipped; a procedure that goes quiet for ``racp_timeout`` is aborted. Each
measurement is held until its Glucose Measurement Context (0x2A34) arrives and the two go on as
one ``glucose`` reading. If the link drops in between, the measurement is not passed on and not
counted as seen, so the next download brings it again with its context.

A meter whose sequence numbers identify nothing (the decoder marks its records
``status["sequence_number_reliable"] = False``: TaiDoc DM30b, see ``devices.gatt.quirks``) is
remembered as such and asked for all its records each time; none is skipped by number, and the
pipeline recognises the ones it has by their time stamps.
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from functools import partial

import structlog
from bleak import BleakClient
from bleak.backends.characteristic import BleakGATTCharacteristic

from devices.drivers.base import (
    LINK_ERRORS,
    DeviceRecord,
    SourceHooks,
    describe,
    local_now,
    now_utc,
)
from devices.drivers.standard import StandardDriver
from devices.gatt import DecodeError, GlucoseContextJoiner
from devices.gatt.quirks import SEQUENCE_NUMBER_RELIABLE
from devices.gatt.racp import (
    RacpRequest,
    RacpResponse,
    RacpResponseCode,
    abort_operation,
    decode_racp_response,
    encode_racp_request,
    report_all_records,
    report_records_from,
)
from devices.models import Measurement
from devices.profiles import GLUCOSE_MEASUREMENT

log = structlog.get_logger(__name__)

# RACP response codes that mean "I do not do that filter"; answered by asking for everything.
_FILTER_REFUSED = frozenset(
    {
        RacpResponseCode.INVALID_OPERATOR,
        RacpResponseCode.OPERATOR_NOT_SUPPORTED,
        RacpResponseCode.INVALID_OPERAND,
        RacpResponseCode.OPERAND_NOT_SUPPORTED,
    }
)
_SEQUENCE_MAX = 0xFFFF
_LAST_SEQUENCE = "last_sequence"
_UNRELIABLE = "sequence_numbers_unreliable"


class GlucoseDriver(StandardDriver):
    """A glucose meter with a record store behind RACP."""

    def __init__(
        self,
        hooks: SourceHooks,
        device: DeviceRecord,
        client: BleakClient,
        lost: asyncio.Event,
        advertised_name: str | None = None,
    ) -> None:
        super().__init__(hooks, device, client, lost, advertised_name)
        self._joiner = GlucoseContextJoiner()
        self._racp: BleakGATTCharacteristic | None = None
        self._racp_answer: asyncio.Future[RacpResponse] | None = None
        self._racp_activity = time.monotonic()
        self._records = 0

    # -- what was handed over, across restarts ---------------------------------------------------

    @property
    def last_sequence(self) -> int | None:
        value = self.device.memory.get(_LAST_SEQUENCE)
        if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= _SEQUENCE_MAX:
            return value
        return None

    @property
    def _numbers_unreliable(self) -> bool:
        return self.device.memory.get(_UNRELIABLE) is True

    def _seen(self, sequence: int) -> bool:
        if self._numbers_unreliable:
            return False
        last = self.last_sequence
        return last is not None and sequence <= last

    def _advance(self, sequence: int) -> None:
        if not self._numbers_unreliable and not self._seen(sequence):
            self.device.memory.set(_LAST_SEQUENCE, sequence)

    # -- set-up ----------------------------------------------------------------------------------

    async def set_up(self) -> None:
        await super().set_up()
        racp_uuid = self.device.profile.record_access_control_point
        racp = None if racp_uuid is None else self.characteristic(racp_uuid)
        if racp is None:
            return
        await self.gatt(partial(self.client.start_notify, racp, self._on_racp))
        self._racp = racp
        await self._download_records()

    async def _download_records(self) -> None:
        last = None if self._numbers_unreliable else self.last_sequence
        if last is None or last >= _SEQUENCE_MAX:
            request = report_all_records()  # nothing can be newer than the maximum: skip known
        else:
            request = report_records_from(last + 1)
        log.debug("ble.records_requested", device=self.ref, after=last)
        answer = await self._racp_request(request)
        if answer is not None and answer.response_code in _FILTER_REFUSED and last is not None:
            log.info("ble.racp_filter_unsupported", device=self.ref)
            answer = await self._racp_request(report_all_records())
        if answer is None:
            return
        code = answer.response_code
        if code == RacpResponseCode.SUCCESS:
            log.info("ble.records_downloaded", device=self.ref, records=self._records)
        elif code == RacpResponseCode.NO_RECORDS_FOUND:
            log.debug("ble.no_new_records", device=self.ref)
        else:
            name = code.name if isinstance(code, RacpResponseCode) else f"0x{code:02x}"
            log.warning("ble.racp_failed", device=self.ref, response_code=name)

    async def _racp_request(self, request: RacpRequest) -> RacpResponse | None:
        """Write a request; the device's response, or None (refused, silent, link gone)."""
        assert self._racp is not None
        racp = self._racp
        answer: asyncio.Future[RacpResponse] = asyncio.get_running_loop().create_future()
        self._racp_answer = answer
        data = encode_racp_request(request)
        try:
            await self.gatt(lambda: self.client.write_gatt_char(racp, data, response=True))
        except LINK_ERRORS as exc:
            if self.link_lost():
                raise
            log.warning("ble.racp_refused", device=self.ref, error=describe(exc))
            return None
        self._racp_activity = time.monotonic()
        if await self._until_answered(answer):
            return answer.result()
        if self.link_lost():
            return None
        # The procedure went quiet: abort it, so the next connection can start afresh.
        log.warning("ble.racp_timeout", device=self.ref, idle_s=self.hooks.racp_timeout)
        aborted: asyncio.Future[RacpResponse] = asyncio.get_running_loop().create_future()
        self._racp_answer = aborted
        abort = encode_racp_request(abort_operation())
        try:
            await self.client.write_gatt_char(racp, abort, response=True)
        except LINK_ERRORS as exc:
            if self.link_lost():
                raise
            log.warning("ble.racp_abort_failed", device=self.ref, error=describe(exc))
            return None
        self._racp_activity = time.monotonic()
        if await self._until_answered(aborted):
            log.info("ble.racp_aborted", device=self.ref)
        return None

    async def _until_answered(self, answer: asyncio.Future[RacpResponse]) -> bool:
        """Wait for ``answer`` while records keep coming; False after ``racp_timeout`` of
        silence or when the link is lost."""
        lost = asyncio.ensure_future(self.lost.wait())
        try:
            while not answer.done() and not self.link_lost():
                idle = time.monotonic() - self._racp_activity
                remaining = self.hooks.racp_timeout - idle
                if remaining <= 0:
                    return False
                await asyncio.wait(
                    {answer, lost}, timeout=remaining, return_when=asyncio.FIRST_COMPLETED
                )
            return answer.done()
        finally:
            lost.cancel()
            # Not `suppress(CancelledError): await lost`: a cancel of this task arriving while it
            # awaits `lost` would be swallowed there, and the source would never stop.
            await asyncio.wait({lost})

    def _on_racp(self, char: BleakGATTCharacteristic, data: bytearray) -> None:
        self._racp_activity = time.monotonic()
        try:
            response = decode_racp_response(bytes(data))
        except DecodeError as exc:
            self.decode_failed(self._racp.uuid if self._racp else char.uuid, len(data), exc)
            return
        answer = self._racp_answer
        if answer is not None and not answer.done():
            answer.set_result(response)

    # -- values ----------------------------------------------------------------------------------

    def value_arrived(self) -> None:
        self._racp_activity = time.monotonic()

    def complete(self, char_uuid: str, measurement: Measurement) -> list[tuple[str, Measurement]]:
        kind = measurement.kind
        if (
            measurement.status.get(SEQUENCE_NUMBER_RELIABLE) is False
            and not self._numbers_unreliable
        ):
            log.info("ble.sequence_numbers_unreliable", device=self.ref)
            self.device.memory.set(_UNRELIABLE, True)
        if kind == "glucose":
            sequence = measurement.status.get("sequence_number")
            if isinstance(sequence, int) and self._seen(sequence):
                self.drop("record seen before")
                return []
        if kind not in ("glucose", "glucose_context"):
            return super().complete(char_uuid, measurement)
        out = []
        for item in self._joiner.feed(measurement):
            if item.kind == "glucose_context":
                self.drop("context without its measurement")
            else:
                # A glucose reading completed by its context is still a Glucose Measurement.
                out.append((GLUCOSE_MEASUREMENT, item))
        return out

    def hand_over(
        self, char_uuid: str, measurement: Measurement, received_at: datetime, arrived: datetime
    ) -> bool:
        if not super().hand_over(char_uuid, measurement, received_at, arrived):
            return False
        sequence = measurement.status.get("sequence_number")
        if measurement.kind == "glucose" and isinstance(sequence, int):
            self._records += 1
            stored = self.last_stored
            if stored is None:
                self._advance(sequence)
            else:  # the next download starts after it only once it is on disk
                stored.add_done_callback(partial(self._advance_if_stored, sequence))
        return True

    def _advance_if_stored(self, sequence: int, stored: asyncio.Future[bool]) -> None:
        if not stored.cancelled() and stored.exception() is None and stored.result():
            self._advance(sequence)

    def close(self) -> None:
        super().close()
        if self._racp is None:
            # Without a record store nothing comes again: pass a held measurement on as is.
            now, arrived = now_utc(), local_now()
            for held in self._joiner.flush():
                self.hand_over(GLUCOSE_MEASUREMENT, held, now, arrived)
        elif self._joiner.flush():
            # The context was lost with the link; the meter sends both again next time.
            log.debug("ble.record_deferred", device=self.ref)
        answer = self._racp_answer
        if answer is not None and not answer.done():
            answer.cancel()
