"""Our FHIR against a real FHIR server (Medplum's router and repository, validating on store).

The stand-in receivers accept anything; this server stores, validates, searches and runs
conditional creates as a care platform does, so these tests show what a resend really does.
"""

from __future__ import annotations

from datetime import datetime

import pytest

from gateway.events import reading_event
from gateway.fhir import reading_entries, transaction_bundle
from tests.factories import bound, bp_measurement
from tests.medplum import Medplum

SYSTEM = "http://electronichealth.se/identifier/personnummer"


def bp_reading(reading_id: str, minute: int) -> dict:
    measured = datetime(2026, 11, 20, 8, minute)
    return reading_event(
        bound(bp_measurement(120 + minute, measured_at=measured), reading_id=reading_id)
    )


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
