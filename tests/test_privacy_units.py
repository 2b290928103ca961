"""Pseudonyms, key files, generalisation, aggregates, retention and residency, one by one."""

from __future__ import annotations

import base64
import copy
import hashlib
import os
import stat
import time
from datetime import UTC, datetime, timedelta

import orjson
import pytest

from filters.aggregate import aggregate
from filters.chain import ChainContext, Item
from filters.generalise import round_to_step, round_values
from filters.pseudonymise import KeyRing, pseudonymise
from gateway.exporters.aggregate.config import AggregateDestination
from gateway.exporters.aggregate.windows import AggregateWindows
from gateway.privacy import audit
from gateway.privacy.consent import ConsentRegistry, ConsentRule
from gateway.privacy.pseudonym_keys import load_key_ring
from gateway.privacy.restriction import Restrictions
from gateway.privacy.retention import Retention
from gateway.settings import ConfigError, parse_settings
from gateway.storage.crypto import Sealer
from gateway.storage.database import Database, Transaction, reading_aad
from gateway.storage.outbox import Outbox

PERSON = "197001011234"


def ctx(destination: str = "product") -> ChainContext:
    return ChainContext(destination, "analytics", lambda ref, purpose: True)


def test_pseudonyms_are_keyed_per_destination_and_carry_the_key_id():
    ring = KeyRing("k1", b"a" * 32)
    first = ring.pseudonym("product", "subject", PERSON)
    assert first == ring.pseudonym("product", "subject", PERSON)  # stable
    assert first.startswith("k1.") and len(first) == 3 + 22
    assert first != ring.pseudonym("research", "subject", PERSON)  # never shared
    assert first != KeyRing("k1", b"b" * 32).pseudonym("product", "subject", PERSON)
    assert first != ring.pseudonym("product", "company", PERSON)
    plain = hashlib.sha256(PERSON.encode()).digest()[:16]
    assert base64.urlsafe_b64encode(plain).rstrip(b"=").decode() not in first


def test_pseudonymise_step_replaces_only_listed_identifiers():
    item = Item("r-1", "s-1", "reading", {"subject": PERSON, "company": "5591464838", "kind": "bp"})
    out = pseudonymise(KeyRing("k2", b"z" * 32), ["subject"])(item, ctx())
    assert out is not None
    assert out.payload["subject"].startswith("k2.") and out.payload["company"] == "5591464838"


def test_key_file_is_generated_0600_and_rotation_uses_the_active_key(tmp_path):
    path = tmp_path / "keys" / "analytics.key"
    ring = load_key_ring(path, "destinations.product.pseudonym_key_file")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert ring.active_id == "k1" and len(ring.active_key) == 32
    assert load_key_ring(path, "x").active_key == ring.active_key  # same key next start
    document = orjson.loads(path.read_bytes())
    document["keys"]["k2"] = base64.b64encode(os.urandom(32)).decode()
    document["active"] = "k2"
    path.write_bytes(orjson.dumps(document))
    rotated = load_key_ring(path, "x")
    assert rotated.active_id == "k2"
    assert rotated.pseudonym("p", "subject", PERSON).startswith("k2.")


def test_key_file_readable_by_others_or_malformed_is_refused(tmp_path):
    path = tmp_path / "analytics.key"
    load_key_ring(path, "x")
    path.chmod(0o644)
    with pytest.raises(ConfigError, match="readable by others; run: chmod 600"):
        load_key_ring(path, "destinations.product.pseudonym_key_file")
    path.chmod(0o600)
    path.write_text("not json")
    with pytest.raises(ConfigError, match="must be JSON like"):
        load_key_ring(path, "x")


@pytest.mark.parametrize(
    ("value", "step", "expected"),
    [(127, 5, 125), (128, 5, 130), (72.6, 0.5, 72.5), (72.7, 0.25, 72.75), (99.4, 1, 99)],
)
def test_round_to_step(value, step, expected):
    assert round_to_step(value, step) == expected


