"""An expired token pauses a destination instead of dead-lettering everything; dead letters
can be re-queued in bulk; status says when the last error and the last success happened
(issue 14: 16)."""

from __future__ import annotations

import aiohttp

from tests.hub_harness import Hub, cuff, running_hub
from tests.receivers import Answer
from tests.test_cli_ops import cli, operator_config
from tests.test_damaged_storage import STORED, panels


async def status_of(hub: Hub, name: str) -> dict:
    async with aiohttp.ClientSession(headers=hub.auth()) as http:
        async with http.get(hub.url + "/api/status") as response:
            destinations = (await response.json())["destinations"]
    return next(d for d in destinations if d["name"] == name)


async def test_a_refused_token_pauses_the_destination_and_keeps_its_items_queued(tmp_path):
    async with running_hub(tmp_path, devices=[cuff(STORED)], care_answer=Answer(401)) as hub:
        await hub.waiter.until("stored", 5)
        await hub.waiter.until("retry", destination="care-platform")
        paused = await status_of(hub, "care-platform")
        assert paused["state"] == "paused"
        assert "credentials refused" in paused["paused_reason"]
        assert paused["dead_letters"] == 0 and paused["queued"] >= 1
        assert paused["last_success_at"] is None and paused["last_error_at"] is not None
        metrics_paused = 'health_gateway_destination_paused{destination="care-platform"} 1.0'
        async with aiohttp.ClientSession(headers=hub.auth()) as http:
            async with http.get(hub.url + "/metrics") as response:
                assert metrics_paused in await response.text()

        hub.care.default = Answer(200)  # the operator renewed the token
        await hub.care.wait_for(lambda _r: len(panels(hub)) >= 5)
        await hub.waiter.until("delivered", 5, destination="care-platform")
        resumed = await status_of(hub, "care-platform")
    assert resumed["state"] == "ok" and resumed["paused_reason"] is None
    assert resumed["dead_letters"] == 0 and resumed["queued"] == 0
    assert resumed["last_success_at"] > resumed["last_error_at"]  # both shown, in order
    assert "401" in resumed["last_error"]
    assert len({p["identifier"][0]["value"] for p in panels(hub)}) == 5


async def test_every_dead_letter_of_a_destination_is_requeued_at_once(tmp_path):
    async with running_hub(tmp_path, devices=[cuff(STORED)], care_answer=Answer(422)) as hub:
        await hub.waiter.until("stored", 5)
        await hub.waiter.until_items("dead_letter", 5, destination="care-platform")
        hub.care.default = Answer(200)
        async with aiohttp.ClientSession(headers=hub.auth()) as http:
            async with http.post(
                hub.url + "/api/dead-letters/requeue",
                json={"all": True, "destination": "nurse-alerts"},
            ) as response:
                assert await response.json() == {"requeued": [], "not_found": []}
            requeued = await cli(
                "dead-letters",
                "requeue",
                "--all",
                "--destination",
                "care-platform",
                "--json",
                "--config",
                operator_config(tmp_path, hub),
            )
            assert requeued.code == 0, requeued.err
            assert len(requeued.json()["requeued"]) == 5
            await hub.care.wait_for(lambda _r: len(panels(hub)) >= 5)
            async with http.get(hub.url + "/api/dead-letters") as response:
                assert (await response.json())["dead_letters"] == []
