"""Window and missing-readings rules through the real gateway, on scripted days.

The real ``Gateway`` runs in the test's loop with its API, a real care receiver and a real
alert receiver on loopback; readings enter where the BLE callback hands them over, with the
devices' own timestamps spread over simulated days. Every webhook is checked with the
independent ``standardwebhooks`` verifier, and the gateway's own count of alerts shows that
nothing else was raised. Missing-readings time is driven through ``Pipeline.check_missing``
with a scripted clock, never by sleeping.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
from standardwebhooks.webhooks import Webhook

from devices.source import Received
from gateway.app import Gateway
from gateway.models import Measurement, Quantity
from gateway.privacy.retention import Retention
from tests.configs import ADULT, CHILD
from tests.gateway_harness import target_for
from tests.hub_harness import Hub, running_hub

SCALE = "C4:7C:8D:6A:10:01"
CUFF = "C4:7C:8D:6A:10:02"
METER = "C4:7C:8D:6A:10:03"
DAY0 = datetime(2026, 11, 2, 8, 0, 0)  # device time: naive, the hub's zone

RISE = {"kind": "weight", "value": "body_weight", "rise": 2.0, "within": "3d", "unit": "kg"}
MEAN = {
    "kind": "blood_pressure",
    "value": "systolic",
    "mean_above": 135,
    "over": "7d",
    "min_readings": 4,
    "times": ["06:00-10:00", "18:00-22:00"],
    "unit": "mm[Hg]",
}
COUNT = {
    "kind": "glucose",
    "value": "glucose",
    "below": 3.0,
    "unit": "mmol/L",
    "count": 3,
    "within": "7d",
    "severity": "critical",
}
MISSING = {
    "kind": "weight",
    "missing_for": "2d",
    "instructions": "Weigh yourself every morning. If you cannot, call the heart failure nurse.",
}
LIMIT = {"kind": "blood_pressure", "value": "systolic", "above": 180, "severity": "critical"}


def day(n: float) -> datetime:
    return DAY0 + timedelta(days=n)


def device(address: str, profile: str) -> dict[str, Any]:
    return {
        "address": address,
        "profile": profile,
        "subject": ADULT,
        "simulated": True,
        "simulation": {"readings": []},
    }


DEVICES = [device(SCALE, "weight"), device(CUFF, "blood_pressure"), device(METER, "glucose")]


def with_rules(*rules: dict[str, Any]) -> Any:
    def tweak(config: dict[str, Any]) -> None:
        config["alert_rules"] = list(rules)

    return tweak


def weight(kg: float, at: datetime) -> Measurement:
    return Measurement(
        kind="weight", values={"body_weight": Quantity(value=kg, unit="kg")}, measured_at=at
    )


def pressure(systolic: float, at: datetime) -> Measurement:
    values = {
        "systolic": Quantity(value=systolic, unit="mm[Hg]"),
        "diastolic": Quantity(value=80, unit="mm[Hg]"),
    }
    return Measurement(kind="blood_pressure", values=values, measured_at=at)


def glucose(mg_dl: float, at: datetime) -> Measurement:
    values = {"glucose": Quantity(value=mg_dl, unit="mg/dL")}
    return Measurement(kind="glucose", values=values, measured_at=at)


async def send(
    gateway: Gateway, address: str, *measurements: Measurement, offset: float | None = None
) -> None:
    """As the BLE source hands readings over (a burst is one batch), and wait until stored."""
    assert gateway.pipeline is not None
    target = target_for(gateway.settings, address)
    now = datetime.now(UTC)
    await gateway.pipeline.ingest(
        [Received(target, "characteristic", m, now, offset) for m in measurements]
    )


def instant(moment: datetime) -> datetime:
    return moment.astimezone(UTC)


def verified_bodies(hub: Hub) -> list[dict[str, Any]]:
    """Every alert webhook received, verified by the standardwebhooks library, by first arrival."""
    verifier = Webhook((hub.settings.gateway.data_dir.parent / "alerts.secret").read_text())
    bodies: dict[str, dict[str, Any]] = {}
    for request in hub.alerts.accepted:
        body = verifier.verify(request.body, request.headers)
        bodies.setdefault(request.headers["webhook-id"], body)
    return list(bodies.values())


async def alerts_received(hub: Hub, count: int) -> list[dict[str, Any]]:
    await hub.alerts.wait_for(lambda r: len({q.headers["webhook-id"] for q in r.accepted}) >= count)
    return verified_bodies(hub)


def of_type(bodies: list[dict[str, Any]], rule_type: str) -> list[tuple[str, str]]:
    return [
        (b["type"], b["data"].get("reading_id") or "")
        for b in bodies
        if b["data"]["rule"].get("type", "limit") == rule_type
    ]


async def test_each_rule_kind_raises_exactly_once_and_resolves(tmp_path):
    tweak = with_rules(RISE, MEAN, COUNT, MISSING)
    async with running_hub(tmp_path, devices=DEVICES, tweak=tweak) as hub:
        gateway = hub.gateway
        assert gateway.pipeline is not None
        for kg, n in [(80.0, 0), (80.4, 1), (81.5, 2), (82.3, 2.5), (82.4, 2.75), (81.0, 3.5)]:
            await send(gateway, SCALE, weight(kg, day(n)))
        for n in range(4):  # mornings and evenings at 150, then at 120
            await send(gateway, CUFF, pressure(150, day(n / 2)))
        await send(gateway, CUFF, pressure(200, day(1.2)))  # 12:48: not a home-series time
        for n in range(4, 8):
            await send(gateway, CUFF, pressure(120, day(n / 2)))
        for mg_dl, n in [(50, 0), (110, 1), (52, 2), (48, 4), (45, 5), (110, 9.5)]:
            await send(gateway, METER, glucose(mg_dl, day(n)))
        last_weight = instant(day(3.5))
        assert await gateway.pipeline.check_missing(last_weight + timedelta(days=1)) == 0
        assert await gateway.pipeline.check_missing(last_weight + timedelta(days=2, hours=1)) == 1
        assert await gateway.pipeline.check_missing(last_weight + timedelta(days=3)) == 0
        await send(gateway, SCALE, weight(81.0, day(6)))  # readings resume

        bodies = await alerts_received(hub, 8)
        async with aiohttp.ClientSession(headers=hub.auth()) as http:
            async with http.get(f"{hub.url}/api/subjects/{ADULT}/summary") as response:
                summary = await response.json()
        assert gateway.pipeline.stats.alerts == 8  # nothing else was raised
    assert len(bodies) == 8
    rise, mean, count, missing = (
        of_type(bodies, t) for t in ("change", "mean", "count", "missing")
    )
    assert [t for t, _ in rise] == ["alert.raised", "alert.resolved"]
    assert [t for t, _ in mean] == ["alert.raised", "alert.resolved"]
    assert [t for t, _ in count] == ["alert.raised", "alert.resolved"]
    assert [t for t, _ in missing] == ["alert.raised", "alert.resolved"]
    raised = {b["data"]["rule"]["type"]: b["data"] for b in bodies if b["type"] == "alert.raised"}
    assert raised["change"]["observed"] == {"measure": "change", "value": 2.3, "unit": "kg"}
    assert len(raised["change"]["readings"]) == 2
    assert raised["change"]["readings"][1]["measured_at"] == instant(day(2.5)).isoformat()
    assert raised["mean"]["observed"]["value"] == 150  # the 200 at noon is not in the series
    assert len(raised["mean"]["readings"]) == 4
    assert raised["count"]["severity"] == "critical" and len(raised["count"]["readings"]) == 3
    assert raised["missing"]["readings"][0]["measured_at"] == last_weight.isoformat()
    assert raised["missing"]["subject"]["identifier"]["value"] == ADULT
    # Nothing is held any more, so the page has nothing to show as noticed.
    assert summary["noticed"] == []
    texts = [a["title"] for a in summary["alerts"] if a["type"] == "alert.raised"]
    assert "Your weight has gone up 2.3 kg in 3 days." in texts
    assert "No weight reading for 2 days or more." in texts


async def test_a_stored_burst_arriving_late_is_judged_at_its_measured_times(tmp_path):
    async with running_hub(tmp_path, devices=DEVICES, tweak=with_rules(RISE)) as hub:
        gateway = hub.gateway
        assert gateway.pipeline is not None
        # Ten days of slow gain downloaded at once: never 2 kg within 3 days of measurement,
        # though 4.5 kg arrived within a second.
        await send(gateway, SCALE, *(weight(80 + 0.5 * i, day(i)) for i in range(10)))
        assert gateway.pipeline.stats.alerts == 0
        # A scale whose clock runs two days fast: shows day 15, was measured on day 13, and
        # the gain is judged against the reading of day 11 (84.5 kg on day 9, then 85 on 11).
        await send(gateway, SCALE, weight(85.0, day(11)))
        await send(gateway, SCALE, weight(87.2, day(15)), offset=2 * 86_400)
        [body] = await alerts_received(hub, 1)
        assert gateway.pipeline.stats.alerts == 1
    data = body["data"]
    assert [r["measured_at"] for r in data["readings"]] == [
        instant(day(11)).isoformat(),
        instant(day(13)).isoformat(),
    ]
    assert data["window"]["to"] == instant(day(13)).isoformat()
    assert data["measured_at"] == day(15).isoformat()  # the device's own stamp, as it sent it


async def test_a_restart_in_the_middle_of_a_window_neither_repeats_nor_forgets(tmp_path):
    tweak = with_rules(RISE, COUNT, LIMIT)
    async with running_hub(tmp_path, devices=DEVICES, tweak=tweak) as hub:
        await send(hub.gateway, METER, glucose(50, day(0)), glucose(50, day(1)))
        await send(hub.gateway, SCALE, weight(80.0, day(0)))
        await send(hub.gateway, CUFF, pressure(190, day(0)))  # a limit alert, still high later
        [first] = await alerts_received(hub, 1)
    async with running_hub(tmp_path, devices=DEVICES, tweak=tweak) as hub:
        assert hub.gateway.pipeline is not None
        await send(hub.gateway, CUFF, pressure(195, day(1)))  # still high: not again
        await send(hub.gateway, METER, glucose(50, day(2)))  # the third low within the week
        await send(hub.gateway, SCALE, weight(82.5, day(2)))  # 2.5 kg since day 0
        second = await alerts_received(hub, 2)
        assert hub.gateway.pipeline.stats.alerts == 2
    async with running_hub(tmp_path, devices=DEVICES, tweak=tweak) as hub:
        assert hub.gateway.pipeline is not None
        await send(hub.gateway, METER, glucose(48, day(3)))
        await send(hub.gateway, SCALE, weight(82.6, day(2.5)))
        await send(hub.gateway, CUFF, pressure(185, day(2)))
        assert hub.gateway.pipeline.stats.alerts == 0
        await send(hub.gateway, CUFF, pressure(130, day(2.5)))
        [resolved] = await alerts_received(hub, 1)
        async with aiohttp.ClientSession(headers=hub.auth()) as http:
            async with http.get(f"{hub.url}/api/subjects/{ADULT}/summary") as response:
                noticed = (await response.json())["noticed"]
    assert (first["type"], first["data"]["rule"]["id"]) == ("alert.raised", "g2")
    assert sorted(b["data"]["rule"]["type"] for b in second) == ["change", "count"]
    assert (resolved["type"], resolved["data"]["rule"]["id"]) == ("alert.resolved", "g2")
    # What is still held, in plain words, with the wording as data for other languages.
    by_id = {n["message"]["id"]: n for n in noticed}
    assert by_id["change.rise"]["text"] == "Your weight has gone up 2.5 kg in 3 days"
    assert by_id["count.at_least"]["text"] == "3 blood sugar readings below 3 mmol/L within 7 days"
    assert by_id["count.at_least"]["severity"] == "critical"
    assert by_id["change.rise"]["message"]["params"]["window_s"] == 3 * 86400


async def test_erasure_removes_the_alert_state_and_the_window_it_remembered(tmp_path):
    async with running_hub(tmp_path, devices=DEVICES, tweak=with_rules(RISE, MISSING)) as hub:
        gateway = hub.gateway
        await send(gateway, SCALE, weight(80.0, day(0)))
        rows = await gateway.database.call(
            lambda c: c.execute("SELECT slot, payload FROM alert_state").fetchall()
        )
        bucket = f"series/weight/body_weight/{int(instant(day(0)).timestamp() // 86400)}"
        assert {slot for slot, _ in rows} == {bucket, "missing/weight"}
        assert all(b"80.0" not in payload and b"body_weight" not in payload for _, payload in rows)
        async with aiohttp.ClientSession(headers=hub.auth()) as http:
            async with http.get(f"{hub.url}/api/subjects/{ADULT}") as response:
                held = await response.json()
            assert {s["slot"] for s in held["alert_state"]} == {
                bucket,
                "missing/weight",
            }
            async with http.delete(f"{hub.url}/api/subjects/{ADULT}/data") as response:
                assert response.status == 200, await response.text()
                erased = await response.json()
        left = await gateway.database.call(
            lambda c: c.execute("SELECT COUNT(*) FROM alert_state").fetchone()[0]
        )
        assert left == 0
        # The 80 kg reading is forgotten in memory too: 82.5 two days later is no rise.
        await send(gateway, SCALE, weight(82.5, day(1)))
        assert gateway.pipeline is not None and gateway.pipeline.stats.alerts == 0
    assert erased["erased"]["alert_state"] == 2


async def test_missing_readings_are_never_watched_for_a_minor(tmp_path):
    def tweak(config: dict[str, Any]) -> None:
        config["alert_rules"] = [MISSING]
        config["subjects"].append(
            {"id": CHILD, "birth_date": "2015-01-01", "consent": {"alerting": True}}
        )
        config["devices"].append({**device("C4:7C:8D:6A:10:09", "weight"), "subject": CHILD})

    async with running_hub(tmp_path, devices=[device(SCALE, "weight")], tweak=tweak) as hub:
        pipeline = hub.gateway.pipeline
        assert pipeline is not None
        start = datetime.now(UTC)
        assert await pipeline.check_missing(start) == 0  # watching begins
        assert await pipeline.check_missing(start + timedelta(days=3)) == 1
        [body] = await alerts_received(hub, 1)
    assert body["data"]["subject"]["identifier"]["value"] == ADULT


async def test_retention_removes_alert_state_not_written_for_the_retention_period(tmp_path):
    async with running_hub(tmp_path, devices=DEVICES, tweak=with_rules(RISE, MISSING)) as hub:
        gateway = hub.gateway
        await send(gateway, SCALE, weight(80.0, day(0)))
        # A reading still queued for the care platform stays until sent (the lean core).
        await hub.waiter.until("delivered", destination="care-platform")
        retention = Retention(gateway.settings.gateway.retention_days, gateway.database)
        assert (await retention.sweep())["alert_state"] == 0  # written just now: kept
        later = time.time() + (gateway.settings.gateway.retention_days + 1) * 86_400
        counts = await retention.sweep(now=later)
        left = await gateway.database.call(
            lambda c: c.execute("SELECT COUNT(*) FROM alert_state").fetchone()[0]
        )
    assert counts["alert_state"] == 2 and counts["readings"] == 1 and left == 0


async def test_an_altered_alert_state_row_is_skipped_and_the_rest_restored(tmp_path):
    tweak = with_rules(RISE, COUNT)
    async with running_hub(tmp_path, devices=DEVICES, tweak=tweak) as hub:
        await send(hub.gateway, METER, glucose(50, day(0)), glucose(50, day(1)))
        await send(hub.gateway, SCALE, weight(80.0, day(0)))

        def alter(connection):  # flip a byte of the weight history's sealed payload
            slot, payload = connection.execute(
                "SELECT slot, payload FROM alert_state WHERE slot LIKE 'series/weight/%'"
            ).fetchone()
            damaged = payload[:-1] + bytes([payload[-1] ^ 1])
            connection.execute("UPDATE alert_state SET payload = ? WHERE slot = ?", (damaged, slot))

        await hub.gateway.database.call(alter)
    async with running_hub(tmp_path, devices=DEVICES, tweak=tweak) as hub:
        assert hub.gateway.pipeline is not None
        await send(hub.gateway, SCALE, weight(82.5, day(2)))  # the 80 kg day is lost: no rise
        await send(hub.gateway, METER, glucose(50, day(2)))  # the glucose window is intact
        [body] = await alerts_received(hub, 1)
        assert hub.gateway.pipeline.stats.alerts == 1
    assert body["data"]["rule"]["type"] == "count"
