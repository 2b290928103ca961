"""Store once, send many, through the real gateway: a reading is written once; what waits for
each destination is a small queue row, and the payload is built from the stored reading.

Three destinations (care platform, analytics, nurse alerts), one of them down for an hour of
simulated time, one refusing one reading, consent withdrawn while items wait, kill -9 at random
moments, and the audit log's batch entries checked for tampering.
"""

from __future__ import annotations

import asyncio
import random
import sqlite3
import time
from datetime import datetime, timedelta
from pathlib import Path

import orjson
import pytest

from gateway.models import Measurement, Quantity
from gateway.privacy import audit
from gateway.settings import Settings, parse_settings
from gateway.storage.database import Transaction
from gateway.storage.outbox import Outbox, PayloadCache
from gateway.storage.schema import SCHEMA_VERSION
from tests.configs import ADULT, REFUSER, base_config, free_port, webhook_secret, write_config
from tests.gateway_harness import ActivityWatcher, inject, queued, running_gateway
from tests.receivers import Answer, Receiver, fhir_transaction_response
from tests.test_e2e import GatewayProcess, simulated_cuff

POISON = 99  # the care platform refuses a systolic of exactly this value
ALARM = 190  # over the alert rule's limit
CUFFS = {ADULT: "C4:7C:8D:6A:00:01", REFUSER: "C4:7C:8D:6A:00:02"}
HOUR_S = 3600


def observations(request):
    return [
        e["resource"]
        for e in request.json()["entry"]
        if e["resource"]["resourceType"] == "Observation"
    ]


def panel_identifiers(receiver: Receiver) -> list[str]:
    return [
        o["identifier"][0]["value"]
        for r in receiver.accepted
        for o in observations(r)
        if o["code"]["coding"][0]["code"] == "150020"
    ]


def reading(minute: int, systolic: int) -> Measurement:
    return Measurement(
        kind="blood_pressure",
        measured_at=datetime(2026, 11, 20, 8) + timedelta(minutes=minute),
        values={
            "systolic": Quantity(value=systolic, unit="mm[Hg]"),
            "diastolic": Quantity(value=80, unit="mm[Hg]"),
        },
    )


REFUSING = {"poison": True}  # the care platform refuses POISON while this holds


def care_platform(request) -> Answer:
    if REFUSING["poison"] and any(
        c["valueQuantity"]["value"] == POISON
        for o in observations(request)
        for c in o.get("component", [])
    ):
        return Answer(400, body=b'{"resourceType":"OperationOutcome"}')
    return Answer(200, body=fhir_transaction_response(request.body))


def three_destinations(tmp_path: Path, ports: dict[str, int]) -> Settings:
    secret = tmp_path / "alerts.secret"
    secret.write_text(webhook_secret())
    retry = {"retry_initial_s": 0.02, "retry_max_s": 0.2}
    return parse_settings(
        {
            "gateway": {
                "data_dir": str(tmp_path / "data"),
                "log_level": "error",
                "shutdown_grace_s": 2.0,
                "api": {"listen": f"127.0.0.1:{free_port()}"},
            },
            "subjects": [
                {
                    "id": person,
                    "birth_date": "1970-01-01",
                    "consent": {"care": True, "analytics": True, "alerting": True},
                }
                for person in CUFFS
            ],
            "devices": [
                {
                    "address": address,
                    "profile": "blood_pressure",
                    "subject": person,
                    "simulated": True,
                    "simulation": {"readings": []},
                }
                for person, address in CUFFS.items()
            ],
            "destinations": [
                {
                    "name": "care",
                    "kind": "fhir",
                    "purpose": "care",
                    "url": f"http://127.0.0.1:{ports['care']}/fhir",
                    "batch_max_items": 8,
                    "linger_s": 0.01,
                    **retry,
                },
                {
                    "name": "product",
                    "kind": "analytics",
                    "purpose": "analytics",
                    "url": f"http://127.0.0.1:{ports['product']}/e",
                    "fields": ["kind", "values", "measured_day", "subject"],
                    "pseudonym_key_file": str(tmp_path / "analytics.key"),
                    "batch_max_items": 10,
                    "linger_s": 0.01,
                    **retry,
                },
                {
                    "name": "nurse",
                    "kind": "webhook",
                    "purpose": "alerting",
                    "url": f"http://127.0.0.1:{ports['nurse']}/h",
                    "secret_file": str(secret),
                    **retry,
                },
            ],
            "alert_rules": [
                {
                    "kind": "blood_pressure",
                    "value": "systolic",
                    "above": 180,
                    "unit": "mm[Hg]",
                    "severity": "critical",
                }
            ],
        }
    )


