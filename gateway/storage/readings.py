"""SQL on ``readings``: each reading once, sealed, with the few columns the hub looks it up by.

Every function runs on the database thread, inside the caller's transaction where it writes.
``payload`` is the reading's event sealed with ``reading_aad(reading_id)``; opening it is the
caller's business (it holds the key).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable

from gateway.storage.schema import FROM_READING

_IDS_PER_STATEMENT = 500  # well under SQLite's limit on bound parameters

Row = tuple[str, str, str, str | None, str, bytes]  # id, subject, kind, measured, received, sealed
Row2 = tuple[str, bytes]  # id, sealed payload


def insert(connection: sqlite3.Connection, rows: Iterable[Row]) -> None:
    """Store readings; one already stored (the same id) is left as it is."""
    connection.executemany(
        "INSERT OR IGNORE INTO readings (reading_id, subject_ref, kind, measured_at,"
        " received_at, payload) VALUES (?, ?, ?, ?, ?, ?)",
        rows,
    )


def existing(connection: sqlite3.Connection, ids: list[str]) -> set[str]:
    """Which of these reading ids are stored already."""
    found: set[str] = set()
    for start in range(0, len(ids), _IDS_PER_STATEMENT):
        chunk = ids[start : start + _IDS_PER_STATEMENT]
        marks = ",".join("?" * len(chunk))
        rows = connection.execute(
            f"SELECT reading_id FROM readings WHERE reading_id IN ({marks})",  # noqa: S608
            chunk,
        )
        found.update(row[0] for row in rows)
    return found


def sealed(connection: sqlite3.Connection, ids: list[str]) -> dict[str, bytes]:
    """The sealed payloads of these readings (those still stored), by id."""
    found: dict[str, bytes] = {}
    for start in range(0, len(ids), _IDS_PER_STATEMENT):
        chunk = ids[start : start + _IDS_PER_STATEMENT]
        marks = ",".join("?" * len(chunk))
        rows = connection.execute(
            f"SELECT reading_id, payload FROM readings WHERE reading_id IN ({marks})",  # noqa: S608
            chunk,
        )
        found.update(rows)
    return found


def of_subject(
    connection: sqlite3.Connection, subject_ref: str, since: str | None = None
) -> list[tuple[str, bytes]]:
    """A person's readings (id, sealed payload), oldest first; only those received since
    ``since`` (ISO 8601, UTC) when it is given."""
    if since is None:
        rows = connection.execute(
            "SELECT reading_id, payload FROM readings WHERE subject_ref = ? ORDER BY received_at",
            (subject_ref,),
        )
    else:
        rows = connection.execute(
            "SELECT reading_id, payload FROM readings WHERE subject_ref = ?"
            " AND received_at >= ? ORDER BY received_at",
            (subject_ref, since),
        )
    return rows.fetchall()


def newest_per_kind(connection: sqlite3.Connection, subject_ref: str) -> list[tuple[str, bytes]]:
    """A person's newest reading of each kind (id, sealed payload), by kind."""
    return connection.execute(
        "SELECT r.reading_id, r.payload FROM readings r JOIN"
        " (SELECT kind, MAX(received_at) AS newest FROM readings WHERE subject_ref = ?"
        "  GROUP BY kind) l ON r.kind = l.kind AND r.received_at = l.newest"
        " WHERE r.subject_ref = ? ORDER BY r.kind",
        (subject_ref, subject_ref),
    ).fetchall()


def newest(connection: sqlite3.Connection, limit: int) -> list[tuple[str, bytes]]:
    """The newest readings of anyone (id, sealed payload), newest first."""
    return connection.execute(
        "SELECT reading_id, payload FROM readings ORDER BY received_at DESC LIMIT ?", (limit,)
    ).fetchall()


def kinds(connection: sqlite3.Connection, ids: list[str]) -> dict[str, str]:
    """The kind of each of these readings that is still stored."""
    found: dict[str, str] = {}
    for start in range(0, len(ids), _IDS_PER_STATEMENT):
        chunk = ids[start : start + _IDS_PER_STATEMENT]
        marks = ",".join("?" * len(chunk))
        found.update(
            connection.execute(
                f"SELECT reading_id, kind FROM readings WHERE reading_id IN ({marks})",  # noqa: S608
                chunk,
            ).fetchall()
        )
    return found


def received_between(
    connection: sqlite3.Connection, start: str, end: str
) -> list[tuple[str, str, bytes]]:
    """Readings received in [start, end) (ISO 8601, UTC): (id, subject_ref, sealed payload)."""
    return connection.execute(
        "SELECT reading_id, subject_ref, payload FROM readings"
        " WHERE received_at >= ? AND received_at < ?",
        (start, end),
    ).fetchall()


def delete_of_subject(connection: sqlite3.Connection, subject_ref: str) -> int:
    return connection.execute("DELETE FROM readings WHERE subject_ref = ?", (subject_ref,)).rowcount


def delete_received_before(connection: sqlite3.Connection, cutoff: str) -> int:
    """Delete readings received before ``cutoff`` (ISO 8601, UTC); returns how many.

    A reading still waiting for a destination (or in the dead letters, to be re-queued) is
    what that item is built from: it stays until it has been sent or given up.
    """
    return connection.execute(
        "DELETE FROM readings WHERE received_at < ? AND reading_id NOT IN"
        " (SELECT reading_id FROM outbox WHERE payload = ?)"
        " AND reading_id NOT IN (SELECT reading_id FROM dead_letters WHERE payload = ?)",
        (cutoff, FROM_READING, FROM_READING),
    ).rowcount


def subject_refs(connection: sqlite3.Connection) -> set[str]:
    """Every person reference readings are stored under."""
    return {row[0] for row in connection.execute("SELECT DISTINCT subject_ref FROM readings")}


def first_of_subject(connection: sqlite3.Connection, subject_ref: str, limit: int) -> list[Row2]:
    """Up to ``limit`` of a person's readings (id, sealed payload), oldest first."""
    return connection.execute(
        "SELECT reading_id, payload FROM readings WHERE subject_ref = ?"
        " ORDER BY received_at LIMIT ?",
        (subject_ref, limit),
    ).fetchall()
