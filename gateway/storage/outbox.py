"""The durable outbox: every item for every destination waits here until it is delivered.

Store once, send many: a reading is written once, sealed, in ``readings``; what waits for each
destination is a small queue row naming it (``payload`` empty). The payload a destination gets
is built from the stored reading when it is sent, by that destination's compiled route; the
bytes built while the reading was taken in are kept in memory (``PayloadCache``, bounded) so
the usual case, a destination that is up, does not build them twice. Alerts and aggregate
reports are not readings: their payloads are stored in the row, sealed (AES-GCM) with the
row's destination and idempotency key as associated data, so a payload cannot be swapped into
another row. ``(destination, idempotency_key)`` is unique: a reading the device sends twice is
queued once.
"""

from __future__ import annotations

import functools
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from gateway.storage import readings
from gateway.storage.crypto import Sealer, SealError
from gateway.storage.database import reading_aad
from gateway.storage.schema import FROM_READING

PRIORITY_ALERT = 0
PRIORITY_CARE = 1
PRIORITY_OTHER = 2

# The category of a queued "monitoring stopped" notice to the care team: it has its own legal
# basis, so consent and restriction do not hold it back (``ConsentRule.may_send``).
CATEGORY_NOTICE = "notice"


@dataclass(frozen=True, slots=True)
class NewItem:
    """What the pipeline hands to the outbox for one destination."""

    destination: str
    purpose: str
    category: str  # "reading" or "alert"
    priority: int
    subject_ref: str
    reading_id: str
    idempotency_key: str
    legal_basis: str  # "consent" or "vital_interest"
    fields: tuple[str, ...]
    payload: dict[str, Any]
    # True: only a queue row is written; the payload is rebuilt from the stored reading at
    # send time (kept in memory meanwhile when there is room). False: the payload is stored.
    from_reading: bool = False


@dataclass(slots=True)
class QueuedItem:
    id: int
    destination: str
    purpose: str
    category: str
    subject_ref: str
    reading_id: str
    idempotency_key: str
    legal_basis: str
    fields: tuple[str, ...]
    body: bytes  # the payload: JSON, exactly as ``orjson.dumps`` wrote it (b"": not built yet)
    attempts: int
    created_at: float
    # For an item built from its reading and not in memory: the stored reading's event (JSON),
    # or None when the reading is no longer stored. The delivery worker builds ``body`` from it.
    event: bytes | None = None
    # Why this item cannot be opened (its sealed bytes, or its reading's, failed
    # authentication), or None. Such an item is quarantined, never sent.
    unreadable: str | None = None

    @property
    def needs_build(self) -> bool:
        return not self.body and self.unreadable is None

    @property
    def payload(self) -> dict[str, Any]:
        """The payload, parsed (each time: sinks send ``body`` as it is where they can)."""
        return orjson.loads(self.body)  # type: ignore[no-any-return]


_DUE_COLUMNS = (
    "SELECT id, destination, purpose, category, subject_ref, reading_id, idempotency_key,"
    " legal_basis, fields, payload, attempts, created_at, size FROM outbox"
)
_DUE_WHERE = " WHERE destination = ? AND next_attempt_at <= ?"
_DUE_ORDER = " ORDER BY priority, id LIMIT ?"
_DUE_SORTED = _DUE_COLUMNS + " INDEXED BY outbox_due" + _DUE_WHERE
_DUE_IN_ORDER = _DUE_COLUMNS + " INDEXED BY outbox_order" + _DUE_WHERE
_DUE_PROBE = 4  # this many batches due or more: walk the delivery order instead of sorting
_IDS_PER_STATEMENT = 500  # well under SQLite's limit on bound parameters


@functools.lru_cache(maxsize=64)
def _fields(joined: str) -> tuple[str, ...]:
    """A row's ``fields`` column as a tuple: a destination's rows share one allow-list."""
    return tuple(joined.split(",")) if joined else ()


def _associated(destination: str, idempotency_key: str) -> bytes:
    return f"outbox\x1f{destination}\x1f{idempotency_key}".encode()


# Payload bytes kept in memory for queued items built from readings. Enough for several
# seconds of a busy hub; beyond it items are rebuilt from their readings when sent.
PAYLOAD_CACHE_BYTES = 8 * 1024 * 1024


