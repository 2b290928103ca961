"""Broadcast-only devices: readings carried in advertisement service data, no connection.

``decode(profile, service_uuid, data)`` turns the service data of one advertisement into a
``Measurement``; ``encode(profile, measurement)`` is the strict inverse the simulators use and
``service_uuid(profile)`` names the 16-bit service the profile advertises under. Every advertisement
decodes, including the scale's "still settling" and "load removed" ones: picking the one reading per
weighing (the first stabilized advertisement) is the source's job, from ``status["stabilized"]`` and
``status["load_removed"]``.

Profiles (formats and sources in ``devices.broadcast.xiaomi``):

=============================  =======  ==========================================================
profile                        service  devices
=============================  =======  ==========================================================
``xiaomi_scale``               0x181D   Mi Smart Scale (XMTZC01HM), Mi Smart Scale 2 (XMTZC04HM)
``xiaomi_body_composition``    0x181B   Mi Body Composition Scale (XMTZC02HM) and 2 (XMTZC05HM)
=============================  =======  ==========================================================

Errors are ``devices.gatt.DecodeError`` / ``EncodeError`` (both ValueError), as for GATT values.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass

from devices.broadcast import xiaomi
from devices.gatt import characteristic_uuid16
from devices.gatt.errors import DecodeError, EncodeError
from devices.models import Measurement

__all__ = ["PROFILES", "DecodeError", "EncodeError", "decode", "encode", "service_uuid"]


@dataclass(frozen=True, slots=True)
class BroadcastProfile:
    """One advertisement format: the service it is carried under and both directions."""

    service_uuid16: int
    decode: Callable[[bytes], Measurement]
    encode: Callable[[Measurement], bytes]


PROFILES: dict[str, BroadcastProfile] = {
    "xiaomi_scale": BroadcastProfile(0x181D, xiaomi.decode_scale, xiaomi.encode_scale),
    "xiaomi_body_composition": BroadcastProfile(
        0x181B, xiaomi.decode_body_composition, xiaomi.encode_body_composition
    ),
}


def _profile(profile: str, error: type[ValueError]) -> BroadcastProfile:
    found = PROFILES.get(profile) if isinstance(profile, str) else None
    if found is None:
        raise error(f"unknown broadcast profile {profile!r}; known: {sorted(PROFILES)}")
    return found


def service_uuid(profile: str) -> str:
    """The full 128-bit UUID of the service ``profile`` advertises its data under."""
    short = _profile(profile, ValueError).service_uuid16
    return f"0000{short:04x}-0000-1000-8000-00805f9b34fb"


def decode(profile: str, service_uuid: str | uuid.UUID | int, data: bytes) -> Measurement:
    """Decode the service data one advertisement carries under ``service_uuid``."""
    found = _profile(profile, DecodeError)
    try:
        short = characteristic_uuid16(service_uuid)
    except ValueError as exc:
        raise DecodeError(f"{profile}: {exc}") from None
    if short != found.service_uuid16:
        raise DecodeError(
            f"{profile}: service data under 0x{short:04X}, but this profile advertises under "
            f"0x{found.service_uuid16:04X}"
        )
    if not isinstance(data, bytes | bytearray | memoryview):
        raise DecodeError(f"{profile}: expected bytes, got {type(data).__name__}")
    return found.decode(bytes(data))


def encode(profile: str, measurement: Measurement) -> bytes:
    """The service data a device of ``profile`` advertises for ``measurement`` (strict)."""
    return _profile(profile, EncodeError).encode(measurement)
