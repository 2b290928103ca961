"""The alert rules' cost per reading, with a year of history per person.

``python -m bench.alert_rules [--people N] [--days D] [--quick] [--json]``

Each person has a weight scale (one reading a day), a blood pressure cuff (morning and evening,
two readings each) and a glucose meter (four a day), and the rules are the clinically typical
set of ``config/example.toml`` (a 2 kg rise in 3 days, 7-day home means of systolic and
diastolic, three lows in 7 days, no weight for 2 days) beside a systolic limit. A year of
readings per person goes through the real ``AlertEngine`` in measured order, in batches of 32
as the pipeline takes them; each batch's state changes are sealed (``AlertStateStore.seal``)
and written in one transaction to a real SQLite file (WAL, ``synchronous=FULL``, the gateway's
schema) on the benchmarks' disk. The per-reading cost is reported for the last 30 days (when a
year of history is behind every window), for a limit rule alone (what the gateway paid before
window rules), for a 14-day stored burst arriving at once, and beside the floor
(``bench/floor.py``) measured in the same run. The restart cost (load and restore every row) is
reported too. Nothing is sent anywhere; no network.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sqlite3
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import orjson

from bench.floor import run_floor
from bench.lean import measure_lean
from gateway.intake.alerts import AlertEngine
from gateway.intake.events import BoundReading
from gateway.models import Measurement, Quantity
from gateway.settings import AlertRuleSettings
from gateway.storage.alert_state import AlertStateStore
from gateway.storage.crypto import Sealer
from gateway.storage.schema import SCHEMA

RESULTS = Path(__file__).resolve().parent / "results"
BATCH = 32  # gateway.pipeline.MAX_BATCH
START = datetime(2025, 12, 1)
LEAN_READINGS = {True: 3_000, False: 30_000}  # as ``python -m bench`` (--quick or not)

WINDOW_RULES = [
    {"kind": "weight", "value": "body_weight", "rise": 2.0, "within": "3d", "unit": "kg"},
    {
        "kind": "blood_pressure",
        "value": "systolic",
        "mean_above": 135,
        "over": "7d",
        "times": ["05:00-11:00", "17:00-23:00"],
        "min_readings": 12,
        "unit": "mm[Hg]",
    },
    {
        "kind": "blood_pressure",
        "value": "diastolic",
        "mean_above": 85,
        "over": "7d",
        "times": ["05:00-11:00", "17:00-23:00"],
        "min_readings": 12,
        "unit": "mm[Hg]",
    },
    {
        "kind": "glucose",
        "value": "glucose",
        "below": 3.0,
        "unit": "mmol/L",
        "count": 3,
        "within": "7d",
        "severity": "critical",
    },
    {"kind": "weight", "missing_for": "2d"},
]
LIMIT_RULE = {"kind": "blood_pressure", "value": "systolic", "above": 180, "severity": "critical"}


@dataclass(frozen=True, slots=True)
class Share:
    """Per reading: CPU and wall microseconds, and what was written."""

    engine_cpu_us: float  # judging (evaluate) and taking the changes
    seal_cpu_us: float  # orjson + AES-GCM of the changed state
    write_cpu_us: float  # the upserts, on the database thread
    write_wall_us: float
    commit_wall_us: float  # its own commit here; in the pipeline it shares the readings' commit
    total_cpu_us: float  # judging + sealing + upserts
    sealed_bytes: float  # state bytes written per reading
    readings: int


@dataclass(frozen=True, slots=True)
class AlertRulesResult:
    people: int
    days: int
    readings_per_person_per_day: int
    steady: Share  # the last 30 days, a year of history behind every window
    limit_only: Share  # the same readings with the limit rule alone
    burst: Share  # a 14-day stored burst arriving at once, after the year
    alerts: int  # raised and resolved over the year (a plausible series, not a stress)
    state_rows: int
    state_bytes: int
    restart_ms: float  # load every row and restore the engine
    lean_floor_cpu_us: float  # the lean core's reference (bench/lean.py), same run
    floor_cpu_us: float  # the storage floor (bench/floor.py), same run
    floor_wall_us: float

    @property
    def steady_ratio(self) -> float:
        """All the rules' work per reading against the storage floor."""
        return self.steady.total_cpu_us / self.floor_cpu_us

    @property
    def added_to_lean_floor(self) -> float:
        """What the window rules add per reading, as a share of the lean floor."""
        return self.added_cpu_us / self.lean_floor_cpu_us

    @property
    def added_cpu_us(self) -> float:
        return self.steady.total_cpu_us - self.limit_only.total_cpu_us


