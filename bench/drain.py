"""Backlog drain: a million readings queued while the care platform was down, then it is up.

The database is filled as intake fills it (store once): each reading once in ``readings``,
sealed, with its own reading id, and a queue row naming it through the real ``Outbox.enqueue``,
in big transactions. The readings' values come round-robin from 1,000 distinct events made as
intake makes them (what the drain costs does not depend on which values a reading holds). The
gateway builds each FHIR payload from the stored reading when it sends it. Then
``health-gateway run`` starts as a process, with the care platform (the receiver process)
reachable, and the clock runs until the receiver has every reading. The gateway's RSS is read
from /proc right after the drain (and its peak, VmHWM), then it is stopped with SIGTERM and the
outbox is checked to be empty.
"""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from bench.harness import GatewayProcess, ReceiverProcess, cpu_seconds, memory_kib, sampled
from bench.workload import (
    PEOPLE,
    gateway_config,
    measurement,
    webhook_secret_file,
)
from gateway.app import Paths
from gateway.exporters.fhir.factory import FHIR_FIELDS
from gateway.intake.events import BoundReading, reading_event
from gateway.privacy.keys import load_or_create_key
from gateway.privacy.references import References
from gateway.storage import readings as reading_rows
from gateway.storage.crypto import Sealer
from gateway.storage.database import Database, Transaction, reading_aad
from gateway.storage.outbox import PRIORITY_CARE, NewItem, Outbox
from tests.configs import write_config

FILL_TRANSACTION = 20_000
DISTINCT_PAYLOADS = 1_000  # > any delivery batch (FHIR batch_max_items is at most 1,000)


@dataclass(frozen=True, slots=True)
class DrainResult:
    readings: int
    fill_s: float
    drain_s: float  # gateway start -> last reading received
    delivery_s: float  # first request -> last request received
    gateway_cpu_s: float
    rss_after_kib: int
    peak_rss_kib: int
    left_in_outbox: int
    requests: int

    @property
    def readings_per_s(self) -> float:
        return self.readings / self.drain_s


def _events(references: References, count: int) -> list[tuple[str, dict[str, Any]]]:
    """(subject_ref, reading event) for ``count`` distinct readings, as intake stores them."""
    received = datetime(2026, 1, 1, tzinfo=UTC)
    made = []
    for index in range(count):
        person = PEOPLE[index % len(PEOPLE)]
        taken = measurement(index, epoch=6)
        reading = BoundReading(
            reading_id=references.reading_id(person.address, taken.kind, taken, received),
            subject_id=person.subject_id,
            subject_ref=references.subject_ref(person.subject_id),
            company_id=person.company_id,
            birth_date=datetime.fromisoformat(person.birth_date).date(),
            device_address=person.address,
            device_ref=f"device-{index % len(PEOPLE) + 1}",
            profile="blood_pressure",
            measurement=taken,
            received_at=received + timedelta(seconds=index),
        )
        made.append((reading.subject_ref, reading_event(reading)))
    return made


def _rows(
    sealer: Sealer, events: list[tuple[str, dict[str, Any]]], start: int, count: int
) -> tuple[list[reading_rows.Row], list[NewItem]]:
    """Readings ``start .. start + count`` as intake stores them (each its own reading id, one
    sealed row) and the queue row naming each; the events' values are taken round-robin from
    ``events``, whose length is more than a delivery batch."""
    fields = tuple(sorted(FHIR_FIELDS))
    stored: list[reading_rows.Row] = []
    items = []
    for index in range(start, start + count):
        subject_ref, template = events[index % len(events)]
        reading_id = f"r-{index:032x}"
        event = {**template, "reading_id": reading_id}
        sealed = sealer.seal(orjson.dumps(event), reading_aad(reading_id))
        stored.append(
            (
                reading_id,
                subject_ref,
                "blood_pressure",
                event["measured_at"],
                event["received_at"],
                sealed,
            )
        )
        items.append(
            NewItem(
                destination="care-platform",
                purpose="care",
                category="reading",
                priority=PRIORITY_CARE,
                subject_ref=subject_ref,
                reading_id=reading_id,
                idempotency_key=reading_id,
                legal_basis="consent",
                fields=fields,
                payload={},  # built from the stored reading when it is sent
                from_reading=True,
            )
        )
    return stored, items


async def fill_outbox(data_dir: Path, readings: int) -> float:
    """Queue ``readings`` FHIR items as the pipeline would have; returns the seconds it took."""
    paths = Paths(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    sealer = Sealer(load_or_create_key(paths.storage_key))
    outbox = Outbox(sealer)
    references = References(load_or_create_key(paths.reference_key))
    database = Database(paths.database)
    await database.open()
    began = time.perf_counter()
    events = _events(references, DISTINCT_PAYLOADS)
    try:
        for start in range(0, readings, FILL_TRANSACTION):
            stored, items = _rows(sealer, events, start, min(FILL_TRANSACTION, readings - start))

            def write(
                connection: sqlite3.Connection,
                stored: list[reading_rows.Row] = stored,
                items: list[NewItem] = items,
                now: float = time.time(),
            ) -> None:
                with Transaction(connection):
                    reading_rows.insert(connection, stored)
                    outbox.enqueue(connection, items, now)

            await database.call(write)
    finally:
        await database.close()
    return time.perf_counter() - began


def queued(database: Path) -> int:
    connection = sqlite3.connect(database)
    try:
        return connection.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]
    finally:
        connection.close()


async def measure_drain(
    workdir: Path, readings: int, *, profile_to: Path | None = None
) -> DrainResult:
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    data_dir = workdir / "data"
    fill_s = await fill_outbox(data_dir, readings)
    secret_file = webhook_secret_file(workdir)
    receiver = await ReceiverProcess(secret_file).start()
    try:
        config = gateway_config(data_dir, receiver.url, secret_file, log_level="info")
        gateway = GatewayProcess(write_config(workdir / "gateway.toml", config))
        began_ns = time.monotonic_ns()
        await gateway.start()
        try:
            async with sampled(gateway.pid, profile_to):
                await receiver.wait_for(
                    lambda c: c.fhir_readings >= readings, within_s=max(600.0, readings / 500)
                )
            ended_ns = receiver.counts.last_ns or time.monotonic_ns()
            first_ns = receiver.counts.first_ns or began_ns
            await asyncio.sleep(1.0)  # the last batch's transaction, then idle
            memory = memory_kib(gateway.pid)
            cpu = cpu_seconds(gateway.pid)
        finally:
            code = await gateway.stop()
        if code != 0:
            tail = "\n".join(gateway.lines[-20:])
            raise RuntimeError(f"gateway exited with {code}:\n{tail}")
        return DrainResult(
            readings=readings,
            fill_s=fill_s,
            drain_s=(ended_ns - began_ns) / 1e9,
            delivery_s=(ended_ns - first_ns) / 1e9,
            gateway_cpu_s=cpu,
            rss_after_kib=memory["VmRSS"],
            peak_rss_kib=memory["VmHWM"],
            left_in_outbox=queued(Paths(data_dir).database),
            requests=receiver.counts.fhir_requests,
        )
    finally:
        await receiver.stop()
