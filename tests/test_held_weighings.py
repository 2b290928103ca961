"""A shared scale's ambiguous weighing is kept until an operator says whose it is.

The real gateway with its real SQLite database and operator API on loopback, the simulated
Mi Scale broadcasting through bleak: a weighing both people's ranges hold is kept sealed across
a restart (and a kill -9 right after it was stored), listed, and once assigned reaches the care
platform as that person's with its measured time, audited; a discarded one is gone; a second
decision is refused and changes nothing; nothing personal reaches the logs.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path
from typing import Any

import aiohttp

from gateway.privacy.retention import Retention
from gateway.storage.schema import SCHEMA
from tests.configs import ADULT, REFUSER, write_config
from tests.conftest import CarePlatform
from tests.hub_harness import Hub, hub_config, running_hub
from tests.receivers import Receiver
from tests.test_cli_ops import cli, operator_config
from tests.test_e2e import GatewayProcess

SCALE = "DF:DE:44:82:14:EF"
AMBIGUOUS = 75.5  # inside both people's ranges
WEIGHT = "29463-7"  # LOINC body weight


def shared_scale(weights: list[float]) -> dict[str, Any]:
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
        "simulation": {"interval_s": 0.05, "readings": [{"body_weight": w} for w in weights]},
    }


async def ask(hub: Hub, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    async with (
        aiohttp.ClientSession() as http,
        http.request(method, hub.url + path, json=body, headers=hub.auth()) as response,
    ):
        return response.status, await response.json()


def weights_for(care: Receiver) -> list[tuple[str, float, str]]:
    """(person, body weight, effective time) of every weight Observation the platform got."""
    return [
        (
            entry["resource"]["subject"]["identifier"]["value"],
            entry["resource"]["valueQuantity"]["value"],
            entry["resource"]["effectiveDateTime"],
        )
        for request in care.requests
        if request.body
        for entry in request.json().get("entry", [])
        if entry["resource"]["resourceType"] == "Observation"
        and any(c["code"] == WEIGHT for c in entry["resource"]["code"]["coding"])
    ]


async def test_a_weighing_kept_across_a_kill_9_once_assigned_reaches_care_as_that_persons(
    tmp_path: Path, care_platform: CarePlatform
) -> None:
    # First life: the gateway as a process, killed with SIGKILL once the weighing is kept.
    care = await Receiver().start()
    config = hub_config(tmp_path, care.url + "/fhir", care.url + "/hooks/alerts")
    config["devices"] = [shared_scale([AMBIGUOUS])]
    process = GatewayProcess(write_config(tmp_path / "gateway.toml", config))
    await process.start()
    try:
        await process.wait_for_event(lambda e: e.get("event") == "weighing_kept")
    finally:
        process.kill()
        await process.stop()
        await care.stop()
    first_log = "\n".join(process.lines)

    # Second life, in this process: the scale does not send it again (handed over before); the
    # other person weighs (theirs: they consent to no care platform, so nothing is sent).
    async with running_hub(
        tmp_path, devices=[shared_scale([60.0])], care_platform=care_platform.receiver()
    ) as hub:
        await hub.waiter.until("stored", 1)
        status, listing = await ask(hub, "GET", "/api/held-weighings")
        assert status == 200
        [held] = listing["held_weighings"]
        assert (held["device"], held["profile"], held["users"]) == (
            "device-1",
            "xiaomi_scale",
            [1, 2],
        )
        assert held["values"] == {"body_weight": {"value": AMBIGUOUS, "unit": "kg"}}
        _, snapshot = await ask(hub, "GET", "/api/status")
        assert snapshot["devices"][0]["held_ambiguous"] == 1  # waiting, across the restart

        status, assigned = await ask(
            hub, "POST", f"/api/held-weighings/{held['id']}/assign", {"user": 1}
        )
        assert status == 200 and assigned["decision"] == "assigned"
        await hub.care.wait_for(lambda care: any(w[1] == AMBIGUOUS for w in weights_for(care)))

        status, again = await ask(
            hub, "POST", f"/api/held-weighings/{held['id']}/assign", {"user": 2}
        )
        assert status == 409 and "already assigned" in again["error"]
        _, after = await ask(hub, "GET", "/api/held-weighings")
        _, snapshot = await ask(hub, "GET", "/api/status")
        _, audit = await ask(hub, "GET", "/api/audit?event=held_weighing.assigned")
        _, access = await ask(hub, "GET", f"/api/subjects/{ADULT}")
        stats = hub.gateway.pipeline.stats if hub.gateway.pipeline else None
        delivered = weights_for(hub.care)

    assert after["held_weighings"] == [] and snapshot["devices"][0]["held_ambiguous"] == 0
    # The care platform has the weighing once, as the adult's, stamped with the scale's time
    # (the scale's stamp, not the moment the operator decided).
    mine = [w for w in delivered if w[1] == AMBIGUOUS]
    assert [(who, value) for who, value, _ in mine] == [(ADULT, AMBIGUOUS)]
    if care_platform.medplum is not None:  # and the real FHIR server stored it once, as hers
        stored_there = [
            o
            for o in await care_platform.medplum.search("Observation")
            if o.get("valueQuantity", {}).get("value") == AMBIGUOUS
        ]
        assert [o["subject"]["identifier"]["value"] for o in stored_there] == [ADULT]
        assert stored_there[0]["effectiveDateTime"] == mine[0][2]
    [stored] = [r for r in access["readings"] if r["values"]["body_weight"]["value"] == AMBIGUOUS]
    assert held["measured_at"] is not None and stored["measured_at"] == held["measured_at"]
    assert stored["received_at"] == held["received_at"]  # when the scale sent it, not later
    assert stats is not None and (stats.readings, stats.duplicates) == (2, 0)
    [entry] = audit["entries"]
    assert entry["data"]["held_id"] == held["id"] and entry["subject_ref"] is not None
    assert entry["data"]["reading_id"] == assigned["reading_id"]
    # Nothing personal in the log of the life that kept it: no weight, no person, no address.
    for personal in (str(AMBIGUOUS), ADULT, REFUSER, SCALE):
        assert personal not in first_log


async def test_a_discarded_weighing_is_gone_audited_and_a_second_decision_changes_nothing(
    tmp_path: Path,
) -> None:
    async with running_hub(tmp_path, devices=[shared_scale([AMBIGUOUS, 82.4])]) as hub:
        await hub.waiter.until("stored", 1)
        await hub.waiter.until("weighing_held", 1)
        _, listing = await ask(hub, "GET", "/api/held-weighings")
        [held] = listing["held_weighings"]
        path = f"/api/held-weighings/{held['id']}"

        assert (await ask(hub, "POST", path + "/assign", {"user": 7}))[0] == 400  # not theirs
        assert (await ask(hub, "POST", path + "/assign", {"user": "1"}))[0] == 400
        status, missing = await ask(hub, "POST", "/api/held-weighings/99999/discard")
        assert status == 404 and "no held weighing 99999" in missing["error"]
        assert (await ask(hub, "POST", "/api/held-weighings/x/discard"))[0] == 404
        assert (await ask(hub, "GET", "/api/held-weighings"))[1] == listing  # nothing changed

        status, discarded = await ask(hub, "POST", path + "/discard")
        assert status == 200 and discarded == {"id": held["id"], "decision": "discarded"}
        status, again = await ask(hub, "POST", path + "/discard")
        assert status == 409 and "already discarded" in again["error"]
        status, late = await ask(hub, "POST", path + "/assign", {"user": 1})
        assert status == 409

        _, after = await ask(hub, "GET", "/api/held-weighings")
        _, audit = await ask(hub, "GET", "/api/audit?event=held_weighing.discarded")
        sealed = await hub.gateway.database.call(
            lambda c: c.execute("SELECT decision, length(payload) FROM held_weighings").fetchall()
        )
        delivered = weights_for(hub.care)

    assert after["held_weighings"] == []
    assert sealed == [("discarded", 0)]  # the values are gone from the database
    [entry] = audit["entries"]
    assert entry["data"]["held_id"] == held["id"] and entry["subject_ref"] is None
    assert all(value != AMBIGUOUS for _, value, _ in delivered)


async def test_a_weighing_nobody_decides_on_goes_with_the_readings_retention(
    tmp_path: Path,
) -> None:
    async with running_hub(tmp_path, devices=[shared_scale([AMBIGUOUS])]) as hub:
        await hub.waiter.until("weighing_held", 1)
        held = hub.gateway.pipeline.held if hub.gateway.pipeline else None
        assert held is not None
        days = hub.settings.gateway.retention_days
        retention = Retention(days, hub.gateway.database, held)
        kept = await retention.sweep()  # not yet old
        later = time.time() + (days + 1) * 86_400
        expired = await retention.sweep(now=later)
        _, listing = await ask(hub, "GET", "/api/held-weighings")
        _, snapshot = await ask(hub, "GET", "/api/status")
        async with (
            aiohttp.ClientSession() as http,
            http.get(hub.url + "/metrics", headers=hub.auth()) as response,
        ):
            metrics = await response.text()

    assert kept["held_weighings"] == 0 and expired["held_weighings"] == 1
    assert listing["held_weighings"] == [] and snapshot["devices"][0]["held_ambiguous"] == 0
    assert "health_gateway_held_weighings_expired_total 1.0" in metrics
    assert (
        'health_gateway_weighings_waiting{device="device-1",profile="xiaomi_scale"} 0.0' in metrics
    )


async def test_the_cli_lists_assigns_and_refuses_a_second_decision(tmp_path: Path) -> None:
    async with running_hub(tmp_path, devices=[shared_scale([AMBIGUOUS])]) as hub:
        await hub.waiter.until("weighing_held", 1)
        config = operator_config(tmp_path, hub)
        listed = await cli("held", "--config", config)
        assigned = await cli("held", "assign", "1", "--user", "1", "--config", config)
        refused = await cli("held", "discard", "1", "--config", config)
        usage = await cli("held", "assign", "1", "--config", config)
        await hub.care.wait_for(lambda care: any(w[1] == AMBIGUOUS for w in weights_for(care)))

    table = listed.out.splitlines()
    assert listed.code == 0 and table[0].split()[:3] == ["ID", "DEVICE", "MEASURED"]
    assert table[1].split()[:2] == ["1", "device-1"] and "body_weight 75.5 kg" in table[1]
    assert assigned.code == 0 and "assigned to user 1" in assigned.out
    assert refused.code == 1 and "409" in refused.err and "already assigned" in refused.err
    assert usage.code == 2 and "--user" in usage.err


def test_a_database_made_before_held_weighings_gets_the_table_when_opened(tmp_path: Path) -> None:
    path = tmp_path / "gateway.db"
    old = sqlite3.connect(path)
    # Every table of schema 2, as the gateway before held weighings made them.
    old.executescript(SCHEMA.split("-- A shared scale's weighing")[0])
    old.execute("PRAGMA user_version=2")
    old.close()

    async def open_it() -> list[str]:
        from gateway.storage.database import Database

        database = Database(path)
        await database.open()
        try:
            return await database.call(
                lambda c: [
                    row[1] for row in c.execute("PRAGMA table_info(held_weighings)").fetchall()
                ]
            )
        finally:
            await database.close()

    columns = asyncio.run(open_it())
    assert columns == ["id", "held_key", "received_at", "decision", "decided_at", "payload"]


def test_a_database_holding_only_a_held_weighing_counts_as_sealed_data(tmp_path: Path) -> None:
    """Then a missing storage key is a lost key (the gateway refuses to mint a new one), not a
    fresh start that would leave the weighing unreadable."""
    from gateway.storage.database import holds_sealed_data

    path = tmp_path / "gateway.db"
    connection = sqlite3.connect(path)
    connection.executescript(SCHEMA)
    assert not holds_sealed_data(path)
    connection.execute(
        "INSERT INTO held_weighings (held_key, received_at, payload) VALUES ('h-1', '2026', x'00')"
    )
    connection.commit()
    connection.close()
    assert holds_sealed_data(path)