def _reading(
    ref: str, index: int, kind: str, values: dict[str, tuple[float, str]], at: datetime
) -> BoundReading:
    return BoundReading(
        reading_id=f"{ref}-{kind}-{index}",
        subject_id=f"person-{ref}",
        subject_ref=ref,
        company_id=None,
        birth_date=date(1960, 1, 1),
        device_address="C4:7C:8D:6A:00:01",
        device_ref="device-1",
        profile=kind,
        measurement=Measurement(
            kind=kind,
            values={name: Quantity(value=v, unit=u) for name, (v, u) in values.items()},
            measured_at=at,
        ),
        received_at=at.astimezone(UTC) + timedelta(minutes=1),
    )


def year_of_readings(ref: str, days: int, seed: int) -> Iterator[BoundReading]:
    """A plausible year: slow drifts, daily noise, the odd bad week (deterministic)."""
    state = seed
    index = 0

    def noise(spread: float) -> float:
        nonlocal state
        state = (state * 1103515245 + 12345) % 2**31
        return (state / 2**31 - 0.5) * 2 * spread

    for n in range(days):
        base = START + timedelta(days=n)
        bad = (n // 7) % 9 == 4  # one week in nine: fluid, high pressure, lows
        index += 1
        yield _reading(
            ref,
            index,
            "weight",
            {"body_weight": (82 + n / 365 + (1.5 if bad else 0) + noise(0.4), "kg")},
            base.replace(hour=7, minute=30),
        )
        for hour in (7, 19):
            for minute in (0, 2):
                index += 1
                yield _reading(
                    ref,
                    index,
                    "blood_pressure",
                    {
                        "systolic": (128 + (15 if bad else 0) + noise(8), "mm[Hg]"),
                        "diastolic": (80 + (8 if bad else 0) + noise(5), "mm[Hg]"),
                    },
                    base.replace(hour=hour, minute=minute),
                )
        for hour in (7, 12, 18, 22):
            index += 1
            low = 2.6 if bad and hour == 22 else 6.5
            yield _reading(
                ref,
                index,
                "glucose",
                {"glucose": ((low + noise(1.0)) * 18.016, "mg/dL")},
                base.replace(hour=hour),
            )


def _engine(rules: list[dict], people: list[str]) -> AlertEngine:
    settings = [AlertRuleSettings(**rule) for rule in rules]
    return AlertEngine(
        settings,
        subjects={ref: f"person-{ref}" for ref in people},
        watched_kinds={ref: {"weight", "blood_pressure", "glucose"} for ref in people},
        history_limit_s=365 * 86_400.0,
    )


def _open(path: Path) -> sqlite3.Connection:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=FULL")
    connection.executescript(SCHEMA)
    return connection


class Meter:
    """Adds up the three parts of the per-reading cost over the readings it is shown."""

    def __init__(self) -> None:
        self.engine = self.seal = self.write_cpu = self.write_wall = self.commit = 0.0
        self.bytes = self.readings = 0

    def batch(
        self,
        engine: AlertEngine,
        store: AlertStateStore,
        connection: sqlite3.Connection,
        readings: list[BoundReading],
        on_alert: Callable[[int], None],
    ) -> None:
        cpu = time.process_time()
        alerts = 0
        for reading in readings:
            alerts += len(engine.evaluate(reading))
        changes = engine.take_changes()
        judged = time.process_time()
        sealed = store.seal(changes)
        sealed_at = time.process_time()
        connection.execute("BEGIN IMMEDIATE")
        wall = time.perf_counter()
        AlertStateStore.write(connection, sealed)
        self.write_cpu += time.process_time() - sealed_at
        written = time.perf_counter()
        self.write_wall += written - wall
        connection.execute("COMMIT")
        self.commit += time.perf_counter() - written
        self.engine += judged - cpu
        self.seal += sealed_at - judged
        self.bytes += sum(len(blob) for _, _, blob in sealed if blob is not None)
        self.readings += len(readings)
        on_alert(alerts)

    def share(self) -> Share:
        n = max(self.readings, 1)
        engine, seal, write = (x / n * 1e6 for x in (self.engine, self.seal, self.write_cpu))
        return Share(
            engine_cpu_us=engine,
            seal_cpu_us=seal,
            write_cpu_us=write,
            write_wall_us=self.write_wall / n * 1e6,
            commit_wall_us=self.commit / n * 1e6,
            total_cpu_us=engine + seal + write,
            sealed_bytes=self.bytes / n,
            readings=self.readings,
        )


def _run(
    rules: list[dict], people: list[str], days: int, workdir: Path, name: str
) -> tuple[Share, Share, int, AlertEngine, AlertStateStore, sqlite3.Connection]:
    """A year through the engine; returns the steady share (last 30 days) and the burst share."""
    engine = _engine(rules, people)
    store = AlertStateStore(Sealer(os.urandom(32)))
    connection = _open(workdir / f"{name}.db")
    streams = [list(year_of_readings(ref, days + 14, seed=i + 1)) for i, ref in enumerate(people)]
    per_day = len(streams[0]) // (days + 14)
    year = [r for stream in streams for r in stream[: days * per_day]]
    year.sort(key=lambda r: (r.measurement.measured_at, r.subject_ref))
    burst = [r for stream in streams for r in stream[days * per_day :]]  # person by person
    warm, steady = Meter(), Meter()
    alerts = 0

    def count(n: int) -> None:
        nonlocal alerts
        alerts += n

    steady_from = len(year) - 30 * per_day * len(people)
    for start in range(0, len(year), BATCH):
        meter = steady if start >= steady_from else warm
        meter.batch(engine, store, connection, year[start : start + BATCH], count)
    stored_burst = Meter()
    for start in range(0, len(burst), BATCH):
        stored_burst.batch(engine, store, connection, burst[start : start + BATCH], count)
    return steady.share(), stored_burst.share(), alerts, engine, store, connection


def measure_alert_rules(workdir: Path, *, people: int, days: int, quick: bool) -> AlertRulesResult:
    workdir.mkdir(parents=True, exist_ok=True)
    refs = [f"s-{i:02d}" for i in range(people)]
    lean = asyncio.run(measure_lean(workdir / "lean", LEAN_READINGS[quick]))
    floor = run_floor(workdir, quick=quick).total
    limit_only, _burst, _alerts, _e, _s, limit_db = _run([LIMIT_RULE], refs, days, workdir, "limit")
    limit_db.close()
    steady, burst, alerts, engine, store, connection = _run(
        [*WINDOW_RULES, LIMIT_RULE], refs, days, workdir, "rules"
    )
    rows, size = connection.execute(
        "SELECT COUNT(*), COALESCE(SUM(LENGTH(payload)), 0) FROM alert_state"
    ).fetchone()
    started = time.perf_counter()
    restored = _engine([*WINDOW_RULES, LIMIT_RULE], refs)
    restored.restore(store.load(connection))
    restart_ms = (time.perf_counter() - started) * 1e3
    connection.close()
    assert engine.take_changes() == []
    return AlertRulesResult(
        people=people,
        days=days,
        readings_per_person_per_day=9,
        steady=steady,
        limit_only=limit_only,
        burst=burst,
        alerts=alerts,
        state_rows=rows,
        state_bytes=size,
        restart_ms=restart_ms,
        lean_floor_cpu_us=lean.cpu_us_per_reading,
        floor_cpu_us=floor.cpu_us,
        floor_wall_us=floor.wall_us,
    )


def as_table(result: AlertRulesResult) -> str:
    def row(label: str, share: Share) -> str:
        return (
            f"| {label} | {share.total_cpu_us:.1f} | {share.engine_cpu_us:.1f} |"
            f" {share.seal_cpu_us:.1f} | {share.write_cpu_us:.1f} ({share.write_wall_us:.1f} wall)"
            f" | {share.commit_wall_us:.1f} | {share.sealed_bytes:.0f} | {share.readings:,} |"
        )

    return "\n".join(
        [
            f"{result.people} people x {result.days} days x"
            f" {result.readings_per_person_per_day} readings a day;"
            f" lean floor {result.lean_floor_cpu_us:.1f} us CPU per reading;"
            f" storage floor {result.floor_cpu_us:.1f} us CPU"
            f" ({result.floor_wall_us:.1f} wall) per reading",
            "",
            "| per reading | CPU us | judging | sealing | upserts | own commit (wall)"
            " | state bytes | readings |",
            "|---|---|---|---|---|---|---|---|",
            row("window rules + limit, last 30 days of a year", result.steady),
            row("limit rule alone (before window rules)", result.limit_only),
            row("a 14-day stored burst arriving at once", result.burst),
            "",
            f"window rules add {result.added_cpu_us:.1f} us CPU per reading"
            f" ({result.added_to_lean_floor:.0%} of the lean floor;"
            f" all the rules' work {result.steady_ratio:.2f}x the storage floor);"
            f" {result.alerts} alerts over the year;"
            f" state {result.state_rows} rows, {result.state_bytes / 1024:.0f} KiB;"
            f" restart (load + restore) {result.restart_ms:.0f} ms",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.alert_rules", description=__doc__)
    parser.add_argument("--people", type=int, default=6)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--quick", action="store_true", help="quicker floors")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("--keep", action="store_true", help="keep the SQLite files")
    args = parser.parse_args(argv)
    workdir = RESULTS / "work" / "alert-rules"
    try:
        result = measure_alert_rules(workdir, people=args.people, days=args.days, quick=args.quick)
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    if args.json:
        data = asdict(result) | {
            "steady_ratio": result.steady_ratio,
            "added_cpu_us": result.added_cpu_us,
            "added_to_lean_floor": result.added_to_lean_floor,
        }
        sys.stdout.write(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        sys.stdout.write(as_table(result) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
