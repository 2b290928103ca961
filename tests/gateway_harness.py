"""The real Gateway, in-process, with readings injected at the BLE callback boundary.

Destinations point at a closed loopback port with a long retry delay, so everything the
pipeline decides stays in the outbox where the test can read it back (decrypted).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from devices.source import DeviceTarget, Received
from gateway.activity import Activity, ActivityEntry
from gateway.app import Gateway, device_targets
from gateway.models import Measurement
from gateway.settings import Settings, parse_settings
from tests.configs import free_port, webhook_secret


class ActivityWatcher:
    """Counts activity entries by kind and wakes waiters on each one (no polling)."""

    def __init__(self, activity: Activity) -> None:
        self.counts: dict[str, int] = {}
        self._changed = asyncio.Event()
        activity.subscribe(self._on_entry)

    def _on_entry(self, entry: ActivityEntry) -> None:
        self.counts[entry.kind] = self.counts.get(entry.kind, 0) + entry.fields.get("items", 1)
        self._changed.set()

    async def until(self, kind: str, count: int) -> None:
        while self.counts.get(kind, 0) < count:
            self._changed.clear()
            await self._changed.wait()


def closed_port_url(path: str) -> str:
    """A loopback URL nobody listens on (the port was bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}{path}"


def alerting_settings(
    data_dir: Path, person: str, cuff: str, rule: dict[str, Any], consent: dict[str, bool]
) -> Settings:
    """One person with one simulated cuff, an alert rule, and a nurse webhook nobody answers
    (so the alerts stay queued where a test can read them)."""
    secret = data_dir.parent / f"{data_dir.name}.webhook-secret"
    secret.write_text(webhook_secret())
    return parse_settings(
        {
            "gateway": {
                "data_dir": str(data_dir),
                "log_level": "error",
                "api": {"listen": f"127.0.0.1:{free_port()}"},
            },
            "subjects": [{"id": person, "birth_date": "1970-01-01", "consent": consent}],
            "devices": [
                {
                    "address": cuff,
                    "profile": "blood_pressure",
                    "subject": person,
                    "simulated": True,
                    "simulation": {"readings": []},
                }
            ],
            "destinations": [
                {
                    "name": "nurse",
                    "kind": "webhook",
                    "purpose": "alerting",
                    "url": closed_port_url("/h"),
                    "secret_file": str(secret),
                }
            ],
            "alert_rules": [rule],
        }
    )


@contextlib.asynccontextmanager
async def running_gateway(settings: Settings) -> AsyncIterator[Gateway]:
    gateway = Gateway(settings)
    stop = asyncio.Event()
    task = asyncio.create_task(gateway.run(stop))
    ready = asyncio.create_task(gateway.ready.wait())
    await asyncio.wait([task, ready], return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        ready.cancel()
        await task  # raises what made the gateway fail at start
    try:
        yield gateway
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


def target_for(settings: Settings, address: str) -> DeviceTarget:
    return next(t for t in device_targets(settings) if t.address == address)


async def inject(gateway: Gateway, address: str, measurements: list[Measurement]) -> None:
    """Hand readings to the pipeline as the BLE callback would, and wait until ingested."""
    assert gateway.pipeline is not None
    target = target_for(gateway.settings, address)
    now = datetime.now(UTC)
    batch = [Received(target, "00002a35-0000-1000-8000-00805f9b34fb", m, now) for m in measurements]
    await gateway.pipeline.ingest(batch)


async def queued(gateway: Gateway, destination: str) -> list[Any]:
    """Everything queued for a destination (QueuedItems with their payloads), oldest first."""
    worker = next(w for w in gateway.workers if w.sink.name == destination)
    return await worker.queued()


async def table_count(gateway: Gateway, sql: str, *args: object) -> int:
    return (await gateway.database.call(lambda c: c.execute(sql, args).fetchone()))[0]
