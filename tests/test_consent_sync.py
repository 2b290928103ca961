"""Consent from the care platform, against the real FHIR server (Medplum): the gateway in
process, the platform behind a proxy that can hold back delivery or go down."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

from gateway.app import Gateway
from gateway.privacy.audit import entries
from gateway.settings import V3_ACT_REASON, parse_settings
from tests.configs import ADULT, free_port
from tests.factories import bp_measurement
from tests.gateway_harness import ActivityWatcher, inject, queued, running_gateway
from tests.medplum import Medplum
from tests.receivers import Answer, Receiver

SYSTEM = "http://electronichealth.se/identifier/personnummer"
CUFF = "C4:7C:8D:6A:00:01"
INTERVAL_S = 0.1
SYNC_WAIT_S = 15.0


def is_transaction(request) -> bool:
    """A Bundle POSTed to the FHIR base: the readings, not the consent sync."""
    return request.path.rstrip("/") == "/fhir"


class Platform:
    """The proxy's behaviour: hold readings back (503) and/or be down altogether."""

    def __init__(self) -> None:
        self.hold_readings = True
        self.down = False

    def __call__(self, request) -> Answer:
        if self.down or (self.hold_readings and is_transaction(request)):
            return Answer(503)
        return Answer(forward=True)


def platform_consent(
    patient_id: str,
    kind: str,
    codes: tuple[str, ...],
    when: datetime,
    period: dict[str, str] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    provision: dict[str, Any] = {
        "type": kind,
        "purpose": [{"system": V3_ACT_REASON, "code": c} for c in codes],
    }
    if period:
        provision["period"] = period
    return {
        "resourceType": "Consent",
        "status": "active",
        "scope": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/consentscope",
                    "code": "patient-privacy",
                }
            ]
        },
        "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
        "patient": {"reference": f"Patient/{patient_id}"},
        "dateTime": when.isoformat(),
        "policyRule": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                    "code": "OPTIN" if kind == "permit" else "OPTOUT",
                }
            ]
        },
        "provision": provision,
        **extra,
    }


@contextlib.asynccontextmanager
async def hub(
    tmp_path, medplum: Medplum, consent: dict[str, bool]
) -> AsyncIterator[tuple[Gateway, Receiver, Platform, ActivityWatcher]]:
    platform = Platform()
    proxy = Receiver(upstream=medplum.server.base, responder=platform)
    await proxy.start()
    settings = parse_settings(
        {
            "gateway": {
                "data_dir": str(tmp_path / "data"),
                "log_level": "error",
                "api": {"listen": f"127.0.0.1:{free_port()}"},
            },
            "subjects": [{"id": ADULT, "birth_date": "1970-01-01", "consent": consent}],
            "devices": [
                {
                    "address": CUFF,
                    "profile": "blood_pressure",
                    "subject": ADULT,
                    "simulated": True,
                    "simulation": {"readings": []},
                }
            ],
            "destinations": [
                {
                    "name": "care",
                    "kind": "fhir",
                    "purpose": "care",
                    "url": proxy.url + "/fhir",
                    "timeout_s": 5,
                    "retry_initial_s": 0.05,
                    "retry_max_s": 0.2,
                }
            ],
            "consent_sync": {"destination": "care", "interval_s": INTERVAL_S},
        }
    )
    try:
        async with running_gateway(settings) as gateway:
            watcher = ActivityWatcher(gateway.activity)
            yield gateway, proxy, platform, watcher
    finally:
        await proxy.stop()


async def syncs(watcher: ActivityWatcher, more: int = 2) -> None:
    """Wait until ``more`` further syncs have run (the first may have begun before a change)."""
    target = watcher.counts.get("consent_synced", 0) + more
    await asyncio.wait_for(watcher.until("consent_synced", target), SYNC_WAIT_S)


async def patient(medplum: Medplum) -> str:
    created = await medplum.create(
        {"resourceType": "Patient", "identifier": [{"system": SYSTEM, "value": ADULT}]}
    )
    return created["id"]


def granted(gateway: Gateway, purpose: str) -> bool:
    return gateway.consents.is_granted(gateway.rights.subject_ref(ADULT), purpose)


async def audit_events(gateway: Gateway) -> list[tuple[str, dict]]:
    ref = gateway.rights.subject_ref(ADULT)
    found = await gateway.database.call(lambda c: entries(c, subject_ref=ref, limit=1000))
    return [(e.event, e.data) for e in found]


async def test_a_deny_on_the_platform_stops_care_within_an_interval_and_purges_the_queue(
    tmp_path, medplum
):
    patient_id = await patient(medplum)
    async with hub(tmp_path, medplum, {"care": True}) as (gateway, proxy, _platform, watcher):
        await syncs(watcher, 1)
        readings = [
            bp_measurement(150 + n, measured_at=datetime(2026, 11, 20, 8, n)) for n in range(3)
        ]
        await inject(gateway, CUFF, readings)
        assert len(await queued(gateway, "care")) == 3  # held back by the platform (503)
        assert granted(gateway, "care")
        await medplum.create(platform_consent(patient_id, "deny", ("TREAT",), datetime.now(UTC)))
        await syncs(watcher)
        assert not granted(gateway, "care")
        assert await queued(gateway, "care") == []
        events = await audit_events(gateway)
        await syncs(watcher, 1)  # one more look, now that a Consent is known
    assert ("consent.changed", {"purposes": {"care": False}, "source": "care-platform"}) in events
    assert ("consent.withdrawn.purged", {"purpose": "care", "queued_items_removed": 3}) in events
    assert await medplum.search("Observation") == []  # nothing was sent after all
    searches = [r.query for r in proxy.requests if r.path == "/fhir/Consent"]
    assert "_lastUpdated" not in searches[0]  # the first look reads them all ...
    assert "_lastUpdated=ge" in searches[-1]  # ... once one is known, only what changed since


