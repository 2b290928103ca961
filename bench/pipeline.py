"""Pipeline throughput: characteristic bytes in, FHIR transaction Bundles out, over loopback.

The gateway runs in this process (``Gateway.run``, every part real except the radio, which an
injector replaces): each reading starts as the bytes of a Blood Pressure Measurement value and
goes ``devices.gatt.decode`` -> ``Received`` -> ``Pipeline.submit`` -> binding -> each
destination's chain (consent, restriction, minimisation; pseudonymisation for analytics when
that destination exists) -> sealed into the outbox (one transaction per pipeline batch) ->
delivery worker -> FHIR Bundle POSTed to the receiver process -> removed from the outbox and
audited. The clock stops when the care platform's worker has delivered every reading.

CPU is this process's CPU time (``time.process_time``: the event loop and the SQLite thread);
the receiver runs in its own process and its CPU is reported separately.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.harness import (
    Injector,
    ReceiverProcess,
    cpu_seconds,
    gateway_in_process,
    settings_from,
    supports_destination_kind,
    wait_until,
    worker,
)
from bench.workload import gateway_config, payloads, targets, webhook_secret_file

CHUNK = 64  # readings injected between two yields to the event loop
MAX_PENDING = 2048  # the injector waits while more than this many are queued in memory
ANALYTICS = {
    "fields": ["kind", "values", "measured_day", "age_band", "subject"],
    "linger_s": 0.05,
}


@dataclass(frozen=True, slots=True)
class ThroughputResult:
    readings: int
    batch_max_items: int
    seconds: float
    cpu_s: float
    receiver_cpu_s: float
    fhir_requests: int
    analytics: bool

    @property
    def readings_per_s(self) -> float:
        return self.readings / self.seconds

    @property
    def cpu_us_per_reading(self) -> float:
        return self.cpu_s / self.readings * 1e6

    @property
    def receiver_cpu_us_per_reading(self) -> float:
        return self.receiver_cpu_s / self.readings * 1e6


def config_for(
    workdir: Path, receiver: ReceiverProcess, secret_file: Path, **overrides: Any
) -> tuple[dict[str, Any], bool]:
    """The benchmark config; with an analytics destination if this gateway has that kind."""
    data_dir = workdir / "data"
    with_analytics = {**ANALYTICS, "pseudonym_key_file": str(workdir / "analytics.key")}
    config = gateway_config(
        data_dir, receiver.url, secret_file, analytics=with_analytics, **overrides
    )
    if supports_destination_kind("analytics", config):
        return config, True
    return gateway_config(data_dir, receiver.url, secret_file, **overrides), False


async def inject(injector: Injector, gateway_pending: Any, items: list[tuple[int, bytes]]) -> None:
    """Notify every reading, yielding to the loop every ``CHUNK`` and bounding the queue."""
    notify = injector.notify
    for start in range(0, len(items), CHUNK):
        for device, data in items[start : start + CHUNK]:
            notify(device, data)
        await asyncio.sleep(0)
        if gateway_pending() > MAX_PENDING:
            await wait_until(lambda: gateway_pending() <= MAX_PENDING, 60, step=0.001)


async def measure_throughput(
    workdir: Path, readings: int, *, batch_max_items: int = 100, warmup: int = 600
) -> ThroughputResult:
    """One run on a fresh data directory: warm up, then time ``readings`` end to end."""
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    secret_file = webhook_secret_file(workdir)
    receiver = await ReceiverProcess(secret_file).start()
    try:
        config, with_analytics = config_for(
            workdir, receiver, secret_file, batch_max_items=batch_max_items
        )
        async with gateway_in_process(settings_from(config)) as gateway:
            assert gateway.pipeline is not None
            pending = lambda: gateway.pipeline.pending  # noqa: E731
            injector = Injector(gateway, targets())
            names = ["care-platform"] + (["product-analytics"] if with_analytics else [])
            workers = [worker(gateway, name) for name in names]

            def delivered() -> int:
                return min(w.stats.delivered for w in workers)

            # Warm-up: connections opened, caches and lazy imports filled, SQLite pages cached.
            await inject(injector, pending, payloads(warmup, epoch=1))
            await wait_until(lambda: delivered() >= warmup, 60)
            items = payloads(readings, epoch=2)
            receiver.reset()
            delivered_before = delivered()
            receiver_cpu = cpu_seconds(receiver.pid)
            cpu, wall = time.process_time(), time.perf_counter()
            await inject(injector, pending, items)
            await wait_until(
                lambda: delivered() - delivered_before >= readings,
                within_s=max(120.0, readings / 200),
            )
            seconds = time.perf_counter() - wall
            cpu_s = time.process_time() - cpu
            receiver_cpu_s = cpu_seconds(receiver.pid) - receiver_cpu
            requests = receiver.counts.fhir_requests
        return ThroughputResult(
            readings=readings,
            batch_max_items=batch_max_items,
            seconds=seconds,
            cpu_s=cpu_s,
            receiver_cpu_s=receiver_cpu_s,
            fhir_requests=requests,
            analytics=with_analytics,
        )
    finally:
        await receiver.stop()
