"""Alert state on disk: which alerts are raised, and the window history rules need.

One row per (person, slot): a slot is one piece of state (``limit/blood_pressure/systolic``,
``series/weight/body_weight``, ``episode/...``, ``missing/weight``), its content sealed with
AES-GCM like a stored reading (what is raised for whom, and past values, are health data) and
bound to its row by the associated data. Rows are written in the same transaction as the
reading that changed them, so after ``kill -9`` the state matches the readings exactly: a
reading stored is a reading counted, and an alert queued is an alert remembered.

The table is created with the others (``gateway/storage/schema.py``). Erasure removes a
person's rows with their readings; retention removes rows not written for the retention period
(a person who stopped measuring long ago).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import orjson
import structlog

from gateway.storage.crypto import Sealer, SealError

log = structlog.get_logger(__name__)

# (subject_ref, slot, state): ``state`` None deletes the row.
StateChange = tuple[str, str, dict[str, Any] | None]


def state_aad(subject_ref: str, slot: str) -> bytes:
    return f"alert-state\x1f{subject_ref}\x1f{slot}".encode()


class AlertStateStore:
    """Reads and writes sealed alert state rows; every method runs on the database thread."""

    def __init__(self, sealer: Sealer) -> None:
        self._sealer = sealer

    def load(
        self, connection: sqlite3.Connection, subject_ref: str | None = None
    ) -> list[tuple[str, str, dict[str, Any]]]:
        """Every row (at start), or one person's (access, the hub page)."""
        if subject_ref is None:
            rows = connection.execute("SELECT subject_ref, slot, payload FROM alert_state")
        else:
            rows = connection.execute(
                "SELECT subject_ref, slot, payload FROM alert_state WHERE subject_ref = ?",
                (subject_ref,),
            )
        loaded = []
        unreadable = 0
        for ref, slot, payload in rows:
            try:
                loaded.append(
                    (ref, slot, orjson.loads(self._sealer.open(payload, state_aad(ref, slot))))
                )
            except (SealError, orjson.JSONDecodeError):
                unreadable += 1
        if unreadable:
            # Alerting goes on without that piece of state (the rule starts that window afresh)
            # rather than not at all; the row stays, to be overwritten or expired.
            log.warning(
                "alert_state_unreadable",
                rows=unreadable,
                hint="altered, or sealed with another storage key",
            )
        return loaded

    def seal(self, changes: Iterable[StateChange]) -> list[tuple[str, str, bytes | None]]:
        """Seals on the caller's thread, so the database thread only writes."""
        return [
            (
                ref,
                slot,
                None
                if state is None
                else self._sealer.seal(orjson.dumps(state), state_aad(ref, slot)),
            )
            for ref, slot, state in changes
        ]

    @staticmethod
    def write(
        connection: sqlite3.Connection,
        sealed: list[tuple[str, str, bytes | None]],
        now: datetime | None = None,
    ) -> None:
        """Inside the caller's transaction."""
        if not sealed:
            return
        at = (now or datetime.now(UTC)).isoformat()
        upserts = [(ref, slot, at, blob) for ref, slot, blob in sealed if blob is not None]
        deletes = [(ref, slot) for ref, slot, blob in sealed if blob is None]
        if upserts:
            connection.executemany(
                "INSERT INTO alert_state (subject_ref, slot, updated_at, payload)"
                " VALUES (?, ?, ?, ?) ON CONFLICT (subject_ref, slot) DO UPDATE SET"
                " updated_at = excluded.updated_at, payload = excluded.payload",
                upserts,
            )
        if deletes:
            connection.executemany(
                "DELETE FROM alert_state WHERE subject_ref = ? AND slot = ?", deletes
            )

    @staticmethod
    def erase(connection: sqlite3.Connection, subject_ref: str) -> int:
        """Inside the caller's transaction; returns the rows removed."""
        return connection.execute(
            "DELETE FROM alert_state WHERE subject_ref = ?", (subject_ref,)
        ).rowcount

    @staticmethod
    def expire(connection: sqlite3.Connection, before: str) -> int:
        """Inside the caller's transaction: rows last written before ``before`` (ISO UTC)."""
        return connection.execute(
            "DELETE FROM alert_state WHERE updated_at < ?", (before,)
        ).rowcount
