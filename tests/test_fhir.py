"""FHIR mapping, validated by an independent implementation (fhir.resources, R4B models)."""

import os
import random
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from fhir.resources.R4B.bundle import Bundle

from gateway.exporters.fhir.payload import (
    BLUETOOTH_ADDRESS_SYSTEM,
    LOINC,
    MDC,
    NAMESPACE,
    FhirMappingError,
    effective_time,
    observation_uuid,
    reading_entries,
    reading_entries_json,
    transaction_bundle,
)
from gateway.intake.events import reading_event
from gateway.models import Measurement, Quantity
from tests.factories import bound, bp_measurement

SYSTEM = "http://electronichealth.se/identifier/personnummer"


def codes(concept):
    return {(c["system"], c["code"]) for c in concept["coding"]}


def test_blood_pressure_bundle_validates_and_carries_phd_codes():
    event = reading_event(bound(bp_measurement(190, 100, 90)))
    bundle = transaction_bundle([reading_entries(event, SYSTEM)])
    Bundle.model_validate(bundle)  # raises if not valid R4(B)
    resources = [entry["resource"] for entry in bundle["entry"]]
    device, panel, pulse = resources
    assert device["resourceType"] == "Device"
    assert device["identifier"][0] == {
        "system": BLUETOOTH_ADDRESS_SYSTEM,
        "value": "C4-7C-8D-6A-12-34",
    }
    assert codes(panel["code"]) == {(MDC, "150020"), (LOINC, "85354-9")}
    components = {frozenset(codes(c["code"])): c["valueQuantity"] for c in panel["component"]}
    systolic = components[frozenset({(MDC, "150021"), (LOINC, "8480-6")})]
    diastolic = components[frozenset({(MDC, "150022"), (LOINC, "8462-4")})]
    assert systolic == {
        "value": 190,
        "unit": "mmHg",
        "system": "http://unitsofmeasure.org",
        "code": "mm[Hg]",
    }
    assert diastolic["value"] == 100
    assert codes(pulse["code"]) == {(MDC, "149546"), (LOINC, "8867-4")}
    assert pulse["valueQuantity"]["code"] == "/min"
    assert panel["subject"] == {"identifier": {"system": SYSTEM, "value": "197001011234"}}
    assert panel["status"] == "final"
    assert panel["device"]["reference"] == bundle["entry"][0]["fullUrl"]


def test_conditional_create_uses_the_reading_derived_identifier():
    event = reading_event(bound(bp_measurement()))
    first = reading_entries(event, SYSTEM)
    again = reading_entries(event, SYSTEM)
    assert first == again  # a resend maps to the very same identifiers
    for entry in first:
        identifier = entry["resource"]["identifier"][0]
        assert entry["request"]["method"] == "POST"
        assert entry["request"]["ifNoneExist"] == (
            f"identifier={identifier['system']}|{identifier['value']}"
        )
    other = reading_entries(reading_event(bound(reading_id="r-2")), SYSTEM)
    assert {e["fullUrl"] for e in other[1:]}.isdisjoint({e["fullUrl"] for e in first[1:]})


def test_an_entry_is_never_named_by_its_identifiers_value_and_each_name_is_a_uuid():
    """A transaction rewrites every string equal to an entry's fullUrl (Medplum does), so the
    Observation's identifier must never equal any entry's fullUrl in the Bundle."""
    groups = [reading_entries(reading_event(bound(reading_id=f"r-{i}")), SYSTEM) for i in range(50)]
    bundle = transaction_bundle(groups)
    names = {entry["fullUrl"] for entry in bundle["entry"]}
    values = {e["resource"]["identifier"][0]["value"] for e in bundle["entry"][1:]}
    assert names.isdisjoint(values) and len(names) == len(bundle["entry"])
    for name in names:
        parsed = uuid.UUID(name.removeprefix("urn:uuid:"))
        assert parsed.variant == uuid.RFC_4122 and str(parsed) == name.removeprefix("urn:uuid:")


def test_effective_time_keeps_the_instant_with_an_offset():
    event = reading_event(bound(bp_measurement()))
    effective = reading_entries(event, SYSTEM)[1]["resource"]["effectiveDateTime"]
    local = datetime(2026, 11, 20, 8, 0, 0).astimezone()
    assert datetime.fromisoformat(effective) == local  # the same instant ...
    assert effective.endswith("+00:00")  # ... written in UTC


