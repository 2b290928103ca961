"""Delivery through the real gateway against a care platform that misbehaves in every way.

Connections refused (the server is not up yet), 503 for a while, 500 at random, 429 with
Retry-After, a request that hangs until the client times out, and a 400 for a bundle that holds
one bad reading: every good reading arrives exactly once (by identifier), the bad one lands in
the dead letters, and nothing is dropped. Run against the stand-in and against the real FHIR
server behind the same faults (there the hung request reaches the server first: it is applied,
its answer never arrives, and the resend must create nothing).
"""

from __future__ import annotations

import asyncio
import random
from datetime import datetime, timedelta

from gateway.models import Measurement, Quantity
from gateway.settings import parse_settings
from gateway.storage.outbox import Outbox
from tests.configs import ADULT, free_port
from tests.gateway_harness import ActivityWatcher, inject, running_gateway
from tests.receivers import Answer, fhir_transaction_response

POISON = 222  # the care platform refuses a systolic of exactly this value


def observations(request):
    return [
        e["resource"]
        for e in request.json()["entry"]
        if e["resource"]["resourceType"] == "Observation"
    ]


def chaos(rng: random.Random, real: bool):
    """The fault script; with a real server behind (``real``) an answer that is not a fault
    forwards the request to it."""
    state = {"requests": 0}

    def respond(request) -> Answer:
        state["requests"] += 1
        n = state["requests"]
        if any(
            c["valueQuantity"]["value"] == POISON
            for o in observations(request)
            for c in o.get("component", [])
        ):
            return Answer(400, body=b'{"resourceType":"OperationOutcome"}')
        if n <= 3:
            return Answer(503)
        if n == 4:
            return Answer(429, headers={"Retry-After": "1"})
        if n == 5:
            return Answer(hang=True, forward=real)
        if rng.random() < 0.3:
            return Answer(500)
        if real:
            return Answer(forward=True)
        return Answer(200, body=fhir_transaction_response(request.body))

    return respond


def reading(minute: int, systolic: int) -> Measurement:
    return Measurement(
        kind="blood_pressure",
        measured_at=datetime(2026, 11, 20, 8) + timedelta(minutes=minute),
        values={
            "systolic": Quantity(value=systolic, unit="mm[Hg]"),
            "diastolic": Quantity(value=80, unit="mm[Hg]"),
        },
    )


async def test_every_reading_arrives_exactly_once_through_chaos(tmp_path, care_platform):
    port = free_port()
    medplum = care_platform.medplum
    care = {
        "name": "care",
        "kind": "fhir",
        "purpose": "care",
        "url": f"http://127.0.0.1:{port}/fhir",
        "timeout_s": 0.5,
        "batch_max_items": 8,
        "linger_s": 0.01,
        "retry_initial_s": 0.02,
        "retry_max_s": 0.3,
    }
    if medplum is not None:
        care["bundle_max_entries"] = 8  # Medplum's cap on a transaction with conditional creates
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
                    "address": "C4:7C:8D:6A:00:01",
                    "profile": "blood_pressure",
                    "subject": ADULT,
                    "simulated": True,
                    "simulation": {"readings": []},
                }
            ],
            "destinations": [care],
        }
    )
    receiver = care_platform.receiver(responder=chaos(random.Random(42), medplum is not None))
    good = [reading(minute, 120 + minute % 40) for minute in range(59)]
    bad = reading(59, POISON)
    async with running_gateway(settings) as gateway:
        watcher = ActivityWatcher(gateway.activity)
        await inject(gateway, "C4:7C:8D:6A:00:01", [*good[:30], bad, *good[30:]])
        await asyncio.wait_for(watcher.until("retry", 1), 10)  # refused: nobody listens yet
        refused = next(e for e in gateway.activity.recent if e.kind == "retry")
        assert "Connect" in refused.fields["reason"]
        await receiver.start(port)
        try:

            def all_good_arrived(r):
                # Distinct readings: a resend after a timed-out answer is accepted again, so
                # counting Observations would stop the wait before the last reading arrived.
                arrived = {o["identifier"][0]["value"] for q in r.accepted for o in observations(q)}
                return len(arrived) >= len(good)

            await receiver.wait_for(all_good_arrived, timeout=60)
            await asyncio.wait_for(watcher.until("dead_letter", 1), 30)
            dead = await gateway.database.call(Outbox.dead_letters)
        finally:
            await receiver.stop()
    identifiers = [o["identifier"][0]["value"] for q in receiver.accepted for o in observations(q)]
    if medplum is None:
        assert len(identifiers) == len(set(identifiers)) == len(good)  # each exactly once
    else:
        # An answer that came after the gateway's timeout counts as accepted here, yet the
        # gateway sent those readings again: what the real server stored is what counts.
        assert len(set(identifiers)) == len(good)
        stored = await medplum.search("Observation")
        assert sorted(o["identifier"][0]["value"] for o in stored) == sorted(set(identifiers))
        identifiers = sorted(set(identifiers))
    delivered = {o["identifier"][0]["value"]: o for q in receiver.accepted for o in observations(q)}
    systolics = sorted(
        c["valueQuantity"]["value"]
        for o in delivered.values()
        for c in o["component"]
        if c["code"]["coding"][0]["code"] == "150021"
    )
    assert systolics == sorted(m.values["systolic"].value for m in good)
    assert [(d["status"], d["response"]) for d in dead] == [
        (400, '{"resourceType":"OperationOutcome"}')
    ]
    assert len(receiver.requests) > len(receiver.accepted) + 5  # the failures really happened
    if medplum is not None:
        answered = {id(request) for request in receiver.accepted}  # the resend is equal, not it
        [(hung, status)] = [f for f in receiver.forwarded if id(f[0]) not in answered]
        assert status == 200  # the server applied the request whose answer never came
        assert {o["identifier"][0]["value"] for o in observations(hung)} <= set(identifiers)
