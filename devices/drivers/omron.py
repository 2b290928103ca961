"""Omron cuffs of a known memory map: the stored-record transfer (``devices.omron``).

Selected when the device has Omron's vendor service and the target's ``model`` names a memory
map (``omron-hem-7322t``, ``omron-hem-7600t``). On each connection, after bonding:

1. Unlock with the 16-byte key this gateway stored in the cuff. The first time there is none:
   the cuff must be in pairing mode (hold its Bluetooth button until "-P-" shows); the driver
   enters key programming, stores a fresh random key and keeps it in the device memory. Not in
   pairing mode: ``DeviceStatus.pairing_required`` and a log line say what to do.
2. Start a transfer; read each user's unread-records counter and the cuff's clock from the
   settings; read the unread records of every user (oldest first, in blocks the family allows)
   and hand each over as a ``blood_pressure`` reading with its user index (1, 2) and the clock
   offset read before.
3. Only when all were handed over and the consumer has them on disk: reset the unread
   counters and set the clock, then end the transfer. A link lost (or records not stored)
   before that leaves the counters as they were, so the next connection reads the same
   records again; the pipeline recognises them by their time stamps.
"""

from __future__ import annotations

import asyncio
import secrets
from functools import partial

import structlog
from bleak import BleakClient
from bleak.backends.characteristic import BleakGATTCharacteristic

from devices.drivers.base import (
    DeviceRecord,
    Driver,
    PairingFailed,
    ProfileMismatch,
    SourceHooks,
    local_now,
    now_utc,
)
from devices.gatt import DecodeError
from devices.omron import (
    END,
    KEY_BYTES,
    MEMORY_MAPS,
    READ,
    REPLY,
    RX_CHANNELS,
    START,
    TX_CHANNELS,
    UNLOCK,
    WRITE,
    MemoryMap,
    Reassembler,
    Reply,
    clock_block,
    end_command,
    nothing_unread,
    parse_clock,
    parse_frame,
    parse_record,
    read_command,
    read_plan,
    split,
    start_command,
    unread_of,
    write_command,
)
from devices.profiles import BLOOD_PRESSURE_MEASUREMENT

log = structlog.get_logger(__name__)

_KEY = "omron_key"  # hex of the unlock key this gateway stored in the cuff


class OmronError(Exception):
    """The cuff answered the memory protocol in a way the transfer cannot go on from."""


