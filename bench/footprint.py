"""Footprint: ``health-gateway run`` idle with six simulated devices connected.

The gateway runs as a process with six simulated devices (one per person; the profiles are
whichever ``gateway.simulation.SIMULATORS`` supports, cycled, so a mixed household when it has
them). Each device sends one scripted reading, so the idle state measured is the one after real
work (lazy imports done, HTTP connections open), then stays connected and silent. Once all six
are connected and their readings delivered, RSS (``VmRSS``) and CPU (utime + stime) are read
from /proc over an idle window; CPU% is of one core. The gateway gets the ``Environment=`` of
``config/health-gateway.service``, as on a hub (``PYTHONOPTIMIZE=2``).

The simulated BlueZ and the device models run in a process of their own (the gateway's child,
``gateway.simulation_host``), as bluetoothd and the devices are outside the gateway on a Pi;
it and the private dbus-daemon are reported apart. The gateway's RSS is also split into its
anonymous part (its own heap) and its file-backed part (shared libraries' pages in use).
"""

from __future__ import annotations

import asyncio
import configparser
import shutil
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.harness import (
    GatewayProcess,
    ReceiverProcess,
    children,
    command_name,
    cpu_seconds,
    memory_kib,
    thread_count,
)
from bench.workload import gateway_config, webhook_secret_file
from gateway.settings import parse_settings
from gateway.simulation import SIMULATORS, check_simulation
from tests.configs import write_config

DEVICES = 6
UNIT = Path(__file__).resolve().parent.parent / "config" / "health-gateway.service"

# One reading per profile, in the profile's default units (``devices.sim.script`` rows).
SCRIPT_ROWS: dict[str, dict[str, Any]] = {
    "blood_pressure": {"systolic": 121, "diastolic": 79, "pulse_rate": 66},
    "weight": {"body_weight": 72.5},
    "body_composition": {"body_fat_percentage": 21.5},
    "glucose": {"glucose": 95},
    "temperature": {"body_temperature": 36.8},
    "heart_rate": {"heart_rate": 64},
    "spo2": {"spo2": 97, "pulse_rate": 64},
}
PREFERRED = ("blood_pressure", "weight", "glucose", "temperature", "heart_rate", "spo2")


@dataclass(frozen=True, slots=True)
class IdleResult:
    devices: int
    profiles: tuple[str, ...]
    window_s: float
    rss_kib: int  # median over the window
    rss_max_kib: int
    peak_rss_kib: int  # VmHWM since start
    cpu_percent: float
    environment: dict[str, str]  # what the systemd unit sets, as the gateway ran with it
    rss_anon_kib: int  # at the end of the window
    rss_file_kib: int
    threads: int
    dbus_daemon_rss_kib: int
    simulator_rss_kib: int  # the simulated BlueZ and devices' process
    startup_s: float  # process start -> all devices connected and their readings delivered


def playable(profile: str) -> bool:
    """Whether the simulator can play a one-reading script for ``profile`` (checked the way
    ``health-gateway run`` checks it at start)."""
    if profile not in SIMULATORS or profile not in SCRIPT_ROWS:
        return False
    config = _config(Path("/nonexistent"), "http://127.0.0.1:9", Path("/nonexistent"), (profile,))
    config["destinations"] = []
    try:
        check_simulation(parse_settings(config))
    except Exception:  # a simulator that cannot play this script yet: leave the profile out
        return False
    return True


def device_profiles() -> tuple[str, ...]:
    """Six profiles: the preferred mix, limited to what the simulator can play now."""
    supported = [p for p in PREFERRED if playable(p)] or ["blood_pressure"]
    return tuple(supported[i % len(supported)] for i in range(DEVICES))


def _config(
    workdir: Path, receiver_url: str, secret_file: Path, profiles: tuple[str, ...]
) -> dict[str, Any]:
    config = gateway_config(
        workdir / "data", receiver_url, secret_file, simulated={}, log_level="info"
    )
    config["devices"] = config["devices"][: len(profiles)]
    for device, profile in zip(config["devices"], profiles, strict=True):
        device["profile"] = profile
        row = dict(SCRIPT_ROWS[profile])
        device["simulation"] = {"interval_s": 0.2, "readings": [row]}
        if profile in ("weight", "body_composition"):
            # A shared scale: its user 1 is this person.
            subject = device.pop("subject")
            device["users"] = {"1": subject}
            row["user_index"] = 1
    return config


def unit_environment() -> dict[str, str]:
    """The ``Environment=`` of the systemd unit: the gateway is measured as a hub runs it."""
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # keys are case-sensitive in systemd
    parser.read(UNIT)
    return dict(item.split("=", 1) for item in parser["Service"].get("Environment", "").split())


def _connected(events: list[dict[str, Any]]) -> int:
    return len({e.get("device") for e in events if e.get("event") == "ble.connected"})


async def measure_idle(workdir: Path, *, window_s: float) -> IdleResult:
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    secret_file = webhook_secret_file(workdir)
    receiver = await ReceiverProcess(secret_file).start()
    try:
        profiles = device_profiles()
        config = _config(workdir, receiver.url, secret_file, profiles)
        environment = unit_environment()
        gateway = GatewayProcess(write_config(workdir / "gateway.toml", config), environment)
        began = time.monotonic()
        await gateway.start()
        try:
            await gateway.wait_for(lambda events: _connected(events) >= DEVICES, 120)
            await asyncio.sleep(3.0)  # the scripted readings go out and are delivered
            startup_s = time.monotonic() - began
            samples: list[int] = []
            cpu_before = cpu_seconds(gateway.pid)
            window_began = time.monotonic()
            for _ in range(max(1, int(window_s))):
                await asyncio.sleep(window_s / max(1, int(window_s)))
                samples.append(memory_kib(gateway.pid)["VmRSS"])
            elapsed = time.monotonic() - window_began
            cpu = cpu_seconds(gateway.pid) - cpu_before
            memory = memory_kib(gateway.pid)
            threads = thread_count(gateway.pid)
            below = children(gateway.pid)
            daemons = [p for p in below if command_name(p) == "dbus-daemon"]
            daemon_rss = sum(memory_kib(p)["VmRSS"] for p in daemons)
            simulator_rss = sum(memory_kib(p)["VmRSS"] for p in below if p not in daemons)
        finally:
            await gateway.stop()
        return IdleResult(
            devices=DEVICES,
            profiles=profiles,
            window_s=elapsed,
            rss_kib=int(statistics.median(samples)),
            rss_max_kib=max(samples),
            peak_rss_kib=memory["VmHWM"],
            cpu_percent=cpu / elapsed * 100,
            environment=environment,
            rss_anon_kib=memory["RssAnon"],
            rss_file_kib=memory["RssFile"],
            threads=threads,
            dbus_daemon_rss_kib=daemon_rss,
            simulator_rss_kib=simulator_rss,
            startup_s=startup_s,
        )
    finally:
        await receiver.stop()
