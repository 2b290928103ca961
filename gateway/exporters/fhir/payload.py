"""FHIR R4 mapping per the HL7 Personal Health Device (PHD) Implementation Guide.

A reading becomes one Observation per measurement (blood pressure is one panel Observation with
systolic / diastolic / mean components; the pulse rate that the cuff reports beside it is its own
Observation, as the PHD IG models it), each with MDC and LOINC codings and UCUM units, the person
by identifier, the device as a ``Device`` resource created conditionally from its Bluetooth address,
status ``final``, and an identifier derived from the reading used with ``request.ifNoneExist`` so
that a resend never creates a duplicate.

``effectiveDateTime`` is in UTC, derived from the device's clock as follows: the device's
timestamp has no time zone, so it is read in the hub's local time zone (the zone the gateway sets
on the device through the Current Time Service), then corrected by the device clock's offset from
the gateway's clock, measured on connect (``device_clock_offset_s``, device minus gateway), and
converted to UTC. A reading without a device timestamp uses the time the gateway received it.
"""

from __future__ import annotations

import functools
import hashlib
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

MDC = "urn:iso:std:iso:11073:10101"
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
BLUETOOTH_ADDRESS_SYSTEM = "http://hl7.org/fhir/sid/eui-48/bluetooth"
URI_SYSTEM = "urn:ietf:rfc:3986"
NAMESPACE = uuid.UUID("6f1c2a64-3f0e-5d3c-9a51-3b1c8c1e0a7d")
_NAMESPACE_BYTES = NAMESPACE.bytes

UNIT_DISPLAY = {
    "mm[Hg]": "mmHg",
    "kPa": "kPa",
    "/min": "/min",
    "kg": "kg",
    "[lb_av]": "lb",
    "kg/m2": "kg/m2",
    "Cel": "Cel",
    "[degF]": "degF",
    "%": "%",
    "mg/dL": "mg/dL",
    "mmol/L": "mmol/L",
    "m": "m",
    "[in_i]": "in",
    "kJ": "kJ",
    "Ohm": "Ohm",
    "s": "s",
}


@dataclass(frozen=True)
class Code:
    mdc: str
    mdc_display: str
    loinc: str | None
    loinc_display: str | None

    def concept(self) -> dict[str, Any]:
        """The CodeableConcept, built once per code and shared: callers only serialise it."""
        return self._concept

    @functools.cached_property
    def _concept(self) -> dict[str, Any]:
        # Kept on the instance (no slots, so it has a __dict__): five per blood-pressure
        # reading, where a cache keyed by the code hashed its four fields each time.
        coding = [{"system": MDC, "code": self.mdc, "display": self.mdc_display}]
        if self.loinc:
            coding.append({"system": LOINC, "code": self.loinc, "display": self.loinc_display})
        return {"coding": coding}


BP_PANEL = Code(
    "150020", "MDC_PRESS_BLD_NONINV", "85354-9", "Blood pressure panel with all children optional"
)
BP_COMPONENTS = {
    "systolic": Code("150021", "MDC_PRESS_BLD_NONINV_SYS", "8480-6", "Systolic blood pressure"),
    "diastolic": Code("150022", "MDC_PRESS_BLD_NONINV_DIA", "8462-4", "Diastolic blood pressure"),
    "mean_arterial_pressure": Code(
        "150023", "MDC_PRESS_BLD_NONINV_MEAN", "8478-0", "Mean blood pressure"
    ),
}
PULSE_RATE = Code("149546", "MDC_PULS_RATE_NON_INV", "8867-4", "Heart rate")