def test_round_values_changes_only_listed_values():
    item = Item(
        "r",
        "s",
        "reading",
        {
            "values": {
                "systolic": {"value": 133, "unit": "mm[Hg]"},
                "pulse_rate": {"value": 71, "unit": "/min"},
            }
        },
    )
    out = round_values({"systolic": 5})(item, ctx())
    assert out is not None
    assert out.payload["values"] == {
        "systolic": {"value": 135, "unit": "mm[Hg]"},
        "pulse_rate": {"value": 71, "unit": "/min"},
    }


def event(company: str, systolic: float) -> dict:
    return {
        "company": company,
        "kind": "blood_pressure",
        "values": {"systolic": {"value": systolic, "unit": "mm[Hg]"}},
    }


def test_aggregate_suppresses_cells_with_fewer_than_k_people_and_hides_identity():
    events = [(f"s-{i}", event("5591464838", 120 + i)) for i in range(5)]
    events += [("s-0", event("5591464838", 140))]  # a second reading of one person
    events += [(f"t-{i}", event("5560000000", 130)) for i in range(4)]  # only 4 people
    report = aggregate(events, ["company", "kind"], 5, {"5591464838": "Acme AB"})
    assert report["suppressed_cells"] == 1
    [cell] = report["cells"]
    assert cell["group"] == {"company": "Acme AB", "kind": "blood_pressure"}
    assert (cell["people"], cell["readings"]) == (5, 6)
    systolic = cell["values"]["systolic"]
    assert systolic["count"] == 6 and systolic["mean"] == pytest.approx(
        (120 + 121 + 122 + 123 + 124 + 140) / 6, 0.01
    )
    assert set(systolic) == {"unit", "count", "mean", "sd"}  # no min/max: no single reading
    text = orjson.dumps(report)
    assert b"5591464838" not in text and b"s-0" not in text


def test_unlabelled_companies_are_never_sent_by_id():
    report = aggregate([(f"s-{i}", event("5591464838", 120)) for i in range(5)], ["company"], 5, {})
    assert report["cells"][0]["group"] == {"company": "other"}


async def test_aggregate_windows_emit_each_closed_window_once(tmp_path):
    database = Database(tmp_path / "g.db")
    await database.open()
    sealer = Sealer(b"s" * 32)
    outbox = Outbox(sealer)
    consents = ConsentRegistry()
    restricted = Restrictions()
    restricted.apply("s-restricted", True)
    clock = [1_000_000.0]
    destination = AggregateDestination(
        name="employer",
        kind="aggregate",
        purpose="employer_statistics",
        url="https://x.eu/a",
        window_s=100,
        k=2,
        group_by=["kind"],
    )
    windows = AggregateWindows(
        destination,
        database,
        outbox,
        sealer,
        ConsentRule(consents, restricted),
        lambda: None,
        clock=lambda: clock[0],
    )

    def store(connection, ref, at):
        body = {"kind": "blood_pressure", "values": {"systolic": {"value": 130, "unit": "mm[Hg]"}}}
        reading_id = f"r-{ref}-{at}"
        with Transaction(connection):
            connection.execute(
                "INSERT INTO readings VALUES (?, ?, 'blood_pressure', NULL, ?, ?)",
                (
                    reading_id,
                    ref,
                    datetime.fromtimestamp(at, UTC).isoformat(),
                    sealer.seal(orjson.dumps(body), reading_aad(reading_id)),
                ),
            )

    try:
        assert await windows.emit_closed() == 0  # first start: the current window begins
        for ref in ("s-1", "s-2", "s-3", "s-restricted", "s-refused"):
            if ref != "s-refused":
                consents.apply(ref, {"employer_statistics": True})
            await database.call(lambda c, r=ref: store(c, r, clock[0] + 10))
        clock[0] += 250  # two windows have closed
        assert await windows.emit_closed() == 2
        assert await windows.emit_closed() == 0  # and never again
        items = await database.call(lambda c: outbox.due(c, "employer", 10, float("inf")))
        first, second = (item.payload for item in items)
        assert first["cells"][0]["people"] == 3  # restricted and refusing people left out
        assert second["cells"] == [] and second["suppressed_cells"] == 0
        assert {item.subject_ref for item in items} == {"-"}
    finally:
        await database.close()


