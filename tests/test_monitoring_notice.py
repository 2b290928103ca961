"""The care team is told when monitoring stops: one signed Standard Webhooks event per change,
verified with the independent ``standardwebhooks`` implementation."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest
from standardwebhooks.webhooks import Webhook

from gateway.app import Gateway
from gateway.privacy.audit import entries
from gateway.settings import parse_settings
from tests.configs import ADULT, free_port, webhook_secret
from tests.gateway_harness import ActivityWatcher, queued, running_gateway
from tests.receivers import Answer, Receiver

SYSTEM = "http://electronichealth.se/identifier/personnummer"


@contextlib.asynccontextmanager
async def hub(tmp_path) -> AsyncIterator[tuple[Gateway, Receiver, str, ActivityWatcher]]:
    secret = webhook_secret()
    (tmp_path / "alerts.secret").write_text(secret)
    nurse = await Receiver(Answer(204, body=b"")).start()
    settings = parse_settings(
        {
            "gateway": {
                "data_dir": str(tmp_path / "data"),
                "log_level": "error",
                "api": {"listen": f"127.0.0.1:{free_port()}"},
            },
            "subjects": [
                {
                    "id": ADULT,
                    "birth_date": "1970-01-01",
                    "consent": {"care": True, "alerting": True, "research": True},
                }
            ],
            "destinations": [
                {
                    "name": "nurse",
                    "kind": "webhook",
                    "purpose": "alerting",
                    "url": nurse.url + "/hooks/alerts",
                    "secret_file": str(tmp_path / "alerts.secret"),
                    "retry_initial_s": 0.05,
                }
            ],
        }
    )
    try:
        async with running_gateway(settings) as gateway:
            yield gateway, nurse, secret, ActivityWatcher(gateway.activity)
    finally:
        await nurse.stop()


async def notices_queued(gateway: Gateway) -> list[dict]:
    ref = gateway.rights.subject_ref(ADULT)
    found = await gateway.database.call(lambda c: entries(c, subject_ref=ref, limit=1000))
    return [e.data for e in found if e.event == "monitoring.stopped.queued"]


ACTIONS = {
    "withdrawal": lambda rights: rights.change_consent(
        ADULT, {"alerting": False, "care": False}, source="api"
    ),
    "restriction": lambda rights: rights.set_restriction(ADULT, True, source="api"),
    "erasure": lambda rights: rights.erase(ADULT, source="api"),
}
REASONS = {
    "withdrawal": "consent_withdrawn",
    "restriction": "processing_restricted",
    "erasure": "data_erased",
}


@pytest.mark.parametrize("action", list(ACTIONS))
async def test_a_withdrawal_restriction_or_erasure_sends_one_signed_monitoring_stopped(
    tmp_path, action
):
    async with hub(tmp_path) as (gateway, nurse, secret, watcher):
        await ACTIONS[action](gateway.rights)
        await nurse.wait_for(lambda r: len(r.accepted) >= 1, timeout=10)
        await asyncio.wait_for(watcher.until("delivered", 1), 10)
        assert await queued(gateway, "nurse") == []  # nothing else waits to be sent
        queued_notices = await notices_queued(gateway)
    [request] = nurse.accepted
    event = Webhook(secret).verify(request.body, request.headers)  # raises if not signed right
    assert event["type"] == "monitoring.stopped"
    data = event["data"]
    assert data["subject"] == {"identifier": {"system": SYSTEM, "value": ADULT}}
    assert data["reason"] == REASONS[action]
    assert data["purposes_stopped"] == ["alerting", "care"]  # research is not the care team's
    assert set(data) == {"notice_id", "subject", "reason", "purposes_stopped", "stopped_at"}
    assert request.headers["webhook-id"].startswith(data["notice_id"])
    assert len(queued_notices) == 1  # audited, once
    assert queued_notices[0]["legal_basis"] == "care_continuity"


async def test_a_change_that_stops_nothing_the_care_team_receives_sends_nothing(tmp_path):
    async with hub(tmp_path) as (gateway, nurse, _secret, _watcher):
        await gateway.rights.change_consent(ADULT, {"research": False}, source="api")
        await gateway.rights.change_consent(ADULT, {"care": True}, source="api")  # no change
        assert await queued(gateway, "nurse") == []
        assert await notices_queued(gateway) == []
    assert nurse.requests == []
