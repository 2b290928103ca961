"""Damaged storage never stops delivery (issue 14: 2 and 11).

A gateway stores readings while the care platform refuses them, stops, and its database or
key is then damaged as a failing SD card or a careless restore would: one flipped bit in one
stored reading, or a storage key replaced by another. The next start must deliver everything
else, alert as before, and keep the bad rows aside where status, metrics, the person's access
answer and the audit log show them. A key that is simply gone is a clear error at start.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import aiohttp

from tests.configs import ADULT, write_config
from tests.hub_harness import Hub, cuff, hub_config, running_hub
from tests.receivers import Answer
from tests.test_cli_ops import cli, operator_config

STORED = [
    {
        "systolic": 120 + i,
        "diastolic": 80,
        "pulse_rate": 60,
        "measured_at": f"2026-11-20T08:0{i}:00",
    }
    for i in range(5)
]
# After the damage: a reading over the alert rule's limit, so an alert must go out.
LATER_ALERT = [
    {"systolic": 195, "diastolic": 100, "pulse_rate": 90, "measured_at": "2026-11-20T09:00:00"}
]


def second_cuff() -> dict:
    """Another cuff of the same person (a simulated device remembers what it has sent)."""
    return {**cuff(LATER_ALERT), "address": "C4:7C:8D:6A:00:02"}


def panels(hub: Hub) -> list[dict]:
    return [
        e["resource"]
        for r in hub.care.accepted
        for e in r.json()["entry"]
        if e["resource"].get("code", {}).get("coding", [{}])[0].get("code") == "150020"
    ]


async def store_while_the_platform_refuses(tmp_path: Path) -> None:
    async with running_hub(tmp_path, devices=[cuff(STORED)], care_answer=Answer(503)) as hub:
        await hub.waiter.until("stored", 5)  # stored and queued in one transaction
        await hub.waiter.until("retry", destination="care-platform")


def flip_one_bit_of_one_reading(database: Path) -> str:
    connection = sqlite3.connect(database)
    try:
        reading_id, payload = connection.execute(
            "SELECT reading_id, payload FROM readings ORDER BY measured_at LIMIT 1"
        ).fetchone()
        damaged = bytearray(payload)
        damaged[len(damaged) // 2] ^= 0x04
        with connection:
            connection.execute(
                "UPDATE readings SET payload = ? WHERE reading_id = ?", (bytes(damaged), reading_id)
            )
    finally:
        connection.close()
    return str(reading_id)


async def get_json(hub: Hub, path: str) -> dict:
    async with aiohttp.ClientSession(headers=hub.auth()) as http:
        async with http.get(hub.url + path) as response:
            assert response.status == 200, await response.text()
            return await response.json()  # type: ignore[no-any-return]


async def get_text(hub: Hub, path: str) -> str:
    async with aiohttp.ClientSession(headers=hub.auth()) as http:
        async with http.get(hub.url + path) as response:
            assert response.status == 200, await response.text()
            return await response.text()


async def test_one_flipped_bit_is_quarantined_and_everything_else_is_delivered(tmp_path):
    await store_while_the_platform_refuses(tmp_path)
    damaged = flip_one_bit_of_one_reading(tmp_path / "data" / "gateway.db")

    async with running_hub(tmp_path, devices=[second_cuff()]) as hub:
        await hub.waiter.until("quarantined", destination="care-platform")
        await hub.care.wait_for(lambda _r: len(panels(hub)) >= 5)  # 4 stored + the new one
        await hub.alerts.wait_for(lambda r: len(r.accepted) >= 1)  # alerts keep flowing

        status = await get_json(hub, "/api/status")
        [care] = [d for d in status["destinations"] if d["name"] == "care-platform"]
        assert care["quarantined"] == 1 and care["queued"] == 0 and care["dead_letters"] == 0
        metrics = await get_text(hub, "/metrics")
        assert 'health_gateway_quarantined{destination="care-platform"} 1.0' in metrics

        access = await get_json(hub, f"/api/subjects/{ADULT}")  # not a 500 (issue 14: 11)
        assert [u["reading_id"] for u in access["unreadable_readings"]] == [damaged]
        assert len(access["readings"]) == 5  # the other four and the new one
        assert [q["reading_id"] for q in access["quarantined"]] == [damaged]
        summary = await get_json(hub, f"/api/subjects/{ADULT}/summary")
        assert summary["unreadable_readings"] == 1 and summary["quarantined"] == 1
        assert "(1) could not be read" in summary["storage_notice"]  # what the page shows
        audit = await get_json(hub, "/api/audit?event=quarantined")
        [entry] = [e for e in audit["entries"] if e["event"] == "quarantined"]
        assert entry["data"]["reading_id"] == damaged
        assert "failed authentication" in entry["data"]["reason"]
    assert len({p["identifier"][0]["value"] for p in panels(hub)}) == 5

    kept = sqlite3.connect(tmp_path / "data" / "gateway.db")
    try:  # kept, not dropped: the row and the reading are still there
        assert kept.execute("SELECT COUNT(*) FROM quarantine").fetchone()[0] == 1
        assert kept.execute(
            "SELECT COUNT(*) FROM readings WHERE reading_id = ?", (damaged,)
        ).fetchone() == (1,)
    finally:
        kept.close()


async def test_a_replaced_storage_key_quarantines_the_old_rows_and_new_readings_flow(tmp_path):
    await store_while_the_platform_refuses(tmp_path)
    key = tmp_path / "data" / "keys" / "storage.key"
    key.write_bytes(os.urandom(32))
    key.chmod(0o600)

    async with running_hub(tmp_path, devices=[second_cuff()]) as hub:
        await hub.waiter.until_items("quarantined", 5, destination="care-platform")
        await hub.care.wait_for(lambda _r: len(panels(hub)) >= 1)
        await hub.alerts.wait_for(lambda r: len(r.accepted) >= 1)
        status = await get_json(hub, "/api/status")
        [care] = [d for d in status["destinations"] if d["name"] == "care-platform"]
        assert care["quarantined"] == 5 and care["queued"] == 0
        access = await get_json(hub, f"/api/subjects/{ADULT}")
        assert len(access["unreadable_readings"]) == 5 and len(access["readings"]) == 1
    [systolic] = [
        c["valueQuantity"]["value"]
        for p in panels(hub)
        for c in p["component"]
        if c["code"]["coding"][0]["code"] == "150021"
    ]
    assert systolic == 195


async def test_a_missing_storage_key_with_data_present_is_one_line_and_no_new_key(tmp_path):
    await store_while_the_platform_refuses(tmp_path)
    key = tmp_path / "data" / "keys" / "storage.key"
    key.unlink()
    config = tmp_path / "run.toml"
    write_config(config, hub_config(tmp_path, "http://127.0.0.1:9/fhir", "http://127.0.0.1:9/h"))
    result = await cli("run", "--config", str(config))
    assert result.code == 1
    assert result.err.count("\n") == 1, result.err
    assert "storage key is missing" in result.err and "restore the key file" in result.err
    assert "Traceback" not in result.err
    assert not key.exists()


async def test_quarantined_items_are_delivered_once_the_right_key_is_restored(tmp_path):
    await store_while_the_platform_refuses(tmp_path)
    key = tmp_path / "data" / "keys" / "storage.key"
    original = key.read_bytes()
    key.write_bytes(os.urandom(32))  # a careless restore
    async with running_hub(tmp_path) as hub:
        await hub.waiter.until_items("quarantined", 5, destination="care-platform")
    key.write_bytes(original)  # the right key found again

    async with running_hub(tmp_path) as hub:
        requeued = await cli(
            "quarantine", "requeue", "--json", "--config", operator_config(tmp_path, hub)
        )
        assert requeued.code == 0, requeued.err
        assert requeued.json() == {"requeued": 5}
        await hub.care.wait_for(lambda _r: len(panels(hub)) >= 5)
        status = await get_json(hub, "/api/status")
        [care] = [d for d in status["destinations"] if d["name"] == "care-platform"]
        assert care["quarantined"] == 0 and care["queued"] == 0
    assert len({p["identifier"][0]["value"] for p in panels(hub)}) == 5