async def test_retention_deletes_old_readings_and_audits_the_count(tmp_path):
    database = Database(tmp_path / "g.db")
    await database.open()
    now = time.time()

    def store(connection):
        with Transaction(connection):
            for days in (1, 40, 400):
                at = datetime.fromtimestamp(now, UTC) - timedelta(days=days)
                connection.execute(
                    "INSERT INTO readings VALUES (?, 's', 'k', NULL, ?, x'00')",
                    (f"r-{days}", at.isoformat()),
                )

    try:
        await database.call(store)
        assert await Retention(30, database).sweep(now) == {
            "readings": 2,
            "dead_letters": 0,
            "alert_state": 0,
            "held_weighings": 0,
        }
        left = await database.call(
            lambda c: c.execute("SELECT reading_id FROM readings").fetchall()
        )
        assert left == [("r-1",)]
        [entry] = await database.call(lambda c: audit.entries(c))
        assert entry.event == "retention.deleted" and entry.data["readings"] == 2
    finally:
        await database.close()


BASE = {
    "gateway": {"data_dir": "/var/lib/hg"},
    "subjects": [{"id": PERSON, "birth_date": "1970-01-01"}],
    "destinations": [
        {
            "name": "product",
            "kind": "analytics",
            "purpose": "analytics",
            "url": "https://a.example.com/e",
            "fields": ["kind"],
            "pseudonym_key_file": "/etc/hg/a.key",
            "region": "US",
        }
    ],
}


def test_residency_guard_refuses_a_non_eea_destination_by_name():
    with pytest.raises(
        ConfigError,
        match=r"destinations\[0\].region: 'product' processes data in"
        r" US, outside the EU/EEA",
    ):
        parse_settings(copy.deepcopy(BASE))
    allowed = copy.deepcopy(BASE)
    allowed["gateway"]["require_eea"] = False
    assert parse_settings(allowed).destinations[0].region == "US"
    eea = copy.deepcopy(BASE)
    eea["destinations"][0]["region"] = "no"
    assert parse_settings(eea).destinations[0].region == "NO"


@pytest.mark.parametrize(
    ("field", "message"),
    [
        (
            "birth_date",
            "'birth_date' is a direct identifier and never goes to analytics; use 'age_band'",
        ),
        ("device_address", "use 'device_model'"),
        ("shoe_size", "unknown field 'shoe_size'"),
    ],
)
def test_analytics_fields_are_checked(field, message):
    config = copy.deepcopy(BASE)
    config["destinations"][0]["region"] = "SE"
    config["destinations"][0]["fields"] = ["kind", field]
    with pytest.raises(ConfigError, match=message):
        parse_settings(config)


