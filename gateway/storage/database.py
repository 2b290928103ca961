"""The hub's one SQLite database, reached through a single writer thread.

SQLite calls block, and a commit on an SD card can take milliseconds, so every statement runs on
one dedicated thread and the event loop awaits it. One thread also means one writer, which is
what SQLite wants; waiting work is taken by priority, so an alert never queues behind a backlog.
The file is in WAL mode with ``synchronous=FULL``: a committed reading survives ``kill -9`` and
power loss. A second connection, on a thread of its own, checkpoints the log (``Checkpointer``).
"""

from __future__ import annotations

import asyncio
import enum
import itertools
import queue
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import structlog

from gateway.storage.schema import SCHEMA, SCHEMA_VERSION

T = TypeVar("T")

log = structlog.get_logger(__name__)

# Pages of write-ahead log after which the writer checkpoints by itself (SQLite's default is
# 1,000): normally the checkpointer thread has done it long before.
WRITER_CHECKPOINT_PAGES = 10_000
CHECKPOINT_PAUSE_S = 0.2


def open_read_only(path: Path) -> sqlite3.Connection:
    """A read-only connection for tools that inspect a database the gateway may be running on
    (``audit verify``); nothing can be written through it."""
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True)


def holds_sealed_data(path: Path) -> bool:
    """Whether the database at ``path`` holds anything sealed with the storage key (readings,
    queued or dead-lettered items, held weighings): then a missing key is a lost key, never a
    fresh start."""
    if not path.exists() or path.stat().st_size == 0:
        return False
    try:
        connection = open_read_only(path)
        try:
            tables = {
                row[0] for row in connection.execute("SELECT name FROM sqlite_master")
            }  # a database from before ``held_weighings`` has no such table
            return any(
                connection.execute(f"SELECT EXISTS (SELECT 1 FROM {table})").fetchone()[0]  # noqa: S608
                for table in ("readings", "outbox", "dead_letters")
            ) or (
                "held_weighings" in tables
                and connection.execute("SELECT EXISTS (SELECT 1 FROM held_weighings)").fetchone()[0]
                == 1
            )
        finally:
            connection.close()
    except sqlite3.Error:
        return True  # unreadable or damaged: opening it later says so; do not mint a key here


def secure_delete(connection: sqlite3.Connection, *, on: bool) -> None:
    """Whether what is deleted or overwritten from now on is zeroed on disk, not just freed."""
    connection.execute(f"PRAGMA secure_delete={'ON' if on else 'OFF'}")


def reading_aad(reading_id: str) -> bytes:
    """Associated data binding a stored reading's sealed payload to its row."""
    return f"reading\x1f{reading_id}".encode()


class KeyedConnection(sqlite3.Connection):
    """The writer's connection, carrying the audit log's MAC key to whatever appends to the
    log through it (``gateway.privacy.audit``); None for a log kept without a key."""

    audit_key: bytes | None = None
    audit_anchor: Path | None = None  # the anchor file beside the database, when there is one


class StoreError(Exception):
    """The database could not be opened or used; the message says what to check."""


class Priority(enum.IntEnum):
    """Which database work goes first when several callers wait for the one writer thread."""

    ALERT = 0  # an alert's delivery: a person may need help now
    INTAKE = 1  # readings coming in, and people using the hub page
    BULK = 2  # deliveries of ordinary readings, housekeeping


@dataclass(slots=True)
class _Job:
    function: Callable[[], Any]
    future: asyncio.Future[Any]
    loop: asyncio.AbstractEventLoop


