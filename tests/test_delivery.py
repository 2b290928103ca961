"""Outbox + delivery workers against real aiohttp servers on loopback."""

import asyncio
import itertools
import random
import time

import aiohttp
import orjson
import pytest

from gateway.activity import Activity
from gateway.delivery.worker import DeliveryWorker, backoff_delay
from gateway.exporters.fhir.config import FhirDestination
from gateway.exporters.fhir.sender import FhirSink
from gateway.exporters.webhook.config import WebhookDestination
from gateway.exporters.webhook.sender import WebhookSink
from gateway.exporters.webhook.signing import parse_secret
from gateway.privacy import audit
from gateway.storage.crypto import Sealer
from gateway.storage.database import Transaction
from gateway.storage.outbox import NewItem, Outbox
from tests.configs import webhook_secret
from tests.receivers import Answer


def fhir_item(i: int) -> NewItem:
    entry = {
        "fullUrl": f"urn:uuid:00000000-0000-0000-0000-{i:012d}",
        "resource": {"resourceType": "Observation", "id": f"o{i}"},
        "request": {"method": "POST", "url": "Observation"},
    }
    return NewItem(
        "care",
        "care",
        "reading",
        1,
        "s-1",
        f"r-{i}",
        f"r-{i}",
        "consent",
        ("kind", "values"),
        {"entries": [entry]},
    )


async def enqueue(database, outbox, items):
    def write(connection):
        with Transaction(connection):
            return outbox.enqueue(connection, items, time.time())

    return await database.call(write)


async def run_until(worker, predicate, timeout=20.0):
    task = asyncio.create_task(worker.run())
    try:
        await asyncio.wait_for(predicate(), timeout)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def fhir_sink(session, url, **overrides):
    settings = FhirDestination(
        name="care",
        kind="fhir",
        purpose="care",
        url=url + "/fhir",
        timeout_s=0.5,
        linger_s=0.0,
        **overrides,
    )
    return FhirSink(settings, session, token="t0ken")


class Watcher:
    """Counts activity entries by kind and wakes waiters on each one (no polling)."""

    def __init__(self):
        self.activity = Activity()
        self.counts = {}
        self._changed = asyncio.Event()
        self.activity.subscribe(self._on_entry)

    def _on_entry(self, entry):
        self.counts[entry.kind] = self.counts.get(entry.kind, 0) + entry.fields.get("items", 1)
        self._changed.set()

    async def until(self, kind, count):
        while self.counts.get(kind, 0) < count:
            self._changed.clear()
            await self._changed.wait()


def worker_for(sink, database, outbox, **kwargs):
    watcher = kwargs.pop("watcher", None) or Watcher()
    return DeliveryWorker(
        sink,
        database,
        outbox,
        watcher.activity,
        purpose="care",
        may_send=kwargs.pop("may_send", lambda item: True),
        retry_initial_s=0.01,
        retry_max_s=0.05,
        rng=random.Random(1),
        **kwargs,
    )


def observation_ids(receiver):
    return [e["resource"]["id"] for r in receiver.accepted for e in r.json()["entry"]]


async def test_outage_then_recovery_delivers_everything_exactly_once(database, receiver, tmp_path):
    outbox = Outbox(Sealer(b"k" * 32))
    receiver.script.extend([Answer(503), Answer(500), Answer(hang=True), Answer(429)])
    assert await enqueue(database, outbox, [fhir_item(i) for i in range(5)]) == 5
    async with aiohttp.ClientSession() as session:
        watcher = Watcher()
        worker = worker_for(fhir_sink(session, receiver.url), database, outbox, watcher=watcher)
        await run_until(worker, lambda: watcher.until("delivered", 5))
    assert sorted(observation_ids(receiver)) == [f"o{i}" for i in range(5)]  # each exactly once
    assert len(receiver.requests) - len(receiver.accepted) == 4  # the four scripted failures
    assert receiver.accepted[0].headers["Authorization"] == "Bearer t0ken"
    assert worker.stats.delivered == 5 and worker.stats.retries >= 5
    depth = await database.call(Outbox.depth)
    assert depth == {}
    entries = await database.call(lambda c: audit.entries(c))
    assert sorted(e.data["reading_id"] for e in entries) == [f"r-{i}" for i in range(5)]
    assert {e.event for e in entries} == {"disclosure"}