async def test_a_field_slipped_in_after_minimisation_never_reaches_the_outbox(tmp_path):
    from datetime import datetime

    from gateway.models import Measurement, Quantity
    from tests.configs import free_port
    from tests.gateway_harness import closed_port_url, inject, queued, running_gateway

    settings = parse_settings(
        {
            "gateway": {
                "data_dir": str(tmp_path / "d"),
                "log_level": "error",
                "api": {"listen": f"127.0.0.1:{free_port()}"},
            },
            "subjects": [
                {"id": PERSON, "birth_date": "1970-01-01", "consent": {"analytics": True}}
            ],
            "devices": [
                {
                    "address": "C4:7C:8D:6A:00:01",
                    "profile": "blood_pressure",
                    "subject": PERSON,
                    "simulated": True,
                    "simulation": {"readings": []},
                }
            ],
            "destinations": [
                {
                    "name": "product",
                    "kind": "analytics",
                    "purpose": "analytics",
                    "url": closed_port_url("/e"),
                    "fields": ["kind", "values"],
                    "pseudonym_key_file": str(tmp_path / "a.key"),
                }
            ],
        }
    )

    def buggy_step(item, ctx):  # a later step that (wrongly) adds a field
        item.payload["measured_at"] = "2026-11-20T08:00:00"
        return item

    reading = Measurement(
        kind="blood_pressure",
        measured_at=datetime(2026, 11, 20, 8),
        values={"systolic": Quantity(value=120, unit="mm[Hg]")},
    )
    async with running_gateway(settings) as gateway:
        route = next(r for r in gateway.pipeline._routes if r.name == "product")
        route.steps.append(buggy_step)
        await inject(gateway, "C4:7C:8D:6A:00:01", [reading])
        assert await queued(gateway, "product") == []
        assert gateway.pipeline.stats.identifier_blocked == 1
        route.steps.remove(buggy_step)
        later = reading.model_copy(update={"measured_at": datetime(2026, 11, 20, 9)})
        await inject(gateway, "C4:7C:8D:6A:00:01", [later])
        [item] = await queued(gateway, "product")
        assert set(item.payload) == {"event_id", "kind", "values"}


async def test_alerts_are_audited_without_the_measured_value(tmp_path):
    from datetime import datetime

    from gateway.models import Measurement, Quantity
    from tests.gateway_harness import alerting_settings, inject, running_gateway

    rule = {
        "kind": "blood_pressure",
        "value": "systolic",
        "above": 180,
        "severity": "critical",
        "vital_interest": True,
    }
    settings = alerting_settings(tmp_path / "d", PERSON, "C4:7C:8D:6A:00:01", rule, consent={})
    reading = Measurement(
        kind="blood_pressure",
        measured_at=datetime(2026, 11, 20, 8),
        values={"systolic": Quantity(value=197, unit="mm[Hg]")},
    )
    async with running_gateway(settings) as gateway:
        await inject(gateway, "C4:7C:8D:6A:00:01", [reading])
        entries = await gateway.database.call(
            lambda c: audit.entries(c, subject_ref=gateway.rights.subject_ref(PERSON))
        )
    [raised] = [e for e in entries if e.event == "alert.raised"]
    assert raised.data["severity"] == "critical" and raised.data["vital_interest"] is True
    assert raised.data["limit"] == 180 and raised.data["direction"] == "above"
    assert "197" not in orjson.dumps(raised.data).decode()


def test_a_persons_pseudonyms_are_made_once_and_dropped_on_erasure_and_rotation():
    from filters.pseudonymise import KeyRing, PseudonymCache

    ring = KeyRing("k1", b"a" * 32)
    cache = PseudonymCache(ring)
    made = cache.pseudonym("product", "subject", "197001011234")
    assert made == ring.pseudonym("product", "subject", "197001011234")  # the same pseudonym
    assert cache.pseudonym("product", "subject", "197001011234") == made and len(cache) == 1
    cache.pseudonym("product", "company", "5591464838")
    cache.forget({"197001011234"})  # erased: nothing about them is kept
    assert len(cache) == 1
    cache.rotate(KeyRing("k2", b"b" * 32))
    assert len(cache) == 0
    rotated = cache.pseudonym("product", "subject", "197001011234")
    assert rotated.startswith("k2.") and rotated != made
    for index in range(PseudonymCache.MAX_ENTRIES + 10):  # bounded, whatever comes
        cache.pseudonym("product", "subject", str(index))
    assert len(cache) <= PseudonymCache.MAX_ENTRIES


def test_a_persons_reference_is_made_once_and_dropped_on_erasure():
    from gateway.privacy.references import References

    references = References(b"r" * 32)
    first = references.subject_ref("197001011234")
    assert references.subject_ref("197001011234") == first
    references.forget("197001011234")
    assert References(b"r" * 32).subject_ref("197001011234") == first  # same key, same ref
    assert references.subject_ref("197001011234") == first