class Database:
    """An SQLite connection owned by one worker thread; ``call`` runs a function on it.

    Waiting work is taken by priority, then in order of arrival: a backlog of bulk deliveries,
    each with its commit, never sits between an alert and the database. One job runs at a time
    and a running job is never interrupted, so an alert waits for at most one other job.
    """

    def __init__(
        self, path: Path, audit_key: bytes | None = None, audit_anchor: Path | None = None
    ) -> None:
        self.path = path
        # Handed to the connection: see ``KeyedConnection``.
        self.audit_key = audit_key
        self.audit_anchor = audit_anchor
        self._jobs: queue.PriorityQueue[tuple[int, int, _Job | None]] = queue.PriorityQueue()
        self._arrival = itertools.count()
        self._thread: threading.Thread | None = None
        self._connection: sqlite3.Connection | None = None
        self._checkpointer: Checkpointer | None = None

    async def open(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._serve, name="sqlite-writer", daemon=True)
            self._thread.start()
        await self._enqueue(self._open, Priority.INTAKE)

    def _open(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            connection = sqlite3.connect(self.path, isolation_level=None, factory=KeyedConnection)
            connection.audit_key = self.audit_key
            connection.audit_anchor = self.audit_anchor
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=FULL")
            connection.execute("PRAGMA foreign_keys=ON")
            connection.execute("PRAGMA busy_timeout=5000")
            # The checkpointer copies the log into the database file on its own thread; the
            # writer only checkpoints itself if that falls far behind (a bound on the log's size).
            connection.execute(f"PRAGMA wal_autocheckpoint={WRITER_CHECKPOINT_PAGES}")
            version = connection.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"{self.path}: written by a newer gateway (schema {version});"
                    " upgrade the gateway"
                )
            connection.executescript(SCHEMA)
            connection.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        except sqlite3.Error as exc:
            hint = ""
            if type(exc) is sqlite3.DatabaseError:  # damaged pages, not a lock or a path
                hint = "; the file is damaged: keep a copy of it and restore it from a backup"
            raise StoreError(f"{self.path}: cannot open the database ({exc}){hint}") from None
        self.path.chmod(0o600)
        self._connection = connection
        self._checkpointer = Checkpointer(self.path)
        self._checkpointer.start()

    async def call(
        self, function: Callable[[sqlite3.Connection], T], *, priority: Priority = Priority.BULK
    ) -> T:
        """Run ``function(connection)`` on the writer thread and return its result."""
        return await self.submit(function, priority=priority)

    def submit(
        self, function: Callable[[sqlite3.Connection], T], *, priority: Priority = Priority.BULK
    ) -> asyncio.Future[T]:
        """Queue ``function(connection)`` now (behind earlier work of the same priority); the
        future has its result. For callers that must fix the order before they next yield."""
        return self._enqueue(lambda: self._run(function), priority)

    def _enqueue(self, function: Callable[[], T], priority: int) -> asyncio.Future[T]:
        if self._thread is None:
            raise StoreError("database is not open")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._jobs.put((priority, next(self._arrival), _Job(function, future, loop)))
        return future

    def _serve(self) -> None:
        while True:
            _priority, _arrival, job = self._jobs.get()
            if job is None:
                return
            if job.future.cancelled():  # its caller gave up before it started: nothing to do
                continue
            changes = self._changes()
            try:
                outcome: tuple[bool, Any] = (True, job.function())
            except BaseException as exc:  # handed to the caller, as an executor would
                outcome = (False, exc)
            if self._checkpointer is not None and self._changes() != changes:
                self._checkpointer.nudge()
            try:
                job.loop.call_soon_threadsafe(_settle, job.future, outcome)
            except RuntimeError:  # the caller's event loop is closed: no one is waiting
                pass

    @property
    def checkpointer(self) -> Checkpointer | None:
        return self._checkpointer

    def _changes(self) -> int:
        return 0 if self._connection is None else self._connection.total_changes

    def _run(self, function: Callable[[sqlite3.Connection], T]) -> T:
        if self._connection is None:
            raise StoreError("database is not open")
        return function(self._connection)

    async def close(self) -> None:
        if self._thread is None:
            return
        if self._connection is not None:
            # Last in line: whatever was queued before the close still runs first.
            await self._enqueue(self._close, _LAST)
        self._jobs.put((_LAST + 1, next(self._arrival), None))
        await asyncio.get_running_loop().run_in_executor(None, self._thread.join)
        self._thread = None

    def _close(self) -> None:
        assert self._connection is not None
        if self._checkpointer is not None:
            self._checkpointer.stop()
            self._checkpointer = None
        self._connection.close()  # the last connection out checkpoints and removes the log
        self._connection = None


class Checkpointer:
    """Copies committed pages from the write-ahead log into the database file, off the writer.

    SQLite's automatic checkpoint runs inside a commit once the log passes 1,000 pages: that
    commit then waits for the database file to be written and synced (tens of ms on this
    hardware, more on an SD card), and so does every alert queued behind it. A passive
    checkpoint on a second connection runs beside the writer instead. It runs only after
    something was written (a short pause lets a burst finish first), so an idle hub never
    wakes up for it.
    """

    def __init__(self, path: Path, pause_s: float = CHECKPOINT_PAUSE_S) -> None:
        self._path = path
        self._pause_s = pause_s
        self._wanted = threading.Event()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sqlite-checkpoint", daemon=True)
        self._passed = threading.Condition()
        self.passes = 0
        # (busy, frames in the log, frames checkpointed) from the latest pass
        self.last_pass: tuple[int, int, int] | None = None

    def start(self) -> None:
        self._thread.start()

    def nudge(self) -> None:
        self._wanted.set()

    def stop(self) -> None:
        self._stopping.set()
        self._wanted.set()
        self._thread.join()

    def _run(self) -> None:
        connection = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        try:
            connection.execute("PRAGMA busy_timeout=5000")
            failing: str | None = None
            while True:
                self._wanted.wait()
                if self._stopping.wait(self._pause_s):  # the pause lets a burst finish first
                    return
                self._wanted.clear()
                try:
                    row = connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                except sqlite3.Error as exc:  # the writer's own checkpoint is the fallback
                    if str(exc) != failing:  # once per cause (a full disk fails every pass)
                        log.warning("checkpoint_failed", error=str(exc))
                    failing = str(exc)
                    continue
                failing = None
                with self._passed:
                    self.passes += 1
                    self.last_pass = (row[0], row[1], row[2])
                    self._passed.notify_all()
        finally:
            connection.close()

    def wait_for_pass(self, after: int, timeout_s: float) -> bool:
        """Block until more than ``after`` passes have completed (or the timeout passes)."""
        with self._passed:
            return self._passed.wait_for(lambda: self.passes > after, timeout_s)


_LAST = max(Priority) + 1


def _settle(future: asyncio.Future[Any], outcome: tuple[bool, Any]) -> None:
    if future.cancelled():
        return
    ok, value = outcome
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)


class Transaction:
    """``with Transaction(connection):`` commits on success and rolls back on any error."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._connection = connection

    def __enter__(self) -> sqlite3.Connection:
        self._connection.execute("BEGIN IMMEDIATE")
        return self._connection

    def __exit__(self, exc_type: object, exc: object, traceback: object) -> None:
        if exc_type is None:
            try:
                self._connection.execute("COMMIT")
            except sqlite3.Error:
                self._roll_back()  # a COMMIT that failed (a full disk) may leave it open
                raise
        else:
            self._roll_back()

    def _roll_back(self) -> None:
        # SQLite rolls back by itself after some errors (SQLITE_FULL among them); a second
        # ROLLBACK would then fail and hide the error that caused it.
        if self._connection.in_transaction:
            self._connection.execute("ROLLBACK")
