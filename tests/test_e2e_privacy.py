"""End to end, privacy: three people at home and what each destination actually receives.

A consenting adult, an adult who refused analytics, and a child; simulated cuffs through the real
BLE stack; the gateway as a subprocess; real loopback receivers. Assertions are on the bytes
received and on the gateway's own log output.
"""

from __future__ import annotations

import base64
import hashlib
import re

import pytest
from fhir.resources.R4B.bundle import Bundle

from tests.configs import ADULT, CHILD, REFUSER, base_config, webhook_secret, write_config
from tests.receivers import Receiver
from tests.test_e2e import ADDRESSES, BIRTH_DATES, GatewayProcess, simulated_cuff

COMPANY = "5591464838"
PSEUDONYM = re.compile(r"^k1\.[A-Za-z0-9_-]{22}$")
FIELDS = ["kind", "values", "measured_day", "age_band", "subject", "company"]


def plain_hashes(text: str) -> list[bytes]:
    found = []
    for algorithm in ("md5", "sha1", "sha256"):
        digest = hashlib.new(algorithm, text.encode()).digest()
        found += [
            digest.hex().encode(),
            base64.b64encode(digest).rstrip(b"="),
            base64.urlsafe_b64encode(digest).rstrip(b"="),
        ]
    return found


@pytest.fixture
async def receivers():
    started = [await Receiver().start() for _ in range(3)]
    yield started
    for receiver in started:
        await receiver.stop()


async def test_each_destination_gets_only_what_its_purpose_allows(tmp_path, receivers):
    care, analytics, alerts = receivers
    (tmp_path / "alerts.secret").write_text(webhook_secret())
    (tmp_path / "analytics.token").write_text("analytics-t0ken\n")
    config = base_config(
        tmp_path / "data",
        tmp_path / "alerts.secret",
        care.url + "/fhir",
        alerts.url + "/hooks/alerts",
    )
    config["gateway"]["log_level"] = "info"
    config["subjects"][0]["consent"]["analytics"] = True
    config["subjects"] += [
        {
            "id": REFUSER,
            "birth_date": BIRTH_DATES[REFUSER],
            "consent": {"care": True, "alerting": True, "analytics": False},
        },
        {
            "id": CHILD,
            "birth_date": BIRTH_DATES[CHILD],
            "consent": {"care": True, "alerting": True, "analytics": True},
        },
    ]
    config["destinations"].append(
        {
            "name": "product-analytics",
            "kind": "analytics",
            "purpose": "analytics",
            "url": analytics.url + "/v1/events",
            "fields": FIELDS,
            "region": "SE",
            "round": {"systolic": 5},
            "linger_s": 0.05,
            "pseudonym_key_file": str(tmp_path / "analytics.key"),
            "token_file": str(tmp_path / "analytics.token"),
            "retry_initial_s": 0.05,
            "retry_max_s": 0.2,
        }
    )
    readings = [
        {"systolic": 131, "diastolic": 85, "pulse_rate": 70, "measured_at": "2026-11-20T08:00:00"},
        {"systolic": 127, "diastolic": 81, "pulse_rate": 66, "measured_at": "2026-11-20T20:00:00"},
    ]
    config["devices"] = [simulated_cuff(subject, readings) for subject in (ADULT, REFUSER, CHILD)]
    gateway = GatewayProcess(write_config(tmp_path / "gateway.toml", config))
    await gateway.start()

    def events(receiver):
        return [event for request in receiver.accepted for event in request.json()["events"]]

    def observations(receiver):
        return [
            entry["resource"]
            for request in receiver.accepted
            for entry in request.json()["entry"]
            if entry["resource"]["resourceType"] == "Observation"
        ]

    try:
        await gateway.wait_for_event(
            lambda e: e.get("event") == "reading_dropped" and e.get("reason") == "minor"
        )
        await analytics.wait_for(lambda r: len(events(r)) >= 2)
        await care.wait_for(lambda r: len(observations(r)) >= 8)  # 2 people x 2 readings x 2
        code = await gateway.stop()
    except TimeoutError:
        pytest.fail("timed out; gateway output:\n" + "\n".join(gateway.lines[-60:]))
    finally:
        gateway.kill()
    assert code == 0

    # Care: both adults (care consent), never the child; valid FHIR.
    for request in care.accepted:
        Bundle.model_validate(request.json())
    assert {o["subject"]["identifier"]["value"] for o in observations(care)} == {ADULT, REFUSER}

    # Analytics: only the consenting adult, only allow-listed fields, keyed pseudonyms.
    received = events(analytics)
    assert len(received) == 2
    assert all(r.headers["Authorization"] == "Bearer analytics-t0ken" for r in analytics.accepted)
    for event in received:
        assert set(event) <= set(FIELDS) | {"event_id"}
        assert PSEUDONYM.match(event["subject"]) and PSEUDONYM.match(event["company"])
        assert event["age_band"] == "50-59"
        assert event["values"]["systolic"]["value"] % 5 == 0  # generalised
    assert len({event["subject"] for event in received}) == 1  # stable pseudonym per person
    body = b"".join(request.body for request in analytics.accepted)
    canaries = [ADULT, REFUSER, CHILD, COMPANY, *BIRTH_DATES.values(), *ADDRESSES.values()]
    for canary in canaries:
        assert canary.encode() not in body
        for hashed in plain_hashes(canary):
            assert hashed not in body

    # Logs: no identifier anywhere in the gateway's own output.
    output = "\n".join(gateway.lines)
    for canary in canaries:
        assert canary not in output
