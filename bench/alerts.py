"""Alert latency: from the characteristic value arriving in the gateway to the signed webhook
request received by the alert endpoint, with the rest of the pipeline under load.

The gateway runs in this process with the injector in place of the radio. A steady stream of
ordinary readings (the load) is injected at a fixed rate; interleaved with it, alert readings
(systolic above the rule's 180 mm[Hg] limit; the rule's cooldown is 0 so every one raises an
alert) are injected at their own rate. For each alert reading the clock starts just before
``devices.gatt.decode`` sees its bytes (where ``BleSource._on_value`` starts) and stops when the
receiver process has read the whole signed webhook request (before it verifies the signature).
Both timestamps are ``CLOCK_MONOTONIC``, one clock for every process on the machine. Every alert
reading is also a reading that goes to the care platform (and analytics), like any other.
"""

from __future__ import annotations

import asyncio
import shutil
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

from bench.harness import (
    Injector,
    ReceiverProcess,
    gateway_in_process,
    settings_from,
    wait_until,
    worker,
)
from bench.pipeline import config_for
from bench.workload import PEOPLE, measurement, reading_bytes, targets, webhook_secret_file

TICK_S = 0.005


@dataclass(frozen=True, slots=True)
class LatencyResult:
    alerts: int
    load_per_s: float  # ordinary readings injected per second alongside the alerts
    alerts_per_s: float
    achieved_load_per_s: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    mean_ms: float
    runs: int = 1
    run_p99_ms: tuple[float, ...] = ()  # each run's own p99, to show the spread


def pooled(runs: list[LatencyResult], latencies: list[list[float]]) -> LatencyResult:
    """Several runs at one load as one result: percentiles over all their alerts together."""
    ordered = sorted(x for run in latencies for x in run)
    return LatencyResult(
        alerts=len(ordered),
        load_per_s=runs[0].load_per_s,
        alerts_per_s=runs[0].alerts_per_s,
        achieved_load_per_s=statistics.fmean(r.achieved_load_per_s for r in runs),
        p50_ms=_percentile(ordered, 0.50),
        p90_ms=_percentile(ordered, 0.90),
        p99_ms=_percentile(ordered, 0.99),
        max_ms=ordered[-1],
        mean_ms=statistics.fmean(ordered),
        runs=len(runs),
        run_p99_ms=tuple(r.p99_ms for r in runs),
    )


def _percentile(ordered: list[float], fraction: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    rank = max(1, round(fraction * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


async def measure_alert_latency(
    workdir: Path, *, alerts: int, alerts_per_s: float, load_per_s: float, repeats: int = 1
) -> LatencyResult:
    """``repeats`` runs, each on a fresh gateway; one short window's p99 on a shared machine
    moves by a factor of two between identical runs, so the runs are pooled."""
    runs: list[LatencyResult] = []
    latencies: list[list[float]] = []
    for _ in range(repeats):
        run, measured = await _one_run(
            workdir, alerts=alerts, alerts_per_s=alerts_per_s, load_per_s=load_per_s
        )
        runs.append(run)
        latencies.append(measured)
    return runs[0] if repeats == 1 else pooled(runs, latencies)


async def _one_run(
    workdir: Path, *, alerts: int, alerts_per_s: float, load_per_s: float
) -> tuple[LatencyResult, list[float]]:
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    secret_file = webhook_secret_file(workdir)
    receiver = await ReceiverProcess(secret_file).start()
    try:
        config, _ = config_for(workdir, receiver, secret_file, alert_cooldown_s=0.0)
        devices = len(PEOPLE)
        alert_bytes = [(i % devices, reading_bytes(i, alert=True, epoch=3)) for i in range(alerts)]
        alert_keys = [
            measurement(i, alert=True, epoch=3).measured_at.isoformat() for i in range(alerts)
        ]
        duration = alerts / alerts_per_s
        load_count = int(duration * load_per_s) + 1
        load_bytes = [(i % devices, reading_bytes(i, epoch=4)) for i in range(load_count)]
        started: dict[str, int] = {}
        async with gateway_in_process(settings_from(config)) as gateway:
            injector = Injector(gateway, targets())
            hooks = worker(gateway, "nurse-alerts")
            # Warm-up: one alert, so the webhook's connection is open as in steady state.
            injector.notify(0, reading_bytes(0, alert=True, epoch=5))
            await wait_until(lambda: hooks.stats.delivered >= 1, 30)
            receiver.reset()
            notify = injector.notify
            sent_alerts = sent_load = 0
            begin = time.monotonic()
            while sent_alerts < alerts:
                elapsed = time.monotonic() - begin
                due_load = min(load_count, int(elapsed * load_per_s))
                while sent_load < due_load:
                    notify(*load_bytes[sent_load])
                    sent_load += 1
                due_alerts = min(alerts, int(elapsed * alerts_per_s) + 1)
                while sent_alerts < due_alerts:
                    started[alert_keys[sent_alerts]] = time.monotonic_ns()
                    notify(*alert_bytes[sent_alerts])
                    sent_alerts += 1
                await asyncio.sleep(TICK_S)
            achieved_load = sent_load / (time.monotonic() - begin)
            await receiver.wait_for(lambda c: c.raised >= alerts, within_s=120)
        latencies = sorted(
            (hook.received_ns - started[hook.measured_at]) / 1e6
            for hook in receiver.counts.hooks
            if hook.measured_at in started and hook.type == "alert.raised"
        )
        if len(latencies) < alerts:
            raise RuntimeError(f"only {len(latencies)} of {alerts} alerts were matched")
        result = LatencyResult(
            alerts=len(latencies),
            load_per_s=load_per_s,
            alerts_per_s=alerts_per_s,
            achieved_load_per_s=achieved_load,
            p50_ms=_percentile(latencies, 0.50),
            p90_ms=_percentile(latencies, 0.90),
            p99_ms=_percentile(latencies, 0.99),
            max_ms=latencies[-1],
            mean_ms=statistics.fmean(latencies),
        )
        return result, latencies
    finally:
        await receiver.stop()