def rows(database: Path, sql: str, *args: object) -> list[tuple]:
    connection = sqlite3.connect(database)
    try:
        return connection.execute(sql, args).fetchall()
    finally:
        connection.close()


async def test_three_destinations_one_down_for_an_hour_one_refusing_and_a_withdrawal(tmp_path):
    ports = {"care": free_port(), "product": free_port(), "nurse": free_port()}
    analytics = {"down": True}

    def product(request) -> Answer:
        if analytics["down"]:
            return Answer(503, headers={"Retry-After": str(HOUR_S)})
        return Answer(200)

    REFUSING["poison"] = True
    care = await Receiver(responder=care_platform).start(ports["care"])
    shop = await Receiver(responder=product).start(ports["product"])
    nurse = await Receiver().start(ports["nurse"])
    settings = three_destinations(tmp_path, ports)
    mine = [reading(m, ALARM if m == 7 else POISON if m == 11 else 120 + m) for m in range(30)]
    theirs = [reading(m, 130 + m) for m in range(5)]
    database = tmp_path / "data" / "gateway.db"
    try:
        async with running_gateway(settings) as gateway:
            watcher = ActivityWatcher(gateway.activity)
            await inject(gateway, CUFFS[ADULT], mine)
            await inject(gateway, CUFFS[REFUSER], theirs)
            await care.wait_for(lambda r: len(panel_identifiers(r)) >= 34, timeout=30)
            await nurse.wait_for(lambda r: len(r.accepted) >= 2, timeout=30)
            await asyncio.wait_for(watcher.until("dead_letter", 1), 30)
            await shop.wait_for(lambda r: len(r.requests) >= 1, timeout=30)
            await asyncio.wait_for(watcher.until("retry", 1), 30)
            # What the analytics destination would get, as built at intake.
            built_at_intake = {
                item.reading_id: item.body
                for item in await queued(gateway, "product")
                if item.subject_ref == gateway.rights.subject_ref(ADULT)
            }
            # Consent withdrawn while their items wait: purged, never sent.
            change = await gateway.rights.change_consent(REFUSER, {"analytics": False}, "test")
            assert change.purged == {"analytics": 5}
            mine_ref = gateway.rights.subject_ref(ADULT)
            theirs_ref = gateway.rights.subject_ref(REFUSER)

        # Stored once: one sealed row per reading; what waits is a queue row without a payload.
        assert rows(database, "SELECT COUNT(*) FROM readings") == [(35,)]
        waiting = rows(
            database,
            "SELECT subject_ref, length(payload) FROM outbox WHERE destination = 'product'",
        )
        assert len(waiting) == 30 and {ref for ref, _ in waiting} == {mine_ref}
        assert {size for _, size in waiting} == {0}
        [(dead_size,)] = rows(database, "SELECT length(payload) FROM dead_letters")
        assert dead_size == 0  # the refused reading is kept once, in readings
        assert len(built_at_intake) == 30

        # An hour of simulated time passes: every scheduled retry moves an hour closer.
        connection = sqlite3.connect(database)
        with connection:
            connection.execute("UPDATE outbox SET next_attempt_at = next_attempt_at - ?", (HOUR_S,))
        connection.close()
        analytics["down"] = False
        REFUSING["poison"] = False  # the platform was fixed: the dead letter is re-queued
        async with running_gateway(settings) as gateway:
            await shop.wait_for(
                lambda r: sum(len(q.json()["events"]) for q in r.accepted) >= 30, timeout=30
            )
            [letter] = await gateway.on_database(Outbox.dead_letters)

            def requeue(connection):
                with Transaction(connection):
                    return Outbox.requeue(connection, [letter["id"]], time.time())

            assert await gateway.on_database(requeue) == 1
            gateway.wake_delivery()
            await care.wait_for(lambda r: len(set(panel_identifiers(r))) >= 35, timeout=30)
    finally:
        for receiver in (care, shop, nurse):
            await receiver.stop()

    # The care platform: every reading exactly once, the once-refused one (built again from
    # its stored reading after its dead letter was re-queued) included.
    identifiers = panel_identifiers(care)
    assert len(identifiers) == len(set(identifiers)) == 35
    # The nurse: the one alert, and its all-clear with the next reading.
    alerts = [orjson.loads(r.body) for r in nurse.accepted]
    assert [a["type"] for a in alerts] == ["alert.raised", "alert.resolved"]
    assert alerts[0]["data"]["value"]["value"] == ALARM
    # Analytics: built again from the stored readings after the restart, byte for byte what
    # intake built; the withdrawn person's readings never left.
    events = [e for q in shop.accepted for e in q.json()["events"]]
    assert len(events) == 30 and len({e["event_id"] for e in events}) == 30
    assert sorted(orjson.dumps(e) for e in events) == sorted(built_at_intake.values())
    assert rows(database, "SELECT COUNT(*) FROM outbox") == [(0,)]

    # Audited per batch, exact per person.
    connection = sqlite3.connect(database)
    try:
        stored = connection.execute(
            "SELECT COUNT(*) FROM audit WHERE event = 'disclosure'"
        ).fetchone()[0]
        assert stored < 35 + 30 + 2  # fewer entries than items sent: one per batch
        shown = audit.entries(connection, subject_ref=mine_ref, limit=100_000)
        sent = [e for e in shown if e.event == "disclosure"]
        by_destination: dict[str, list[str]] = {}
        for entry in sent:
            assert entry.subject_ref == mine_ref
            by_destination.setdefault(entry.data["destination"], []).append(
                entry.data["reading_id"]
            )
        assert len(by_destination["care"]) == len(set(by_destination["care"])) == 30
        assert sorted(by_destination["product"]) == sorted(built_at_intake)
        assert len(by_destination["nurse"]) == 2
        theirs_sent = audit.entries(connection, subject_ref=theirs_ref, limit=100_000)
        assert {e.data["destination"] for e in theirs_sent if e.event == "disclosure"} == {"care"}
        assert audit.verify(connection, key=audit_key(tmp_path / "data")).ok
    finally:
        connection.close()


