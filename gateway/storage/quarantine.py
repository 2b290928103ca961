"""SQL on ``quarantine``: queued items that could not be opened, kept aside instead of sent.

A flipped bit on the SD card, or a storage key that was replaced, makes a sealed row fail
authentication. Such a row must neither stop delivery for everyone (the worker would die on it
at every start) nor be dropped silently: it is moved here, whole (its sealed bytes included,
so a restored key can still open it), counted and audited by the caller.

Runs on the database thread, inside the caller's transaction.
"""

from __future__ import annotations

import sqlite3

_IDS_PER_STATEMENT = 500  # well under SQLite's limit on bound parameters


def from_outbox(connection: sqlite3.Connection, rows: list[tuple[int, str]], now: float) -> int:
    """Move outbox rows ``(id, reason)`` into the quarantine; returns how many moved."""
    moved = 0
    for id_, reason in rows:
        cursor = connection.execute(
            "INSERT INTO quarantine (outbox_id, destination, purpose, category, priority,"
            " subject_ref, reading_id, idempotency_key, legal_basis, fields, payload, size,"
            " created_at, quarantined_at, reason)"
            " SELECT id, destination, purpose, category, priority, subject_ref, reading_id,"
            " idempotency_key, legal_basis, fields, payload, size, created_at, ?, ?"
            " FROM outbox WHERE id = ?",
            (now, reason, id_),
        )
        if cursor.rowcount:
            connection.execute("DELETE FROM outbox WHERE id = ?", (id_,))
            moved += 1
    return moved


def requeue_all(connection: sqlite3.Connection, now: float) -> int:
    """Move every quarantined item back into the outbox (the right key is back); returns how
    many. One that still cannot be opened comes back here when it is next due."""
    cursor = connection.execute(
        "INSERT OR IGNORE INTO outbox (destination, purpose, category, priority, subject_ref,"
        " reading_id, idempotency_key, legal_basis, fields, payload, size, created_at,"
        " attempts, next_attempt_at)"
        " SELECT destination, purpose, category, priority, subject_ref, reading_id,"
        " idempotency_key, legal_basis, fields, payload, size, created_at, 0, ?"
        " FROM quarantine ORDER BY id",
        (now,),
    )
    moved = cursor.rowcount
    connection.execute("DELETE FROM quarantine")
    return moved


def counts(connection: sqlite3.Connection) -> dict[str, int]:
    """Quarantined items per destination."""
    rows = connection.execute("SELECT destination, COUNT(*) FROM quarantine GROUP BY destination")
    return {destination: count for destination, count in rows}


def of_subject(connection: sqlite3.Connection, subject_ref: str) -> list[tuple[str, str, str]]:
    """A person's quarantined items: (destination, reading_id, reason), oldest first."""
    return connection.execute(
        "SELECT destination, reading_id, reason FROM quarantine WHERE subject_ref = ? ORDER BY id",
        (subject_ref,),
    ).fetchall()


def delete_of_subject(connection: sqlite3.Connection, subject_ref: str) -> int:
    return connection.execute(
        "DELETE FROM quarantine WHERE subject_ref = ?", (subject_ref,)
    ).rowcount
