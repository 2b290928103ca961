"""The append-only, hash-chained audit log (DESIGN.md 3.4).

Every entry's hash covers its own content and the previous entry's hash, so editing, removing
or reordering any entry breaks the chain from that point on, and ``verify`` says where.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

GENESIS = "0" * 64


def _entry_hash(
    prev_hash: str, seq: int, at: str, event: str, subject_ref: str | None, data: bytes
) -> str:
    # The parts, each followed by a unit separator, then the data: one buffer, one digest.
    head = f"{prev_hash}\x1f{seq}\x1f{at}\x1f{event}\x1f{subject_ref or ''}\x1f".encode()
    return hashlib.sha256(head + data).hexdigest()


@dataclass(frozen=True, slots=True)
class AuditEntry:
    seq: int
    at: str
    event: str
    subject_ref: str | None
    data: dict[str, Any]


def append(
    connection: sqlite3.Connection,
    event: str,
    data: dict[str, Any],
    *,
    subject_ref: str | None = None,
    at: datetime | None = None,
) -> int:
    """Append one entry inside the caller's transaction; returns its sequence number."""
    return append_many(connection, [(event, data, subject_ref)], at=at)


def append_many(
    connection: sqlite3.Connection,
    entries: Sequence[tuple[str, dict[str, Any], str | None]],
    *,
    at: datetime | None = None,
) -> int:
    """Append (event, data, subject_ref) entries in order, inside the caller's transaction.

    The chain head is read once for the lot, so auditing a delivered batch costs one query
    and one insert, not one of each per item. Returns the last sequence number.
    """
    row = connection.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
    seq, prev_hash = (row[0], row[1]) if row else (0, GENESIS)
    stamp = (at or datetime.now(UTC)).isoformat()
    rows = []
    for event, data, subject_ref in entries:
        seq += 1
        body = orjson.dumps(data, option=orjson.OPT_SORT_KEYS)
        entry_hash = _entry_hash(prev_hash, seq, stamp, event, subject_ref, body)
        rows.append((seq, stamp, event, subject_ref, body, prev_hash, entry_hash))
        prev_hash = entry_hash
    connection.executemany(
        "INSERT INTO audit (seq, at, event, subject_ref, data, prev_hash, hash)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        rows,
    )
    return seq


@dataclass(frozen=True, slots=True)
class VerifyResult:
    ok: bool
    entries: int
    problem: str | None = None


def verify(connection: sqlite3.Connection) -> VerifyResult:
    """Walk the chain; the first broken link is reported with its sequence number."""
    expected_prev, expected_seq, count = GENESIS, 1, 0
    rows = connection.execute(
        "SELECT seq, at, event, subject_ref, data, prev_hash, hash FROM audit ORDER BY seq"
    )
    for seq, at, event, subject_ref, data, prev_hash, entry_hash in rows:
        if seq != expected_seq:
            return VerifyResult(False, count, f"entry {expected_seq} is missing (next is {seq})")
        if prev_hash != expected_prev:
            return VerifyResult(False, count, f"entry {seq} does not follow entry {seq - 1}")
        if _entry_hash(prev_hash, seq, at, event, subject_ref, data) != entry_hash:
            return VerifyResult(False, count, f"entry {seq} was altered")
        expected_prev, expected_seq, count = entry_hash, seq + 1, count + 1
    return VerifyResult(True, count)


def entries(
    connection: sqlite3.Connection, *, subject_ref: str | None = None, limit: int = 1000
) -> list[AuditEntry]:
    if subject_ref is None:
        rows = connection.execute(
            "SELECT seq, at, event, subject_ref, data FROM audit ORDER BY seq DESC LIMIT ?",
            (limit,),
        )
    else:
        rows = connection.execute(
            "SELECT seq, at, event, subject_ref, data FROM audit WHERE subject_ref = ?"
            " ORDER BY seq DESC LIMIT ?",
            (subject_ref, limit),
        )
    return [AuditEntry(r[0], r[1], r[2], r[3], orjson.loads(r[4])) for r in rows]
