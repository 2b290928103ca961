"""A simulated Omron cuff of the HEM-7322T family that hands out its history from EEPROM.

It serves its stored records the way ``devices.omron`` describes the real ones (omblepy,
hass-omron): a vendor service with four TX and four RX channels and an unlock characteristic;
nothing is read before the central has bonded (BLE pairing) and unlocked with the 16-byte key it
stored in key-programming mode, which the cuff enters only while in pairing mode ("-P-" on its
display); records in a ring buffer per user with an unread counter in the settings; a clock in
the settings that the central may set. Each measurement is stamped with the cuff's clock.
"""

from __future__ import annotations

from datetime import datetime

from devices.models import Measurement
from devices.omron import (
    END,
    KEY_BYTES,
    MEMORY_MAPS,
    OMRON_SERVICE,
    READ,
    REPLY,
    RX_CHANNELS,
    START,
    TX_CHANNELS,
    UNLOCK,
    WRITE,
    Reassembler,
    clock_block,
    encode_record,
    parse_clock,
    parse_frame,
    reply,
    split,
)
from devices.sim.health_device import DeviceClock
from devices.sim.peripheral import Characteristic, Peripheral, Service

_EEPROM_BYTES = 0x1000
_SETTINGS_BYTES = 0x26


class SimulatedOmronCuff(Peripheral):
    """An Omron cuff (``model`` a ``devices.omron.MEMORY_MAPS`` key) with stored records."""

    def __init__(
        self,
        address: str,
        name: str = "BLEsmart_00000116",
        model: str = "omron-hem-7322t",
        *,
        clock_offset_s: float = 0.0,
        pairing_mode: bool = False,
    ) -> None:
        self.memory = MEMORY_MAPS[model]
        super().__init__(
            address,
            name,
            [
                Service(
                    OMRON_SERVICE,
                    (
                        *(
                            Characteristic(u, ("write", "write-without-response"))
                            for u in TX_CHANNELS
                        ),
                        *(Characteristic(u, ("notify",)) for u in RX_CHANNELS),
                        Characteristic(UNLOCK, ("write", "notify")),
                    ),
                )
            ],
            requires_pairing=True,
        )
        self.pairing_mode = pairing_mode
        self.clock = DeviceClock(clock_offset_s)
        self.key: bytes | None = None
        self.eeprom = bytearray(_EEPROM_BYTES)
        for start in self.memory.user_starts:
            end = start + self.memory.records_per_user * self.memory.record_size
            self.eeprom[start:end] = b"\xff" * (end - start)
        self.settings = bytearray(_SETTINGS_BYTES)
        self.settings[4:8] = b"\x80\x00\x80\x00"  # nothing unread
        self._unlocked = False
        self._key_programming = False
        self._reassembler = Reassembler()
        self.transfers = 0  # completed start..end transfers

    # -- what a person does --------------------------------------------------------------------

    def measure(self, user_index: int, reading: Measurement) -> Measurement:
        """Store a reading for user 1 or 2 in the next ring slot, stamped by the cuff's clock."""
        memory = self.memory
        user = user_index - 1
        stamped = reading.model_copy(
            update={
                "measured_at": reading.measured_at or self.clock.stamp(),
                "user_index": user_index,
            }
        )
        last = self.settings[2 * user + 1] % memory.records_per_user
        unread = self.settings[2 * user + 5] if self.settings[2 * user + 4] != 0x80 else 0
        address = memory.user_starts[user] + last * memory.record_size
        self.eeprom[address : address + memory.record_size] = encode_record(memory, stamped)
        self.settings[2 * user : 2 * user + 2] = bytes((0, (last + 1) % memory.records_per_user))
        self.settings[2 * user + 4 : 2 * user + 6] = bytes(
            (0, min(unread + 1, memory.records_per_user))
        )
        return stamped

    def clock_now(self) -> datetime | None:
        start, end = self.memory.clock_range
        return parse_clock(bytes(self.settings[start:end]))

    # -- link ------------------------------------------------------------------------------------

    def on_connected(self) -> None:
        self._unlocked = False
        self._key_programming = False
        self._reassembler = Reassembler()
        start, end = self.memory.clock_range
        self.settings[start:end] = clock_block(
            bytes(self.settings[start : start + 2]), self.clock.now()
        )

    def on_write(self, char_uuid: str, data: bytes) -> None:
        if char_uuid == UNLOCK:
            self.spawn(self._notify(UNLOCK, self._unlock(data)), "unlock answer")
        elif char_uuid in TX_CHANNELS:
            frame = self._reassembler.feed(TX_CHANNELS.index(char_uuid), data)
            if frame is not None and self._unlocked:
                answer = self._answer(frame)
                if answer is not None:
                    self.spawn(self._send_frame(answer), "memory reply")

    def _unlock(self, data: bytes) -> bytes:
        op, key = (data[0], bytes(data[1:])) if data else (0xFF, b"")
        if op == 0x02 and self.pairing_mode:
            self._key_programming = True
            return b"\x82\x00"
        if op == 0x00 and self._key_programming and len(key) == KEY_BYTES:
            self.key = key
            self._key_programming = False
            return b"\x80\x00"
        if op == 0x01 and self.key is not None and key == self.key:
            self._unlocked = True
            return b"\x81\x00"
        return bytes((0x80 | (op & 0x0F), 0x01))  # refused

    def _answer(self, frame: bytes) -> bytes | None:
        try:
            request = parse_frame(frame)
        except ValueError:
            return None  # a garbled frame gets no answer; the central retries
        size = frame[5]
        if request.kind == START:
            return reply(START | REPLY, 0)
        if request.kind == END:
            self.transfers += 1
            return reply(END | REPLY, 0)
        if request.kind == READ:
            return reply(READ | REPLY, request.address, self._read(request.address, size))
        if request.kind == WRITE:
            self._write(request.address, bytes(frame[6 : 6 + size]))
            return reply(WRITE | REPLY, request.address)
        return None

    def _read(self, address: int, size: int) -> bytes:
        memory = self.memory
        if memory.settings_read <= address < memory.settings_write:
            offset = address - memory.settings_read
            return bytes(self.settings[offset : offset + size])
        return bytes(self.eeprom[address : address + size])

    def _write(self, address: int, data: bytes) -> None:
        memory = self.memory
        offset = address - memory.settings_write
        if 0 <= offset < _SETTINGS_BYTES:
            self.settings[offset : offset + len(data)] = data
            start, end = memory.clock_range
            if start <= offset < end:
                written = self.clock_now()
                if written is not None:
                    self.clock.set(written)

    async def _send_frame(self, frame: bytes) -> None:
        for channel, piece in enumerate(split(frame)):
            await self.notify(RX_CHANNELS[channel], piece)

    async def _notify(self, char_uuid: str, data: bytes) -> None:
        await self.notify(char_uuid, data)
