"""Visible trouble for the operator: Bluetooth that does not work is said with its reason (in
`status`, `/api/status` and `scan`), and so are a low battery and a device not seen for days.

Bluetooth is asked about on real buses: no bus at all, a private dbus-daemon without BlueZ,
and the simulated BlueZ (the one bleak itself talks to in the other tests).
"""

from __future__ import annotations

import asyncio
import os
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest

from devices.adapter import _from_objects, check_bluetooth
from gateway.settings import parse_settings
from gateway.trouble import TroubleWatch
from tests.configs import ADULT, base_config
from tests.conftest import watch_logs
from tests.hub_harness import cuff, running_hub
from tests.test_cli_ops import READINGS, cli, operator_config

REAL_CUFF = {
    "address": "C4:7C:8D:6A:77:01",
    "profile": "blood_pressure",
    "subject": ADULT,
    "name": "Blood pressure monitor",
    "simulated": False,
}


def no_bus(tmp_path: Path) -> str:
    return f"unix:path={tmp_path / 'no-such-bus-socket'}"


async def scan(env_bus: str):
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gateway",
        "scan",
        "--timeout",
        "1",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "DBUS_SYSTEM_BUS_ADDRESS": env_bus},
    )
    out, err = await asyncio.wait_for(process.communicate(), 30)
    return process.returncode, out.decode(), err.decode()


async def test_without_a_system_bus_bluetooth_is_said_to_be_not_working(tmp_path, monkeypatch):
    monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", no_bus(tmp_path))
    state = await check_bluetooth()
    assert not state.ok
    assert state.reason.startswith("the system D-Bus is not running")


async def test_a_bus_without_bluez_says_bluez_is_not_running(dbus_address):
    state = await check_bluetooth()
    assert (state.ok, state.adapter) == (False, None)
    assert state.reason == "BlueZ is not running on the system bus; sudo systemctl start bluetooth"


async def test_the_simulated_bluez_is_a_working_radio(bluez):
    state = await check_bluetooth()
    assert (state.ok, state.reason, state.adapter) == (True, None, "hci0")


def test_an_adapter_that_is_off_or_missing_is_named():
    off = _from_objects({"/org/bluez/hci0": {"org.bluez.Adapter1": {"Powered": False}}})
    assert not off.ok and off.adapter == "hci0" and "switched off" in off.reason
    none = _from_objects({"/org/bluez": {"org.bluez.AgentManager1": {}}})
    assert not none.ok and "no Bluetooth adapter" in none.reason


async def test_scan_fails_in_one_line_without_a_system_bus(tmp_path):
    code, out, err = await scan(no_bus(tmp_path))
    assert code == 1 and out == ""
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(
        "health-gateway: Bluetooth is not working: the system D-Bus is not running"
    )


async def test_scan_fails_in_one_line_when_bluez_is_not_running(dbus_address):
    code, _out, err = await scan(dbus_address)
    assert code == 1
    assert err == (
        "health-gateway: Bluetooth is not working: BlueZ is not running on the system bus;"
        " sudo systemctl start bluetooth\n"
    )


async def test_status_says_bluetooth_is_not_working_and_which_device_went_unseen(
    tmp_path, monkeypatch
):
    monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", no_bus(tmp_path))

    def tweak(config):
        config["devices"] = [REAL_CUFF]
        # any time at all counts as "days": the device has not been heard since the start
        config["gateway"]["device_unseen_days"] = 1e-9

    with watch_logs() as logs:
        async with running_hub(tmp_path, tweak=tweak) as hub:
            # the service says it in its log too, by itself, without anyone asking
            logged = await logs.wait_for("bluetooth_unavailable")
            assert logged["reason"].startswith("the system D-Bus is not running")
            assert logged["log_level"] == "warning"
            await check_status(tmp_path, hub)