async def test_duplicate_enqueue_is_ignored(database):
    outbox = Outbox(Sealer(b"k" * 32))
    assert await enqueue(database, outbox, [fhir_item(1), fhir_item(2)]) == 2
    assert await enqueue(database, outbox, [fhir_item(1)]) == 0
    assert await database.call(Outbox.depth) == {"care": (2, pytest.approx(time.time(), abs=5))}


async def test_permanent_4xx_goes_to_dead_letters_with_the_response(database, receiver):
    outbox = Outbox(Sealer(b"k" * 32))
    receiver.script.append(Answer(400, body=b'{"issue":"bad code"}'))
    await enqueue(database, outbox, [fhir_item(1)])
    async with aiohttp.ClientSession() as session:
        watcher = Watcher()
        worker = worker_for(fhir_sink(session, receiver.url), database, outbox, watcher=watcher)
        await run_until(worker, lambda: watcher.until("dead_letter", 1))
    rows = await database.call(
        lambda c: c.execute(
            "SELECT reading_id, status, response, attempts FROM dead_letters"
        ).fetchall()
    )
    assert rows == [("r-1", 400, '{"issue":"bad code"}', 1)]
    assert await database.call(Outbox.depth) == {}


async def test_retry_after_is_honoured(database, receiver):
    outbox = Outbox(Sealer(b"k" * 32))
    receiver.script.append(Answer(429, headers={"Retry-After": "120"}))
    await enqueue(database, outbox, [fhir_item(1)])
    async with aiohttp.ClientSession() as session:
        watcher = Watcher()
        worker = worker_for(fhir_sink(session, receiver.url), database, outbox, watcher=watcher)
        await run_until(worker, lambda: watcher.until("retry", 1))
    next_due = await database.call(lambda c: Outbox.next_due(c, "care"))
    assert next_due - time.time() > 110  # not retried before the server asked


async def test_withdrawn_consent_at_send_time_withholds_and_audits(database, receiver):
    outbox = Outbox(Sealer(b"k" * 32))
    await enqueue(database, outbox, [fhir_item(1)])
    async with aiohttp.ClientSession() as session:
        worker = worker_for(
            fhir_sink(session, receiver.url), database, outbox, may_send=lambda item: False
        )
        worker.drain()
        await asyncio.wait_for(worker.run(), 10)
    assert receiver.requests == []
    assert await database.call(Outbox.depth) == {}
    [entry] = await database.call(lambda c: audit.entries(c))
    assert entry.event == "withheld" and entry.data["reading_id"] == "r-1"


async def test_webhook_sink_signs_each_alert(database, receiver):
    from standardwebhooks.webhooks import Webhook

    outbox = Outbox(Sealer(b"k" * 32))
    secret = webhook_secret()
    items = [
        NewItem(
            "alerts",
            "alerting",
            "alert",
            0,
            "s-1",
            f"r-{i}",
            f"r-{i}.rule0.raised",
            "consent",
            ("value",),
            {"type": "alert.raised", "data": {"n": i}},
        )
        for i in range(3)
    ]
    await enqueue(database, outbox, items)
    settings = WebhookDestination(
        name="alerts",
        kind="webhook",
        purpose="alerting",
        url=receiver.url + "/hook",
        secret_env="UNUSED",
    )
    async with aiohttp.ClientSession() as session:
        sink = WebhookSink(settings, session, parse_secret(secret))
        watcher = Watcher()
        worker = worker_for(sink, database, outbox, watcher=watcher)
        await run_until(worker, lambda: watcher.until("delivered", 3))
    verifier = Webhook(secret)
    bodies = [verifier.verify(r.body, r.headers) for r in receiver.accepted]
    assert [b["data"]["n"] for b in bodies] == [0, 1, 2]
    assert [r.headers["webhook-id"] for r in receiver.accepted] == [
        f"r-{i}.rule0.raised" for i in range(3)
    ]


