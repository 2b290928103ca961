"""A held weighing is shown to the operator (/api/status, `health-gateway status`, /metrics) and
on the page (the person's summary), through the real gateway and its HTTP API."""

from __future__ import annotations

import aiohttp

from gateway.client import devices_table
from tests.configs import ADULT, REFUSER
from tests.hub_harness import running_hub

SCALE = "DF:DE:44:82:14:EF"


def shared_scale() -> dict:
    return {
        "address": SCALE,
        "profile": "xiaomi_scale",
        "name": "Bathroom scale",
        "users_by": "weight_range",
        "users": {
            "1": {"subject": ADULT, "weight_range_kg": [75, 95]},
            "2": {"subject": REFUSER, "weight_range_kg": [50, 76]},
        },
        "simulated": True,
        # The first weighing fits both ranges; the second is the adult's.
        "simulation": {
            "interval_s": 0.05,
            "readings": [{"body_weight": 75.5}, {"body_weight": 82.4}],
        },
    }


async def test_a_held_weighing_shows_in_the_status_the_cli_table_and_the_persons_page(tmp_path):
    async with running_hub(tmp_path, devices=[shared_scale()]) as hub:
        await hub.waiter.until("stored", 1)
        async with aiohttp.ClientSession() as http:
            async with http.get(hub.url + "/api/status", headers=hub.auth()) as response:
                assert response.status == 200
                status = await response.json()
            async with http.get(
                f"{hub.url}/api/subjects/{ADULT}/summary", headers=hub.auth()
            ) as response:
                assert response.status == 200
                summary = await response.json()
            async with http.get(hub.url + "/metrics", headers=hub.auth()) as response:
                metrics = await response.text()

    [device] = status["devices"]
    assert (device["held_ambiguous"], device["readings"]) == (1, 1)
    assert device["held_at"] is not None and device["consent_refused"] is False
    table = devices_table(status["devices"]).splitlines()
    assert table[0].split()[-1] == "HELD" and table[1].split()[-1] == "1"
    [mine] = summary["devices"]
    assert mine["held_ambiguous"] == 1 and mine["broadcast"] is True
    assert (
        'health_gateway_weighings_held_total{device="device-1",profile="xiaomi_scale"} 1.0'
        in metrics
    )
