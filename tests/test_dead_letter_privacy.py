"""A destination's error text never puts a personal number on disk or on the operator's screen
in clear (issue 14: 7).

The care platform refuses a bundle with an OperationOutcome that quotes the patient reference
it was sent, as real FHIR servers do. The dead letter keeps why, with the number masked: in the
database file (and its write-ahead log), in ``/api/dead-letters`` and in
``health-gateway dead-letters --json``.
"""

from __future__ import annotations

import sqlite3
import time

import aiohttp
import orjson

from tests.configs import ADULT
from tests.hub_harness import cuff, running_hub
from tests.receivers import Answer, Received
from tests.test_cli_ops import cli, operator_config
from tests.test_damaged_storage import STORED


def quoting_the_patient(request: Received) -> Answer:
    """422 with an OperationOutcome naming the patient identifier the bundle carried."""
    bundle = request.json()
    patient = next(
        e["resource"]["subject"]["identifier"]["value"]
        for e in bundle["entry"]
        if "subject" in e["resource"]
    )
    outcome = {
        "resourceType": "OperationOutcome",
        "issue": [
            {
                "severity": "error",
                "code": "processing",
                "diagnostics": f"Patient?identifier=urn:oid:1.2.752.129.2.1.3.1|{patient}"
                f" ({patient[:8]}-{patient[8:]}) is not registered",
            }
        ],
    }
    return Answer(422, body=orjson.dumps(outcome))


FORMS = (ADULT, f"{ADULT[:8]}-{ADULT[8:]}", ADULT[2:])


async def test_a_refusal_that_quotes_the_patient_is_kept_without_the_number(tmp_path):
    async with running_hub(tmp_path, devices=[cuff(STORED[:1])]) as hub:
        hub.care.responder = quoting_the_patient
        await hub.waiter.until("dead_letter", destination="care-platform")
        assert ADULT.encode() in hub.care.requests[0].body  # the platform did quote it back
        async with aiohttp.ClientSession(headers=hub.auth()) as http:
            async with http.get(hub.url + "/api/dead-letters") as response:
                listed = await response.text()
        shown = await cli("dead-letters", "--json", "--config", operator_config(tmp_path, hub))
        assert shown.code == 0, shown.err
        status = await hub.gateway.status()
    [dead] = orjson.loads(listed)["dead_letters"]
    assert dead["status"] == 422 and "is not registered" in dead["response"]
    assert "[redacted]" in dead["response"]
    on_disk = b"".join(
        path.read_bytes() for path in (tmp_path / "data").glob("gateway.db*") if path.is_file()
    )
    for form in FORMS:
        assert form not in listed and form not in shown.out and form not in shown.err
        assert form.encode() not in on_disk
        assert form not in str(status)


async def test_dead_letters_kept_before_scrubbing_are_scrubbed_at_the_next_start(tmp_path):
    async with running_hub(tmp_path):
        pass
    database = tmp_path / "data" / "gateway.db"
    connection = sqlite3.connect(database)
    with connection:  # as an older gateway kept it: the answer in clear
        connection.execute("DELETE FROM meta WHERE key = 'dead_letters.scrubbed'")
        connection.execute(
            "INSERT INTO dead_letters (destination, purpose, category, priority, subject_ref,"
            " reading_id, idempotency_key, legal_basis, fields, payload, size, created_at,"
            " attempts, failed_at, status, response) VALUES ('care-platform', 'care', 'reading',"
            " 1, 's-x', 'r-x', 'k-x', 'consent', '', x'', 0, ?, 1, ?, 422, ?)",
            (time.time(), time.time(), f"Patient {ADULT} ({FORMS[1]}) is not registered"),
        )
    connection.close()
    async with running_hub(tmp_path) as hub:
        async with aiohttp.ClientSession(headers=hub.auth()) as http:
            async with http.get(hub.url + "/api/dead-letters") as response:
                [dead] = (await response.json())["dead_letters"]
    assert dead["response"] == "Patient [redacted] ([redacted]) is not registered"
    on_disk = b"".join(
        path.read_bytes() for path in (tmp_path / "data").glob("gateway.db*") if path.is_file()
    )
    for form in FORMS:
        assert form.encode() not in on_disk