def test_bundle_of_many_readings_shares_one_device_entry():
    groups = [reading_entries(reading_event(bound(reading_id=f"r-{i}")), SYSTEM) for i in range(3)]
    bundle = transaction_bundle(groups)
    Bundle.model_validate(bundle)
    kinds = [entry["resource"]["resourceType"] for entry in bundle["entry"]]
    assert kinds.count("Device") == 1
    assert kinds.count("Observation") == 6


def test_kpa_cuff_keeps_its_unit():
    event = reading_event(bound(bp_measurement(24.0, 13.3, None, unit="kPa")))
    bundle = transaction_bundle([reading_entries(event, SYSTEM)])
    Bundle.model_validate(bundle)
    panel = bundle["entry"][1]["resource"]
    assert {c["valueQuantity"]["code"] for c in panel["component"]} == {"kPa"}


def test_glucose_loinc_code_follows_the_unit():
    for unit, loinc in (("mg/dL", "2339-0"), ("mmol/L", "15074-8")):
        measurement = Measurement(
            kind="glucose", values={"glucose": Quantity(value=5.5, unit=unit)}
        )
        event = reading_event(bound(measurement))
        bundle = transaction_bundle([reading_entries(event, SYSTEM)])
        Bundle.model_validate(bundle)
        assert (LOINC, loinc) in codes(bundle["entry"][1]["resource"]["code"])


def test_effective_time_is_corrected_by_the_device_clock_offset():
    from datetime import datetime

    plain = reading_event(bound(bp_measurement()))
    skewed = dict(plain, device_clock_offset_s=3600.0)  # device clock one hour ahead
    effective = reading_entries(skewed, SYSTEM)[1]["resource"]["effectiveDateTime"]
    expected = reading_entries(plain, SYSTEM)[1]["resource"]["effectiveDateTime"]
    assert (
        datetime.fromisoformat(expected) - datetime.fromisoformat(effective)
    ).total_seconds() == 3600


def test_a_bundle_spliced_from_stored_bytes_is_the_bundle_built_from_parsed_items():
    from dataclasses import replace

    import orjson

    from gateway.exporters.fhir.payload import bundle_from_stored

    readings = [
        replace(bound(bp_measurement(120 + i), reading_id=f"r-{i}"), device_address=address)
        for i, address in enumerate(
            ["C4:7C:8D:6A:12:34", "C4:7C:8D:6A:00:02", "C4:7C:8D:6A:12:34", "C4:7C:8D:6A:00:02"]
        )
    ]
    weight = Measurement(kind="weight", values={"body_weight": Quantity(value=80.5, unit="kg")})
    readings.append(replace(bound(weight, reading_id="r-w"), device_address="C4:7C:8D:6A:00:09"))
    groups = [reading_entries(reading_event(r), SYSTEM) for r in readings]
    stored = [orjson.dumps({"entries": group}) for group in groups]  # as the outbox keeps them
    spliced = bundle_from_stored(stored)
    assert spliced == orjson.dumps(transaction_bundle(groups))
    bundle = Bundle.model_validate_json(spliced)
    assert [e.resource.get_resource_type() for e in bundle.entry].count("Device") == 3


def test_stored_bytes_in_another_layout_are_not_spliced():
    import orjson

    from gateway.exporters.fhir.payload import bundle_from_stored

    entries = reading_entries(reading_event(bound()), SYSTEM)
    good = orjson.dumps({"entries": entries})
    assert bundle_from_stored([good]) is not None
    observation_first = orjson.dumps({"entries": [entries[1], entries[0], entries[2]]})
    assert bundle_from_stored([good, observation_first]) is None
    assert bundle_from_stored([orjson.dumps({"entries": entries[:1]})]) is None  # no observation
    assert bundle_from_stored([orjson.dumps({"other": entries})]) is None


def identifier_values(resource) -> set[str]:
    return {identifier["value"] for identifier in resource.get("identifier", [])}


def test_no_entry_full_url_is_an_identifier_of_any_resource_in_the_bundle():
    """A transaction rewrites every string equal to an entry's fullUrl into a reference: if an
    identifier carried one, the resend's ifNoneExist would no longer match it."""
    weight = Measurement(
        kind="weight",
        values={
            "body_weight": Quantity(value=80.5, unit="kg"),
            "bmi": Quantity(value=24.1, unit="kg/m2"),
        },
    )
    groups = [
        reading_entries(reading_event(bound(bp_measurement(), reading_id="r-1")), SYSTEM),
        reading_entries(reading_event(bound(weight, reading_id="r-2")), SYSTEM),
    ]
    bundle = transaction_bundle(groups)
    identifiers = set().union(*(identifier_values(e["resource"]) for e in bundle["entry"]))
    full_urls = {e["fullUrl"] for e in bundle["entry"]}
    assert len(full_urls) == len(bundle["entry"])
    assert full_urls.isdisjoint(identifiers)
    assert all(url.startswith("urn:uuid:") for url in full_urls)


