"""What the gateway hands the BLE source and gets back: targets, readings, per-device status.

These are the source's public interface (``gateway/app.py`` builds ``DeviceTarget``s, the
pipeline consumes ``Received``, the API shows ``DeviceStatus``). New fields are optional, so
whoever builds them without knowing a field keeps working.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime

from devices.models import Measurement
from devices.users import PeopleByWeight

__all__ = ["DeviceStatus", "DeviceTarget", "Received", "StatusPredicate", "UdsUser"]


@dataclass(frozen=True, slots=True)
class UdsUser:
    """One person on a User Data Service scale: their user index there and consent code.

    The consent code (0..9999) is a secret the scale checks before it sends that person's
    data; it is never logged and left out of ``repr``. ``birth_date``, ``sex`` and
    ``height_cm`` are written to the scale when the gateway registers the person there (the
    scale estimates body composition from them); personal data, also left out of ``repr``.
    """

    index: int
    consent_code: int = field(repr=False)
    birth_date: date | None = field(default=None, repr=False)
    sex: str | None = field(default=None, repr=False)  # "female", "male", other: not written
    height_cm: int | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not 0 <= self.index <= 0xFE:
            raise ValueError("a UDS user index is 0..254 (255 means 'unknown user')")
        if not 0 <= self.consent_code <= 9999:
            raise ValueError("a UDS consent code is 0..9999")


@dataclass(frozen=True, slots=True)
class DeviceTarget:
    """A device to read: ``ref`` labels it in logs, ``address`` never appears there.

    ``model`` selects the decoder's per-model quirks (lower-case key, None: the specification);
    ``people`` tells the people sharing a scale without user index apart by weight;
    ``uds_users`` are the people to give consent for on a User Data Service scale.
    """

    ref: str
    address: str
    profile: str  # key of devices.profiles.PROFILES or BROADCAST_PROFILES
    model: str | None = None
    people: PeopleByWeight | None = None
    uds_users: tuple[UdsUser, ...] = ()


@dataclass(frozen=True, slots=True)
class Received:
    """One decoded, complete reading as it arrived."""

    target: DeviceTarget
    characteristic: str  # full 128-bit UUID (a broadcast reading: its service data UUID)
    measurement: Measurement
    received_at: datetime  # timezone-aware UTC, when the gateway got it
    # How far the clock that stamped this reading was ahead of the gateway's (device -
    # gateway, whole seconds), when known from a clock read on connect; None when the device
    # has no readable clock.
    clock_offset_s: float | None = None
    # A weighing of a shared scale that fits nobody or more than one of its people
    # (``devices.drivers.people``): it has no user index, and the consumer keeps it aside until
    # someone says whose it is. The source never guesses a person.
    held: bool = False


@dataclass(frozen=True, slots=True)
class DeviceStatus:
    ref: str
    address: str
    profile: str
    connected: bool
    last_seen: datetime | None  # UTC: last advertisement seen or value received
    readings: int
    decode_errors: int
    connects: int
    last_error: str | None  # why the last connection attempt or link failed (address-free)
    battery_level: int | None = None  # percent, from the last connection's read or notification
    clock_offset_s: float | None = None  # device clock - gateway clock now, when known
    pairing_required: bool = False  # the device demands pairing and has not paired yet
    dropped: int = 0  # values not passed on: intermediate, orphan contexts, records seen before
    # Weighings of a shared scale that matched nobody or more than one person since the source
    # started: handed over as held (``Received.held``), never guessed. ``held_at`` is when the
    # last one was held (UTC).
    held_ambiguous: int = 0
    held_at: datetime | None = None
    consent_refused: bool = False  # a UDS scale did not take a configured consent code


StatusPredicate = Callable[[list[DeviceStatus]], bool]
