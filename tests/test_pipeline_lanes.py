"""The pipeline's urgent lane: a reading that may cross an alert limit is ingested before the
ordinary readings queued ahead of it, and its alert is still judged in arrival order."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

from devices.source import Received
from gateway.activity import ActivityEntry
from gateway.models import Measurement, Quantity
from gateway.settings import Settings
from tests.gateway_harness import alerting_settings, running_gateway, target_for

PERSON = "197001011234"
CUFF = "C4:7C:8D:6A:00:01"
BLOOD_PRESSURE = "00002a35-0000-1000-8000-00805f9b34fb"


def settings_for(tmp_path: Path) -> Settings:
    rule = {"kind": "blood_pressure", "value": "systolic", "above": 180, "cooldown_s": 0}
    return alerting_settings(tmp_path / "d", PERSON, CUFF, rule, consent={"alerting": True})


def systolic(value: float, minute: int) -> Measurement:
    return Measurement(
        kind="blood_pressure",
        measured_at=datetime(2026, 11, 20, 8, minute),
        values={"systolic": Quantity(value=value, unit="mm[Hg]")},
    )


async def test_a_reading_over_a_limit_overtakes_the_queue_and_alerts_in_arrival_order(
    tmp_path: Path,
) -> None:
    settings = settings_for(tmp_path)
    async with running_gateway(settings) as gateway:
        assert gateway.pipeline is not None
        systolic_of: dict[str, float] = {}
        stored: list[str] = []
        alerts: list[str] = []
        all_stored, two_alerts = asyncio.Event(), asyncio.Event()

        def on_entry(entry: ActivityEntry) -> None:
            if entry.kind == "stored":  # one intake batch, its readings in the order stored
                for record in entry.fields["records"]:
                    reading = record.reading
                    systolic_of[reading.reading_id] = reading.measurement.values["systolic"].value
                    stored.append(reading.reading_id)
                if len(stored) == 41:
                    all_stored.set()
            elif entry.kind.startswith("alert."):
                alerts.append(entry.kind)
                if len(alerts) == 2:
                    two_alerts.set()

        gateway.activity.subscribe(on_entry)
        target = target_for(settings, CUFF)
        start = datetime.now(UTC)

        def arrive(value: float, minute: int, after_s: float) -> None:
            received_at = start + timedelta(seconds=after_s)
            gateway.pipeline.submit(  # type: ignore[union-attr]
                Received(target, BLOOD_PRESSURE, systolic(value, minute), received_at)
            )

        # All in one event-loop step, before the pipeline runs: 40 in-range readings, then one
        # over the limit. Arrival order is the order of received_at.
        for minute in range(40):
            arrive(120, minute, 0)
        arrive(200, 45, 1)
        assert gateway.pipeline.pending == 41 and gateway.pipeline.stats.urgent == 1
        await asyncio.wait_for(all_stored.wait(), 20)
        # In-range readings that arrived before the high one were judged after it: they said
        # nothing about now, so the alert stands.
        assert alerts == ["alert.raised"]
        arrive(120, 50, 2)  # back in range, and after the high one
        await asyncio.wait_for(two_alerts.wait(), 20)
    # The high reading was stored first, ahead of the 40 that arrived before it ...
    assert [systolic_of[r] for r in stored[:2]] == [200, 120]
    # ... and the in-range reading that arrived after it resolved its alert.
    assert alerts == ["alert.raised", "alert.resolved"]