def audit_key(data_dir: Path) -> bytes:
    return (data_dir / "keys" / "audit.key").read_bytes()


def tamper(database: Path, sql: str, *args: object) -> audit.VerifyResult:
    connection = sqlite3.connect(database)
    try:
        with connection:
            connection.execute(sql, args)
        return audit.verify(connection, key=audit_key(database.parent))
    finally:
        connection.close()


async def test_a_batch_audit_entry_that_is_altered_or_hidden_is_named_by_verify(tmp_path):
    ports = {"care": free_port(), "product": free_port(), "nurse": free_port()}
    care = await Receiver(responder=care_platform).start(ports["care"])
    shop = await Receiver().start(ports["product"])
    nurse = await Receiver().start(ports["nurse"])
    settings = three_destinations(tmp_path, ports)
    try:
        async with running_gateway(settings) as gateway:
            await inject(gateway, CUFFS[ADULT], [reading(m, 120 + m) for m in range(12)])
            await inject(gateway, CUFFS[REFUSER], [reading(m, 130 + m) for m in range(4)])
            await care.wait_for(lambda r: len(panel_identifiers(r)) >= 16, timeout=30)
            await shop.wait_for(
                lambda r: sum(len(q.json()["events"]) for q in r.accepted) >= 16, timeout=30
            )
    finally:
        for receiver in (care, shop, nurse):
            await receiver.stop()
    database = tmp_path / "data" / "gateway.db"
    batches = rows(
        database,
        "SELECT seq, data FROM audit WHERE event = 'disclosure' ORDER BY seq",
    )
    assert batches and all(b'"readings_by_subject"' in data for _, data in batches)
    seq, data = batches[-1]
    named = orjson.loads(data)["readings_by_subject"]
    person = next(iter(named))
    # Hiding a disclosure from a person's page: their row in the index removed.
    hidden = tamper(
        database, "DELETE FROM audit_subjects WHERE seq = ? AND subject_ref = ?", seq, person
    )
    assert not hidden.ok and hidden.problem == (
        f"entry {seq}: the index of the people it names was altered"
    )
    tamper(database, "INSERT INTO audit_subjects (subject_ref, seq) VALUES (?, ?)", person, seq)
    # Dropping one reading from a batch entry's content.
    named[person] = named[person][1:]
    altered = tamper(
        database,
        "UPDATE audit SET data = ? WHERE seq = ?",
        orjson.dumps(
            {**orjson.loads(data), "readings_by_subject": named}, option=orjson.OPT_SORT_KEYS
        ),
        seq,
    )
    assert not altered.ok and altered.problem == f"entry {seq} was altered"


