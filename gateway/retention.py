"""Retention: stored readings and dead letters older than ``retention_days`` are deleted, and
alert state not written for as long (``gateway/alert_state.py``)."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from datetime import UTC, datetime

import structlog

from gateway import audit
from gateway.alert_state import AlertStateStore
from gateway.store import Database, Transaction

log = structlog.get_logger(__name__)

SWEEP_INTERVAL_S = 3600.0


class Retention:
    def __init__(self, days: int, database: Database) -> None:
        self.days = days
        self._database = database

    async def run(self) -> None:
        while True:
            await self.sweep()
            await asyncio.sleep(SWEEP_INTERVAL_S)

    async def sweep(self, now: float | None = None) -> dict[str, int]:
        cutoff = (now if now is not None else time.time()) - self.days * 86_400
        counts = await self._database.call(lambda c: self._delete(c, cutoff))
        if any(counts.values()):
            log.info("retention_deleted", **counts)
        return counts

    def _delete(self, connection: sqlite3.Connection, cutoff: float) -> dict[str, int]:
        before = datetime.fromtimestamp(cutoff, UTC).isoformat()
        with Transaction(connection):
            counts = {
                "readings": connection.execute(
                    "DELETE FROM readings WHERE received_at < ?", (before,)
                ).rowcount,
                "dead_letters": connection.execute(
                    "DELETE FROM dead_letters WHERE failed_at < ?", (cutoff,)
                ).rowcount,
                "alert_state": AlertStateStore.expire(connection, before),
            }
            if any(counts.values()):
                audit.append(
                    connection, "retention.deleted", {"retention_days": self.days, **counts}
                )
        return counts