class PayloadCache:
    """Payloads built at intake, by (destination, idempotency key), until sent or evicted.

    Only a speed-up: every entry can be rebuilt from the stored reading, so losing it (a
    restart, eviction) loses nothing. Used on the database thread only. Entries of a person
    are dropped when their queued items are purged (withdrawal, erasure).
    """

    def __init__(self, max_bytes: int = PAYLOAD_CACHE_BYTES) -> None:
        self.max_bytes = max_bytes
        self.size = 0
        self._entries: dict[tuple[str, str], tuple[str, str, bytes]] = {}

    def put(self, destination: str, key: str, subject_ref: str, purpose: str, body: bytes) -> None:
        if len(body) > self.max_bytes:
            return
        previous = self._entries.pop((destination, key), None)
        if previous is not None:
            self.size -= len(previous[2])
        while self.size + len(body) > self.max_bytes and self._entries:
            oldest = next(iter(self._entries))  # dicts keep insertion order: evict the oldest
            self.size -= len(self._entries.pop(oldest)[2])
        self._entries[(destination, key)] = (subject_ref, purpose, body)
        self.size += len(body)

    def get(self, destination: str, key: str) -> bytes | None:
        entry = self._entries.get((destination, key))
        return None if entry is None else entry[2]

    def drop(self, destination: str, keys: list[str]) -> None:
        for key in keys:
            entry = self._entries.pop((destination, key), None)
            if entry is not None:
                self.size -= len(entry[2])

    def forget(self, subject_ref: str, purpose: str | None = None) -> None:
        """Drop a person's payloads (for one purpose, or all)."""
        gone = [
            key
            for key, (ref, item_purpose, _body) in self._entries.items()
            if ref == subject_ref and (purpose is None or item_purpose == purpose)
        ]
        for key in gone:
            self.size -= len(self._entries.pop(key)[2])

    def __len__(self) -> int:
        return len(self._entries)


