"""The hub's one SQLite database, reached through a single writer thread.

SQLite calls block, and a commit on an SD card can take milliseconds, so every statement runs on
one dedicated thread and the event loop awaits it. One thread also means one writer, which is
what SQLite wants. The file is in WAL mode with ``synchronous=FULL``: a committed reading
survives ``kill -9`` and power loss.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

SCHEMA_VERSION = 1

SCHEMA = """
CREATE TABLE IF NOT EXISTS readings (
    reading_id   TEXT PRIMARY KEY,
    subject_ref  TEXT NOT NULL,
    kind         TEXT NOT NULL,
    measured_at  TEXT,
    received_at  TEXT NOT NULL,
    payload      BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS readings_by_subject ON readings (subject_ref, received_at);
CREATE INDEX IF NOT EXISTS readings_by_age ON readings (received_at);

CREATE TABLE IF NOT EXISTS outbox (
    id               INTEGER PRIMARY KEY,
    destination      TEXT NOT NULL,
    purpose          TEXT NOT NULL,
    category         TEXT NOT NULL,
    priority         INTEGER NOT NULL,
    subject_ref      TEXT NOT NULL,
    reading_id       TEXT NOT NULL,
    idempotency_key  TEXT NOT NULL,
    legal_basis      TEXT NOT NULL,
    fields           TEXT NOT NULL,
    payload          BLOB NOT NULL,
    size             INTEGER NOT NULL,
    created_at       REAL NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  REAL NOT NULL,
    last_error       TEXT,
    UNIQUE (destination, idempotency_key)
);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox (destination, next_attempt_at, priority, id);
CREATE INDEX IF NOT EXISTS outbox_order ON outbox (destination, priority, id, next_attempt_at);
CREATE INDEX IF NOT EXISTS outbox_by_subject ON outbox (subject_ref, purpose);

CREATE TABLE IF NOT EXISTS dead_letters (
    id               INTEGER PRIMARY KEY,
    destination      TEXT NOT NULL,
    purpose          TEXT NOT NULL,
    category         TEXT NOT NULL,
    priority         INTEGER NOT NULL,
    subject_ref      TEXT NOT NULL,
    reading_id       TEXT NOT NULL,
    idempotency_key  TEXT NOT NULL,
    legal_basis      TEXT NOT NULL,
    fields           TEXT NOT NULL,
    payload          BLOB NOT NULL,
    size             INTEGER NOT NULL,
    created_at       REAL NOT NULL,
    attempts         INTEGER NOT NULL,
    failed_at        REAL NOT NULL,
    status           INTEGER,
    response         TEXT
);

CREATE TABLE IF NOT EXISTS consents (
    subject_ref  TEXT NOT NULL,
    purpose      TEXT NOT NULL,
    granted      INTEGER NOT NULL,
    changed_at   TEXT NOT NULL,
    source       TEXT NOT NULL,
    PRIMARY KEY (subject_ref, purpose)
);

CREATE TABLE IF NOT EXISTS meta (
    key    TEXT PRIMARY KEY,
    value  TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS restrictions (
    subject_ref  TEXT PRIMARY KEY,
    restricted   INTEGER NOT NULL,
    changed_at   TEXT NOT NULL,
    source       TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS audit (
    seq        INTEGER PRIMARY KEY,
    at         TEXT NOT NULL,
    event      TEXT NOT NULL,
    subject_ref TEXT,
    data       BLOB NOT NULL,
    prev_hash  TEXT NOT NULL,
    hash       TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_by_subject ON audit (subject_ref, seq);
"""


def reading_aad(reading_id: str) -> bytes:
    """Associated data binding a stored reading's sealed payload to its row."""
    return f"reading\x1f{reading_id}".encode()


class StoreError(Exception):
    """The database could not be opened or used; the message says what to check."""


class Database:
    """An SQLite connection owned by one worker thread; ``call`` runs a function on it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-writer")
        self._connection: sqlite3.Connection | None = None

    async def open(self) -> None:
        await asyncio.get_running_loop().run_in_executor(self._executor, self._open)

    def _open(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            connection = sqlite3.connect(self.path, isolation_level=None)
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=FULL")
            connection.execute("PRAGMA foreign_keys=ON")
            connection.execute("PRAGMA busy_timeout=5000")
            version = connection.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"{self.path}: written by a newer gateway (schema {version});"
                    " upgrade the gateway"
                )
            connection.executescript(SCHEMA)
            connection.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: cannot open the database ({exc})") from None
        self.path.chmod(0o600)
        self._connection = connection

    async def call(self, function: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``function(connection)`` on the writer thread and return its result."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, self._run, function)

    def _run(self, function: Callable[[sqlite3.Connection], T]) -> T:
        if self._connection is None:
            raise StoreError("database is not open")
        return function(self._connection)

    async def close(self) -> None:
        if self._connection is not None:
            await asyncio.get_running_loop().run_in_executor(self._executor, self._close)
        self._executor.shutdown(wait=True)

    def _close(self) -> None:
        assert self._connection is not None
        self._connection.close()
        self._connection = None


class Transaction:
    """``with Transaction(connection):`` commits on success and rolls back on any error."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._connection = connection

    def __enter__(self) -> sqlite3.Connection:
        self._connection.execute("BEGIN IMMEDIATE")
        return self._connection

    def __exit__(self, exc_type: object, exc: object, traceback: object) -> None:
        if exc_type is None:
            self._connection.execute("COMMIT")
        else:
            self._connection.execute("ROLLBACK")
