"""The demo's live view reads the activity feed of a real gateway: intake and delivery report
per batch, and the view still shows the person each reading, each destination's decision, each
alert and each item sent, one line each, as before the feed was counted per batch."""

from __future__ import annotations

import io
import re

from gateway.demo import LiveView
from tests.configs import ADULT, REFUSER
from tests.hub_harness import cuff, running_hub

HIGH_THEN_NORMAL = [
    {"systolic": 190, "diastolic": 100, "pulse_rate": 90, "measured_at": "2026-11-20T08:00:00"},
    {"systolic": 121, "diastolic": 79, "pulse_rate": 66, "measured_at": "2026-11-20T08:05:00"},
]
REFUSERS_READING = [
    {"systolic": 131, "diastolic": 81, "pulse_rate": 70, "measured_at": "2026-11-20T09:00:00"}
]


def lines_of(out: io.StringIO) -> list[str]:
    """The printed lines without their elapsed-time prefix."""
    return [re.sub(r"^\s*\d+\.\d+s  ", "", line) for line in out.getvalue().splitlines()]


async def test_the_live_view_shows_each_reading_decision_alert_and_sent_item(tmp_path):
    refusers_cuff = cuff(REFUSERS_READING, subject=REFUSER) | {"address": "C4:7C:8D:6A:00:02"}
    devices = [cuff(HIGH_THEN_NORMAL, subject=ADULT), refusers_cuff]
    async with running_hub(tmp_path, devices=devices) as hub:
        out = io.StringIO()
        view = LiveView(out)
        hub.gateway.activity.subscribe(view.show)
        await hub.waiter.until("delivered", 2, destination="care-platform")
        await hub.waiter.until("delivered", 2, destination="nurse-alerts")
        await hub.waiter.until("stored", 3)
    lines = lines_of(out)
    readings = [line for line in lines if line.startswith("reading ")]
    assert len(readings) == 3
    assert any("systolic 190 / diastolic 100" in line for line in readings)
    care = [line for line in lines if line.startswith("  filter   reading -> care-platform")]
    assert care.count("  filter   reading -> care-platform (care): queued (consent)") == 2
    assert (
        care.count(
            "  filter   reading -> care-platform (care): blocked: no consent for this purpose,"
            " or processing restricted"
        )
        == 1
    )
    assert "ALERT    systolic 190 mm[Hg] is above 180 (critical)" in lines
    assert "resolved systolic back within limits" in lines
    assert lines.count("  filter   alert -> nurse-alerts (alerting): queued (consent)") == 2
    assert lines.count("  sent     reading -> care-platform (consent)") == 2
    assert lines.count("  sent     alert -> nurse-alerts (consent)") == 2
    # The readings' own lines come first, then each one's decisions, as before.
    first = lines.index(next(line for line in readings if "systolic 190" in line))
    assert lines[first + 1].startswith("  filter   reading -> ")
    assert view.counts["reading"] == 3
    assert view.counts["delivered:care-platform"] == 2
    assert view.counts["blocked:care-platform"] == 1
    assert view.counts["alert.raised"] == 1
    assert view.counts["delivered:nurse-alerts"] == 2
