"""The audit log's anchor: its head, written outside the database after every change that matters.

The chain inside ``gateway.db`` finds an edited entry (each hash is a keyed MAC over the entry
and the one before), but on its own it cannot find its last entries cut off: a shorter chain
is still a valid chain. So after every commit of delivered batches (one batch, or a round of a
backlog: ``gateway.delivery.worker``) and every rights change the log's head
(sequence number and hash) is appended to ``audit.anchor`` beside the database, and fsynced:
a file opened for appending only, which someone holding the database alone (a copied or
replaced file, SQL access) cannot rewrite. ``audit verify`` compares the database against the
last anchor and names the entry that is missing or was rewritten.

Written after the commit, never before it: an anchor never names an entry a rolled-back
transaction took away. A crash between the two leaves the anchor one step behind, which only
means the newest entries are not anchored yet.
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import orjson

from gateway.storage import audit_log, meta
from gateway.storage.database import open_read_only


@dataclass(frozen=True, slots=True)
class Anchor:
    seq: int
    hash: str
    keyed_from: int  # the first entry with a keyed MAC (older ones, from before, are hashes)


# In ``meta``: the first sequence number whose entry carries a keyed MAC.
KEYED_FROM = "audit.keyed_from"


def keyed_from(connection: sqlite3.Connection) -> int | None:
    value = meta.get(connection, KEYED_FROM)
    return None if value is None else int(value)


def audit_is_keyed(database: Path) -> bool:
    """Whether the database's audit log was kept with a key (checked before a key is made)."""
    if not database.exists() or database.stat().st_size == 0:
        return False
    try:
        connection = open_read_only(database)
        try:
            return keyed_from(connection) is not None
        finally:
            connection.close()
    except sqlite3.Error:
        return False  # a damaged database: opening it for real says so in one line


class AuditAnchor:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._last_seq: int | None = None

    def record(self, connection: sqlite3.Connection) -> None:
        """Append the log's head if it moved since the last anchor (on the database thread)."""
        head = audit_log.head(connection)
        if head is None or head[0] == self._last_seq:
            return
        line = orjson.dumps(
            {
                "seq": head[0],
                "hash": head[1],
                "keyed_from": keyed_from(connection) or 1,
                "at": datetime.now(UTC).isoformat(),
            }
        )
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, line + b"\n")
            os.fsync(fd)
        finally:
            os.close(fd)
        self._last_seq = head[0]


def last_anchor(path: Path) -> Anchor | None:
    """The newest anchor in the file (a torn last line, from a crash mid-write, is skipped)."""
    try:
        lines = path.read_bytes().splitlines()
    except FileNotFoundError:
        return None
    for raw in reversed(lines):
        try:
            found = orjson.loads(raw)
            return Anchor(int(found["seq"]), str(found["hash"]), int(found["keyed_from"]))
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            continue
    return None
