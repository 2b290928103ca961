"""The floor: per-reading work no implementation of this gateway can avoid.

Measured in the same process and run as the pipeline, so that the ratio compares like with like:

* one HMAC-SHA-256 of an identifier (a keyed reference or pseudonym: the least a reading needs);
* one orjson encode of the reading's event (the dict ``reading_event`` builds, in
  ``gateway.intake.events``);
* its share of one batched SQLite insert + commit: 256 rows (the pipeline's batch) into a table
  shaped like ``readings``, in one ``BEGIN IMMEDIATE`` ... ``COMMIT``, on a WAL database with
  ``synchronous=FULL`` in the same directory the gateway benchmarks use.

Each is reported as process CPU microseconds per reading and wall microseconds per reading
(they differ for the commit, which waits for the disk). AES-GCM sealing is shown beside them
for context; it is not part of the floor.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import orjson

from bench.workload import PEOPLE, measurement
from gateway.intake.events import BoundReading, reading_event
from gateway.storage.crypto import Sealer

BATCH = 256

TABLE = """
CREATE TABLE IF NOT EXISTS readings (
    reading_id   TEXT PRIMARY KEY,
    subject_ref  TEXT NOT NULL,
    kind         TEXT NOT NULL,
    measured_at  TEXT,
    received_at  TEXT NOT NULL,
    payload      BLOB NOT NULL
)
"""


@dataclass(frozen=True, slots=True)
class Cost:
    cpu_us: float
    wall_us: float


@dataclass(frozen=True, slots=True)
class FloorResult:
    hmac: Cost
    orjson: Cost
    sqlite: Cost
    aes_gcm: Cost  # context only, not in the total
    event_bytes: int

    @property
    def total(self) -> Cost:
        parts = (self.hmac, self.orjson, self.sqlite)
        return Cost(sum(p.cpu_us for p in parts), sum(p.wall_us for p in parts))


def _measure(run: Callable[[int], None], count: int, repeats: int = 5) -> Cost:
    """Best of ``repeats`` runs of ``run(count)``, per item (the least-disturbed run)."""
    best_cpu = best_wall = float("inf")
    for _ in range(repeats):
        cpu, wall = time.process_time(), time.perf_counter()
        run(count)
        best_cpu = min(best_cpu, time.process_time() - cpu)
        best_wall = min(best_wall, time.perf_counter() - wall)
    return Cost(best_cpu / count * 1e6, best_wall / count * 1e6)


def sample_event() -> dict:
    person = PEOPLE[0]
    reading = BoundReading(
        reading_id="r-" + "0" * 32,
        subject_id=person.subject_id,
        subject_ref="s-" + "0" * 20,
        company_id=person.company_id,
        birth_date=datetime.fromisoformat(person.birth_date).date(),
        device_address=person.address,
        device_ref="device-1",
        profile="blood_pressure",
        measurement=measurement(1),
        received_at=datetime.now(UTC),
    )
    return reading_event(reading)


def run_floor(workdir: Path, *, quick: bool) -> FloorResult:
    key = os.urandom(32)
    identifier = PEOPLE[0].subject_id.encode()
    event = sample_event()
    body = orjson.dumps(event)
    count = 20_000 if quick else 200_000

    def hmacs(n: int) -> None:
        for _ in range(n):
            hmac.digest(key, identifier, hashlib.sha256)

    def encodes(n: int) -> None:
        for _ in range(n):
            orjson.dumps(event)

    sealer = Sealer(key)

    def seals(n: int) -> None:
        for _ in range(n):
            sealer.seal(body, b"reading\x1fr-0")

    hmac_cost = _measure(hmacs, count)
    orjson_cost = _measure(encodes, count)
    aes_cost = _measure(seals, count)
    sqlite_cost = _sqlite_share(workdir / "floor.db", batches=20 if quick else 200, body=body)
    return FloorResult(hmac_cost, orjson_cost, sqlite_cost, aes_cost, len(body))


def _sqlite_share(path: Path, *, batches: int, body: bytes) -> Cost:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=FULL")
        connection.execute(TABLE)
        received = datetime.now(UTC).isoformat()
        sequence = iter(range(10**9))

        def commit_batches(n: int) -> None:
            for _ in range(n // BATCH):
                rows = [
                    (f"r-{next(sequence):032x}", "s-0", "blood_pressure", None, received, body)
                    for _ in range(BATCH)
                ]
                connection.execute("BEGIN IMMEDIATE")
                connection.executemany(
                    "INSERT INTO readings (reading_id, subject_ref, kind, measured_at,"
                    " received_at, payload) VALUES (?, ?, ?, ?, ?, ?)",
                    rows,
                )
                connection.execute("COMMIT")

        return _measure(commit_batches, batches * BATCH, repeats=3)
    finally:
        connection.close()
