"""``GET /metrics``: Prometheus text from the gateway's own counters, scraped over HTTP."""

from __future__ import annotations

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from tests.configs import REFUSER
from tests.hub_harness import Hub, cuff, running_hub
from tests.receivers import Answer

READINGS = [
    {"systolic": 190, "diastolic": 100, "pulse_rate": 90, "measured_at": "2026-11-20T08:00:00"},
    {"systolic": 121, "diastolic": 79, "pulse_rate": 66, "measured_at": "2026-11-20T08:05:00"},
]
REFUSERS_READING = [
    {"systolic": 131, "diastolic": 81, "pulse_rate": 70, "measured_at": "2026-11-20T09:00:00"}
]


async def scrape(hub: Hub) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    async with (
        aiohttp.ClientSession() as http,
        http.get(hub.url + "/metrics", headers=hub.auth()) as response,
    ):
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        text = await response.text()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def test_readings_deliveries_alert_latency_and_devices(tmp_path):
    async with running_hub(tmp_path, devices=[cuff(READINGS)]) as hub:
        await hub.waiter.until("delivered", 2, destination="care-platform")
        await hub.waiter.until("delivered", 2, destination="nurse-alerts")  # raised + resolved
        metrics = await scrape(hub)
    bp = (("kind", "blood_pressure"),)
    assert metrics[("health_gateway_readings_received_total", bp)] == 2
    care = (
        ("category", "reading"),
        ("destination", "care-platform"),
        ("kind", "blood_pressure"),
        ("legal_basis", "consent"),
    )
    assert metrics[("health_gateway_items_delivered_total", care)] == 2
    nurse = (("destination", "nurse-alerts"),)
    assert metrics[("health_gateway_alert_latency_seconds_count", nurse)] == 2
    assert 0 < metrics[("health_gateway_alert_latency_seconds_sum", nurse)] < 10
    assert metrics[("health_gateway_queue_depth", (("destination", "care-platform"),))] == 0
    assert metrics[("health_gateway_dead_letters", (("destination", "care-platform"),))] == 0
    device = (("device", "device-1"), ("profile", "blood_pressure"))
    assert metrics[("health_gateway_decode_errors_total", device)] == 0
    assert metrics[("health_gateway_device_values_total", device)] >= 2
    assert metrics[("health_gateway_alerts_raised_total", ())] == 2
    assert metrics[("health_gateway_ready", ())] == 1
    assert (
        metrics[
            (
                "health_gateway_filter_decisions_total",
                (("destination", "care-platform"), ("outcome", "passed")),
            )
        ]
        == 2
    )
    # no personal data in any label
    text = repr(metrics)
    assert "197001011234" not in text and "C4:7C:8D" not in text


async def test_a_destination_that_is_down_shows_as_queue_depth_and_retries(tmp_path):
    async with running_hub(tmp_path, devices=[cuff(READINGS)], care_answer=Answer(503)) as hub:
        await hub.waiter.until("stored", 2)
        # A retry after both readings were stored: by then both are queued for the care platform.
        seen = hub.waiter.count("retry", destination="care-platform")
        await hub.waiter.until("retry", max(2, seen + 1), destination="care-platform")
        metrics = await scrape(hub)
    care = (("destination", "care-platform"),)
    assert metrics[("health_gateway_queue_depth", care)] == 2
    assert metrics[("health_gateway_queue_oldest_age_seconds", care)] > 0
    assert metrics[("health_gateway_delivery_retries_total", care)] >= 2


async def test_filter_decisions_count_each_reading_and_alert_per_destination(tmp_path):
    # The intake feed is one entry per batch: its counts per destination and outcome still add
    # up to one decision per reading, and an alert destination's decisions one per alert.
    refusers_cuff = cuff(REFUSERS_READING, subject=REFUSER) | {"address": "C4:7C:8D:6A:00:02"}
    async with running_hub(tmp_path, devices=[cuff(READINGS), refusers_cuff]) as hub:
        await hub.waiter.until("stored", 3)
        await hub.waiter.until("delivered", 2, destination="nurse-alerts")
        metrics = await scrape(hub)

    def decisions(destination: str, outcome: str) -> float:
        labels = (("destination", destination), ("outcome", outcome))
        return metrics.get(("health_gateway_filter_decisions_total", labels), 0)

    assert decisions("care-platform", "passed") == 2
    assert decisions("care-platform", "blocked") == 1  # the refuser gave no consent to care
    assert decisions("nurse-alerts", "passed") == 2  # raised and resolved
    bp = (("kind", "blood_pressure"),)
    assert metrics[("health_gateway_readings_received_total", bp)] == 3