async def test_sealed_payloads_are_not_readable_on_disk(database, tmp_path):
    outbox = Outbox(Sealer(b"k" * 32))
    await enqueue(database, outbox, [fhir_item(7)])
    raw = (tmp_path / "gateway.db").read_bytes() + (tmp_path / "gateway.db-wal").read_bytes()
    assert b"Observation" not in raw


def test_backoff_is_full_jitter_and_capped():
    rng = random.Random(7)
    delays = [backoff_delay(attempt, 1.0, 60.0, rng) for attempt in range(20) for _ in range(50)]
    assert all(0 <= d <= 60.0 for d in delays)
    early = [backoff_delay(0, 1.0, 60.0, rng) for _ in range(200)]
    assert max(early) <= 1.0 and min(early) < 0.2
    assert max(backoff_delay(10, 1.0, 60.0, rng) for _ in range(200)) > 30


async def test_dead_letters_can_be_listed_and_requeued(database, receiver):
    outbox = Outbox(Sealer(b"k" * 32))
    receiver.script.append(Answer(422, body=b"unprocessable"))
    await enqueue(database, outbox, [fhir_item(1)])
    async with aiohttp.ClientSession() as session:
        watcher = Watcher()
        worker = worker_for(fhir_sink(session, receiver.url), database, outbox, watcher=watcher)
        await run_until(worker, lambda: watcher.until("dead_letter", 1))
        [letter] = await database.call(Outbox.dead_letters)
        assert (letter["reading_id"], letter["status"], letter["response"]) == (
            "r-1",
            422,
            "unprocessable",
        )

        def requeue(connection):
            with Transaction(connection):
                return Outbox.requeue(connection, [letter["id"]], time.time())

        assert await database.call(requeue) == 1
        assert await database.call(Outbox.dead_letters) == []
        await run_until(worker, lambda: watcher.until("delivered", 1))
    assert observation_ids(receiver) == ["o1"]


async def test_transaction_response_entries_are_judged_per_reading(database, receiver):
    outbox = Outbox(Sealer(b"k" * 32))

    def respond(request):
        entries = request.json()["entry"]
        statuses = [
            "400 Bad Request" if e["resource"]["id"] == "o2" else "201 Created" for e in entries
        ]
        body = {
            "resourceType": "Bundle",
            "type": "transaction-response",
            "entry": [{"response": {"status": s}} for s in statuses],
        }
        return Answer(200, body=orjson.dumps(body))

    receiver.responder = respond
    await enqueue(database, outbox, [fhir_item(i) for i in range(1, 4)])
    async with aiohttp.ClientSession() as session:
        watcher = Watcher()
        worker = worker_for(fhir_sink(session, receiver.url), database, outbox, watcher=watcher)
        await run_until(worker, lambda: watcher.until("dead_letter", 1))
    assert worker.stats.delivered == 2
    [letter] = await database.call(Outbox.dead_letters)
    assert letter["reading_id"] == "r-2" and letter["status"] == 400
    assert await database.call(Outbox.depth) == {}


