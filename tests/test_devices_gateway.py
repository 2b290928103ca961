"""Simulated devices from the config, through the real Gateway: `simulated = true` for every
profile, multi-user binding, the device clock offset and the source's state in data_dir."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from gateway.settings import ConfigError, parse_settings
from gateway.simulation import SIMULATORS, check_simulation, peripheral_for
from tests.configs import ADULT
from tests.gateway_harness import ActivityWatcher, closed_port_url, queued, running_gateway

SECOND_ADULT = "195505055555"
SCALE = "C4:7C:8D:6A:10:01"
METER = "C4:7C:8D:6A:10:02"
CUFF = "C4:7C:8D:6A:10:03"


def config(data_dir: Path, devices: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "gateway": {"data_dir": str(data_dir), "api": {"enabled": False}},
        "subjects": [
            {"id": ADULT, "birth_date": "1970-01-01", "consent": {"care": True}},
            {"id": SECOND_ADULT, "birth_date": "1955-05-05", "consent": {"care": True}},
        ],
        "devices": devices,
        "destinations": [
            {
                "name": "care",
                "kind": "fhir",
                "purpose": "care",
                "url": closed_port_url("/fhir"),
                "retry_initial_s": 3600,
                "retry_max_s": 3600,
            }
        ],
    }


async def test_simulated_devices_reach_the_pipeline_bound_to_their_people(tmp_path: Path) -> None:
    devices = [
        {
            "address": SCALE,
            "profile": "weight",
            "users": {1: ADULT, 2: SECOND_ADULT},  # user 3 is a guest nobody configured
            "simulated": True,
            "simulation": {
                "interval_s": 0.02,
                "users": [1, 2, 3],
                "readings": [
                    {"body_weight": 80.0, "user_index": 1},
                    {"body_weight": 60.0, "user_index": 2},
                    {"body_weight": 95.0, "user_index": 3},
                ],
            },
        },
        {
            "address": METER,
            "profile": "glucose",
            "subject": ADULT,
            "simulated": True,
            "simulation": {
                "interval_s": 0.02,
                "clock_offset_s": -7200,  # the meter's clock is two hours behind
                "readings": [
                    {"glucose": 98, "meal": "fasting"},
                    {"glucose": 131},
                ],
            },
        },
        {
            "address": CUFF,
            "profile": "blood_pressure",
            "subject": SECOND_ADULT,
            "simulated": True,
            "simulation": {
                "interval_s": 0.02,
                "mode": "cycle",
                "linger_s": 0.1,
                "readings": [{"systolic": 132, "diastolic": 84, "pulse_rate": 70}],
            },
        },
    ]
    settings = parse_settings(config(tmp_path / "data", devices))

    async with running_gateway(settings) as gateway:
        watcher = ActivityWatcher(gateway.activity)
        await watcher.until("stored", 5)  # one entry per stored batch, counting its readings
        await watcher.until("dropped", 1)
        assert gateway.pipeline is not None
        stats = gateway.pipeline.stats
        status = await gateway.status()
        items = await queued(gateway, "care")

    assert (stats.readings, stats.dropped_unbound, stats.transient) == (5, 1, 0)
    by_ref = {d["ref"]: d for d in status["devices"]}
    assert by_ref["device-1"]["battery_level"] == 100
    assert by_ref["device-2"]["clock_offset_s"] == 0.0  # set on connect
    # The glucose records were stamped by the clock two hours behind, and say so.
    # The glucose records were stamped by a clock two hours behind; with the offset the source
    # recorded, the care platform gets when they were really taken.
    observations = [
        entry["resource"]
        for item in items
        for entry in item.payload["entries"]
        if entry["resource"]["resourceType"] == "Observation"
    ]
    glucose = [o for o in observations if o.get("valueQuantity", {}).get("unit") == "mg/dL"]
    assert len(glucose) == 2
    for observation in glucose:
        effective = datetime.fromisoformat(observation["effectiveDateTime"])
        assert abs(effective - datetime.now(UTC)) < timedelta(minutes=1)
    state = json.loads((tmp_path / "data" / "devices" / "C47C8D6A1002.json").read_text())
    assert state == {"last_sequence": 2}


@pytest.mark.parametrize("profile", sorted(SIMULATORS))
def test_every_profile_can_be_simulated_from_config(profile: str, tmp_path: Path) -> None:
    device = {
        "address": SCALE,
        "profile": profile,
        "subject": ADULT,
        "simulated": True,
        "simulation": {"mode": "connected", "battery_level": 55, "discovery_delay_s": 0.1},
    }
    settings = parse_settings(config(tmp_path, [device]))
    check_simulation(settings)

    peripheral = peripheral_for(settings.devices[0], 0, tmp_path)

    assert isinstance(peripheral, SIMULATORS[profile])
    assert peripheral.battery_level == 55
    assert peripheral.discovery_delay_s == 0.1
    assert peripheral.has_current_time == (profile != "heart_rate")


@pytest.mark.parametrize(
    ("profile", "simulation", "message"),
    [
        ("heart_rate", {"mode": "cycle"}, r"devices\[0\]\.simulation: .*mode must be connected"),
        (
            "weight",
            {"readings": [{"body_weight": 80, "bmi": 24}]},
            r"devices\[0\]\.simulation: .*height",
        ),
        (
            "glucose",
            {"readings": [{"glucose": 90, "meal": "elevenses"}]},
            r"simulation\.readings: .*'meal'",
        ),
        ("weight", {"users": [255]}, r"devices\[0\]\.simulation: .*User IDs"),
    ],
)
def test_a_simulation_the_model_cannot_play_fails_at_start(
    profile: str, simulation: dict[str, Any], message: str, tmp_path: Path
) -> None:
    device = {
        "address": SCALE,
        "profile": profile,
        "subject": ADULT,
        "simulated": True,
        "simulation": simulation,
    }
    with pytest.raises(ConfigError, match=message):
        check_simulation(parse_settings(config(tmp_path, [device])))