class Outbox:
    """SQL for the outbox tables; every method runs on the database thread."""

    def __init__(self, sealer: Sealer, cache: PayloadCache | None = None) -> None:
        self._sealer = sealer
        self.cache = cache if cache is not None else PayloadCache()

    def enqueue(self, connection: sqlite3.Connection, items: list[NewItem], now: float) -> int:
        """Insert items inside the caller's transaction; returns how many were new."""
        rows = []
        for item in items:
            body = orjson.dumps(item.payload)
            if item.from_reading:
                # Only the queue row goes to disk; the reading itself is already stored.
                sealed = FROM_READING
                self.cache.put(
                    item.destination, item.idempotency_key, item.subject_ref, item.purpose, body
                )
            else:
                sealed = self._sealer.seal(
                    body, _associated(item.destination, item.idempotency_key)
                )
            rows.append(
                (
                    item.destination,
                    item.purpose,
                    item.category,
                    item.priority,
                    item.subject_ref,
                    item.reading_id,
                    item.idempotency_key,
                    item.legal_basis,
                    ",".join(item.fields),
                    sealed,
                    len(body),
                    now,
                    now,
                )
            )
        before = connection.total_changes
        connection.executemany(
            "INSERT OR IGNORE INTO outbox (destination, purpose, category, priority, subject_ref,"
            " reading_id, idempotency_key, legal_basis, fields, payload, size, created_at,"
            " next_attempt_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        return connection.total_changes - before

    def due(
        self,
        connection: sqlite3.Connection,
        destination: str,
        limit: int,
        now: float,
        max_bytes: int | None = None,
        exclude: list[int] | None = None,
        *,
        cached: bool = True,
    ) -> list[QueuedItem]:
        """Items due for delivery, in priority then queue order, at most ``limit`` of them and,
        when ``max_bytes`` is given, no more payload than that (but always at least one).
        ``exclude``: ids to pass over (a batch that is being sent while the next is read).
        Items built from readings come with their payload when it is in memory (``cached``),
        otherwise with their stored reading's event to build it from."""
        # Two plans, the same rows. Sorting the due range of ``outbox_due`` costs every due item
        # (a backlog of a million made each batch sort a million); walking ``outbox_order`` and
        # skipping what is not due costs the batch plus the items in back-off ahead of it. A
        # short probe of the due range picks the cheaper one.
        due_now = connection.execute(
            "SELECT COUNT(*) FROM (SELECT 1 FROM outbox INDEXED BY outbox_due"
            " WHERE destination = ? AND next_attempt_at <= ? LIMIT ?)",
            (destination, now, _DUE_PROBE * limit),
        ).fetchone()[0]
        if not due_now:
            return []
        query = _DUE_IN_ORDER if due_now >= _DUE_PROBE * limit else _DUE_SORTED
        parameters: list[Any] = [destination, now]
        if exclude:
            query += f" AND id NOT IN ({','.join('?' * len(exclude))})"
            parameters += exclude
        rows = connection.execute(query + _DUE_ORDER, [*parameters, limit]).fetchall()
        if max_bytes is not None:
            total, cut = 0, len(rows)
            for index, row in enumerate(rows):
                total += row[-1]
                if total > max_bytes and index > 0:
                    cut = index
                    break
            rows = rows[:cut]
        items = [self._item(row[:-1], cached) for row in rows]
        missing = [item for item in items if item.needs_build]
        if missing:
            self._attach_events(connection, missing)
        return items

    def _attach_events(self, connection: sqlite3.Connection, items: list[QueuedItem]) -> None:
        """Read and open the stored readings that items not in memory are built from."""
        stored = readings.sealed(connection, sorted({item.reading_id for item in items}))
        for item in items:
            sealed = stored.get(item.reading_id)
            if sealed is not None:
                try:
                    item.event = self._sealer.open(sealed, reading_aad(item.reading_id))
                except SealError as exc:
                    item.unreadable = f"stored reading: {exc}"

    def _item(self, row: tuple[Any, ...], cached: bool = True) -> QueuedItem:
        (
            id_,
            destination,
            purpose,
            category,
            subject_ref,
            reading_id,
            key,
            basis,
            fields,
            sealed,
            attempts,
            created_at,
        ) = row
        unreadable = None
        if sealed == FROM_READING:
            body = (self.cache.get(destination, key) if cached else None) or FROM_READING
        else:
            try:
                body = self._sealer.open(sealed, _associated(destination, key))
            except SealError as exc:
                # One bad row must not stop the others: it is handed on marked, and the worker
                # moves it to the quarantine instead of sending it.
                body, unreadable = b"", f"queued payload: {exc}"
        return QueuedItem(
            id_,
            destination,
            purpose,
            category,
            subject_ref,
            reading_id,
            key,
            basis,
            _fields(fields),
            body,
            attempts,
            created_at,
            unreadable=unreadable,
        )

    @staticmethod
    def next_due(connection: sqlite3.Connection, destination: str) -> float | None:
        row = connection.execute(
            "SELECT MIN(next_attempt_at) FROM outbox WHERE destination = ?", (destination,)
        ).fetchone()
        return row[0]

    @staticmethod
    def remove(connection: sqlite3.Connection, ids: list[int]) -> None:
        for start in range(0, len(ids), _IDS_PER_STATEMENT):
            chunk = ids[start : start + _IDS_PER_STATEMENT]
            marks = ",".join("?" * len(chunk))
            connection.execute(f"DELETE FROM outbox WHERE id IN ({marks})", chunk)  # noqa: S608

    @staticmethod
    def reschedule(connection: sqlite3.Connection, retries: list[tuple[int, float, str]]) -> None:
        """``retries``: (id, next_attempt_at, reason) per item."""
        connection.executemany(
            "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = ?, last_error = ?"
            " WHERE id = ?",
            [(at, reason, id_) for id_, at, reason in retries],
        )

    @staticmethod
    def dead_letter(
        connection: sqlite3.Connection, failures: list[tuple[int, int | None, str]]
    ) -> None:
        """``failures``: (id, HTTP status or None, response excerpt) per item."""
        now = time.time()
        for id_, status, response in failures:
            connection.execute(
                "INSERT INTO dead_letters (destination, purpose, category, priority, subject_ref,"
                " reading_id, idempotency_key, legal_basis, fields, payload, size, created_at,"
                " attempts, failed_at, status, response)"
                " SELECT destination, purpose, category, priority, subject_ref, reading_id,"
                " idempotency_key, legal_basis, fields, payload, size, created_at, attempts + 1,"
                " ?, ?, ? FROM outbox WHERE id = ?",
                (now, status, response, id_),
            )
            connection.execute("DELETE FROM outbox WHERE id = ?", (id_,))

    def purge(
        self, connection: sqlite3.Connection, subject_ref: str, purpose: str | None = None
    ) -> int:
        """Drop queued items of a subject (for one purpose, or all); returns how many."""
        self.cache.forget(subject_ref, purpose)
        if purpose is None:
            cursor = connection.execute("DELETE FROM outbox WHERE subject_ref = ?", (subject_ref,))
        else:
            cursor = connection.execute(
                "DELETE FROM outbox WHERE subject_ref = ? AND purpose = ?", (subject_ref, purpose)
            )
        return cursor.rowcount

    @staticmethod
    def depth(connection: sqlite3.Connection) -> dict[str, tuple[int, float | None]]:
        """Per destination: (queued items, created_at of the oldest)."""
        rows = connection.execute(
            "SELECT destination, COUNT(*), MIN(created_at) FROM outbox GROUP BY destination"
        )
        return {destination: (count, oldest) for destination, count, oldest in rows}

    @staticmethod
    def dead_letters(connection: sqlite3.Connection, limit: int = 500) -> list[dict[str, Any]]:
        """Dead letters, newest first, without their (sealed) payloads."""
        rows = connection.execute(
            "SELECT id, destination, purpose, category, subject_ref, reading_id, attempts,"
            " created_at, failed_at, status, response FROM dead_letters ORDER BY id DESC LIMIT ?",
            (limit,),
        )
        names = (
            "id",
            "destination",
            "purpose",
            "category",
            "subject_ref",
            "reading_id",
            "attempts",
            "created_at",
            "failed_at",
            "status",
            "response",
        )
        return [dict(zip(names, row, strict=True)) for row in rows]

    @staticmethod
    def requeue(connection: sqlite3.Connection, ids: list[int], now: float) -> int:
        """Move dead letters back into the outbox (inside the caller's transaction)."""
        moved = 0
        for id_ in ids:
            cursor = connection.execute(
                "INSERT OR IGNORE INTO outbox (destination, purpose, category, priority,"
                " subject_ref, reading_id, idempotency_key, legal_basis, fields, payload, size,"
                " created_at, attempts, next_attempt_at)"
                " SELECT destination, purpose, category, priority, subject_ref, reading_id,"
                " idempotency_key, legal_basis, fields, payload, size, created_at, 0, ?"
                " FROM dead_letters WHERE id = ?",
                (now, id_),
            )
            if cursor.rowcount:
                connection.execute("DELETE FROM dead_letters WHERE id = ?", (id_,))
                moved += 1
        return moved

    @staticmethod
    def count(connection: sqlite3.Connection) -> int:
        """Items queued for every destination (the soft cap's exact count)."""
        return int(connection.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])

    @staticmethod
    def dead_letter_counts(connection: sqlite3.Connection) -> dict[str, int]:
        rows = connection.execute(
            "SELECT destination, COUNT(*) FROM dead_letters GROUP BY destination"
        )
        return {destination: count for destination, count in rows}

    @staticmethod
    def scrub_responses(connection: sqlite3.Connection, scrub: Callable[[str], str]) -> int:
        """Rewrite kept error texts through ``scrub`` (dead letters written before texts were
        scrubbed); returns how many changed. Inside the caller's transaction."""
        rows = connection.execute(
            "SELECT id, response FROM dead_letters WHERE response IS NOT NULL"
        ).fetchall()
        changed = [(scrub(text), id_) for id_, text in rows if scrub(text) != text]
        connection.executemany("UPDATE dead_letters SET response = ? WHERE id = ?", changed)
        return len(changed)

    @staticmethod
    def dead_letter_ids(connection: sqlite3.Connection, ids: list[int]) -> set[int]:
        """Which of these ids are dead letters now."""
        found: set[int] = set()
        for start in range(0, len(ids), _IDS_PER_STATEMENT):
            chunk = ids[start : start + _IDS_PER_STATEMENT]
            marks = ",".join("?" * len(chunk))
            rows = connection.execute(
                f"SELECT id FROM dead_letters WHERE id IN ({marks})",  # noqa: S608
                chunk,
            )
            found.update(row[0] for row in rows)
        return found

    @staticmethod
    def queued_of_subject(
        connection: sqlite3.Connection, subject_ref: str
    ) -> list[tuple[str, str, str, str, float, int]]:
        """A person's queued items: (destination, purpose, category, reading_id, created_at,
        attempts), in queue order."""
        return connection.execute(
            "SELECT destination, purpose, category, reading_id, created_at, attempts"
            " FROM outbox WHERE subject_ref = ? ORDER BY id",
            (subject_ref,),
        ).fetchall()

    @staticmethod
    def dead_letters_of_subject(
        connection: sqlite3.Connection, subject_ref: str
    ) -> list[tuple[str, str, str, str, int | None, float]]:
        """A person's dead letters: (destination, purpose, category, reading_id, status,
        failed_at), oldest first."""
        return connection.execute(
            "SELECT destination, purpose, category, reading_id, status, failed_at"
            " FROM dead_letters WHERE subject_ref = ? ORDER BY id",
            (subject_ref,),
        ).fetchall()

    @staticmethod
    def delete_dead_letters_of_subject(connection: sqlite3.Connection, subject_ref: str) -> int:
        return connection.execute(
            "DELETE FROM dead_letters WHERE subject_ref = ?", (subject_ref,)
        ).rowcount

    @staticmethod
    def delete_dead_letters_before(connection: sqlite3.Connection, cutoff: float) -> int:
        """Delete dead letters given up before ``cutoff`` (epoch seconds); returns how many."""
        return connection.execute(
            "DELETE FROM dead_letters WHERE failed_at < ?", (cutoff,)
        ).rowcount

    @staticmethod
    def every_dead_letter(connection: sqlite3.Connection, destination: str | None) -> list[int]:
        """The ids of every dead letter (of one destination, or of all), oldest first."""
        if destination is None:
            rows = connection.execute("SELECT id FROM dead_letters ORDER BY id")
        else:
            rows = connection.execute(
                "SELECT id FROM dead_letters WHERE destination = ? ORDER BY id", (destination,)
            )
        return [row[0] for row in rows]
