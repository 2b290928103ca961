"""``python -m bench [--quick] [--only NAMES] [--profile]``: run the benchmarks, write the report.

Writes ``bench/results/latest.md`` (Markdown, with the machine's description),
``bench/results/latest.json`` and ``bench/results/throughput-vs-batch.png``. The full run takes
about ten minutes on a 2-core machine (most of it the million-reading drain); ``--quick`` uses
small sizes and takes under a minute.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import orjson

from bench import machine, report
from bench.alerts import measure_alert_latency
from bench.drain import measure_drain
from bench.floor import run_floor
from bench.footprint import measure_idle
from bench.harness import REPO, sampled
from bench.pipeline import measure_throughput
from bench.profile import summarise
from gateway.logging import configure_logging

RESULTS = Path(__file__).resolve().parent / "results"
STAGES = ("floor", "pipeline", "sweep", "alerts", "idle", "drain")


@dataclasses.dataclass(frozen=True, slots=True)
class Sizes:
    floor_quick: bool
    pipeline: int
    sweep: tuple[int, ...]
    sweep_readings: int
    alerts: int
    alerts_per_s: float
    alert_repeats: int
    idle_window_s: float
    drain: int


FULL = Sizes(False, 30_000, (1, 10, 25, 250, 1000), 4_000, 1_000, 50.0, 3, 30.0, 1_000_000)
QUICK = Sizes(True, 3_000, (1, 10, 1000), 600, 200, 100.0, 1, 4.0, 20_000)


def say(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


async def run(stages: set[str], sizes: Sizes, workdir: Path, profile: bool) -> report.Results:
    began = time.perf_counter()
    results = report.Results(
        machine=machine.describe(workdir, REPO), mode="quick" if sizes.floor_quick else "full"
    )
    if "floor" in stages:
        say("floor: HMAC, orjson, batched SQLite commit")
        results.floor = run_floor(workdir, quick=sizes.floor_quick)
    if "pipeline" in stages:
        say(f"pipeline: {sizes.pipeline:,} readings, FHIR batch 100")
        spy = RESULTS / "profile-pipeline.raw" if profile else None
        async with sampled(os.getpid(), spy):
            results.pipeline = await measure_throughput(workdir / "pipeline", sizes.pipeline)
        say(f"  {results.pipeline.readings_per_s:,.0f} readings/s")
    if "sweep" in stages:
        for batch in sizes.sweep:
            say(f"sweep: FHIR batch {batch}, {sizes.sweep_readings:,} readings")
            results.sweep.append(
                await measure_throughput(
                    workdir / f"sweep-{batch}", sizes.sweep_readings, batch_max_items=batch
                )
            )
    if "alerts" in stages:
        capacity = results.pipeline.readings_per_s if results.pipeline else 1000.0
        for share in (0.25, 0.5):
            load = max(100.0, round(capacity * share, -2))
            say(
                f"alerts: {sizes.alert_repeats} x {sizes.alerts:,} alerts under"
                f" {load:,.0f} readings/s of load"
            )
            results.alerts.append(
                await measure_alert_latency(
                    workdir / "alerts",
                    alerts=sizes.alerts,
                    alerts_per_s=sizes.alerts_per_s,
                    load_per_s=load,
                    repeats=sizes.alert_repeats,
                )
            )
        results.notes.append(
            "Alert load: a quarter and a half of the pipeline throughput measured in this run "
            f"({capacity:,.0f} readings/s at batch 100); each alert also makes a resolved "
            "alert when that person's next ordinary reading is back in range."
        )
    if "idle" in stages:
        say(f"idle: six simulated devices, {sizes.idle_window_s:g} s window")
        results.idle = await measure_idle(workdir / "idle", window_s=sizes.idle_window_s)
    if "drain" in stages:
        say(f"drain: filling the outbox with {sizes.drain:,} readings, then draining")
        spy = RESULTS / "profile-drain.raw" if profile else None
        results.drain = await measure_drain(workdir / "drain", sizes.drain, profile_to=spy)
        say(f"  {results.drain.readings_per_s:,.0f} readings/s")
    results.seconds = time.perf_counter() - began
    return results


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, under a minute")
    parser.add_argument(
        "--only", default=",".join(STAGES), help=f"comma-separated subset of {','.join(STAGES)}"
    )
    parser.add_argument(
        "--profile", action="store_true", help="sample the pipeline and the drain with py-spy"
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the data directories in bench/results/work"
    )
    args = parser.parse_args()
    stages = {name.strip() for name in args.only.split(",") if name.strip()}
    unknown = stages - set(STAGES)
    if unknown:
        parser.error(f"unknown stage(s) {sorted(unknown)}; use {','.join(STAGES)}")
    sizes = QUICK if args.quick else FULL
    RESULTS.mkdir(exist_ok=True)
    workdir = RESULTS / "work"
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    configure_logging(format="json", level="warning")
    try:
        results = asyncio.run(run(stages, sizes, workdir, args.profile))
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    runs = ([results.pipeline] if results.pipeline else []) + results.sweep
    if len(runs) > 1 and report.chart(runs, RESULTS / "throughput-vs-batch.png"):
        results.notes.append("Chart: bench/results/throughput-vs-batch.png")
    if args.profile:
        for name in ("pipeline", "drain"):
            raw = RESULTS / f"profile-{name}.raw"
            if raw.exists():
                (RESULTS / f"profile-{name}.txt").write_text(summarise(raw))
                results.notes.append(f"Profile: bench/results/profile-{name}.txt")
    markdown = report.render(results)
    (RESULTS / "latest.md").write_text(markdown)
    (RESULTS / "latest.json").write_bytes(orjson.dumps(_plain(results), option=orjson.OPT_INDENT_2))
    print(markdown)
    say(f"wrote {RESULTS / 'latest.md'} in {results.seconds:.0f} s")
    return 0


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


if __name__ == "__main__":
    sys.exit(main())
