"""``python -m bench [--quick] [--json] [--only NAMES] [--profile]``: run the benchmarks.

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

from bench import machine, report, workload
from bench.alerts import measure_alert_latency
from bench.drain import measure_drain
from bench.floor import run_floor
from bench.footprint import measure_idle
from bench.harness import REPO, sampled
from bench.lean import measure_lean
from bench.pipeline import measure_throughput
from bench.profile import summarise
from gateway.logging import configure_logging

RESULTS = Path(__file__).resolve().parent / "results"
STAGES = ("lean", "floor", "pipeline", "sweep", "alerts", "idle", "drain")
# Ordinary readings per second beside the alerts: the two loads (its target is at 500).
ALERT_LOADS = (300.0, 500.0)


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
    if "lean" in stages:
        say(f"lean floor: {sizes.pipeline:,} readings decoded, sealed, stored, sent, deleted")
        results.lean = await measure_lean(workdir / "lean", sizes.pipeline)
        say(f"  {results.lean.cpu_us_per_reading:.1f} µs CPU per reading")
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
        for load in ALERT_LOADS:
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
            "Alert load: ordinary readings at "
            + " and ".join(f"{load:,.0f}" for load in ALERT_LOADS)
            + " readings/s; each alert also makes a resolved alert when that person's next"
            " ordinary reading is back in range."
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
        "--json",
        action="store_true",
        help="print one JSON object with the headline figures instead of the Markdown report",
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the data directories in bench/results/work"
    )
    parser.add_argument(
        "--window-rules",
        action="store_true",
        help="the gateways also judge the example window alert rules (config/example.toml)",
    )
    args = parser.parse_args()
    workload.WITH_WINDOW_RULES = args.window_rules
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
    if args.json:
        print(orjson.dumps(headline(results)).decode())
    else:
        print(markdown)
    say(f"wrote {RESULTS / 'latest.md'} in {results.seconds:.0f} s")
    return 0


def headline(results: report.Results) -> dict[str, Any]:
    """The figures the targets are about, as one flat object (None for a stage not run)."""
    lean, pipeline, drain, idle = results.lean, results.pipeline, results.drain, results.idle
    at_target = [a for a in results.alerts if a.load_per_s == report.TARGET_ALERT_LOAD_PER_S]
    alert = at_target[0] if at_target else (results.alerts[-1] if results.alerts else None)
    return {
        "mode": results.mode,
        "lean_floor_us": round(lean.cpu_us_per_reading, 1) if lean else None,
        "pipeline_cpu_us": round(pipeline.cpu_us_per_reading, 1) if pipeline else None,
        "pipeline_to_lean_ratio": (
            round(pipeline.cpu_us_per_reading / lean.cpu_us_per_reading, 2)
            if pipeline and lean
            else None
        ),
        "pipeline_readings_per_s": round(pipeline.readings_per_s) if pipeline else None,
        "drain_readings": drain.readings if drain else None,
        "drain_readings_per_s": round(drain.readings_per_s) if drain else None,
        "alert_load_per_s": alert.load_per_s if alert else None,
        "alert_p99_ms": round(alert.p99_ms, 1) if alert else None,
        "idle_rss_mb": round(idle.rss_kib * 1024 / 1e6, 1) if idle else None,
        "seconds": round(results.seconds, 1),
    }


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


if __name__ == "__main__":
    sys.exit(main())