async def test_a_permit_on_the_platform_grants_and_an_expired_one_denies(tmp_path, medplum):
    patient_id = await patient(medplum)
    now = datetime.now(UTC)
    async with hub(tmp_path, medplum, {"care": True}) as (gateway, _proxy, _platform, watcher):
        await syncs(watcher, 1)
        assert not granted(gateway, "research")  # never given
        await medplum.create(platform_consent(patient_id, "permit", ("HRESCH",), now))
        ended = {"start": (now - timedelta(days=60)).isoformat(), "end": now.isoformat()}
        await medplum.create(platform_consent(patient_id, "permit", ("TREAT",), now, ended))
        await syncs(watcher)
        assert granted(gateway, "research")
        assert not granted(gateway, "care")  # the config's grant gave way to the expired permit


async def test_a_change_on_the_hub_is_written_back_to_the_platform_once(tmp_path, medplum):
    patient_id = await patient(medplum)
    async with hub(tmp_path, medplum, {"care": True}) as (gateway, _proxy, _platform, watcher):
        await syncs(watcher, 1)
        assert await medplum.search("Consent") == []  # the config's seed is not written back
        await gateway.rights.change_consent(ADULT, {"research": True}, source="api")
        await syncs(watcher)
        [written] = await medplum.search("Consent", patient=f"Patient/{patient_id}")
        assert written["provision"]["type"] == "permit"
        assert written["provision"]["purpose"] == [{"system": V3_ACT_REASON, "code": "HRESCH"}]
        await syncs(watcher)
        assert len(await medplum.search("Consent")) == 1  # agreeing now: nothing more written
        assert granted(gateway, "research")
        events = [event for event, _ in await audit_events(gateway)]
    assert "consent.written_back" in events


async def test_the_later_change_wins_between_the_page_and_the_platform(tmp_path, medplum):
    patient_id = await patient(medplum)
    earlier = datetime.now(UTC) - timedelta(hours=1)
    async with hub(tmp_path, medplum, {"care": True}) as (gateway, _proxy, platform, watcher):
        await syncs(watcher, 1)
        platform.down = True  # so the page's change lands before the platform's is read
        await syncs(watcher, 1)
        await gateway.rights.change_consent(ADULT, {"alerting": True}, source="api")
        await medplum.create(platform_consent(patient_id, "deny", ("ETREAT",), earlier))
        platform.down = False
        await syncs(watcher)
        assert granted(gateway, "alerting")  # the page's change is the later one ...
        consents = await medplum.search("Consent", patient=f"Patient/{patient_id}")
        kinds = sorted(c["provision"]["type"] for c in consents)
        assert kinds == ["deny", "permit"]  # ... and is on the platform beside the older deny
        await medplum.create(platform_consent(patient_id, "deny", ("ETREAT",), datetime.now(UTC)))
        await syncs(watcher)
        assert not granted(gateway, "alerting")  # now the platform's is the later one


async def test_the_platform_down_for_a_while_changes_nothing(tmp_path, medplum):
    patient_id = await patient(medplum)
    async with hub(tmp_path, medplum, {"care": True}) as (gateway, _proxy, platform, watcher):
        await syncs(watcher, 1)
        platform.down = True
        await medplum.create(platform_consent(patient_id, "deny", ("TREAT",), datetime.now(UTC)))
        await syncs(watcher, 3)
        assert granted(gateway, "care")  # the last known state holds
        [subject] = (await gateway.status())["consent_sync"]["subjects"]
        assert subject["problem"].startswith("unreachable since")
        platform.down = False
        await syncs(watcher)
        assert not granted(gateway, "care")
        [subject] = (await gateway.status())["consent_sync"]["subjects"]
        assert subject["problem"] is None


async def test_a_consent_the_hub_cannot_interpret_denies_and_says_so(tmp_path, medplum):
    patient_id = await patient(medplum)
    async with hub(tmp_path, medplum, {"care": True}) as (gateway, _proxy, _platform, watcher):
        await syncs(watcher, 1)
        odd = platform_consent(patient_id, "permit", ("TREAT",), datetime.now(UTC))
        odd["scope"]["coding"][0]["code"] = "some-local-scope"  # valid FHIR, unknown meaning
        created = await medplum.create(odd)
        await syncs(watcher)
        assert not granted(gateway, "care")
        [subject] = (await gateway.status())["consent_sync"]["subjects"]
    [note] = subject["uninterpretable"]
    assert f"Consent/{created['id']}" in note and "denies" in note