async def test_a_destination_that_is_down_pauses_the_worker_instead_of_walking_the_backlog(
    database, receiver
):
    outbox = Outbox(Sealer(b"k" * 32))
    receiver.default = Answer(503)
    await enqueue(database, outbox, [fhir_item(i) for i in range(50)])
    async with aiohttp.ClientSession() as session:
        watcher = Watcher()
        sink = fhir_sink(session, receiver.url, batch_max_items=5)
        worker = DeliveryWorker(
            sink,
            database,
            outbox,
            watcher.activity,
            purpose="care",
            may_send=lambda item: True,
            retry_initial_s=0.2,
            retry_max_s=0.4,
            rng=random.Random(3),
        )
        await run_until(worker, lambda: watcher.until("retry", 15))  # three failed batches
    retries = [e for e in watcher.activity.recent if e.kind == "retry"]
    assert len(receiver.requests) == 3  # one request per pause, not one per batch of the backlog
    gaps = [b.at - a.at for a, b in itertools.pairwise(retries)]
    assert len(gaps) == 2 and all(gap >= 0.1 for gap in gaps)


async def test_outbox_due_passes_over_excluded_ids(database):
    outbox = Outbox(Sealer(b"k" * 32))
    await enqueue(database, outbox, [fhir_item(i) for i in range(6)])
    now = time.time() + 1
    first = await database.call(lambda c: outbox.due(c, "care", 3, now))
    exclude = [item.id for item in first]
    second = await database.call(lambda c: outbox.due(c, "care", 3, now, exclude=exclude))
    assert [i.reading_id for i in first] == ["r-0", "r-1", "r-2"]
    assert [i.reading_id for i in second] == ["r-3", "r-4", "r-5"]


async def test_a_backlog_read_ahead_is_delivered_once_even_when_a_send_fails(database, receiver):
    """Full batches are read ahead while the previous one is sent; a failed send discards
    what was read ahead (it is still queued) and everything arrives exactly once."""
    outbox = Outbox(Sealer(b"k" * 32))
    receiver.script.extend([Answer(200), Answer(200), Answer(503)])
    await enqueue(database, outbox, [fhir_item(i) for i in range(40)])
    async with aiohttp.ClientSession() as session:
        watcher = Watcher()
        sink = fhir_sink(session, receiver.url, batch_max_items=5)
        worker = worker_for(sink, database, outbox, watcher=watcher)
        await run_until(worker, lambda: watcher.until("delivered", 40))
    delivered = observation_ids(receiver)
    assert sorted(delivered) == sorted(f"o{i}" for i in range(40))  # every one, exactly once
    assert len(receiver.requests) == len(receiver.accepted) + 1  # the one 503
    assert await database.call(Outbox.depth) == {}
    entries = await database.call(lambda c: audit.entries(c))
    assert sorted(e.data["reading_id"] for e in entries) == sorted(f"r-{i}" for i in range(40))


@pytest.mark.parametrize(
    "status",
    ['" 404 Not Found"', "409", '"412"', '"\\u0034\\u0030\\u0030"'],
)
async def test_a_failing_entry_status_in_any_spelling_is_judged_per_reading(
    database, receiver, status
):
    """A transaction-response with no failing status is taken whole without parsing it; one
    written pretty-printed, with spaces, as a number, with four digits or with JSON escapes
    is still read entry by entry, and only the refused reading goes to the dead letters."""
    outbox = Outbox(Sealer(b"k" * 32))
    created = '"201 Created"'

    def respond(request):
        ids = [e["resource"]["id"] for e in request.json()["entry"]]
        entries = ",\n".join(
            f'  {{"response": {{"status": {status if i == "o2" else created}}}}}' for i in ids
        )
        text = '{\n "resourceType": "Bundle", "type": "transaction-response",\n "entry": [\n'
        return Answer(200, body=(text + entries + "\n ]\n}").encode())

    receiver.responder = respond
    await enqueue(database, outbox, [fhir_item(i) for i in range(1, 4)])
    async with aiohttp.ClientSession() as session:
        watcher = Watcher()
        worker = worker_for(fhir_sink(session, receiver.url), database, outbox, watcher=watcher)
        await run_until(worker, lambda: watcher.until("dead_letter", 1))
    assert worker.stats.delivered == 2
    [letter] = await database.call(Outbox.dead_letters)
    assert letter["reading_id"] == "r-2"