async def test_kill_9_at_random_moments_loses_nothing_and_resends_only_the_same_identifiers(
    tmp_path,
):
    rng = random.Random(20261130)
    port = free_port()
    (tmp_path / "alerts.secret").write_text(webhook_secret())
    config = base_config(
        tmp_path / "data",
        tmp_path / "alerts.secret",
        f"http://127.0.0.1:{port}/fhir",
        f"http://127.0.0.1:{free_port()}/h",
    )
    config["gateway"]["log_level"] = "debug"
    config["destinations"][0]["batch_max_items"] = 4
    readings = [
        {
            "systolic": 120 + i,
            "diastolic": 80,
            "pulse_rate": 60,
            "measured_at": f"2026-11-20T08:{i:02d}:00",
        }
        for i in range(40)
    ]
    config["devices"] = [simulated_cuff(ADULT, readings)]
    path = write_config(tmp_path / "gateway.toml", config)
    flaky = random.Random(7)

    def sometimes_down(request) -> Answer:
        if flaky.random() < 0.25:
            return Answer(503)
        return Answer(200, body=fhir_transaction_response(request.body))

    care = await Receiver(responder=sometimes_down).start(port)
    try:
        # First run: every reading stored, then killed at a random point of the delivery.
        first = GatewayProcess(path)
        await first.start()
        try:
            await first.wait_until(
                lambda events: (
                    sum(e.get("count", 0) for e in events if e.get("event") == "readings_stored")
                    >= 40
                )
            )
            target = len(care.requests) + rng.randint(0, 4)
            await care.wait_for(lambda r: len(r.requests) >= target, timeout=30)
        finally:
            first.kill()  # SIGKILL: no shutdown code runs
        await first.process.wait()
        # Then killed again at random moments, each after a random number of requests.
        for _ in range(3):
            again = GatewayProcess(path)
            await again.start()
            try:
                target = len(care.requests) + rng.randint(1, 3)
                await care.wait_for(
                    lambda r, t=target: (
                        len(r.requests) >= t or len(set(panel_identifiers(r))) >= 40
                    ),
                    timeout=30,
                )
            finally:
                again.kill()
            await again.process.wait()
        last = GatewayProcess(path)
        await last.start()
        try:
            await last.wait_for_event(lambda e: e.get("event") == "gateway_started")
            await care.wait_for(lambda r: len(set(panel_identifiers(r))) >= 40, timeout=60)
            code = await last.stop()
        except TimeoutError:
            pytest.fail("timed out; gateway output:\n" + "\n".join(last.lines[-40:]))
        finally:
            last.kill()
    finally:
        await care.stop()
    assert code == 0
    # Nothing lost: every reading arrived. A resend is the same resource under the same
    # identifier (conditional create makes it a no-op), never a new one.
    copies: dict[str, set[bytes]] = {}
    for request in care.accepted:
        for observation in observations(request):
            key = observation["identifier"][0]["value"]
            copies.setdefault(key, set()).add(
                orjson.dumps(observation, option=orjson.OPT_SORT_KEYS)
            )
    panels = [
        key
        for request in care.accepted
        for o in observations(request)
        if o["code"]["coding"][0]["code"] == "150020"
        for key in [o["identifier"][0]["value"]]
    ]
    assert len(set(panels)) == 40
    assert all(len(versions) == 1 for versions in copies.values())
    systolic = sorted(
        {
            c["valueQuantity"]["value"]
            for r in care.accepted
            for o in observations(r)
            if o["code"]["coding"][0]["code"] == "150020"
            for c in o["component"]
            if c["code"]["coding"][0]["code"] == "150021"
        }
    )
    assert systolic == [120 + i for i in range(40)]
    database = tmp_path / "data" / "gateway.db"
    assert rows(database, "SELECT COUNT(*) FROM readings") == [(40,)]
    assert rows(database, "SELECT COUNT(*) FROM outbox") == [(0,)]


