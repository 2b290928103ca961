"""Retention: stored readings and dead letters older than ``retention_days`` are deleted, and
alert state not written for as long (``gateway/storage/alert_state.py``), and a shared scale's
held weighing nobody decided on (``gateway/intake/held.py``) as old as such a reading."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import structlog

from gateway.privacy import audit
from gateway.storage import held_weighings, readings
from gateway.storage.alert_state import AlertStateStore
from gateway.storage.database import Database, Transaction
from gateway.storage.outbox import Outbox

if TYPE_CHECKING:
    from gateway.intake.held import HeldWeighings

log = structlog.get_logger(__name__)

SWEEP_INTERVAL_S = 3600.0


class Retention:
    def __init__(self, days: int, database: Database, held: HeldWeighings | None = None) -> None:
        self.days = days
        self._database = database
        self._held = held  # told what was deleted, to count what still waits

    async def run(self) -> None:
        while True:
            await self.sweep()
            await asyncio.sleep(SWEEP_INTERVAL_S)

    async def sweep(self, now: float | None = None) -> dict[str, int]:
        cutoff = (now if now is not None else time.time()) - self.days * 86_400
        counts = await self._database.call(lambda c: self._delete(c, cutoff))
        if any(counts.values()):
            log.info("retention_deleted", **counts)
        if self._held is not None and counts["held_weighings"]:
            self._held.expired += counts["held_weighings"]
            await self._held.recount()
        return counts

    def _delete(self, connection: sqlite3.Connection, cutoff: float) -> dict[str, int]:
        before = datetime.fromtimestamp(cutoff, UTC).isoformat()
        with Transaction(connection):
            counts = {
                "dead_letters": Outbox.delete_dead_letters_before(connection, cutoff),
                "alert_state": AlertStateStore.expire(connection, before),
            }
            # Dead letters first: a reading stays while an item waits to be built from it.
            counts["readings"] = readings.delete_received_before(
                connection, datetime.fromtimestamp(cutoff, UTC).isoformat()
            )
            counts["held_weighings"] = held_weighings.delete_before(connection, before)
            if any(counts.values()):
                audit.append(
                    connection, "retention.deleted", {"retention_days": self.days, **counts}
                )
        return counts
