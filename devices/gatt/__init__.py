"""GATT health-measurement codecs: bytes of a characteristic value <-> ``Measurement``.

``decode(characteristic, data)`` and ``encode(characteristic, measurement)`` dispatch on
the characteristic's UUID, given as a 16-bit number (``0x2A35``), a string (``"2a35"``,
``"0x2A35"``, the full ``"00002a35-0000-1000-8000-00805f9b34fb"``) or a ``uuid.UUID``. Each profile
module documents its layout, value names, units and status keys.

Decoding is tolerant the way the specifications require of a receiver: reserved (RFU) flag bits
are ignored (``status["reserved_flags"]`` keeps them) and so are bytes after the last field the
flags announce (``status["ignored_bytes"]`` counts them). A truncated value, an impossible one
(a month 13, a day that does not exist) or an unknown characteristic raises DecodeError (a
ValueError) and nothing else. ``model=`` applies a documented per-model quirk table
(``devices.gatt.quirks``). Encoding stays strict: a Measurement the wire format cannot express
raises EncodeError.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Iterable

from devices.gatt import (
    blood_pressure,
    body_composition,
    glucose,
    glucose_context,
    heart_rate,
    plx,
    quirks,
    temperature,
    weight,
)
from devices.gatt._codec import Codec
from devices.gatt._fields import Reader, Writer
from devices.gatt.battery import decode_battery_level, encode_battery_level
from devices.gatt.body_composition import BodyCompositionAssembler, split_body_composition
from devices.gatt.current_time import decode_current_time, encode_current_time
from devices.gatt.errors import DecodeError, EncodeError
from devices.gatt.glucose_join import GlucoseContextJoiner, attach_context
from devices.models import Measurement

__all__ = [
    "IGNORED_BYTES",
    "RESERVED_FLAGS",
    "BodyCompositionAssembler",
    "DecodeError",
    "EncodeError",
    "GlucoseContextJoiner",
    "attach_context",
    "characteristic_uuid16",
    "decode",
    "decode_battery_level",
    "decode_current_time",
    "encode",
    "encode_battery_level",
    "encode_current_time",
    "split_body_composition",
    "supported_characteristics",
]

Characteristic = str | uuid.UUID | int

# Status keys for what a tolerant receiver ignored: the reserved flag bits a device set, and the
# number of bytes after the last field its flags announce.
RESERVED_FLAGS = "reserved_flags"
IGNORED_BYTES = "ignored_bytes"

_BASE_UUID = uuid.UUID("00000000-0000-1000-8000-00805f9b34fb").int
_SHORT_MASK = 0xFFFFFFFF << 96


def _registry(groups: Iterable[tuple[Codec, ...]]) -> dict[int, Codec]:
    return {codec.uuid16: codec for group in groups for codec in group}


_CODECS = _registry(
    (
        blood_pressure.CODECS,
        weight.CODECS,
        body_composition.CODECS,
        glucose.CODECS,
        glucose_context.CODECS,
        temperature.CODECS,
        heart_rate.CODECS,
        plx.CODECS,
    )
)


def characteristic_uuid16(characteristic: Characteristic) -> int:
    """The 16-bit SIG UUID of ``characteristic``; ValueError for anything else."""
    if isinstance(characteristic, bool):
        raise ValueError(f"not a characteristic UUID: {characteristic!r}")
    if isinstance(characteristic, int):
        if 0 <= characteristic <= 0xFFFF:
            return characteristic
        raise ValueError(f"16-bit UUID {characteristic:#x} is outside 0x0000..0xFFFF")
    if isinstance(characteristic, str):
        return _uuid16_of_text(characteristic)  # every notification: parse each string once
    if isinstance(characteristic, uuid.UUID):
        return _uuid16_of_uuid(characteristic)
    raise ValueError(f"not a characteristic UUID: {characteristic!r}")


@functools.lru_cache(maxsize=128)
def _uuid16_of_text(characteristic: str) -> int:
    text = characteristic.strip().lower()
    short = text.removeprefix("0x")
    if 1 <= len(short) <= 4 and all(c in "0123456789abcdef" for c in short):
        return int(short, 16)
    try:
        parsed = uuid.UUID(text)
    except ValueError:
        raise ValueError(f"not a characteristic UUID: {characteristic!r}") from None
    return _uuid16_of_uuid(parsed)


def _uuid16_of_uuid(characteristic: uuid.UUID) -> int:
    value = characteristic.int
    if value & ~_SHORT_MASK == _BASE_UUID and value >> 96 <= 0xFFFF:
        return value >> 96
    raise ValueError(f"{characteristic} is not a Bluetooth SIG 16-bit UUID")


def _codec(characteristic: Characteristic, error: type[ValueError]) -> Codec:
    try:
        short = characteristic_uuid16(characteristic)
    except ValueError as exc:
        raise error(str(exc)) from None
    codec = _CODECS.get(short)
    if codec is None:
        raise error(f"unknown characteristic 0x{short:04X}: no health-measurement codec for it")
    return codec


def decode(characteristic: Characteristic, data: bytes, *, model: str | None = None) -> Measurement:
    """Decode one characteristic value (a notification or indication payload).

    ``model`` (a lower-case model name such as ``"beurer-bm85"``) applies that model's documented
    deviations from the specification (``devices.gatt.quirks``); None, or a model without known
    quirks, is plain specification behaviour.
    """
    codec = _codec(characteristic, DecodeError)
    if not isinstance(data, bytes | bytearray | memoryview):
        raise DecodeError(f"{codec.label}: expected bytes, got {type(data).__name__}")
    reader = Reader(bytes(data), codec.label)
    decoder = codec.decode if model is None else quirks.decoder_for(model, codec.uuid16)
    measurement = (decoder or codec.decode)(reader)
    # Tolerated, as the specifications require of a receiver, and recorded for diagnosis.
    if reader.reserved_flags:
        measurement.status[RESERVED_FLAGS] = reader.reserved_flags
    if reader.remaining():
        measurement.status[IGNORED_BYTES] = reader.remaining()
    return measurement


def encode(
    characteristic: Characteristic, measurement: Measurement, *, model: str | None = None
) -> bytes:
    """The bytes a device sends for ``measurement``; flags follow from what it holds.

    Strict: what the specification cannot express raises EncodeError. ``model`` selects the
    bytes that model really sends (``devices.gatt.quirks``), for simulated devices.
    """
    codec = _codec(characteristic, EncodeError)
    if measurement.kind != codec.kind:
        raise EncodeError(f"{codec.label} carries kind {codec.kind!r}, not {measurement.kind!r}")
    writer = Writer(codec.label)
    encoder = None if model is None else quirks.encoder_for(model, codec.uuid16)
    (encoder or codec.encode)(writer, measurement)
    return writer.getvalue()


def supported_characteristics() -> dict[int, str]:
    """16-bit UUID -> measurement kind, for every characteristic ``decode`` understands."""
    return {short: codec.kind for short, codec in sorted(_CODECS.items())}