def test_payloads_kept_from_intake_are_bounded_and_forgotten_with_their_person():
    cache = PayloadCache(max_bytes=10)
    cache.put("care", "r-1", "s-1", "care", b"aaaa")
    cache.put("product", "r-1", "s-1", "analytics", b"bbbb")
    assert cache.get("care", "r-1") == b"aaaa" and cache.size == 8
    cache.put("care", "r-2", "s-2", "care", b"cccc")  # over the bound: the oldest goes
    assert cache.get("care", "r-1") is None and cache.get("care", "r-2") == b"cccc"
    assert cache.size == 8
    cache.put("care", "r-3", "s-3", "care", b"x" * 11)  # larger than the whole bound: not kept
    assert cache.get("care", "r-3") is None
    cache.forget("s-1", "analytics")  # a withdrawal for one purpose
    assert cache.get("product", "r-1") is None and len(cache) == 1
    cache.put("product", "r-4", "s-2", "analytics", b"dd")
    cache.forget("s-2")  # an erasure: every purpose
    assert len(cache) == 0 and cache.size == 0
    cache.put("care", "r-5", "s-5", "care", b"ee")
    cache.drop("care", ["r-5", "r-6"])  # delivered (and one never kept)
    assert len(cache) == 0 and cache.size == 0


async def test_a_database_from_before_store_once_is_read_as_it_is_and_marked_as_the_new_schema(
    tmp_path,
):
    from gateway.storage.crypto import Sealer
    from gateway.storage.database import Database
    from gateway.storage.outbox import NewItem

    path = tmp_path / "gateway.db"
    database = Database(path)
    await database.open()
    outbox = Outbox(Sealer(b"k" * 32))
    old_style = NewItem(
        "care", "care", "reading", 1, "s-1", "r-1", "r-1", "consent", ("kind",), {"entries": []}
    )

    def write(connection):
        with Transaction(connection):
            outbox.enqueue(connection, [old_style], time.time())
        connection.execute("PRAGMA user_version=1")  # as the gateway before store once left it

    try:
        await database.call(write)
    finally:
        await database.close()
    database = Database(path)
    await database.open()  # the same file, opened by this gateway
    try:
        [item] = await database.call(lambda c: outbox.due(c, "care", 10, float("inf")))
        version = await database.call(lambda c: c.execute("PRAGMA user_version").fetchone()[0])
    finally:
        await database.close()
    assert item.payload == {"entries": []} and not item.needs_build  # its payload, as stored
    assert version == SCHEMA_VERSION  # and every table this gateway knows is there


async def test_a_database_from_a_newer_gateway_is_refused_with_a_clear_error(tmp_path):
    from gateway.storage.database import Database, StoreError

    path = tmp_path / "gateway.db"
    connection = sqlite3.connect(path)
    connection.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    connection.close()
    database = Database(path)
    with pytest.raises(StoreError, match="written by a newer gateway"):
        await database.open()
    await database.close()
