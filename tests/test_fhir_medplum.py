"""Our FHIR against a real FHIR server (Medplum's router and repository, validating on store).

The stand-in receivers accept anything; this server stores, validates, searches and runs
conditional creates as a care platform does, so these tests show what a resend really does.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

import pytest

from gateway.exporters.fhir.payload import (
    GLUCOSE_BY_UNIT,
    SIMPLE,
    hub_source,
    reading_entries,
    transaction_bundle,
)
from gateway.intake.events import reading_event
from gateway.models import Measurement, Quantity
from gateway.settings import parse_settings
from gateway.storage.outbox import Outbox
from tests.configs import ADULT, free_port
from tests.factories import bound, bp_measurement
from tests.gateway_harness import ActivityWatcher, inject, running_gateway
from tests.medplum import Medplum
from tests.receivers import Receiver

SYSTEM = "http://electronichealth.se/identifier/personnummer"
CUFF = "C4:7C:8D:6A:00:01"

UNITS = {
    ("weight", "body_weight"): "kg",
    ("weight", "bmi"): "kg/m2",
    ("weight", "height"): "m",
    ("blood_pressure", "pulse_rate"): "/min",
    ("temperature", "body_temperature"): "Cel",
    ("spo2", "spo2"): "%",
    ("spo2", "pulse_rate"): "/min",
    ("heart_rate", "heart_rate"): "/min",
    ("body_composition", "body_fat_percentage"): "%",
    ("body_composition", "body_weight"): "kg",
}


def bp_reading(reading_id: str, minute: int) -> dict[str, Any]:
    measured = datetime(2026, 11, 20, 8, minute)
    return reading_event(
        bound(bp_measurement(120 + minute, measured_at=measured), reading_id=reading_id)
    )


def statuses(response: dict[str, Any]) -> list[str]:
    return [entry["response"]["status"] for entry in response["entry"]]


async def test_a_resent_transaction_creates_nothing_new_on_a_real_fhir_server(medplum: Medplum):
    bundle = transaction_bundle(
        [reading_entries(bp_reading(f"r-{n}", n), SYSTEM) for n in range(2)]
    )
    status, first = await medplum.transaction(bundle)
    assert status == 200, first
    assert statuses(first) == ["201"] * 5  # one Device, two panels, two pulse rates
    status, again = await medplum.transaction(bundle)
    assert status == 200, again
    assert statuses(again) == ["200"] * 5  # every entry matched its ifNoneExist: none created
    assert len(await medplum.search("Device")) == 1
    observations = await medplum.search("Observation")
    assert len(observations) == 4
    sent = [
        e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Observation"
    ]
    assert sorted(o["identifier"][0]["value"] for o in observations) == sorted(
        o["identifier"][0]["value"] for o in sent
    )


def every_mapped_reading() -> list[Measurement]:
    """One reading per mapped value: each simple code, both glucose units, the BP panel."""
    readings = [bp_measurement(150, 95, 72)]
    for (kind, name), unit in UNITS.items():
        readings.append(
            Measurement(
                kind=kind,
                values={name: Quantity(value=42.5, unit=unit)},
                measured_at=datetime(2026, 11, 20, 9, len(readings)),
            )
        )
    for unit in GLUCOSE_BY_UNIT:
        readings.append(
            Measurement(
                kind="glucose",
                values={"glucose": Quantity(value=5.6, unit=unit)},
                measured_at=datetime(2026, 11, 20, 10, len(readings)),
            )
        )
    return readings


def test_the_mapped_readings_cover_every_code_we_write():
    assert set(UNITS) == set(SIMPLE)


async def test_every_resource_we_write_is_stored_valid_and_findable_on_a_real_fhir_server(
    medplum: Medplum,
):
    groups = [
        reading_entries(reading_event(bound(m, reading_id=f"r-{n}")), SYSTEM)
        for n, m in enumerate(every_mapped_reading())
    ]
    sent: list[dict[str, Any]] = []
    for part in (groups[:2], groups[2:4], groups[4:6], groups[6:8], groups[8:]):
        # Medplum runs a transaction with conditional creates serialisably, 8 entries at most.
        bundle = transaction_bundle(part)
        assert len(bundle["entry"]) <= 8
        status, response = await medplum.transaction(bundle)
        assert status == 200, response  # the server validates every resource before storing it
        assert set(statuses(response)) <= {"200", "201"}  # the Device is shared by readings
        sent += bundle["entry"]
    assert len(await medplum.search("Device")) == 1
    assert len(await medplum.search("Observation")) == len(sent) - 5  # a Device per bundle
    for entry in sent:
        sent = entry["resource"]
        identifier = sent["identifier"][0]
        [stored] = await medplum.search(
            sent["resourceType"], identifier=f"{identifier['system']}|{identifier['value']}"
        )
        assert stored["identifier"] == sent["identifier"]  # not rewritten into a reference
        if sent["resourceType"] == "Observation":
            assert stored["code"] == sent["code"]
            assert stored.get("valueQuantity") == sent.get("valueQuantity")
            assert stored["subject"] == sent["subject"]
            device = stored["device"]["reference"]
            assert device.startswith("Device/")  # the bundle's urn:uuid, resolved


@pytest.mark.parametrize("missing", ["status", "code"])
async def test_the_real_fhir_server_refuses_an_invalid_observation(medplum: Medplum, missing):
    """The server really validates (so the test above can fail): 400 with an OperationOutcome,
    and nothing of the refused transaction is stored."""
    bundle = transaction_bundle([reading_entries(bp_reading("r-bad", 0), SYSTEM)])
    del bundle["entry"][1]["resource"][missing]
    status, response = await medplum.transaction(bundle)
    assert status == 400
    assert response["resourceType"] == "OperationOutcome"
    assert await medplum.search("Observation") == []
    assert await medplum.search("Device") == []


@pytest.mark.parametrize("cap", [None, 8])
async def test_a_batch_over_the_platforms_transaction_cap_is_delivered_once_each(
    tmp_path, medplum: Medplum, cap
):
    """Medplum refuses a transaction with conditional creates of more than 8 entries. With
    ``bundle_max_entries`` the gateway never sends one; without it, the refusal splits the batch
    (the fallback for a platform whose cap nobody configured). Either way each reading is
    stored once, and nothing lands in the dead letters."""
    care = Receiver(upstream=medplum.server.base)
    await care.start()
    destination = {
        "name": "care",
        "kind": "fhir",
        "purpose": "care",
        "url": care.url + "/fhir",
        "batch_max_items": 50,
        "linger_s": 0.01,
        "retry_initial_s": 0.02,
    }
    if cap is not None:
        destination["bundle_max_entries"] = cap
    settings = parse_settings(
        {
            "gateway": {
                "data_dir": str(tmp_path / "data"),
                "log_level": "error",
                "api": {"listen": f"127.0.0.1:{free_port()}"},
            },
            "subjects": [{"id": ADULT, "birth_date": "1970-01-01", "consent": {"care": True}}],
            "devices": [
                {
                    "address": CUFF,
                    "profile": "blood_pressure",
                    "subject": ADULT,
                    "simulated": True,
                    "simulation": {"readings": []},
                }
            ],
            "destinations": [destination],
        }
    )
    readings = [
        bp_measurement(110 + n, measured_at=datetime(2026, 11, 20, 11, n)) for n in range(20)
    ]
    try:
        async with running_gateway(settings) as gateway:
            watcher = ActivityWatcher(gateway.activity)
            await inject(gateway, CUFF, readings)
            await asyncio.wait_for(watcher.until("delivered", len(readings)), 30)
            dead = await gateway.database.call(Outbox.dead_letters)
    finally:
        await care.stop()
    assert dead == []
    refused = [status for _, status in care.forwarded if status >= 400]
    if cap is not None:
        assert refused == []
        assert all(len(request.json()["entry"]) <= cap for request, _ in care.forwarded)
    else:
        assert refused  # the platform's cap was met, and the gateway recovered from it
    assert len(await medplum.search("Observation")) == 2 * len(readings)  # panel + pulse each


@pytest.mark.parametrize("has_patient", [True, False])
async def test_resolved_patient_references_name_the_platforms_patient(
    tmp_path, medplum: Medplum, has_patient
):
    """``patient_reference = "resolved"``: Observations reference ``Patient/{id}`` (found by
    identifier), so the platform files them under the patient; a person the platform has no
    Patient for keeps the reference by identifier, and the readings are delivered all the same."""
    patient_id = None
    if has_patient:
        created = await medplum.create(
            {"resourceType": "Patient", "identifier": [{"system": SYSTEM, "value": ADULT}]}
        )
        patient_id = created["id"]
    settings = parse_settings(
        {
            "gateway": {
                "data_dir": str(tmp_path / "data"),
                "log_level": "error",
                "api": {"listen": f"127.0.0.1:{free_port()}"},
            },
            "subjects": [{"id": ADULT, "birth_date": "1970-01-01", "consent": {"care": True}}],
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
                    "url": medplum.url,
                    "identifier_system": SYSTEM,
                    "patient_reference": "resolved",
                    "linger_s": 0.01,
                }
            ],
        }
    )
    readings = [
        bp_measurement(130 + n, measured_at=datetime(2026, 11, 20, 12, n)) for n in range(2)
    ]
    async with running_gateway(settings) as gateway:
        watcher = ActivityWatcher(gateway.activity)
        await inject(gateway, CUFF, readings)
        await asyncio.wait_for(watcher.until("delivered", len(readings)), 30)
    stored = await medplum.search("Observation")
    assert len(stored) == 4
    if has_patient:
        assert {json_subject(o) for o in stored} == {f"Patient/{patient_id}"}
        filed = await medplum.search("Observation", subject=f"Patient/{patient_id}")
        assert len(filed) == 4  # found under the patient
    else:
        assert {json_subject(o) for o in stored} == {f"{SYSTEM}|{ADULT}"}


def json_subject(observation: dict[str, Any]) -> str:
    subject = observation["subject"]
    if "reference" in subject:
        return subject["reference"]
    return f"{subject['identifier']['system']}|{subject['identifier']['value']}"


async def test_the_hub_named_in_meta_source_is_kept_by_a_real_fhir_server(medplum: Medplum):
    source = hub_source("hub-4f2a9c0d")
    bundle = transaction_bundle([reading_entries(bp_reading("r-src", 1), SYSTEM, source)])
    status, response = await medplum.transaction(bundle)
    assert status == 200, response
    stored = await medplum.search("Observation") + await medplum.search("Device")
    assert {resource["meta"]["source"] for resource in stored} == {source}
