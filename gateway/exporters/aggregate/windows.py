"""Aggregate windows: at the end of each window, one anonymous report per aggregate destination.

The report is built from the readings stored during the window, of the people who have granted
the destination's purpose (at the time the window closes) and have not restricted processing,
and goes through the outbox like everything else. Which window comes next is persisted, so a
restart neither skips nor repeats a window; the first window starts when the destination is
first configured (no back-filling of history).
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson
import structlog

from filters.aggregate import aggregate
from gateway.exporters.aggregate.config import AggregateDestination
from gateway.privacy.consent import ConsentRule
from gateway.storage import meta, readings
from gateway.storage.crypto import Sealer
from gateway.storage.database import Database, Transaction, reading_aad
from gateway.storage.outbox import PRIORITY_OTHER, NewItem, Outbox

log = structlog.get_logger(__name__)

NO_SUBJECT = "-"  # outbox rows of aggregates belong to no one


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat()


class AggregateWindows:
    def __init__(
        self,
        destination: AggregateDestination,
        database: Database,
        outbox: Outbox,
        sealer: Sealer,
        rule: ConsentRule,
        wake: Callable[[], None],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.destination = destination
        self._database = database
        self._outbox = outbox
        self._sealer = sealer
        self._rule = rule
        self._wake = wake
        self._clock = clock
        self.reports = 0

    def _window_start(self, epoch: float) -> float:
        size = self.destination.window_s
        return float(int(epoch // size) * size)

    async def run(self) -> None:
        while True:
            emitted = await self.emit_closed()
            if emitted:
                self._wake()
            next_end = self._window_start(self._clock()) + self.destination.window_s
            await asyncio.sleep(max(0.0, next_end - self._clock()) + 0.01)

    async def emit_closed(self) -> int:
        """Queue a report for every window that has closed and was not reported yet."""
        now = self._clock()
        return await self._database.call(lambda c: self._emit(c, now))

    def _emit(self, connection: sqlite3.Connection, now: float) -> int:
        key = f"aggregate:{self.destination.name}:next_window"
        stored = meta.get(connection, key)
        if stored is None:
            with Transaction(connection):
                meta.put(connection, key, str(self._window_start(now)))
            return 0
        start = float(stored)
        emitted = 0
        size = self.destination.window_s
        while start + size <= now:
            report = self._report(connection, start, start + size)
            with Transaction(connection):
                self._outbox.enqueue(connection, [report], now)
                meta.put(connection, key, str(start + size))
            emitted += 1
            start += size
        self.reports += emitted
        return emitted

    def _report(self, connection: sqlite3.Connection, start: float, end: float) -> NewItem:
        destination = self.destination
        purpose = destination.purpose
        rows = readings.received_between(connection, _iso(start), _iso(end))
        opened = (
            (ref, self._sealer.try_open(payload, reading_aad(reading_id)))
            for reading_id, ref, payload in rows
            if self._rule.basis(ref, purpose, category="reading", vital_interest=False)
        )
        # A reading that cannot be opened is left out of the counts, as one never received.
        events = ((ref, orjson.loads(event)) for ref, event in opened if event is not None)
        body: dict[str, Any] = {
            "window": {"start": _iso(start), "end": _iso(end)},
            **aggregate(events, destination.group_by, destination.k, destination.company_labels),
        }
        log.info(
            "aggregate_window",
            destination=destination.name,
            cells=len(body["cells"]),
            suppressed=body["suppressed_cells"],
        )
        window_id = f"window:{_iso(start)}"
        return NewItem(
            destination=destination.name,
            purpose=purpose,
            category="aggregate",
            priority=PRIORITY_OTHER,
            subject_ref=NO_SUBJECT,
            reading_id=window_id,
            idempotency_key=f"{destination.name}:{window_id}",
            legal_basis="consent",
            fields=("window", "k", "group_by", "cells", "suppressed_cells"),
            payload=body,
        )