async def check_status(tmp_path: Path, hub) -> None:
    """/api/status and `status` of a hub whose radio cannot work."""
    async with (
        aiohttp.ClientSession(headers=hub.auth()) as http,
        http.get(hub.url + "/api/status") as response,
    ):
        status = await response.json()
    assert status["ready"] is True
    assert status["bluetooth"]["ok"] is False
    assert status["bluetooth"]["reason"].startswith("the system D-Bus is not running")
    kinds = [(w["kind"], w["device"]) for w in status["warnings"]]
    assert kinds == [("bluetooth", None), ("device_unseen", "device-1")]
    assert status["devices"][0]["last_contact"] is None

    shown = await cli("status", "--config", operator_config(tmp_path, hub))
    assert shown.code == 0, shown.err
    first = shown.out.splitlines()[0]
    assert "running and ready" not in shown.out
    assert first.endswith(
        "running, but Bluetooth is not working: the system D-Bus is not running (no bus"
        " socket); install and start dbus and bluez, or check DBUS_SYSTEM_BUS_ADDRESS"
    )
    assert "NEEDS ATTENTION" in shown.out
    assert "- Blood pressure monitor: never seen in 0 days" in shown.out


async def test_a_low_battery_is_shown_in_status_with_the_device(tmp_path):
    low = cuff(READINGS)
    low["simulation"]["battery_level"] = 15
    async with running_hub(tmp_path, devices=[low]) as hub:
        assert hub.gateway.source is not None
        async with asyncio.timeout(20):
            await hub.gateway.source.wait_until(lambda s: s[0].battery_level == 15)
        config = operator_config(tmp_path, hub)
        as_json = (await cli("status", "--config", config, "--json")).json()
        assert as_json["bluetooth"] == {"ok": True, "reason": None, "adapter": "hci0"}
        assert as_json["devices"][0]["battery_low"] is True
        assert as_json["warnings"] == [
            {
                "kind": "battery_low",
                "device": "device-1",
                "message": "Blood pressure monitor: battery at 15%; replace or charge it",
            }
        ]
        shown = await cli("status", "--config", config)
        assert "running and ready" in shown.out
        assert "- Blood pressure monitor: battery at 15%; replace or charge it" in shown.out


@pytest.mark.parametrize(
    ("level", "threshold", "low"),
    [(20, 20, True), (21, 20, False), (5, 0, False), (None, 20, False)],
)
def test_a_battery_is_low_at_or_below_the_configured_percentage(tmp_path, level, threshold, low):
    watch = TroubleWatch(settings(tmp_path, low_battery_percent=threshold))
    device = {"ref": "device-1", "battery_level": level}
    assert watch.device_fields(device, datetime.now(UTC))["battery_low"] is low


def test_a_device_is_unseen_after_the_configured_days_since_its_last_contact(tmp_path):
    watch = TroubleWatch(settings(tmp_path, device_unseen_days=3))
    now = datetime.now(UTC)
    seen = (now - timedelta(days=2, hours=23)).isoformat()
    old_reading = (now - timedelta(days=4)).isoformat()
    recent = {"ref": "device-1", "last_seen": seen, "last_reading_at": old_reading}
    assert watch.device_fields(recent, now)["unseen_days"] is None
    assert watch.device_fields(recent, now)["last_contact"] == seen
    quiet = {"ref": "device-1", "last_seen": None, "last_reading_at": old_reading}
    assert watch.device_fields(quiet, now)["unseen_days"] == 4.0
    # never heard from: counted from the start, so a fresh hub does not cry wolf
    never = {"ref": "device-1", "last_seen": None, "last_reading_at": None}
    assert watch.device_fields(never, now)["unseen_days"] is None
    assert watch.device_fields(never, now + timedelta(days=3))["unseen_days"] == 3.0


def settings(tmp_path: Path, **gateway):
    config = base_config(
        tmp_path / "data", tmp_path / "s", "http://127.0.0.1:9", "http://127.0.0.1:9"
    )
    config["gateway"].update(gateway)
    return parse_settings(config)
