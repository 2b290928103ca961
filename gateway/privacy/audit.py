"""The append-only, hash-chained audit log (DESIGN.md 3.4).

Every entry's hash covers its own content and the previous entry's hash, so editing, removing
or reordering any entry breaks the chain from that point on, and ``verify`` says where. The
hash is a keyed MAC (HMAC-SHA-256 under ``keys/audit.key``, apart from the storage key): with
the database alone nobody can rewrite an entry and recompute the chain after it. Cutting the
newest entries off is found against the anchor kept outside the database
(``gateway.privacy.audit_anchor``). Entries written before the hub had an audit key (below
``audit.keyed_from``) keep their plain SHA-256 hashes.

A delivered batch is one entry (``disclosure`` with ``readings_by_subject``: subject
reference -> the reading ids it carried), not one per reading: the chain grows per request.
The people it names are indexed in ``audit_subjects`` so each person's view stays exact, and
``entries`` shows a batch as one disclosure per reading (the same ``seq``), as it was shown
when each reading had an entry of its own.
"""

from __future__ import annotations

import hashlib
import hmac
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from gateway.privacy.audit_anchor import KEYED_FROM, Anchor, keyed_from, last_anchor
from gateway.storage import audit_log, meta

GENESIS = "0" * 64


def _entry_hash(
    prev_hash: str,
    seq: int,
    at: str,
    event: str,
    subject_ref: str | None,
    data: bytes,
    key: bytes | None = None,
) -> str:
    # The parts, each followed by a unit separator, then the data: one buffer, one digest.
    head = f"{prev_hash}\x1f{seq}\x1f{at}\x1f{event}\x1f{subject_ref or ''}\x1f".encode()
    if key is not None:
        return hmac.digest(key, head + data, "sha256").hex()
    return hashlib.sha256(head + data).hexdigest()


def start_keying(connection: sqlite3.Connection) -> None:
    """Record, once, from which entry on the log is keyed (every entry of a new hub; the next
    entry of a hub whose log was kept before it had an audit key). Inside a transaction."""
    if keyed_from(connection) is None:
        head = audit_log.head(connection)
        meta.put(connection, KEYED_FROM, str((head[0] if head else 0) + 1))


