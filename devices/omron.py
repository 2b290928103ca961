"""Omron's stored-record transfer: the memory protocol and the HEM-7322T family's records.

Omron cuffs keep their history in EEPROM and hand it out through a vendor service, not through
the Blood Pressure Service (which shows only what the cuff indicates). Facts from omblepy
(userx14/omblepy: ``omblepy.py``, ``sharedDriver.py``, ``deviceSpecific/hem-7322t.py`` and
``hem-7600t.py``) and hass-omron (eigger/hass-omron: ``omron_ble/memory_protocol.py``,
``tests/test_record_parsers.py``):

* Service ``ecbe3980-c9a2-11e1-b1bd-0002a5d5c51b``; four TX characteristics (written) and four RX
  characteristics (notifying); a frame longer than 16 bytes is split over the channels in
  16-byte pieces, channel 0 first, and its first byte is its length.
* Unlock characteristic ``b305b680-...``: ``0x01`` + the 16-byte key unlocks (answer ``81 00``);
  in pairing mode ``0x02`` + 16 zero bytes enters key programming (``82 00``) and ``0x00`` +
  key stores a new key (``80 00``).
* Frames: length, type (2 bytes, big-endian), EEPROM address (2), data length, data, a zero byte,
  and an XOR checksum that makes the XOR of the whole frame 0. Commands: start ``0x0000``,
  read ``0x0100``, write ``0x01C0``, end ``0x0F00``; the reply type is the command's with its top
  bit set (``0x8000``, ``0x8100``, ``0x81C0``, ``0x8F00``), echoing the address.
* HEM-7322T (M700 Intelli IT; one-user HEM-7600T Evolv the same, records at 0x02AC): 14-byte
  records, big-endian bit fields: diastolic bits 0-7, systolic - 25 bits 8-15, year - 2000
  16-23, pulse 24-31, body movement 32, irregular heartbeat 33, month 34-37, day 38-42, hour
  43-47, minute 52-57, second 58-63 (up to 63 seen; clamped to 59). An empty slot is all 0xFF.
  100 records per user in a ring buffer; the settings (read at 0x0260, written at 0x0286) hold
  per user the last written slot and the unread count (low byte of 16-bit words 0-1 and 2-3);
  0x8000 there means "nothing unread". The clock is in settings bytes 0x14-0x1D: two bytes
  kept, month, year - 2000, hour, day, second, minute, a zero, and the low byte of the sum of
  the eight before.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from devices.gatt.errors import DecodeError, EncodeError
from devices.models import Measurement, Quantity

OMRON_SERVICE = "ecbe3980-c9a2-11e1-b1bd-0002a5d5c51b"
UNLOCK = "b305b680-aee7-11e1-a730-0002a5d5c51b"
TX_CHANNELS = (
    "db5b55e0-aee7-11e1-965e-0002a5d5c51b",
    "e0b8a060-aee7-11e1-92f4-0002a5d5c51b",
    "0ae12b00-aee8-11e1-a192-0002a5d5c51b",
    "10e1ba60-aee8-11e1-89e5-0002a5d5c51b",
)
RX_CHANNELS = (
    "49123040-aee8-11e1-a74d-0002a5d5c51b",
    "4d0bf320-aee8-11e1-a0d9-0002a5d5c51b",
    "5128ce60-aee8-11e1-b84b-0002a5d5c51b",
    "560f1420-aee8-11e1-8184-0002a5d5c51b",
)
CHANNEL_BYTES = 16
KEY_BYTES = 16

START = 0x0000
READ = 0x0100
WRITE = 0x01C0
END = 0x0F00
REPLY = 0x8000

UNLOCK_WITH_KEY = 0x01
ENTER_KEY_PROGRAMMING = 0x02
STORE_KEY = 0x00
_LABEL = "Omron memory frame"
_NOTHING_UNREAD = 0x8000


def checksum(data: bytes) -> int:
    result = 0
    for byte in data:
        result ^= byte
    return result


def command(kind: int, address: int = 0, data: bytes = b"", size: int | None = None) -> bytes:
    """A command frame; ``size`` is the data length field when it is not ``len(data)`` (a read)."""
    length = len(data) + 8
    if length > 4 * CHANNEL_BYTES:
        raise EncodeError(f"{_LABEL}: {len(data)} data bytes do not fit four channels")
    head = bytes((length,)) + kind.to_bytes(2, "big") + address.to_bytes(2, "big")
    body = head + bytes((len(data) if size is None else size,)) + data + b"\x00"
    return body + bytes((checksum(body),))


def start_command() -> bytes:
    # The start frame omblepy sends (``0800000000100018``): data length field 0x10.
    return command(START, size=0x10)


def end_command() -> bytes:
    return command(END)


def read_command(address: int, size: int) -> bytes:
    return command(READ, address, size=size)


def write_command(address: int, data: bytes) -> bytes:
    return command(WRITE, address, data)


def reply(kind: int, address: int, data: bytes = b"", code: int = 0) -> bytes:
    """The frame a cuff answers with: a read's reply carries data, the others a result code
    in the place of the data (8 bytes: length, type, address, 0, code, checksum)."""
    if kind == READ | REPLY:
        return command(kind, address, data)
    body = bytes((8,)) + kind.to_bytes(2, "big") + address.to_bytes(2, "big") + bytes((0, code))
    return body + bytes((checksum(body),))


def split(frame: bytes) -> list[bytes]:
    """The pieces of ``frame`` for channels 0, 1, ... (16 bytes each)."""
    return [frame[i : i + CHANNEL_BYTES] for i in range(0, len(frame), CHANNEL_BYTES)]


@dataclass(frozen=True, slots=True)
class Reply:
    kind: int
    address: int
    data: bytes  # a read's data; for the others the result code (one byte)


def parse_frame(frame: bytes) -> Reply:
    """A whole received frame; DecodeError when short or its checksum is wrong."""
    if len(frame) < 8:
        raise DecodeError(f"{_LABEL}: {len(frame)} bytes, at least 8 expected")
    if checksum(frame):
        raise DecodeError(f"{_LABEL}: checksum mismatch")
    kind = int.from_bytes(frame[1:3], "big")
    address = int.from_bytes(frame[3:5], "big")
    size = frame[5]
    if kind == READ | REPLY and len(frame) == size + 8:
        return Reply(kind, address, bytes(frame[6 : 6 + size]))
    if kind == READ | REPLY and size:
        # A read the cuff will not serve: the header alone with a result code (hass-omron).
        raise DecodeError(f"{_LABEL}: read at 0x{address:04x} refused (code 0x{frame[6]:02x})")
    return Reply(kind, address, bytes(frame[6:7]))


class Reassembler:
    """Joins the channel pieces of one frame; a piece on channel 0 starts a new frame."""

    def __init__(self) -> None:
        self._pieces: list[bytes | None] = [None] * 4

    def feed(self, channel: int, piece: bytes) -> bytes | None:
        if channel == 0:
            self._pieces = [None] * 4
        self._pieces[channel] = bytes(piece)
        first = self._pieces[0]
        if not first:
            return None
        length = first[0]
        needed = range(max(1, (length + CHANNEL_BYTES - 1) // CHANNEL_BYTES))
        if length > 4 * CHANNEL_BYTES or any(self._pieces[i] is None for i in needed):
            return None
        frame = b"".join(self._pieces[i] or b"" for i in needed)[:length]
        self._pieces = [None] * 4
        return frame


@dataclass(frozen=True, slots=True)
class MemoryMap:
    """Where one Omron family keeps records and settings (omblepy ``deviceSpecific``)."""

    name: str
    user_starts: tuple[int, ...]
    records_per_user: int = 100
    record_size: int = 14
    block_size: int = 0x38
    settings_read: int = 0x0260
    settings_write: int = 0x0286
    unread_range: tuple[int, int] = (0x00, 0x08)
    clock_range: tuple[int, int] = (0x14, 0x1E)

    @property
    def users(self) -> int:
        return len(self.user_starts)


MEMORY_MAPS = {
    "omron-hem-7322t": MemoryMap("HEM-7322T (M700 Intelli IT)", (0x02AC, 0x0824)),
    "omron-hem-7600t": MemoryMap("HEM-7600T (Evolv)", (0x02AC,)),
}


def _bits(raw: bytes, first: int, last: int) -> int:
    """Bits ``first``..``last`` of ``raw`` read as one big-endian number, bit 0 the top bit."""
    value = int.from_bytes(raw, "big")
    return (value >> (len(raw) * 8 - (last + 1))) & ((1 << (last - first + 1)) - 1)


def _put(value: int, first: int, last: int, size: int) -> int:
    width = last - first + 1
    if not 0 <= value < 1 << width:
        raise EncodeError(f"Omron record: {value} does not fit bits {first}-{last}")
    return value << (size * 8 - (last + 1))


_MMHG = "mm[Hg]"


def parse_record(memory: MemoryMap, raw: bytes, user_index: int) -> Measurement | None:
    """One record slot; None for an empty slot, DecodeError for an impossible one."""
    if len(raw) != memory.record_size:
        raise DecodeError(f"Omron record: {len(raw)} bytes, {memory.record_size} expected")
    if raw == b"\xff" * memory.record_size:
        return None
    try:
        measured_at = datetime(
            _bits(raw, 16, 23) + 2000,
            _bits(raw, 34, 37),
            _bits(raw, 38, 42),
            _bits(raw, 43, 47),
            _bits(raw, 52, 57),
            min(_bits(raw, 58, 63), 59),
        )
    except ValueError as exc:
        raise DecodeError(f"Omron record: impossible time stamp ({exc})") from None
    return Measurement(
        kind="blood_pressure",
        values={
            "systolic": Quantity(value=_bits(raw, 8, 15) + 25, unit=_MMHG),
            "diastolic": Quantity(value=_bits(raw, 0, 7), unit=_MMHG),
            "pulse_rate": Quantity(value=_bits(raw, 24, 31), unit="/min"),
        },
        measured_at=measured_at,
        user_index=user_index,
        status={
            "body_movement": bool(_bits(raw, 32, 32)),
            "irregular_pulse": bool(_bits(raw, 33, 33)),
        },
    )


def encode_record(memory: MemoryMap, reading: Measurement) -> bytes:
    """The slot bytes a cuff of this family stores for ``reading`` (strict, for simulators)."""
    size = memory.record_size
    values = reading.values
    when = reading.measured_at
    if when is None or not {"systolic", "diastolic", "pulse_rate"} <= set(values):
        raise EncodeError("Omron record: systolic, diastolic, pulse_rate and measured_at needed")
    fields = (
        (int(values["diastolic"].value), 0, 7),
        (int(values["systolic"].value) - 25, 8, 15),
        (when.year - 2000, 16, 23),
        (int(values["pulse_rate"].value), 24, 31),
        (int(bool(reading.status.get("body_movement"))), 32, 32),
        (int(bool(reading.status.get("irregular_pulse"))), 33, 33),
        (when.month, 34, 37),
        (when.day, 38, 42),
        (when.hour, 43, 47),
        (when.minute, 52, 57),
        (when.second, 58, 63),
    )
    value = 0
    for field, first, last in fields:
        value |= _put(field, first, last, size)
    return value.to_bytes(size, "big")


@dataclass(frozen=True, slots=True)
class Unread:
    """One user's ring buffer state: the slot written last (next to write) and unread count."""

    last_slot: int
    unread: int


