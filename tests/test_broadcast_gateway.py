"""A simulated broadcast scale from the config, through the real Gateway and its pipeline.

A two-person household on one Mi Body Composition Scale, told apart by weight range: each
weighing is stored for its person, the one both ranges hold is held back, counted and shown in
the operator status, and the source's memory in data_dir knows what was handed over.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from devices.sim.broadcast_scale import SimulatedBroadcastScale
from gateway.settings import ConfigError, parse_settings
from gateway.simulation import check_simulation, peripheral_for
from tests.configs import ADULT
from tests.gateway_harness import ActivityWatcher, closed_port_url, queued, running_gateway

PARTNER = "195505055555"
SCALE = "DF:DE:44:82:14:EF"


def config(data_dir: Path, simulation: dict[str, Any]) -> dict[str, Any]:
    return {
        "gateway": {"data_dir": str(data_dir), "api": {"enabled": False}},
        "subjects": [
            {"id": ADULT, "birth_date": "1970-01-01", "consent": {"care": True}},
            {"id": PARTNER, "birth_date": "1955-05-05", "consent": {"care": True}},
        ],
        "devices": [
            {
                "address": SCALE,
                "profile": "xiaomi_body_composition",
                "users_by": "weight_range",
                "users": {
                    "1": {"subject": ADULT, "weight_range_kg": [75, 95]},
                    "2": {"subject": PARTNER, "weight_range_kg": [50, 76]},
                },
                "simulated": True,
                "simulation": simulation,
            }
        ],
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


async def test_a_shared_broadcast_scale_stores_each_weighing_for_its_person_and_holds_one(
    tmp_path: Path,
) -> None:
    simulation = {
        "interval_s": 0.05,
        "readings": [
            {"body_weight": 82.4, "impedance": 510},
            {"body_weight": 61.3, "impedance": 560},
            {"body_weight": 75.5},  # within both ranges
            {"body_weight": 83.0, "impedance": 505},
        ],
    }
    settings = parse_settings(config(tmp_path / "data", simulation))

    async with running_gateway(settings) as gateway:
        watcher = ActivityWatcher(gateway.activity)
        await watcher.until("stored", 3)
        assert gateway.source is not None
        status = await gateway.status()
        pipeline = gateway.pipeline
        assert pipeline is not None
        stats = pipeline.stats
        items = await queued(gateway, "care")

    assert (stats.readings, stats.dropped_unbound) == (3, 0)
    [device] = status["devices"]
    assert device["held_ambiguous"] == 1 and device["readings"] == 3
    memory = json.loads((tmp_path / "data" / "devices" / "DFDE448214EF.json").read_text())
    assert len(memory["broadcast_handed"]) == 4  # the held weighing is remembered too
    # The care platform gets each person's body weight as an Observation for that person.
    weights = sorted(
        (
            entry["resource"]["subject"]["identifier"]["value"],
            entry["resource"]["valueQuantity"]["value"],
        )
        for item in items
        for entry in item.payload["entries"]
        if entry["resource"]["resourceType"] == "Observation"
        and any(c["code"] == "29463-7" for c in entry["resource"]["code"]["coding"])
    )
    assert weights == [(PARTNER, 61.3), (ADULT, 82.4), (ADULT, 83.0)]


def test_a_broadcast_scale_is_simulated_from_its_script(tmp_path: Path) -> None:
    settings = parse_settings(
        config(tmp_path, {"interval_s": 2, "readings": [{"body_weight": 70, "unit": "[lb_av]"}]})
    )
    check_simulation(settings)
    scale = peripheral_for(settings.devices[0], 0, tmp_path)
    assert isinstance(scale, SimulatedBroadcastScale)
    assert scale.profile == "xiaomi_body_composition" and scale.interval_s == 2


@pytest.mark.parametrize(
    ("readings", "message"),
    [
        (
            [{"systolic": 120}],
            r"devices\[0\]\.simulation\.readings\[0\]: a weighing is body_weight",
        ),
        ([{"body_weight": 70, "unit": "stone"}], r"devices\[0\]\.simulation: .*stone"),
    ],
)
def test_a_broadcast_scale_script_it_cannot_play_fails_at_start(
    tmp_path: Path, readings: list[dict[str, Any]], message: str
) -> None:
    settings = parse_settings(config(tmp_path, {"readings": readings}))
    with pytest.raises(ConfigError, match=message):
        check_simulation(settings)
