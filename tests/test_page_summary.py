"""What the page's summary says: the 30-day trend per day, alerts as episodes with what to do,
devices that need attention, and nothing of a person's values left after erasure."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import aiohttp
import pytest

from gateway.api.trends import Limit, daily, direction, sentence
from gateway.i18n import Translator
from gateway.settings import ConfigError, parse_settings
from gateway.storage.database import Priority
from tests.configs import ADULT
from tests.hub_harness import cuff, running_hub

STOCKHOLM = ZoneInfo("Europe/Stockholm")


def epoch(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def test_readings_are_grouped_by_the_hubs_local_day_with_their_range():
    points = [
        (epoch("2026-11-20T07:00:00+00:00"), 120.0),
        (epoch("2026-11-20T19:00:00+00:00"), 140.0),
        (epoch("2026-11-20T23:30:00+00:00"), 150.0),  # 00:30 on the 21st in Stockholm
    ]
    days = daily(points, STOCKHOLM)
    assert [(d.day.isoformat(), d.mean, d.low, d.high, d.count) for d in days] == [
        ("2026-11-20", 130.0, 120.0, 140.0, 2),
        ("2026-11-21", 150.0, 150.0, 150.0, 1),
    ]
    assert len(daily(points, UTC)) == 1  # all on the 20th in UTC


def days_of(values: list[float]) -> list:
    start = epoch("2026-11-01T12:00:00+00:00")
    return daily([(start + i * 86400, v) for i, v in enumerate(values)], UTC)


def test_the_trend_compares_the_earlier_days_with_the_later_ones():
    assert direction(days_of([130, 131, 129])) is None  # too few days to say
    assert direction(days_of([150, 148, 140, 135]))[0] == "down"
    assert direction(days_of([120, 122, 131, 135]))[0] == "up"
    assert direction(days_of([130, 133, 129, 131, 132]))[0] == "steady"
    en = Translator("en", UTC)
    text = sentence(
        en,
        "Upper value (systolic)",
        "mmHg",
        days_of([150, 190, 140, 135]),
        [Limit(180, "above", "")],
    )
    assert text == (
        "Upper value (systolic) has gone down: 137.5 mmHg on average lately, 170 mmHg before."
        " On 1 day a reading was outside your limits."
    )
    assert sentence(en, "Weight", "kg", days_of([80]), []) == (
        "Weight: only 1 day with readings, too few to see a trend yet."
    )
    sv = Translator("sv", UTC)
    assert sentence(sv, "Vikt", "kg", days_of([80, 80.2, 80.1, 79.9]), []).startswith(
        "Vikt har varit ungefär oförändrat: i snitt 80 kg"
    )


HIGH, NORMAL = 191, 122


def bp(systolic: int, day: int) -> dict:
    return {
        "systolic": systolic,
        "diastolic": 90,
        "pulse_rate": 70,
        "measured_at": f"2026-11-{day:02d}T08:00:00",
    }


def instructions_by_severity(config: dict) -> None:
    config["alert_rules"].append(
        {"kind": "blood_pressure", "value": "diastolic", "above": 100, "severity": "warning"}
    )
    config["alert_instructions"] = {
        "critical": {"en": "Your nurse will call you today.", "sv": "Sjuksköterskan ringer."},
        "warning": "Take a new measurement tomorrow morning.",
    }


async def summary_of(hub, language: str = "en") -> dict:
    async with aiohttp.ClientSession(headers=hub.auth()) as http:
        async with http.get(f"{hub.url}/api/subjects/{ADULT}/summary?lang={language}") as r:
            assert r.status == 200
            return await r.json()


async def test_alerts_are_episodes_open_first_each_with_the_instructions_for_its_severity(
    tmp_path,
):
    readings = [bp(HIGH, 20), bp(NORMAL, 21), bp(HIGH, 22) | {"diastolic": 104}]
    devices = [cuff(readings, interval_s=0.1)]
    async with running_hub(tmp_path, devices=devices, tweak=instructions_by_severity) as hub:
        await hub.waiter.until("alert.raised", 3)  # systolic twice, diastolic once
        await hub.waiter.until("alert.resolved", 1)
        summary = await summary_of(hub)
        swedish = await summary_of(hub, "sv")
    alerts = summary["alerts"]
    # Open first (the two raised by the last reading, in either order), then the one that is over.
    assert sorted((a["open"], a["severity"]) for a in alerts[:2]) == [
        (True, "critical"),
        (True, "warning"),
    ]
    assert (alerts[2]["open"], alerts[2]["severity"]) == (False, "critical")
    by_severity = {(a["open"], a["severity"]): a for a in alerts}
    assert by_severity[(True, "critical")]["instructions"] == "Your nurse will call you today."
    assert by_severity[(True, "critical")]["detail"] == (
        "Your reading: 191 mmHg. Your limit: 180 mmHg."
    )
    assert by_severity[(True, "warning")]["instructions"] == (
        "Take a new measurement tomorrow morning."
    )
    resolved = by_severity[(False, "critical")]
    assert resolved["instructions"] == "" and resolved["resolved_when"].startswith(
        "Back within your limits today at"
    )
    open_critical = next(a for a in swedish["alerts"] if a["open"] and a["severity"] == "critical")
    assert open_critical["instructions"] == "Sjuksköterskan ringer."


async def test_a_low_battery_and_a_device_unheard_for_days_are_said_in_plain_words(tmp_path):
    low = cuff([bp(NORMAL, 20)], interval_s=0.1)
    low["simulation"]["battery_level"] = 15
    async with running_hub(tmp_path, devices=[low]) as hub:
        await hub.waiter.until("stored")
        summary = await summary_of(hub)
        [device] = summary["devices"]
        assert [t["code"] for t in device["trouble"]] == ["battery_low"]
        assert device["trouble"][0]["text"] == (
            "The battery is low (15 %). Please change or charge it soon."
        )
        assert device["hint"] == ""  # not "that is normal" when something needs doing

        # Four days on, with nothing heard since: the device is missed.
        context = hub.gateway.api.context
        ref = hub.gateway.rights.subject_ref(ADULT)
        later = time.time() + 4 * 86400
        held = await hub.gateway.database.call(
            lambda c: context.summaries.read(c, ref, later), priority=Priority.INTAKE
        )
        seen = (datetime.now(UTC)).isoformat()
        built = context.summaries.build(
            ADULT,
            held,
            language="sv",
            restricted=False,
            devices=[
                {
                    "name": "Blodtrycksmätare",
                    "profile": "blood_pressure",
                    "connected": False,
                    "last_seen": seen,
                    "battery_level": 80,
                }
            ],
            alerts=[],
            now=later,
        )
    [missed] = built["devices"]
    assert [t["code"] for t in missed["trouble"]] == ["unseen"]
    assert missed["trouble"][0]["text"].startswith("Hubben har inte hört av den på 4 dagar.")


async def test_erasure_leaves_no_alert_value_in_the_summary_or_in_memory(tmp_path):
    async with running_hub(tmp_path, devices=[cuff([bp(HIGH, 20)], interval_s=0.1)]) as hub:
        await hub.waiter.until("alert.raised")
        before = await summary_of(hub)
        assert "191" in before["alerts"][0]["detail"]
        async with aiohttp.ClientSession(headers=hub.auth()) as http:
            async with http.delete(f"{hub.url}/api/subjects/{ADULT}/data") as response:
                assert response.status == 200
        after = await summary_of(hub)
        ref = hub.gateway.rights.subject_ref(ADULT)
        assert hub.gateway.api.context.alerts.for_subject(ref) == []
    assert after["alerts"] == [] and after["latest"] == [] and after["trends"] == []
    assert after["monitoring"]["stopped"] == ["care", "alerting"]
    assert "191" not in str(after)


def test_an_unknown_time_zone_is_refused_with_the_key_named():
    with pytest.raises(ConfigError, match=r"gateway.time_zone: 'Mars/Olympus' is not a time zone"):
        parse_settings({"gateway": {"data_dir": "/tmp/x", "time_zone": "Mars/Olympus"}})
    assert parse_settings({"gateway": {"data_dir": "/tmp/x"}}).gateway.locale == "sv"