def _key_of(connection: sqlite3.Connection) -> bytes | None:
    return getattr(connection, "audit_key", None)


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

    The chain head is read once for the lot. Returns the last sequence number. An entry whose
    data has ``readings_by_subject`` (subject reference -> reading ids) is indexed under each
    person.
    """
    seq, prev_hash = audit_log.head(connection) or (0, GENESIS)
    stamp = (at or datetime.now(UTC)).isoformat()
    key = _key_of(connection)
    rows = []
    people = []
    for event, data, subject_ref in entries:
        seq += 1
        body = orjson.dumps(data, option=orjson.OPT_SORT_KEYS)
        entry_hash = _entry_hash(prev_hash, seq, stamp, event, subject_ref, body, key)
        rows.append((seq, stamp, event, subject_ref, body, prev_hash, entry_hash))
        prev_hash = entry_hash
        named = data.get(BATCH_KEY)
        if isinstance(named, dict):
            people += [(ref, seq) for ref in named]
    audit_log.insert(connection, rows, people)
    return seq


# In a batch entry's data: subject reference -> the ids of that person's readings it names.
BATCH_KEY = "readings_by_subject"


def batch_entry(common: dict[str, Any], readings: Sequence[tuple[str, str]]) -> dict[str, Any]:
    """The data of one entry for a delivered batch: what was sent where and why (``common``),
    and which readings of whom (``readings``: (subject_ref, reading_id) pairs, in order)."""
    named: dict[str, list[str]] = {}
    for subject_ref, reading_id in readings:
        named.setdefault(subject_ref, []).append(reading_id)
    return {**common, BATCH_KEY: named}


@dataclass(frozen=True, slots=True)
class VerifyResult:
    ok: bool
    entries: int
    problem: str | None = None


def verify(
    connection: sqlite3.Connection, *, key: bytes | None = None, anchor: Anchor | None = None
) -> VerifyResult:
    """Walk the chain; the first broken link is reported with its sequence number. With the
    audit key (``key``, else the connection's), entries from ``audit.keyed_from`` on are
    checked as keyed MACs; with the last ``anchor``, a log cut short or rewritten up to it is
    found too."""
    key = key if key is not None else _key_of(connection)
    if anchor is None and getattr(connection, "audit_anchor", None) is not None:
        anchor = last_anchor(connection.audit_anchor)  # type: ignore[attr-defined]
    first_keyed = keyed_from(connection)
    if key is None and first_keyed is not None:
        return VerifyResult(
            False, 0, f"entries from {first_keyed} on are keyed: the audit key is needed"
        )
    if anchor is not None and key is not None and first_keyed != anchor.keyed_from:
        return VerifyResult(
            False,
            0,
            f"the log's keyed part was moved to start at entry {first_keyed}"
            f" (the anchor says entry {anchor.keyed_from})",
        )
    expected_prev, expected_seq, count = GENESIS, 1, 0
    named: dict[int, set[str]] = {}
    anchored_hash: str | None = None
    for seq, at, event, subject_ref, data, prev_hash, entry_hash in audit_log.in_order(connection):
        if seq != expected_seq:
            return VerifyResult(False, count, f"entry {expected_seq} is missing (next is {seq})")
        if prev_hash != expected_prev:
            return VerifyResult(False, count, f"entry {seq} does not follow entry {seq - 1}")
        mac_key = key if first_keyed is not None and seq >= first_keyed else None
        if _entry_hash(prev_hash, seq, at, event, subject_ref, data, mac_key) != entry_hash:
            return VerifyResult(False, count, f"entry {seq} was altered")
        if anchor is not None and seq == anchor.seq:
            anchored_hash = entry_hash
        if b'"' + BATCH_KEY.encode() + b'":{' in data:
            batch = orjson.loads(data).get(BATCH_KEY)
            if isinstance(batch, dict):
                named[seq] = set(batch)
        expected_prev, expected_seq, count = entry_hash, seq + 1, count + 1
    if anchor is not None:
        if count < anchor.seq:
            return VerifyResult(
                False,
                count,
                f"the log was cut short: it ends at entry {count}, but entry {anchor.seq} was"
                f" anchored (entries {count + 1} to {anchor.seq} are missing)",
            )
        if anchored_hash != anchor.hash:
            return VerifyResult(
                False,
                count,
                f"entry {anchor.seq} was rewritten: it differs from the anchored entry",
            )
    # The per-person index must say exactly what the chained entries say: a row removed from
    # it would hide a disclosure from that person's page.
    indexed: dict[int, set[str]] = {}
    for subject_ref, seq in audit_log.index(connection):
        indexed.setdefault(seq, set()).add(subject_ref)
    for seq in sorted(set(named) | set(indexed)):
        if named.get(seq) != indexed.get(seq):
            return VerifyResult(
                False, count, f"entry {seq}: the index of the people it names was altered"
            )
    return VerifyResult(True, count)


def entries(
    connection: sqlite3.Connection, *, subject_ref: str | None = None, limit: int = 1000
) -> list[AuditEntry]:
    """Entries, newest first; a batch entry is shown as one disclosure per reading it names
    (only the person's own readings when ``subject_ref`` is given)."""
    rows = audit_log.newest(connection, subject_ref, limit)
    shown: list[AuditEntry] = []
    for seq, at, event, ref, raw in rows:
        data = orjson.loads(raw)
        batch = data.get(BATCH_KEY) if isinstance(data, dict) else None
        if not isinstance(batch, dict):
            shown.append(AuditEntry(seq, at, event, ref, data))
            continue
        del data[BATCH_KEY]
        for person, reading_ids in batch.items():
            if subject_ref is not None and person != subject_ref:
                continue
            shown += [
                AuditEntry(seq, at, event, person, {**data, "reading_id": reading_id})
                for reading_id in reading_ids
            ]
    return shown