# Single-value observations: (kind, value name) -> code. Units choose glucose's LOINC code.
SIMPLE: dict[tuple[str, str], Code] = {
    ("weight", "body_weight"): Code("188736", "MDC_MASS_BODY_ACTUAL", "29463-7", "Body weight"),
    ("weight", "bmi"): Code(
        "188752", "MDC_RATIO_MASS_BODY_LEN_SQ", "39156-5", "Body mass index (BMI) [Ratio]"
    ),
    ("weight", "height"): Code("188740", "MDC_LEN_BODY_ACTUAL", "8302-2", "Body height"),
    ("blood_pressure", "pulse_rate"): PULSE_RATE,
    ("temperature", "body_temperature"): Code(
        "150364", "MDC_TEMP_BODY", "8310-5", "Body temperature"
    ),
    ("spo2", "spo2"): Code(
        "150456",
        "MDC_PULS_OXIM_SAT_O2",
        "59408-5",
        "Oxygen saturation in Arterial blood by Pulse oximetry",
    ),
    ("spo2", "pulse_rate"): Code(
        "149530", "MDC_PULS_OXIM_PULS_RATE", "8889-8", "Heart rate by Pulse oximetry"
    ),
    ("heart_rate", "heart_rate"): Code("147842", "MDC_ECG_HEART_RATE", "8867-4", "Heart rate"),
    ("body_composition", "body_fat_percentage"): Code(
        "188748", "MDC_BODY_FAT", "41982-0", "Percentage of body fat Measured"
    ),
    # A body-composition scale's weighing (Body Composition Measurement, Xiaomi's broadcast).
    ("body_composition", "body_weight"): Code(
        "188736", "MDC_MASS_BODY_ACTUAL", "29463-7", "Body weight"
    ),
}
GLUCOSE_BY_UNIT = {
    "mg/dL": Code(
        "160184", "MDC_CONC_GLU_CAPILLARY_WHOLEBLOOD", "2339-0", "Glucose [Mass/volume] in Blood"
    ),
    "mmol/L": Code(
        "160184", "MDC_CONC_GLU_CAPILLARY_WHOLEBLOOD", "15074-8", "Glucose [Moles/volume] in Blood"
    ),
}


class FhirMappingError(ValueError):
    pass


def quantity(value: float, unit: str) -> dict[str, Any]:
    return {"value": value, "unit": UNIT_DISPLAY.get(unit, unit), "system": UCUM, "code": unit}


# SHA-1 already fed with the namespace: each name UUID copies it and adds only the name.
_NAMESPACE_SHA1 = hashlib.sha1(_NAMESPACE_BYTES)  # noqa: S324 (RFC 4122 version 5 is SHA-1)
# The variant's hex digit, by the digest's digit there: (digit & 0b0011) | 0b1000.
_VARIANT_DIGIT = {digit: "89ab"[int(digit, 16) & 3] for digit in "0123456789abcdef"}


def _uuid5(name: str) -> str:
    """``str(uuid.uuid5(NAMESPACE, name))``, without building a ``UUID`` or the digest's bytes
    (four per blood-pressure reading): the version and variant are set on the hex digits."""
    digest = _NAMESPACE_SHA1.copy()
    digest.update(name.encode())
    h = digest.hexdigest()
    return f"{h[:8]}-{h[8:12]}-5{h[13:16]}-{_VARIANT_DIGIT[h[16]]}{h[17:20]}-{h[20:32]}"


def observation_uuid(reading_id: str, part: str) -> str:
    return _uuid5(f"{reading_id}/{part}")


def entry_uuid(reading_id: str, part: str) -> str:
    """The Bundle entry's ``fullUrl`` id: never the identifier's value. A transaction rewrites
    every string equal to an entry's ``fullUrl`` into the created resource's reference,
    identifiers included (Medplum does), and a rewritten identifier no longer matches the
    ``ifNoneExist`` search, so a resend would create the Observation again."""
    return _entry_of(observation_uuid(reading_id, part))


# An entry's id is its Observation's UUID with each hex digit of the first 32 bits
# (``time_low``) moved by 8 (0<->8, 1<->9, ..., 7<->f): as unique as the Observation's, never
# equal to it (no digit maps to itself), still a version 5 UUID in form, and without a second
# SHA-1 per Observation. Only a name inside one transaction: a resend may use any.
_ENTRY_DIGITS = str.maketrans("0123456789abcdef", "89abcdef01234567")


def _entry_of(observation: str) -> str:
    return observation[:8].translate(_ENTRY_DIGITS) + observation[8:]


@functools.lru_cache(maxsize=1024)
def device_uuid(address: str) -> str:
    return _uuid5(f"device/{address}")


def bluetooth_identifier(address: str) -> str:
    return address.upper().replace(":", "-")


def effective_time(event: dict[str, Any]) -> str:
    """The instant of measurement: the device clock, corrected by its known offset, or receipt."""
    measured = event.get("measured_at")
    if not measured:
        return str(event["received_at"])
    device_time = datetime.fromisoformat(measured)
    offset = event.get("device_clock_offset_s")
    local_offset = None
    # A device time is naive, written by ``isoformat``: its first 13 characters are its hour.
    if device_time.tzinfo is None and measured[10:11] == "T" and measured[13:14] == ":":
        local_offset = _local_offset_in_hour(
            measured[:13], time.timezone, time.altzone, time.tzname
        )
    if local_offset is None:  # near a clock change, or a stamp with its own zone
        local = device_time.astimezone()
        if offset:
            local -= timedelta(seconds=offset)
        return local.astimezone(UTC).isoformat(timespec="seconds")
    instant = device_time - local_offset
    if offset:
        instant -= timedelta(seconds=offset)
    return instant.isoformat(timespec="seconds") + "+00:00"