class OmronDriver(Driver):
    """Stored records of an Omron cuff through its memory protocol."""

    def __init__(
        self,
        hooks: SourceHooks,
        device: DeviceRecord,
        client: BleakClient,
        lost: asyncio.Event,
        advertised_name: str | None = None,
    ) -> None:
        super().__init__(hooks, device, client, lost, advertised_name)
        model = device.target.model
        if model not in MEMORY_MAPS:
            raise ProfileMismatch(f"no Omron memory map for model {model!r}")
        self.memory: MemoryMap = MEMORY_MAPS[model]
        self._frames = Reassembler()
        self._reply: asyncio.Future[Reply] | None = None
        self._unlock_answer: asyncio.Future[bytes] | None = None

    async def set_up(self) -> None:
        await super().set_up()  # battery (the clock lives in the settings: set at the end)
        for channel, uuid in enumerate(RX_CHANNELS):
            char = self._require(uuid)
            await self.gatt(partial(self.client.start_notify, char, partial(self._on_rx, channel)))
        await self.gatt(partial(self.client.start_notify, self._require(UNLOCK), self._on_unlock))
        if not await self._unlock():
            return
        try:
            await self._transfer()
        except (OmronError, DecodeError) as exc:
            if self.link_lost():
                raise
            log.warning("ble.omron_transfer_failed", device=self.ref, error=str(exc))

    def _require(self, uuid: str) -> BleakGATTCharacteristic:
        char = self.characteristic(uuid)
        if char is None:
            raise ProfileMismatch(f"no Omron characteristic {uuid} on the device")
        return char

    # -- unlock ------------------------------------------------------------------------------------

    async def _unlock(self) -> bool:
        key_hex = self.device.memory.get(_KEY)
        key = bytes.fromhex(key_hex) if isinstance(key_hex, str) else None
        if key is None or len(key) != KEY_BYTES:
            key = await self._program_key()
            if key is None:
                return False
        answer = await self._unlock_request(bytes((0x01,)) + key)
        if answer[:2] == b"\x81\x00":
            self.device.pairing_required = False
            self.hooks.changed()
            return True
        # The cuff forgot our key (reset, or paired with another app since).
        self.device.memory.set(_KEY, None)
        self._pairing_needed("the cuff did not accept this gateway's key")
        return False

    async def _program_key(self) -> bytes | None:
        if (await self._unlock_request(bytes((0x02,)) + bytes(KEY_BYTES)))[:2] != b"\x82\x00":
            self._pairing_needed("the cuff is not in pairing mode")
            return None
        key = secrets.token_bytes(KEY_BYTES)
        if (await self._unlock_request(bytes((0x00,)) + key))[:2] != b"\x80\x00":
            raise PairingFailed("the cuff refused the new key")
        self.device.memory.set(_KEY, key.hex())
        log.info("ble.omron_key_stored", device=self.ref)
        return key

    def _pairing_needed(self, why: str) -> None:
        self.device.pairing_required = True
        self.hooks.changed()
        log.warning(
            "ble.omron_pairing_required",
            device=self.ref,
            reason=why,
            action="hold the cuff's Bluetooth button until '-P-' shows; the gateway pairs at "
            "its next connection",
        )

    async def _unlock_request(self, data: bytes) -> bytes:
        answer: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._unlock_answer = answer
        char = self._require(UNLOCK)
        await self.gatt(lambda: self.client.write_gatt_char(char, data, response=True))
        try:
            async with asyncio.timeout(self.hooks.racp_timeout):
                return await answer
        except TimeoutError:
            if self.link_lost():
                raise
            return b""

    def _on_unlock(self, _char: BleakGATTCharacteristic, data: bytearray) -> None:
        answer = self._unlock_answer
        if answer is not None and not answer.done():
            answer.set_result(bytes(data))

    # -- the transfer ----------------------------------------------------------------------------

    async def _transfer(self) -> None:
        memory = self.memory
        await self._command(start_command(), START)
        unread_start, unread_end = memory.unread_range
        clock_start, clock_end = memory.clock_range
        counters = await self._read(memory.settings_read + unread_start, unread_end - unread_start)
        clock = await self._read(memory.settings_read + clock_start, clock_end - clock_start)
        arrived = local_now()
        cuff_time = parse_clock(clock)
        offset = None if cuff_time is None else float(round((cuff_time - arrived).total_seconds()))
        self.clock.offsets.before = offset
        self.device.clock_offset_s = offset
        handed = 0
        for user, state in enumerate(unread_of(memory, counters)):
            data = b""
            for address, size in read_plan(memory, user, state):
                data += await self._read(address, size)
            for at in range(0, len(data), memory.record_size):
                record = parse_record(memory, data[at : at + memory.record_size], user + 1)
                if record is None:
                    continue
                if self.hand_over(BLOOD_PRESSURE_MEASUREMENT, record, now_utc(), local_now()):
                    handed += 1
        # All handed over and on disk: mark them read and set the clock, then close the
        # transfer. Not stored (a full disk, a consumer that stopped): the cuff keeps them.
        if not await self.handed_over_stored():
            log.warning("ble.omron_records_kept", device=self.ref, reason="not stored yet")
            await self._command(end_command(), END)
            return
        await self._write(memory.settings_write + unread_start, nothing_unread(counters))
        now = local_now()
        await self._write(memory.settings_write + clock_start, clock_block(clock, now))
        self.clock.offsets.synced_at = now
        self.clock.offsets.after = 0.0
        self.device.clock_offset_s = 0.0
        await self._command(end_command(), END)
        self.hooks.changed()
        log.info("ble.omron_records_downloaded", device=self.ref, records=handed, offset_s=offset)

    async def _read(self, address: int, size: int) -> bytes:
        data = b""
        while len(data) < size:
            block = min(self.memory.block_size, size - len(data))
            answer = await self._command(
                read_command(address + len(data), block), READ, address + len(data)
            )
            if len(answer.data) != block:
                raise OmronError(
                    f"read at 0x{address:04x}: {len(answer.data)} bytes, {block} asked"
                )
            data += answer.data
        return data

    async def _write(self, address: int, data: bytes) -> None:
        answer = await self._command(write_command(address, data), WRITE, address)
        if answer.data[:1] not in (b"", b"\x00"):
            raise OmronError(f"write at 0x{address:04x} refused (code 0x{answer.data[0]:02x})")

    async def _command(self, frame: bytes, kind: int, address: int = 0) -> Reply:
        """Send a frame over the TX channels; the cuff's reply (checked) or OmronError."""
        answer: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        self._reply = answer
        for channel, piece in enumerate(split(frame)):
            char = self._require(TX_CHANNELS[channel])
            await self.gatt(partial(self.client.write_gatt_char, char, piece, response=True))
        try:
            async with asyncio.timeout(self.hooks.racp_timeout):
                reply = await answer
        except TimeoutError:
            if self.link_lost():
                raise
            raise OmronError(f"no answer to command 0x{kind:04x}") from None
        finally:
            self._reply = None
        if reply.kind != kind | REPLY or (kind in (READ, WRITE) and reply.address != address):
            raise OmronError(f"answer 0x{reply.kind:04x} at 0x{reply.address:04x} to 0x{kind:04x}")
        return reply

    def _on_rx(self, channel: int, _char: BleakGATTCharacteristic, data: bytearray) -> None:
        frame = self._frames.feed(channel, bytes(data))
        if frame is None:
            return
        try:
            reply = parse_frame(frame)
        except DecodeError as exc:
            self.decode_failed(RX_CHANNELS[0], len(frame), exc)
            return
        answer = self._reply
        if answer is not None and not answer.done():
            answer.set_result(reply)
