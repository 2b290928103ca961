"""Consent fails closed (issue 14: 3).

A person withdraws analytics through the API; then the hub loses what it knew about their
choices: the reference key replaced, the database emptied (keys and audit anchor kept), or the
consent rows deleted. On the next start the config's old consents must not come back: care
goes on, nothing reaches analytics, and status says what happened and what the operator must
do. Erasure after a replaced key removes the person's readings stored under the old key too.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest

from tests.configs import ADULT
from tests.hub_harness import Hub, cuff, running_hub
from tests.receivers import Receiver
from tests.test_cli_ops import cli, operator_config
from tests.test_damaged_storage import STORED, panels, second_cuff


def analytics_to(receiver: Receiver, tmp_path: Path) -> Callable[[dict], None]:
    def tweak(config: dict) -> None:
        config["destinations"].append(
            {
                "name": "product-analytics",
                "kind": "analytics",
                "purpose": "analytics",
                "url": receiver.url + "/events",
                "fields": ["kind", "values", "measured_day"],
                "pseudonym_key_file": str(tmp_path / "analytics.key"),
                "linger_s": 0.01,
                "retry_initial_s": 0.05,
                "retry_max_s": 0.2,
            }
        )

    return tweak


async def call(hub: Hub, method: str, path: str, body: dict | None = None) -> dict:
    async with aiohttp.ClientSession(headers=hub.auth()) as http:
        async with http.request(method, hub.url + path, json=body) as response:
            assert response.status == 200, await response.text()
            return await response.json()  # type: ignore[no-any-return]


def replace_reference_key(data: Path) -> None:
    key = data / "keys" / "reference.key"
    key.write_bytes(os.urandom(32))
    key.chmod(0o600)


def empty_database(data: Path) -> None:
    for path in data.glob("gateway.db*"):
        path.unlink()


def delete_consent_rows(data: Path) -> None:
    connection = sqlite3.connect(data / "gateway.db")
    with connection:
        connection.execute("DELETE FROM consents")
    connection.close()


@pytest.mark.parametrize(
    "lose", [replace_reference_key, empty_database, delete_consent_rows], ids=lambda f: f.__name__
)
async def test_a_withdrawal_never_comes_back_when_the_registry_is_lost(tmp_path, lose):
    analytics = await Receiver().start()
    try:
        tweak = analytics_to(analytics, tmp_path)
        async with running_hub(tmp_path, devices=[cuff(STORED[:2])], tweak=tweak) as hub:
            await hub.waiter.until_items("delivered", 2, destination="product-analytics")
            await call(hub, "PUT", f"/api/subjects/{ADULT}/consent", {"analytics": False})
        sent_before = len(analytics.requests)

        lose(tmp_path / "data")

        async with running_hub(tmp_path, devices=[second_cuff()], tweak=tweak) as hub:
            await hub.care.wait_for(lambda _r: len(panels(hub)) >= 1)  # care goes on
            await hub.alerts.wait_for(lambda r: len(r.accepted) >= 1)  # and alerting
            status = await call(hub, "GET", "/api/status")
            [queued] = [d for d in status["destinations"] if d["name"] == "product-analytics"]
            assert queued["queued"] == 0 and len(analytics.requests) == sent_before
            consent = status["consent"]
            assert consent["registry_lost"] and consent["people_waiting"] == 2
            assert "health-gateway consent" in consent["action"]
            shown = await cli("status", "--config", operator_config(tmp_path, hub))
            assert "CONSENT REGISTRY LOST" in shown.out and "health-gateway consent" in shown.out
            ref = hub.gateway.rights.subject_ref(ADULT)
            assert not hub.gateway.consents.is_granted(ref, "analytics")
            assert hub.gateway.consents.is_granted(ref, "care")

            # The operator records the person's choices again: from then on they hold.
            await call(hub, "PUT", f"/api/subjects/{ADULT}/consent", {"analytics": True})
            assert hub.gateway.consents.is_granted(ref, "analytics")
            assert hub.gateway.consents.is_granted(ref, "care")
            after = (await call(hub, "GET", "/api/status"))["consent"]
            assert after["people_waiting"] == 1
    finally:
        await analytics.stop()


async def test_erasure_after_a_replaced_reference_key_removes_every_reading(tmp_path):
    async with running_hub(tmp_path, devices=[cuff(STORED)]) as hub:
        await hub.waiter.until_items("delivered", 5, destination="care-platform")
    replace_reference_key(tmp_path / "data")
    async with running_hub(tmp_path, devices=[second_cuff()]) as hub:
        await hub.care.wait_for(lambda _r: len(panels(hub)) >= 1)
        erased = (await call(hub, "DELETE", f"/api/subjects/{ADULT}/data"))["erased"]
    assert erased["readings"] == 6  # the five under the old key and the new one
    connection = sqlite3.connect(tmp_path / "data" / "gateway.db")
    try:
        assert connection.execute("SELECT COUNT(*) FROM readings").fetchone() == (0,)
        assert connection.execute("SELECT COUNT(*) FROM outbox").fetchone() == (0,)
    finally:
        connection.close()
