"""Every table of the hub's database, in one place (``gateway.storage`` owns them all).

``readings`` holds each reading once, sealed. ``outbox`` holds what waits for each destination:
for a reading, a small row naming it (``payload`` empty: built from the stored reading when
sent); for an alert or an aggregate report, its sealed payload. ``dead_letters`` is the same
row given up on; ``quarantine`` a row that could not be opened. ``audit`` is the hash-chained
log, ``audit_subjects`` its per-person index. ``held_weighings`` keeps a shared scale's
weighings that fit no one person, sealed, until an operator says whose they are.
"""

from __future__ import annotations

# 2: readings are queued as rows without a payload (built from ``readings`` when sent) and a
# delivered batch is one audit entry indexed in ``audit_subjects``. A version 1 database is
# used as it is (its queued rows carry their payloads); a gateway that knows only version 1
# refuses a version 2 database instead of failing on rows it cannot open.
# 3: ``held_weighings`` (created in an existing database when it is opened). A gateway that
# knows only version 2 refuses it: it would neither list the waiting weighings nor ever delete
# them, so an operator could never decide on them and retention would keep them for ever.
SCHEMA_VERSION = 3

# An empty ``payload`` in ``outbox`` / ``dead_letters``: the item is built from its reading.
FROM_READING = b""

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

-- Queued items that could not be opened (altered bytes, another key): kept whole, out of the
-- way of delivery (``gateway.storage.quarantine``).
CREATE TABLE IF NOT EXISTS quarantine (
    id               INTEGER PRIMARY KEY,
    outbox_id        INTEGER NOT NULL,
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
    quarantined_at   REAL NOT NULL,
    reason           TEXT NOT NULL
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

-- Which people a batch entry of the audit log names (a delivered batch carries several
-- people's readings): the per-person view of the log reads through it. Derived from the
-- chained entries' content, and checked against it by ``audit.verify``.
CREATE TABLE IF NOT EXISTS audit_subjects (
    subject_ref  TEXT NOT NULL,
    seq          INTEGER NOT NULL,
    PRIMARY KEY (subject_ref, seq)
) WITHOUT ROWID;

-- Alert state and window history, sealed (gateway/storage/alert_state.py).
CREATE TABLE IF NOT EXISTS alert_state (
    subject_ref  TEXT NOT NULL,
    slot         TEXT NOT NULL,
    updated_at   TEXT NOT NULL,
    payload      BLOB NOT NULL,
    PRIMARY KEY (subject_ref, slot)
);
-- No index on updated_at: every batch rewrites some of these rows, and an index on the time
-- of writing cost a quarter of each upsert; retention scans the table (a few hundred rows per
-- person) once a day instead. Dropped from databases made before.
DROP INDEX IF EXISTS alert_state_by_age;

-- A shared scale's weighing that fits no one of its people (gateway/storage/held_weighings.py):
-- kept sealed, without a person, until an operator assigns or discards it. ``held_key`` is a
-- keyed id of the weighing (a resend after a restart is the same row); a decided row keeps
-- only its decision (the payload is emptied), so a second decision is told apart from an
-- unknown id.
CREATE TABLE IF NOT EXISTS held_weighings (
    id           INTEGER PRIMARY KEY,
    held_key     TEXT NOT NULL UNIQUE,
    received_at  TEXT NOT NULL,
    decision     TEXT,
    decided_at   TEXT,
    payload      BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS held_weighings_by_age ON held_weighings (received_at);
"""
