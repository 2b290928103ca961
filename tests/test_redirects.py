"""Issue 14, item 6: a destination's redirect is never followed. A 307/308 would re-send the
bundle (a person's identifier and values) to an address that never passed the https, loopback
and EEA checks; instead the delivery fails with a reason that says what to do."""

from __future__ import annotations

import asyncio

import aiohttp

from tests.configs import ADULT
from tests.hub_harness import Hub, cuff, running_hub
from tests.receivers import Answer, Receiver

READINGS = [
    {"systolic": 190, "diastolic": 100, "pulse_rate": 90, "measured_at": "2026-11-20T08:00:00"},
    {"systolic": 121, "diastolic": 79, "pulse_rate": 66, "measured_at": "2026-11-20T08:05:00"},
]


async def _dead_letters(hub: Hub, count: int) -> list[dict]:
    """Wait (on the activity feed) until ``count`` items are dead letters; return them."""

    def failed() -> int:
        return sum(e.fields.get("items", 1) for e in hub.waiter.entries if e.kind == "dead_letter")

    async def wait() -> None:
        while failed() < count:
            hub.waiter._changed.clear()
            await hub.waiter._changed.wait()

    await asyncio.wait_for(wait(), 30)
    async with (
        aiohttp.ClientSession() as http,
        http.get(hub.url + "/api/dead-letters", headers=hub.auth()) as response,
    ):
        assert response.status == 200
        return (await response.json())["dead_letters"]


async def test_a_redirect_from_a_destination_is_a_failed_delivery_and_is_never_followed(tmp_path):
    elsewhere = await Receiver(Answer(200)).start()  # another origin: it must hear nothing
    moved_alerts = await Receiver(
        Answer(308, headers={"Location": elsewhere.url + "/hooks/alerts"}, body=b"moved")
    ).start()

    def alerts_redirect(config: dict) -> None:
        config["destinations"][1]["url"] = moved_alerts.url + "/hooks/alerts"

    care_redirect = Answer(307, headers={"Location": elsewhere.url + "/fhir"}, body=b"moved")
    try:
        async with running_hub(
            tmp_path, devices=[cuff(READINGS)], care_answer=care_redirect, tweak=alerts_redirect
        ) as hub:
            # 2 readings to care; the alert raised by the first and resolved by the second.
            letters = await _dead_letters(hub, 4)
            assert sorted(letter["destination"] for letter in letters) == [
                "care-platform",
                "care-platform",
                "nurse-alerts",
                "nurse-alerts",
            ]
            for letter in letters:
                assert letter["status"] in (307, 308)
                assert "redirect not followed" in letter["response"]
                assert "url" in letter["response"]
                assert elsewhere.url not in letter["response"]
            # The origin that redirected was asked; the target of the redirect never was.
            assert hub.care.requests and moved_alerts.requests
            assert elsewhere.requests == []
            assert ADULT.encode() in hub.care.requests[0].body  # what would have leaked
    finally:
        await elsewhere.stop()
        await moved_alerts.stop()