@functools.lru_cache(maxsize=256)
def _local_offset_in_hour(
    hour: str, _timezone: int, _altzone: int, _tzname: tuple[str, str]
) -> timedelta | None:
    """The local zone's UTC offset for every device time in this (naive) hour, ``YYYY-MM-DDTHH``,
    or None when the clocks may change near it. Asking the zone costs more than the rest of the
    mapping, and a reading's hour almost always repeats. The zone's settings are part of the
    key, so a changed zone (``time.tzset``) is asked again.

    The hour is answered only when times 3 hours before and 4 after it have the same offset: no
    clock change lies between them (changes are months apart), and none of the skipped or
    repeated wall-clock times of a change (at most 2 hours of them) reaches into the hour."""
    start = datetime.fromisoformat(hour + ":00:00")
    before = (start - timedelta(hours=3)).astimezone().utcoffset()
    after = (start + timedelta(hours=4)).astimezone().utcoffset()
    return before if before == after else None


def hub_source(hub_id: str) -> str:
    """``meta.source``: the system that made a resource, here the home hub (docs/fleet.md)."""
    return f"urn:health-gateway:hub:{hub_id}"


def device_entry(address: str, source: str | None = None) -> dict[str, Any]:
    identifier = bluetooth_identifier(address)
    resource: dict[str, Any] = {"resourceType": "Device"}
    if source is not None:
        resource["meta"] = {"source": source}
    resource["identifier"] = [{"system": BLUETOOTH_ADDRESS_SYSTEM, "value": identifier}]
    return {
        "fullUrl": f"urn:uuid:{device_uuid(address)}",
        "resource": resource,
        "request": {
            "method": "POST",
            "url": "Device",
            "ifNoneExist": f"identifier={BLUETOOTH_ADDRESS_SYSTEM}|{identifier}",
        },
    }


# Shared by every Observation, like the code concepts: built once, only ever serialised.
_VITAL_SIGNS = [
    {"coding": [{"system": OBSERVATION_CATEGORY, "code": "vital-signs", "display": "Vital Signs"}]}
]


def _observation(
    event: dict[str, Any],
    part: str,
    code: Code,
    subject: dict[str, Any],
    device: dict[str, str],
    effective: str,
    meta: dict[str, str] | None,
) -> dict[str, Any]:
    """One Observation entry; ``subject`` and ``device`` are the reference objects, shared by
    the reading's Observations (only ever serialised)."""
    obs_uuid = observation_uuid(event["reading_id"], part)
    identifier_value = f"urn:uuid:{obs_uuid}"
    resource: dict[str, Any] = {"resourceType": "Observation"}
    if meta is not None:
        resource["meta"] = meta
    resource["identifier"] = [{"system": URI_SYSTEM, "value": identifier_value}]
    resource["status"] = "final"
    resource["category"] = _VITAL_SIGNS
    resource["code"] = code.concept()
    resource["subject"] = subject
    resource["effectiveDateTime"] = effective
    resource["device"] = device
    return {
        "fullUrl": f"urn:uuid:{_entry_of(obs_uuid)}",
        "resource": resource,
        "request": {
            "method": "POST",
            "url": "Observation",
            "ifNoneExist": f"identifier={URI_SYSTEM}|{identifier_value}",
        },
    }


