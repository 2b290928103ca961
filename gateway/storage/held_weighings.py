"""SQL on ``held_weighings``: a shared scale's weighings that fit no one person, kept sealed.

A row waits (``decision`` NULL) until an operator assigns it to a person or discards it; then
its payload is emptied and only the decision stays, so asking again is answered "already
decided", not "unknown". Retention deletes waiting rows as old as the readings it deletes, and
decided rows once their decision is as old.

Every function runs on the database thread, inside the caller's transaction where it writes.
``payload`` is sealed with ``held_aad(held_key)``; opening it is the caller's business.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable

ASSIGNED = "assigned"
DISCARDED = "discarded"

NewRow = tuple[str, str, bytes]  # held key, received at (ISO 8601, UTC), sealed payload
Waiting = tuple[int, str, bytes]  # id, held key, sealed payload


def held_aad(held_key: str) -> bytes:
    """Associated data binding a held weighing's sealed payload to its row."""
    return f"held\x1f{held_key}".encode()


def insert(connection: sqlite3.Connection, rows: Iterable[NewRow]) -> None:
    """Keep weighings; one already kept or decided (the same key: a resend) is left as it is."""
    connection.executemany(
        "INSERT OR IGNORE INTO held_weighings (held_key, received_at, payload) VALUES (?, ?, ?)",
        rows,
    )


def waiting(connection: sqlite3.Connection) -> list[Waiting]:
    """Every weighing nobody has decided on yet, oldest first."""
    return connection.execute(
        "SELECT id, held_key, payload FROM held_weighings WHERE decision IS NULL"
        " ORDER BY received_at, id"
    ).fetchall()


def one(connection: sqlite3.Connection, id_: int) -> tuple[str, str | None, bytes] | None:
    """(held key, decision or None while it waits, sealed payload) of one row, or None."""
    row = connection.execute(
        "SELECT held_key, decision, payload FROM held_weighings WHERE id = ?", (id_,)
    ).fetchone()
    return None if row is None else (row[0], row[1], row[2])


def decide(connection: sqlite3.Connection, id_: int, decision: str, at: str) -> bool:
    """Record a decision on a waiting row and empty its payload; False if it was not waiting."""
    return bool(
        connection.execute(
            "UPDATE held_weighings SET decision = ?, decided_at = ?, payload = x''"
            " WHERE id = ? AND decision IS NULL",
            (decision, at, id_),
        ).rowcount
    )


def delete_before(connection: sqlite3.Connection, cutoff: str) -> int:
    """Delete weighings still waiting that were received before ``cutoff`` (ISO 8601, UTC), and
    decisions made before it; returns how many waiting weighings went."""
    expired = connection.execute(
        "DELETE FROM held_weighings WHERE decision IS NULL AND received_at < ?", (cutoff,)
    ).rowcount
    connection.execute(
        "DELETE FROM held_weighings WHERE decision IS NOT NULL AND decided_at < ?", (cutoff,)
    )
    return expired
