"""A full disk (issue 14: 5) and the "stored" acknowledgement (issue 14: 15).

The data directory is a small tmpfs (mounted for the test; we are root), filled to the last
byte with a filler file. Intake must refuse to write rather than half-write, hold what arrived,
say so in one line, and store it all once the filler is gone; a restart on the full disk must
start, not crash-loop with a traceback. A glucose meter's records count as handed over (the
mark its next download starts after) only once they are on disk: killed with ``kill -9``
while the disk is full, the gateway gets every record again after the restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import os
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import pytest

from devices.sim.script import script_to_measurements
from devices.source import Received
from gateway.intake.acknowledgements import Acknowledgements
from tests.configs import ADULT, write_config
from tests.gateway_harness import target_for
from tests.hub_harness import Hub, cuff, hub_config, running_hub
from tests.receivers import Receiver
from tests.test_damaged_storage import panels
from tests.test_e2e import GatewayProcess

DISK = "8m"


@contextlib.contextmanager
def small_disk(path: Path) -> Iterator[Path]:
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={DISK},mode=0700", "tmpfs", str(path)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(disk: Path) -> Path:
    """Fill the file system to the last byte; returns the filler to delete later."""
    filler = disk / "filler"
    chunk = b"\0" * 65536
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        for size in (65536, 4096, 512, 1):
            try:
                while True:
                    os.write(fd, chunk[:size])
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
    finally:
        os.close(fd)
    return filler


def bp(systolic: int, minute: int) -> dict:
    return {
        "systolic": systolic,
        "diastolic": 80,
        "pulse_rate": 60,
        "measured_at": f"2026-11-20T10:{minute:02d}",
    }


def submit(hub: Hub, scripted: list[dict]) -> list[asyncio.Future[bool]]:
    """Hand readings to the pipeline exactly as the BLE callback does."""
    pipeline = hub.gateway.pipeline
    assert pipeline is not None
    target = target_for(hub.settings, cuff([])["address"])
    now = datetime.now(UTC)
    return [
        pipeline.submit(Received(target, "00002a35-0000-1000-8000-00805f9b34fb", m, now))
        for m in script_to_measurements("blood_pressure", scripted)
    ]


async def stored_count(hub: Hub) -> int:
    return (
        await hub.gateway.database.call(
            lambda c: c.execute("SELECT COUNT(*) FROM readings").fetchone()
        )
    )[0]


async def test_a_full_disk_holds_intake_and_everything_is_stored_when_space_returns(tmp_path):
    with small_disk(tmp_path / "data") as disk:
        async with running_hub(tmp_path, devices=[cuff([])]) as hub:
            first = submit(hub, [bp(120, 0), bp(121, 1)])
            assert await asyncio.wait_for(asyncio.gather(*first), 10) == [True, True]
            filler = fill(disk)

            held = submit(hub, [bp(122, 2), bp(190, 3), bp(124, 4)])
            await hub.waiter.until("disk_full")
            async with aiohttp.ClientSession(headers=hub.auth()) as http:
                async with http.get(hub.url + "/api/status") as response:
                    intake = (await response.json())["intake"]
            assert intake["disk_full"] is True and intake["readings_held"] == 3
            assert not any(f.done() for f in held)  # not on disk, so not confirmed
            assert await stored_count(hub) == 2  # nothing half-written

            filler.unlink()  # the operator frees space; intake resumes by itself
            await hub.waiter.until("disk_space_back")
            assert await asyncio.wait_for(asyncio.gather(*held), 10) == [True, True, True]
            await hub.care.wait_for(lambda _r: len(panels(hub)) >= 5)
            await hub.alerts.wait_for(lambda r: len(r.accepted) >= 1)
            assert await stored_count(hub) == 5
            assert (await hub.gateway.status())["intake"]["disk_full"] is False


def glucose_meter() -> dict:
    return {
        "address": "C4:7C:8D:6A:00:0A",
        "profile": "glucose",
        "subject": ADULT,
        "simulated": True,
        "simulation": {
            "interval_s": 0.02,
            "readings": [{"glucose": 98, "meal": "fasting"}, {"glucose": 131}, {"glucose": 104}],
        },
    }


def glucose_values(receiver: Receiver) -> list[float]:
    return sorted(
        e["resource"]["valueQuantity"]["value"]
        for r in receiver.accepted
        for e in r.json()["entry"]
        if e["resource"].get("valueQuantity", {}).get("unit") == "mg/dL"
    )


def stored_mark(data: Path) -> int | None:
    path = data / "devices" / "C47C8D6A000A.json"
    return json.loads(path.read_text())["last_sequence"] if path.exists() else None


async def test_a_restart_on_a_full_disk_runs_and_kill_9_loses_no_record(tmp_path):
    care = await Receiver().start()
    try:
        with small_disk(tmp_path / "data") as disk:
            config = hub_config(tmp_path, care.url + "/fhir", "http://127.0.0.1:9/h")
            config["gateway"]["log_level"] = "debug"
            config["gateway"]["log_format"] = "json"
            path = write_config(tmp_path / "gateway.toml", config)

            first = GatewayProcess(path)  # a first start on an empty disk: keys, database
            await first.start()
            await first.wait_for_event(lambda e: e.get("event") == "gateway_started")
            assert await first.stop() == 0

            filler = fill(disk)
            config["devices"] = [glucose_meter()]
            write_config(path, config)
            second = GatewayProcess(path)  # restarted on a full disk: it runs
            await second.start()
            try:
                await second.wait_for_event(lambda e: e.get("event") == "gateway_started")
                await second.wait_for_event(
                    lambda e: e.get("event") == "disk_full" and e.get("readings_held", 0) >= 1
                )
                assert stored_mark(disk) is None  # nothing stored, so nothing confirmed
            finally:
                second.kill()  # SIGKILL while the records are held in memory only
            await second.process.wait()
            assert not any("Traceback" in line for line in second.lines), second.lines[-20:]
            assert stored_mark(disk) is None

            filler.unlink()
            third = GatewayProcess(path)
            await third.start()
            try:
                await care.wait_for(lambda r: len(glucose_values(r)) >= 3)
                assert await third.stop() == 0
            finally:
                third.kill()
            assert glucose_values(care) == [98, 104, 131]
            assert stored_mark(disk) is not None
    finally:
        await care.stop()


async def test_a_reading_stored_ahead_is_confirmed_only_after_those_before_it():
    # Alerts are stored ahead of a backlog; confirming one would move a meter's mark past
    # earlier records that are not on disk yet.
    acknowledgements = Acknowledgements()
    earlier, urgent = object(), object()
    first, second = acknowledgements.expect(earlier), acknowledgements.expect(urgent)
    acknowledgements.stored([urgent])
    assert not first.done() and not second.done()
    acknowledgements.stored([earlier])
    assert first.result() is True and second.result() is True