def reading_entries(
    event: dict[str, Any], identifier_system: str, source: str | None = None
) -> list[dict[str, Any]]:
    """The transaction entries for one reading event: its Device and its Observations
    (``source``: their ``meta.source``, the hub that made them). Intake and delivery send
    ``reading_entries_json`` (the same bytes); this form is for the person's FHIR export."""
    subject = {"identifier": {"system": identifier_system, "value": str(event["subject"])}}
    meta = None if source is None else {"source": source}
    device = device_entry(str(event["device_address"]), source)
    device_url = {"reference": device["fullUrl"]}
    effective = effective_time(event)
    values: dict[str, dict[str, Any]] = event["values"]
    kind = event["kind"]
    observations: list[dict[str, Any]] = []
    if kind == "blood_pressure":
        components = [
            {
                "code": BP_COMPONENTS[name].concept(),
                "valueQuantity": quantity(v["value"], v["unit"]),
            }
            for name, v in values.items()
            if name in BP_COMPONENTS
        ]
        if components:
            panel = _observation(event, "panel", BP_PANEL, subject, device_url, effective, meta)
            panel["resource"]["component"] = components
            observations.append(panel)
    for name, value in values.items():
        code = GLUCOSE_BY_UNIT.get(value["unit"]) if kind == "glucose" else SIMPLE.get((kind, name))
        if code is None:
            continue
        entry = _observation(event, name, code, subject, device_url, effective, meta)
        entry["resource"]["valueQuantity"] = quantity(value["value"], value["unit"])
        observations.append(entry)
    if not observations:
        raise FhirMappingError(f"no FHIR mapping for a {kind} reading with {sorted(values)}")
    return [device, *observations]


# The same entries written straight to JSON (``reading_entries_json``): the route builds them at
# intake only to serialise them, so the dicts are skipped. Every constant part is serialised once;
# every variable string and number goes through ``orjson.dumps`` as it would inside the dict, so
# the bytes are those of ``orjson.dumps(reading_entries(...))`` (tests/test_fhir.py compares them).
_dumps = orjson.dumps
_VITAL_SIGNS_JSON = _dumps(_VITAL_SIGNS)
_OBSERVATION_TAIL_HEAD = b',"request":{"method":"POST","url":"Observation","ifNoneExist":'


@functools.lru_cache(maxsize=1024)
def _device_json(address: str, source: str | None) -> tuple[bytes, bytes]:
    """(The Device entry, ``{"reference":...}`` pointing at it), serialised once per device."""
    entry = device_entry(address, source)
    return _dumps(entry), _dumps({"reference": entry["fullUrl"]})


# Each code's CodeableConcept as JSON, looked up by what names the code (hashing a ``Code``
# costs more than serialising it would).
_BP_PANEL_JSON = _dumps(BP_PANEL.concept())
_BP_COMPONENT_JSON = {name: _dumps(code.concept()) for name, code in BP_COMPONENTS.items()}
_SIMPLE_JSON = {key: _dumps(code.concept()) for key, code in SIMPLE.items()}
_GLUCOSE_JSON = {unit: _dumps(code.concept()) for unit, code in GLUCOSE_BY_UNIT.items()}


@functools.lru_cache(maxsize=256)
def _meta_json(source: str | None) -> bytes:
    return b"" if source is None else b'"meta":' + _dumps({"source": source}) + b","


@functools.lru_cache(maxsize=256)
def _subject_json(system: str, value: str) -> bytes:
    return _dumps({"identifier": {"system": system, "value": value}})


def _quantity_json(value: dict[str, Any]) -> bytes:
    return _dumps(quantity(value["value"], value["unit"]))


def _observation_json(
    reading_id: str,
    part: str,
    concept: bytes,
    head: bytes,
    tail: bytes,
    extra: bytes,
) -> bytes:
    """One Observation entry: ``head`` holds what every Observation of the reading shares before
    its code, ``tail`` what it shares after it; ``extra`` its own last key (value or components)."""
    identifier_value = f"urn:uuid:{observation_uuid(reading_id, part)}"
    return b"".join(
        (
            b'{"fullUrl":"urn:uuid:',
            entry_uuid(reading_id, part).encode(),
            b'","resource":{"resourceType":"Observation",',
            head,
            b'"identifier":[{"system":"' + URI_SYSTEM.encode() + b'","value":"',
            identifier_value.encode(),
            b'"}],"status":"final","category":',
            _VITAL_SIGNS_JSON,
            b',"code":',
            concept,
            tail,
            extra,
            b"}",
            _OBSERVATION_TAIL_HEAD,
            _dumps(f"identifier={URI_SYSTEM}|{identifier_value}"),
            b"}}",
        )
    )


