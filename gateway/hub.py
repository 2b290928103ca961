"""The small interface of the running hub that the local API and the metrics depend on.

The server gets a ``Hub``, not the ``Gateway`` object: what it may ask is listed here, so the
API cannot reach into the pipeline, the workers or the radio, and a test or another front end
can serve it with anything that has these few members.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

if TYPE_CHECKING:
    from devices.source import DeviceStatus
    from gateway.activity import Activity
    from gateway.delivery.worker import WorkerStats
    from gateway.intake.held import HeldWeighings
    from gateway.intake.pipeline import PipelineStats
    from gateway.privacy.rights import Rights
    from gateway.settings import Settings
    from gateway.trouble import TroubleWatch

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class DestinationStats:
    name: str
    purpose: str
    stats: WorkerStats


class Hub(Protocol):
    settings: Settings
    activity: Activity  # what happens, as it happens (the page's live view, the metrics)
    trouble: TroubleWatch  # Bluetooth and device warnings for the status and the page

    def is_ready(self) -> bool: ...

    def subject_rights(self) -> Rights:
        """Access, export, erasure, restriction and consent changes, audited."""
        ...

    def consent_purposes(self, subject_ref: str) -> dict[str, bool]: ...

    def is_restricted(self, subject_ref: str) -> bool: ...

    def device_status(self) -> list[DeviceStatus]: ...

    def held_weighings(self) -> HeldWeighings | None:
        """A shared scale's weighings that wait for an operator's decision (None before
        start)."""
        ...

    def pipeline_stats(self) -> tuple[PipelineStats, int] | None:
        """Intake's counters and how many readings wait to be stored (None before start)."""
        ...

    def delivery_stats(self) -> list[DestinationStats]: ...

    async def status(self) -> dict[str, Any]:
        """The operator's snapshot: devices, each destination's queue and health, counters."""
        ...

    async def on_database(self, function: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``function`` on the database thread (the page's and operator's reads and their
        audited writes, taken before bulk delivery work)."""
        ...

    def wake_delivery(self) -> None:
        """Something was queued outside intake (dead letters re-queued): look now."""
        ...
