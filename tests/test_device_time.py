"""Issue 14, item 14: an extreme but readable device timestamp never crashes the fan-out.

A glucose meter whose clock is 400 days behind sends a record dated 9999-12-30: corrected by
the clock offset it would be past year 9999. Through the real BLE stack (simulated meter on a
private D-Bus) and the real pipeline, the reading is stored, judged by the alert rules and
queued for the care platform, stamped with its time of receipt, with the device's own stamp and
the reason kept in its status; the pipeline counts it.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gateway.settings import parse_settings
from tests.configs import ADULT, webhook_secret
from tests.gateway_harness import (
    ActivityWatcher,
    closed_port_url,
    queued,
    running_gateway,
    table_count,
)

METER = "C4:7C:8D:6A:10:02"
FOUR_HUNDRED_DAYS_BEHIND = -400 * 86400.0


def settings_for(tmp_path: Path, clock_offset_s: float, readings: list[dict]):
    secret = tmp_path / "alerts.secret"
    secret.write_text(webhook_secret())
    never = {"retry_initial_s": 3600, "retry_max_s": 3600}
    return parse_settings(
        {
            "gateway": {"data_dir": str(tmp_path / "data"), "api": {"enabled": False}},
            "subjects": [
                {
                    "id": ADULT,
                    "birth_date": "1970-01-01",
                    "consent": {"care": True, "alerting": True},
                }
            ],
            "devices": [
                {
                    "address": METER,
                    "profile": "glucose",
                    "subject": ADULT,
                    "simulated": True,
                    "simulation": {
                        "interval_s": 0.02,
                        "clock_offset_s": clock_offset_s,
                        "readings": readings,
                    },
                }
            ],
            "destinations": [
                {
                    "name": "care",
                    "kind": "fhir",
                    "purpose": "care",
                    "url": closed_port_url("/fhir"),
                    **never,
                },
                {
                    "name": "nurse",
                    "kind": "webhook",
                    "purpose": "alerting",
                    "url": closed_port_url("/hooks"),
                    "secret_file": str(secret),
                    **never,
                },
            ],
            "alert_rules": [
                {
                    "kind": "glucose",
                    "value": "glucose",
                    "above": 300,
                    "unit": "mg/dL",
                    "severity": "critical",
                }
            ],
        }
    )


def glucose_observations(items) -> list[dict]:
    return [
        entry["resource"]
        for item in items
        for entry in item.payload["entries"]
        if entry["resource"]["resourceType"] == "Observation"
    ]


@pytest.mark.parametrize(
    ("clock_offset_s", "device_time", "reason"),
    [
        (FOUR_HUNDRED_DAYS_BEHIND, "9999-12-30T08:00:00", "out of range"),
        (0.0, "2199-01-01T08:00:00", "in the future"),
    ],
)
async def test_an_extreme_device_time_is_replaced_by_receipt_time_and_the_reading_alerts(
    tmp_path, clock_offset_s, device_time, reason
):
    settings = settings_for(
        tmp_path, clock_offset_s, [{"glucose": 400, "measured_at": device_time}, {"glucose": 98}]
    )
    async with running_gateway(settings) as gateway:
        watcher = ActivityWatcher(gateway.activity)
        await asyncio.wait_for(watcher.until("alert.resolved", 1), 20)
        assert gateway.pipeline is not None
        stats = gateway.pipeline.stats
        stored = await table_count(gateway, "SELECT count(*) FROM readings")
        care = await queued(gateway, "care")
        nurse = await queued(gateway, "nurse")
        assert gateway.rights is not None
        held = await gateway.rights.export_json(ADULT)  # what the person gets: the device's word

    assert (stats.readings, stats.fanout_failures, stats.device_time_replaced) == (2, 0, 1)
    assert stored == 2
    assert stats.alerts == 2  # raised by 400 mg/dL, resolved by 98
    assert len(nurse) == 2
    observations = glucose_observations(care)
    assert len(observations) == 2
    now = datetime.now(UTC)
    for observation in observations:
        effective = datetime.fromisoformat(observation["effectiveDateTime"])
        assert abs(effective - now) < timedelta(minutes=5)  # receipt, not year 9999 (or 2199)
    [replaced] = [r for r in held["readings"] if "device_time_replaced" in r["status"]]
    assert replaced["status"]["device_time_as_sent"] == device_time
    assert reason in replaced["status"]["device_time_replaced"]