def unread_of(memory: MemoryMap, settings: bytes) -> list[Unread]:
    """Per user, from the settings' unread-records block (as omblepy reads it)."""
    out = []
    for user in range(memory.users):
        last = _bits(settings[2 * user : 2 * user + 2], 8, 15)
        unread = _bits(settings[2 * user + 4 : 2 * user + 6], 8, 15)
        out.append(Unread(last % memory.records_per_user, min(unread, memory.records_per_user)))
    return out


def nothing_unread(settings: bytes) -> bytes:
    """The unread-records block with every user's unread count reset (0x8000)."""
    marker = _NOTHING_UNREAD.to_bytes(2, "big")
    return bytes(settings[:4]) + marker * 2 + bytes(settings[8:])


def read_plan(memory: MemoryMap, user: int, state: Unread) -> list[tuple[int, int]]:
    """(address, size) reads that fetch a user's unread records, oldest first (ring buffer)."""
    start, size = memory.user_starts[user], memory.record_size
    unread, last = state.unread, state.last_slot
    if unread == 0:
        return []
    if last < unread:  # the unread records wrap around the end of the ring
        wrapped = unread - last
        plan = [(start + (memory.records_per_user - wrapped) * size, wrapped * size)]
        return plan + ([(start, last * size)] if last else [])
    return [(start + (last - unread) * size, unread * size)]


def parse_clock(block: bytes) -> datetime | None:
    """The cuff's clock from the settings' clock block; None when unset or impossible."""
    if len(block) < 8:
        return None
    month, year, hour, day, second, minute = block[2:8]
    try:
        return datetime(year + 2000, month, day, hour, minute, second)
    except ValueError:
        return None


def clock_block(kept: bytes, now: datetime) -> bytes:
    """The clock block that sets the cuff to ``now`` (the first two bytes kept as read)."""
    data = bytes(kept[:2]) + bytes(
        (now.month, now.year - 2000, now.hour, now.day, now.second, now.minute)
    )
    return data + bytes((0x00, sum(data) & 0xFF))