def reading_entries_json(
    event: dict[str, Any], identifier_system: str, source: str | None = None
) -> bytes:
    """``orjson.dumps(reading_entries(event, identifier_system, source))``, without the dicts."""
    reading_id = str(event["reading_id"])
    device, device_reference = _device_json(str(event["device_address"]), source)
    head = _meta_json(source)
    tail = b"".join(
        (
            b',"subject":',
            _subject_json(identifier_system, str(event["subject"])),
            b',"effectiveDateTime":',
            _dumps(effective_time(event)),
            b',"device":',
            device_reference,
        )
    )
    values: dict[str, dict[str, Any]] = event["values"]
    kind = event["kind"]
    observations: list[bytes] = []
    if kind == "blood_pressure":
        components = [
            b'{"code":' + _BP_COMPONENT_JSON[name] + b',"valueQuantity":' + _quantity_json(v) + b"}"
            for name, v in values.items()
            if name in _BP_COMPONENT_JSON
        ]
        if components:
            extra = b',"component":[' + b",".join(components) + b"]"
            observations.append(
                _observation_json(reading_id, "panel", _BP_PANEL_JSON, head, tail, extra)
            )
    for name, value in values.items():
        concept = (
            _GLUCOSE_JSON.get(value["unit"])
            if kind == "glucose"
            else _SIMPLE_JSON.get((kind, name))
        )
        if concept is None:
            continue
        extra = b',"valueQuantity":' + _quantity_json(value)
        observations.append(_observation_json(reading_id, name, concept, head, tail, extra))
    if not observations:
        raise FhirMappingError(f"no FHIR mapping for a {kind} reading with {sorted(values)}")
    return b"[" + device + b"," + b",".join(observations) + b"]"


def transaction_bundle(entry_groups: list[list[dict[str, Any]]]) -> dict[str, Any]:
    """One transaction Bundle of several readings; a Device shared by readings appears once."""
    entries: list[dict[str, Any]] = []
    seen: set[str] = set()
    for group in entry_groups:
        for entry in group:
            if entry["fullUrl"] in seen:
                continue
            seen.add(entry["fullUrl"])
            entries.append(entry)
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


# A queued FHIR item is ``{"entries": [Device, Observation, ...]}`` as orjson wrote it (compact,
# keys in insertion order). A Bundle is spliced from those bytes instead of parsing every item
# and serialising the lot again: per item, the Device entry (kept once per Bundle) and the
# run of Observation entries after it.
_STORED_HEAD = b'{"entries":['
_STORED_TAIL = b"]}"
_NEXT_ENTRY = b'},{"fullUrl":"'
_BUNDLE_HEAD = b'{"resourceType":"Bundle","type":"transaction","entry":['


@functools.lru_cache(maxsize=1024)
def _is_device_entry(raw: bytes) -> bool:
    """Checked once per distinct Device entry: it parses, alone, as a Device entry."""
    try:
        entry = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return False
    return (
        isinstance(entry, dict)
        and isinstance(entry.get("resource"), dict)
        and entry["resource"].get("resourceType") == "Device"
        and set(entry) == {"fullUrl", "resource", "request"}
    )


def _split_stored(body: bytes) -> tuple[bytes, bytes] | None:
    """(Device entry, the Observation entries after it) of one stored item, or None when the
    bytes are not laid out as expected (the caller then parses them)."""
    if not (body.startswith(_STORED_HEAD) and body.endswith(_STORED_TAIL)):
        return None
    # The Device entry's strings are a UUID, URLs, hex and fixed words: the first
    # "},{"fullUrl":"" after it can only be the start of the next entry.
    cut = body.find(_NEXT_ENTRY, len(_STORED_HEAD))
    if cut < 0:
        return None
    device = body[len(_STORED_HEAD) : cut + 1]
    if not _is_device_entry(device):
        return None
    return device, body[cut + 2 : -len(_STORED_TAIL)]


def bundle_from_stored(bodies: list[bytes]) -> bytes | None:
    """The transaction Bundle ``transaction_bundle`` would make of these stored items, byte for
    byte the same JSON, without parsing them; None if any item is not in the stored layout."""
    parts: list[bytes] = []
    devices: set[bytes] = set()
    for body in bodies:
        split = _split_stored(body)
        if split is None:
            return None
        device, observations = split
        if device not in devices:
            devices.add(device)
            parts.append(device)
        parts.append(observations)
    if not parts:
        return _BUNDLE_HEAD + b"]}"
    # One join into one buffer: a Bundle is hundreds of KB, and each extra concatenation of the
    # whole was another allocation and copy of it (most of the splice's time: 4.0 -> 0.8 µs per
    # reading in a micro-benchmark).
    parts[0] = _BUNDLE_HEAD + parts[0]
    parts[-1] = parts[-1] + b"]}"
    return b",".join(parts)
