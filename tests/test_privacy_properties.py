"""Property tests of the privacy rules over random configurations and readings.

Each example runs the real Gateway (real pipeline, chains, SQLite outbox) and then reads back,
decrypted, what was queued for each destination: the last point before bytes leave the hub.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import re
import tempfile
from datetime import date, datetime
from pathlib import Path
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.exporters.config import ANALYTICS_FIELDS
from gateway.intake.events import age_on
from gateway.models import Measurement, Quantity
from gateway.settings import parse_settings
from tests.configs import free_port, webhook_secret
from tests.gateway_harness import closed_port_url, inject, queued, running_gateway, table_count

PURPOSES = ("care", "alerting", "analytics")
PSEUDONYM = re.compile(r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{22}$")
ALLOWED_ANALYTICS = sorted(ANALYTICS_FIELDS)

subjects_strategy = st.lists(
    st.fixed_dictionaries(
        {
            "id": st.from_regex(
                r"(19[3-9][0-9]|20[01][0-9])(0[1-9]|1[0-2])(0[1-9]|1[0-9])[0-9]{4}", fullmatch=True
            ),
            "company_id": st.one_of(st.none(), st.from_regex(r"55[0-9]{8}", fullmatch=True)),
            "birth_date": st.dates(min_value=date(1930, 1, 1), max_value=date(2020, 12, 31)),
            "consent": st.fixed_dictionaries({p: st.booleans() for p in PURPOSES}),
        }
    ),
    min_size=1,
    max_size=4,
    unique_by=lambda s: s["id"],
)
readings_strategy = st.lists(
    st.tuples(
        st.integers(90, 220),
        st.integers(50, 130),
        st.integers(40, 150),
        st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2026, 11, 1)),
    ),
    min_size=1,
    max_size=4,
    unique_by=lambda r: r[3],  # one device timestamp is one reading
)


def build_config(
    root: Path,
    subjects: list[dict[str, Any]],
    fields: list[str],
    rounding: dict[str, float],
    vital: bool,
) -> dict[str, Any]:
    (root / "alerts.secret").write_text(webhook_secret())
    devices = [
        {
            "address": f"C4:7C:8D:6A:00:{index:02X}",
            "profile": "blood_pressure",
            "subject": subject["id"],
            "model": "Cuff 9000",
            # Simulated and silent: readings are injected by the test at the BLE callback boundary.
            "simulated": True,
            "simulation": {"readings": []},
        }
        for index, subject in enumerate(subjects, start=1)
    ]
    for subject in subjects:
        if subject["company_id"] is None:
            del subject["company_id"]
        subject["birth_date"] = subject["birth_date"].isoformat()
    return {
        "gateway": {
            "data_dir": str(root / "data"),
            "log_level": "error",
            "api": {"listen": f"127.0.0.1:{free_port()}"},
        },
        "subjects": subjects,
        "devices": devices,
        "destinations": [
            {
                "name": "care",
                "kind": "fhir",
                "purpose": "care",
                "url": closed_port_url("/fhir"),
                "retry_initial_s": 3600,
                "retry_max_s": 3600,
            },
            {
                "name": "nurse",
                "kind": "webhook",
                "purpose": "alerting",
                "url": closed_port_url("/hook"),
                "secret_file": str(root / "alerts.secret"),
                "retry_initial_s": 3600,
                "retry_max_s": 3600,
            },
            {
                "name": "product",
                "kind": "analytics",
                "purpose": "analytics",
                "url": closed_port_url("/events"),
                "fields": fields,
                "round": rounding,
                "pseudonym_key_file": str(root / "analytics.key"),
                "retry_initial_s": 3600,
                "retry_max_s": 3600,
            },
        ],
        "alert_rules": [
            {
                "kind": "blood_pressure",
                "value": "systolic",
                "above": 180,
                "severity": "critical",
                "vital_interest": vital,
            }
        ],
    }


def forbidden_strings(subject: dict[str, Any], address: str) -> list[bytes]:
    """Raw identifiers and every plain (unkeyed) hash encoding of them."""
    raw = [subject["id"], subject["birth_date"], address, address.replace(":", "-")]
    if subject.get("company_id"):
        raw.append(subject["company_id"])
    found: list[bytes] = []
    for text in raw:
        found.append(text.encode())
        for algorithm in ("md5", "sha1", "sha256", "sha512"):
            digest = hashlib.new(algorithm, text.encode()).digest()
            found += [
                digest.hex().encode(),
                base64.b64encode(digest).rstrip(b"="),
                base64.urlsafe_b64encode(digest).rstrip(b"="),
            ]
    return found


def bp(systolic: int, diastolic: int, pulse: int, when: datetime) -> Measurement:
    return Measurement(
        kind="blood_pressure",
        measured_at=when,
        values={
            "systolic": Quantity(value=systolic, unit="mm[Hg]"),
            "diastolic": Quantity(value=diastolic, unit="mm[Hg]"),
            "pulse_rate": Quantity(value=pulse, unit="/min"),
        },
    )


async def check(
    subjects: list[dict[str, Any]],
    readings: list[tuple[int, int, int, datetime]],
    fields: list[str],
    rounding: dict[str, float],
    vital: bool,
) -> None:
    with tempfile.TemporaryDirectory() as directory:
        root = Path(directory)
        settings_ = parse_settings(build_config(root, subjects, fields, rounding, vital))
        async with running_gateway(settings_) as gateway:
            for device in settings_.devices:
                await inject(gateway, device.address, [bp(*r) for r in readings])
            care = await queued(gateway, "care")
            nurse = await queued(gateway, "nurse")
            product = await queued(gateway, "product")
            refs = {s.id: gateway.rights.subject_ref(s.id) for s in settings_.subjects}

            for subject, device in zip(subjects, settings_.devices, strict=True):
                ref = refs[subject["id"]]
                minor_readings = [
                    r
                    for r in readings
                    if age_on(date.fromisoformat(subject["birth_date"]), r[3].date()) < 18
                ]
                adult_readings = len(readings) - len(minor_readings)
                # A minor's reading produces nothing anywhere: not stored, not queued.
                stored = await table_count(
                    gateway, "SELECT COUNT(*) FROM readings WHERE subject_ref = ?", ref
                )
                assert stored == adult_readings
                for items, purpose in ((care, "care"), (product, "analytics")):
                    mine = [i for i in items if i.subject_ref == ref]
                    expected = adult_readings if subject["consent"][purpose] else 0
                    assert len(mine) == expected, (purpose, subject["consent"])
                alerts = [i for i in nurse if i.subject_ref == ref]
                over = sum(1 for r in readings if r[0] > 180 and r not in minor_readings)
                if not subject["consent"]["alerting"] and not vital:
                    assert alerts == []
                if alerts:
                    assert over > 0
                # Analytics gets only allow-listed fields, no identifier, no plain hash of one.
                forbidden = forbidden_strings(subject, device.address)
                for item in product:
                    body = orjson.dumps(item.payload)
                    assert set(item.payload) <= set(fields) | {"event_id"}
                    for needle in forbidden:
                        assert needle not in body, needle
                    for field in ("subject", "company"):
                        if item.payload.get(field) is not None:
                            assert PSEUDONYM.match(item.payload[field])

            # Withdrawal: nothing more for that purpose, and what was queued is purged.
            withdrawn = next((s for s in settings_.subjects if s.consent.get("analytics")), None)
            if withdrawn is not None:
                ref = refs[withdrawn.id]
                change = await gateway.rights.change_consent(
                    withdrawn.id, {"analytics": False}, source="test"
                )
                assert change.changed == {"analytics": False}
                assert [i for i in await queued(gateway, "product") if i.subject_ref == ref] == []
                device = next(d for d in settings_.devices if d.subject == withdrawn.id)
                later = [(150, 90, 70, datetime(2026, 11, 2, 9, minute)) for minute in range(3)]
                await inject(gateway, device.address, [bp(*r) for r in later])
                assert [i for i in await queued(gateway, "product") if i.subject_ref == ref] == []


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    subjects=subjects_strategy,
    readings=readings_strategy,
    fields=st.lists(st.sampled_from(ALLOWED_ANALYTICS), min_size=1, unique=True),
    rounding=st.dictionaries(
        st.sampled_from(["systolic", "diastolic", "pulse_rate"]),
        st.sampled_from([1.0, 5.0, 10.0, 0.5]),
        max_size=2,
    ),
    vital=st.booleans(),
)
def test_privacy_rules_hold_for_any_config_and_readings(
    subjects, readings, fields, rounding, vital
):
    asyncio.run(check(subjects, readings, fields, rounding, vital))
