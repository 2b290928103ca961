"""The Markdown report (``bench/results/latest.md``) and the throughput-vs-batch-size chart."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench.alerts import LatencyResult
from bench.drain import DrainResult
from bench.floor import FloorResult
from bench.footprint import IdleResult
from bench.lean import LeanResult
from bench.pipeline import ThroughputResult

# The targets of issue "Store once, send many". The reference is the lean durable floor
# measured in the same run (bench/lean.py); the older three-operation floor is shown beside it.
TARGET_RATIO = 2.0
TARGET_READINGS_PER_S = 5_000
TARGET_P99_MS = 20.0
TARGET_ALERT_LOAD_PER_S = 500.0  # the load at which the alert p99 target applies
TARGET_IDLE_RSS_MB = 55.0
TARGET_DRAIN_PER_S = 25_000


@dataclass
class Results:
    machine: dict[str, str]
    mode: str
    seconds: float = 0.0
    lean: LeanResult | None = None
    floor: FloorResult | None = None
    pipeline: ThroughputResult | None = None
    sweep: list[ThroughputResult] = field(default_factory=list)
    alerts: list[LatencyResult] = field(default_factory=list)
    idle: IdleResult | None = None
    drain: DrainResult | None = None
    notes: list[str] = field(default_factory=list)


def _mb(kib: int) -> float:
    return kib * 1024 / 1e6  # MB, as the target is written (10^6 bytes)


def _verdict(ok: bool) -> str:
    return "met" if ok else "**missed**"


def targets_table(results: Results) -> list[str]:
    rows = ["| what | measured | target | |", "|---|---|---|---|"]
    floor, pipeline, lean = results.floor, results.pipeline, results.lean
    if lean is not None:
        rows.append(
            f"| lean durable floor (bench/lean.py: decode, HMAC, FHIR, seal, store, send,"
            f" delete) | {lean.cpu_us_per_reading:.1f} µs CPU per reading,"
            f" {lean.readings_per_s:,.0f} readings/s | | |"
        )
    if floor is not None:
        rows.append(
            f"| old floor per reading (HMAC + orjson + share of a 256-row commit) | "
            f"{floor.total.cpu_us:.1f} µs CPU, {floor.total.wall_us:.1f} µs wall | | |"
        )
    if pipeline is not None:
        if lean is not None:
            ratio = pipeline.cpu_us_per_reading / lean.cpu_us_per_reading
            rows.append(
                f"| pipeline CPU per reading, ratio to the lean floor | "
                f"{pipeline.cpu_us_per_reading:.0f} µs = {ratio:.1f}x | "
                f"≤ {TARGET_RATIO:.0f}x | {_verdict(ratio <= TARGET_RATIO)} |"
            )
        rows.append(
            f"| pipeline throughput (decode -> delivered, batch {pipeline.batch_max_items}) | "
            f"{pipeline.readings_per_s:,.0f} readings/s | ≥ {TARGET_READINGS_PER_S:,} | "
            f"{_verdict(pipeline.readings_per_s >= TARGET_READINGS_PER_S)} |"
        )
    for a in results.alerts:
        rows.append(
            f"| alert latency, notification -> signed webhook received "
            f"({a.alerts:,} alerts in {a.runs} run(s), load {a.achieved_load_per_s:,.0f}"
            " readings/s) | "
            f"p50 {a.p50_ms:.1f} ms, p99 {a.p99_ms:.1f} ms, max {a.max_ms:.1f} ms | "
            f"p99 ≤ {TARGET_P99_MS:.0f} ms | {_verdict(a.p99_ms <= TARGET_P99_MS)} |"
        )
    if results.idle is not None:
        i = results.idle
        rows.append(
            f"| idle RSS, `health-gateway run` with {i.devices} simulated devices connected | "
            f"{_mb(i.rss_kib):.1f} MB (CPU {i.cpu_percent:.2f}% of one core) | "
            f"≤ {TARGET_IDLE_RSS_MB:.0f} MB | {_verdict(_mb(i.rss_kib) <= TARGET_IDLE_RSS_MB)} |"
        )
    if results.drain is not None:
        d = results.drain
        rows.append(
            f"| backlog drain, {d.readings:,} queued readings | {d.readings_per_s:,.0f} "
            f"readings/s ({d.drain_s:.0f} s) | ≥ {TARGET_DRAIN_PER_S:,}/s | "
            f"{_verdict(d.readings_per_s >= TARGET_DRAIN_PER_S)} |"
        )
        rows.append(
            f"| RSS after draining {d.readings:,} readings | {_mb(d.rss_after_kib):.1f} MB "
            f"(peak {_mb(d.peak_rss_kib):.1f} MB) | | |"
        )
    return rows


def render(results: Results) -> str:
    lines = [
        "# Benchmark results",
        "",
        f"`python -m bench{' --quick' if results.mode == 'quick' else ''}`, "
        f"{results.seconds:.0f} s in all. See bench/README.md for what each number means.",
        "",
        "## Machine",
        "",
        "| | |",
        "|---|---|",
        *[f"| {key} | {value} |" for key, value in results.machine.items()],
        "",
        "## Against the targets",
        "",
        *targets_table(results),
        "",
    ]
    if results.floor is not None:
        f = results.floor
        lines += [
            "## Floor (per reading, best of several runs)",
            "",
            "| part | CPU µs | wall µs |",
            "|---|---|---|",
            f"| HMAC-SHA-256 of an identifier | {f.hmac.cpu_us:.2f} | {f.hmac.wall_us:.2f} |",
            f"| orjson encode of one event ({f.event_bytes} bytes) | {f.orjson.cpu_us:.2f} | "
            f"{f.orjson.wall_us:.2f} |",
            f"| 1/256 of a 256-row INSERT + COMMIT (WAL, synchronous=FULL) | "
            f"{f.sqlite.cpu_us:.2f} | {f.sqlite.wall_us:.2f} |",
            f"| **floor** | **{f.total.cpu_us:.2f}** | **{f.total.wall_us:.2f}** |",
            f"| (for context, not in the floor: AES-GCM seal of the event) | "
            f"{f.aes_gcm.cpu_us:.2f} | {f.aes_gcm.wall_us:.2f} |",
            "",
        ]
    runs = ([results.pipeline] if results.pipeline else []) + results.sweep
    if runs:
        lines += [
            "## Pipeline throughput",
            "",
            "Gateway process CPU (event loop + SQLite thread); the receiver is a separate process.",
            "",
            "| FHIR batch_max_items | readings | readings/s | gateway CPU µs/reading | "
            "receiver CPU µs/reading | FHIR requests | analytics destination |",
            "|---|---|---|---|---|---|---|",
        ]
        lines += [
            f"| {r.batch_max_items} | {r.readings:,} | {r.readings_per_s:,.0f} | "
            f"{r.cpu_us_per_reading:.0f} | {r.receiver_cpu_us_per_reading:.0f} | "
            f"{r.fhir_requests:,} | {'yes' if r.analytics else 'no'} |"
            for r in runs
        ]
        lines.append("")
    if results.alerts:
        lines += [
            "## Alert latency",
            "",
            "Alerts injected at a steady rate while ordinary readings flow to the care platform "
            "and analytics at the load shown.",
            "",
            "Several runs at one load are pooled: the percentiles are over all their alerts; "
            "each run's own p99 is shown beside them.",
            "",
            "| alerts | runs | alerts/s | load (readings/s) | p50 | p90 | p99 | max | mean |"
            " p99 of each run |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        lines += [
            f"| {a.alerts:,} | {a.runs} | {a.alerts_per_s:g} | {a.achieved_load_per_s:,.0f} | "
            f"{a.p50_ms:.1f} ms | {a.p90_ms:.1f} ms | {a.p99_ms:.1f} ms | {a.max_ms:.1f} ms | "
            f"{a.mean_ms:.1f} ms | {', '.join(f'{p:.0f}' for p in a.run_p99_ms) or '-'} |"
            for a in results.alerts
        ]
        lines.append("")
    if results.idle is not None:
        i = results.idle
        lines += [
            "## Footprint, idle",
            "",
            f"Profiles: {', '.join(i.profiles)}. Window {i.window_s:.0f} s; start-up to all "
            f"connected and delivered {i.startup_s:.1f} s. The systemd unit's environment: "
            f"{' '.join(f'{k}={v}' for k, v in i.environment.items()) or 'none'}.",
            "",
            "| RSS (median) | RSS (max) | peak RSS (VmHWM) | of it anon / file | threads | CPU "
            "| apart: simulator process RSS | apart: private dbus-daemon RSS |",
            "|---|---|---|---|---|---|---|---|",
            f"| {_mb(i.rss_kib):.1f} MB | {_mb(i.rss_max_kib):.1f} MB | "
            f"{_mb(i.peak_rss_kib):.1f} MB | {_mb(i.rss_anon_kib):.1f} / "
            f"{_mb(i.rss_file_kib):.1f} MB | {i.threads} | {i.cpu_percent:.2f}% | "
            f"{_mb(i.simulator_rss_kib):.1f} MB | {_mb(i.dbus_daemon_rss_kib):.1f} MB |",
            "",
        ]
    if results.drain is not None:
        d = results.drain
        lines += [
            "## Backlog drain",
            "",
            "| queued | fill (outside the clock) | drain (start -> last received) | "
            "first -> last request | readings/s | gateway CPU | requests | RSS after | "
            "peak RSS | left in outbox |",
            "|---|---|---|---|---|---|---|---|---|---|",
            f"| {d.readings:,} | {d.fill_s:.0f} s | {d.drain_s:.1f} s | {d.delivery_s:.1f} s | "
            f"{d.readings_per_s:,.0f} | {d.gateway_cpu_s:.0f} s | {d.requests:,} | "
            f"{_mb(d.rss_after_kib):.1f} MB | {_mb(d.peak_rss_kib):.1f} MB | {d.left_in_outbox} |",
            "",
        ]
    if results.notes:
        lines += ["## Notes", "", *[f"- {note}" for note in results.notes], ""]
    return "\n".join(lines)


def chart(runs: Sequence[ThroughputResult], path: Path) -> bool:
    """Throughput and CPU per reading against the FHIR batch size; False without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    ordered = sorted(runs, key=lambda r: r.batch_max_items)
    sizes = [r.batch_max_items for r in ordered]
    figure, throughput = plt.subplots(figsize=(6.4, 3.6), dpi=100)
    throughput.plot(sizes, [r.readings_per_s for r in ordered], "o-", color="tab:blue")
    throughput.set_xscale("log")
    throughput.set_xlabel("FHIR batch_max_items (readings per Bundle)")
    throughput.set_ylabel("readings/s", color="tab:blue")
    throughput.set_ylim(bottom=0)
    throughput.grid(True, alpha=0.3)
    cpu = throughput.twinx()
    cpu.plot(sizes, [r.cpu_us_per_reading for r in ordered], "s--", color="tab:red")
    cpu.set_ylabel("gateway CPU µs/reading", color="tab:red")
    cpu.set_ylim(bottom=0)
    throughput.set_title("Pipeline throughput vs delivery batch size", fontsize=10)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
    return True
