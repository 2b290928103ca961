"""SQL on ``audit`` and ``audit_subjects``: the rows of the hash-chained log and its per-person
index. What goes into a row and how the chain is checked is ``gateway.privacy.audit``'s job.

Runs on the database thread, inside the caller's transaction where it writes.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator

# seq, at, event, subject_ref, data, prev_hash, hash
Row = tuple[int, str, str, str | None, bytes, str, str]


def head(connection: sqlite3.Connection) -> tuple[int, str] | None:
    """The last entry's (seq, hash), or None for an empty log."""
    row = connection.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
    return None if row is None else (row[0], row[1])


def insert(
    connection: sqlite3.Connection, rows: list[Row], people: Iterable[tuple[str, int]]
) -> None:
    """Append rows, and index (subject_ref, seq) for the people batch entries name."""
    connection.executemany(
        "INSERT INTO audit (seq, at, event, subject_ref, data, prev_hash, hash)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        rows,
    )
    connection.executemany("INSERT INTO audit_subjects (subject_ref, seq) VALUES (?, ?)", people)


def in_order(connection: sqlite3.Connection) -> Iterator[Row]:
    """Every row, oldest first (for checking the chain)."""
    yield from connection.execute(
        "SELECT seq, at, event, subject_ref, data, prev_hash, hash FROM audit ORDER BY seq"
    )


def index(connection: sqlite3.Connection) -> Iterator[tuple[str, int]]:
    """Every (subject_ref, seq) of the per-person index."""
    yield from connection.execute("SELECT subject_ref, seq FROM audit_subjects")


def newest(
    connection: sqlite3.Connection, subject_ref: str | None, limit: int
) -> list[tuple[int, str, str, str | None, bytes]]:
    """(seq, at, event, subject_ref, data), newest first: everyone's, or the entries about one
    person (their own, and the batch entries that name them)."""
    if subject_ref is None:
        rows = connection.execute(
            "SELECT seq, at, event, subject_ref, data FROM audit ORDER BY seq DESC LIMIT ?",
            (limit,),
        )
    else:
        rows = connection.execute(
            "SELECT seq, at, event, subject_ref, data FROM audit WHERE subject_ref = ?"
            " UNION ALL SELECT seq, at, event, subject_ref, data FROM audit WHERE seq IN"
            " (SELECT seq FROM audit_subjects WHERE subject_ref = ?)"
            " ORDER BY seq DESC LIMIT ?",
            (subject_ref, subject_ref, limit),
        )
    return rows.fetchall()
