"""SQL on ``consents`` and ``restrictions``: each person's choices, with when and by whom.

Every function runs on the database thread, inside the caller's transaction where it writes.
"""

from __future__ import annotations

import sqlite3


def load(connection: sqlite3.Connection) -> dict[tuple[str, str], bool]:
    """Every recorded choice: (subject_ref, purpose) -> granted."""
    rows = connection.execute("SELECT subject_ref, purpose, granted FROM consents")
    return {(ref, purpose): bool(granted) for ref, purpose, granted in rows}


def record(
    connection: sqlite3.Connection,
    subject_ref: str,
    consent: dict[str, bool],
    changed_at: str,
    source: str,
) -> None:
    connection.executemany(
        "INSERT INTO consents (subject_ref, purpose, granted, changed_at, source)"
        " VALUES (?, ?, ?, ?, ?) ON CONFLICT (subject_ref, purpose) DO UPDATE SET"
        " granted = excluded.granted, changed_at = excluded.changed_at,"
        " source = excluded.source",
        [(subject_ref, p, int(g), changed_at, source) for p, g in consent.items()],
    )


def of_subject(
    connection: sqlite3.Connection, subject_ref: str
) -> list[tuple[str, bool, str, str]]:
    """A person's choices: (purpose, granted, changed_at, source), by purpose."""
    rows = connection.execute(
        "SELECT purpose, granted, changed_at, source FROM consents WHERE subject_ref = ?"
        " ORDER BY purpose",
        (subject_ref,),
    )
    return [(purpose, bool(granted), at, source) for purpose, granted, at, source in rows]


def delete_of_subject(connection: sqlite3.Connection, subject_ref: str) -> int:
    deleted = connection.execute(
        "DELETE FROM consents WHERE subject_ref = ?", (subject_ref,)
    ).rowcount
    connection.execute("DELETE FROM restrictions WHERE subject_ref = ?", (subject_ref,))
    return deleted


def restricted(connection: sqlite3.Connection) -> set[str]:
    """Who has restricted processing now."""
    rows = connection.execute("SELECT subject_ref FROM restrictions WHERE restricted = 1")
    return {row[0] for row in rows}


def record_restriction(
    connection: sqlite3.Connection, subject_ref: str, restricted: bool, changed_at: str, source: str
) -> None:
    connection.execute(
        "INSERT INTO restrictions (subject_ref, restricted, changed_at, source)"
        " VALUES (?, ?, ?, ?) ON CONFLICT (subject_ref) DO UPDATE SET"
        " restricted = excluded.restricted, changed_at = excluded.changed_at,"
        " source = excluded.source",
        (subject_ref, int(restricted), changed_at, source),
    )


def has_history(connection: sqlite3.Connection, subject_ref: str) -> bool:
    """Whether the hub holds anything of this person besides consents: stored readings, or
    audit entries about them (their own, or deliveries that named them)."""
    row = connection.execute(
        "SELECT EXISTS (SELECT 1 FROM readings WHERE subject_ref = ?)"
        " OR EXISTS (SELECT 1 FROM audit WHERE subject_ref = ?)"
        " OR EXISTS (SELECT 1 FROM audit_subjects WHERE subject_ref = ?)",
        (subject_ref, subject_ref, subject_ref),
    ).fetchone()
    return bool(row[0])


def holds_anything(connection: sqlite3.Connection) -> bool:
    """Whether the database holds any reading or audit entry at all."""
    row = connection.execute(
        "SELECT EXISTS (SELECT 1 FROM readings) OR EXISTS (SELECT 1 FROM audit)"
    ).fetchone()
    return bool(row[0])
