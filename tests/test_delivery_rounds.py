"""A backlog is delivered in rounds: read together, sent in the sink's own batches one request
at a time, settled in one transaction. Real SQLite files and a real aiohttp receiver."""

import asyncio

import aiohttp
import orjson

from gateway.delivery.worker import ROUND_ITEMS
from gateway.privacy import audit
from gateway.privacy.audit_anchor import AuditAnchor
from gateway.storage import audit_log
from gateway.storage.crypto import Sealer
from gateway.storage.outbox import Outbox
from tests.receivers import Answer
from tests.test_delivery import (
    Watcher,
    enqueue,
    fhir_item,
    fhir_sink,
    observation_ids,
    run_until,
    worker_for,
)


def disclosure_rows(connection):
    return [
        orjson.loads(data)
        for _seq, _at, event, _ref, data, _prev, _hash in audit_log.in_order(connection)
        if event == "disclosure"
    ]


async def test_a_backlog_goes_in_rounds_one_request_and_one_audit_entry_per_batch(
    database, receiver, tmp_path
):
    """1,234 queued readings, batches of 100: 13 requests, 13 chained entries naming 100 (the
    last 34) readings each, and the audit head anchored once per round (500, 500, 234)."""
    outbox = Outbox(Sealer(b"k" * 32))
    await enqueue(database, outbox, [fhir_item(i) for i in range(1234)])
    anchor = AuditAnchor(tmp_path / "audit.anchor")
    async with aiohttp.ClientSession() as session:
        watcher = Watcher()
        sink = fhir_sink(session, receiver.url, batch_max_items=100)
        worker = worker_for(sink, database, outbox, watcher=watcher, anchor=anchor.record)
        await run_until(worker, lambda: watcher.until("delivered", 1234))
    assert sorted(observation_ids(receiver)) == sorted(f"o{i}" for i in range(1234))
    assert [len(r.json()["entry"]) for r in receiver.requests] == [100] * 12 + [34]
    batches = await database.call(disclosure_rows)
    assert [sum(len(ids) for ids in b["readings_by_subject"].values()) for b in batches] == (
        [100] * 12 + [34]
    )
    assert await database.call(Outbox.depth) == {}
    assert (await database.call(audit.verify)).ok
    rounds = -(-1234 // ROUND_ITEMS)
    assert len((tmp_path / "audit.anchor").read_bytes().splitlines()) == rounds


async def test_a_reading_refused_in_the_middle_of_a_round_is_the_only_dead_letter(
    database, receiver
):
    """The platform refuses any Bundle holding o250 (a 400 for the whole transaction): that
    batch is halved until o250 is alone; the round's other batches are delivered."""
    outbox = Outbox(Sealer(b"k" * 32))

    def refuse_o250(request):
        ids = {entry["resource"]["id"] for entry in request.json()["entry"]}
        return Answer(400, body=b'{"issue": "refused"}') if "o250" in ids else None

    receiver.responder = refuse_o250
    await enqueue(database, outbox, [fhir_item(i) for i in range(500)])
    async with aiohttp.ClientSession() as session:
        watcher = Watcher()
        sink = fhir_sink(session, receiver.url, batch_max_items=100)
        worker = worker_for(sink, database, outbox, watcher=watcher)
        await run_until(worker, lambda: watcher.until("dead_letter", 1))
        await run_until(worker, lambda: watcher.until("delivered", 499))
    assert sorted(observation_ids(receiver)) == sorted(f"o{i}" for i in range(500) if i != 250)
    [letter] = await database.call(Outbox.dead_letters)
    assert letter["reading_id"] == "r-250" and letter["status"] == 400
    assert await database.call(Outbox.depth) == {}


async def test_consent_withdrawn_while_a_round_is_on_the_wire_holds_back_what_is_built_after(
    database, receiver
):
    """Consent is withdrawn when the first request of a 500-reading round arrives. Each batch
    is checked when it is built to be sent, so the batches built after that (at least the
    third to the fifth) are withheld and audited as such; nothing is lost or sent twice."""
    outbox = Outbox(Sealer(b"k" * 32))
    consent = {"granted": True}

    def withdraw(_request):
        consent["granted"] = False
        return None  # answered as usual (200)

    receiver.responder = withdraw
    await enqueue(database, outbox, [fhir_item(i) for i in range(500)])
    async with aiohttp.ClientSession() as session:
        watcher = Watcher()
        sink = fhir_sink(session, receiver.url, batch_max_items=100)
        worker = worker_for(
            sink, database, outbox, watcher=watcher, may_send=lambda item: consent["granted"]
        )
        worker.drain()
        await asyncio.wait_for(worker.run(), 20)
    sent = observation_ids(receiver)
    assert len(sent) == len(set(sent)) and 100 <= len(sent) <= 200
    assert len(receiver.requests) <= 2
    entries = await database.call(lambda c: audit.entries(c, limit=10_000))
    withheld = {e.data["reading_id"] for e in entries if e.event == "withheld"}
    disclosed = {e.data["reading_id"] for e in entries if e.event == "disclosure"}
    assert withheld.isdisjoint(disclosed) and len(withheld | disclosed) == 500
    assert {f"r-{i}" for i in range(200, 500)} <= withheld
    assert disclosed == {f"r-{o[1:]}" for o in sent}
    assert await database.call(Outbox.depth) == {}