def _effective_time_as_defined(event):
    """The definition: the device time read in the local zone, corrected, in UTC."""
    local = datetime.fromisoformat(event["measured_at"]).astimezone()
    if event.get("device_clock_offset_s"):
        local -= timedelta(seconds=event["device_clock_offset_s"])
    return local.astimezone(UTC).isoformat(timespec="seconds")


@pytest.mark.parametrize("zone", ["Europe/Stockholm", "America/New_York", "Australia/Lord_Howe"])
def test_effective_time_is_the_definition_through_every_clock_change_of_a_year(zone, monkeypatch):
    # Every 7 minutes of 2026 (both clock changes, the repeated and the skipped hour, and Lord
    # Howe's half-hour change), with and without a device clock offset.
    monkeypatch.setenv("TZ", zone)
    time.tzset()
    try:
        start = datetime(2026, 1, 1)
        for step in range(0, 365 * 24 * 60, 7):
            measured = (start + timedelta(minutes=step, seconds=step % 60)).isoformat()
            for offset in (None, 93.5):
                event = {"measured_at": measured, "device_clock_offset_s": offset}
                assert effective_time(event) == _effective_time_as_defined(event), event
    finally:
        monkeypatch.undo()
        time.tzset()


def test_name_based_uuids_are_those_of_the_standard_library():
    rng = random.Random(12)
    for _ in range(20_000):
        name = f"{rng.getrandbits(128):032x}/{rng.choice(['panel', 'pulse_rate', 'x'])}/entry"
        assert observation_uuid(name, "p") == str(uuid.uuid5(NAMESPACE, f"{name}/p"))


@pytest.mark.parametrize("source", [None, 'urn:health-gateway:hub:"åä"'])
def test_entries_written_as_json_are_the_serialised_entries(source):
    readings = [
        bp_measurement(190, 100, 90),
        bp_measurement(121, 79, 66),
        Measurement(
            kind="glucose",
            measured_at=datetime(2026, 3, 29, 2, 30),
            values={"concentration": Quantity(value=5.4, unit="mmol/L")},
        ),
        Measurement(
            kind="weight",
            measured_at=None,
            values={"body_weight": Quantity(value=72.35, unit="kg")},
        ),
    ]
    for measurement in readings:
        for offset in (None, -12.25):
            event = reading_event(bound(measurement)) | {"device_clock_offset_s": offset}
            expected = orjson.dumps(reading_entries(event, SYSTEM, source))
            assert reading_entries_json(event, SYSTEM, source) == expected
    with pytest.raises(FhirMappingError):
        event = reading_event(bound(bp_measurement()))
        reading_entries_json(event | {"kind": "unknown"}, SYSTEM, source)


_SAME_AS_ASTIMEZONE = """
import sys
from datetime import UTC, datetime, timedelta

from gateway.exporters.fhir.payload import effective_time

start = datetime(2026, 1, 1)
checked = 0
for step in range(0, 366 * 24 * 60, 7):  # every 7 minutes of a year, both changes included
    local = start + timedelta(minutes=step, seconds=step % 60)
    for offset in (None, 3600.0, -90.5):
        event = {"measured_at": local.isoformat(), "device_clock_offset_s": offset}
        expected = local.astimezone() - timedelta(seconds=offset or 0)
        assert effective_time(event) == expected.astimezone(UTC).isoformat(timespec="seconds"), (
            local,
            offset,
        )
        checked += 1
print(checked)
"""


@pytest.mark.parametrize("zone", ["Europe/Stockholm", "Australia/Lord_Howe", "UTC"])
def test_effective_time_matches_the_zone_rules_across_a_year_of_daylight_saving_changes(zone):
    """The hub's UTC offset is looked up once per hour of stamps: every stamp of a year (the
    spring gap, the autumn hour that repeats, Lord Howe's half-hour change) still maps to the
    instant ``datetime.astimezone`` gives it alone."""
    run = subprocess.run(
        [sys.executable, "-c", _SAME_AS_ASTIMEZONE],
        env={**os.environ, "TZ": zone},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert int(run.stdout) == 366 * 24 * 60 // 7 * 3 + 3
