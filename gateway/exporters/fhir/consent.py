"""What a care platform's FHIR ``Consent`` resources say about each hub purpose, and the
``Consent`` the hub writes back when a person changes their consent on the hub.

Reading (FHIR R4 Consent): a Consent is in force when its ``status`` is ``active``; its root
``provision`` is the base rule (``type`` permit or deny) for the purposes it names (none named:
every purpose), within its ``period``; nested provisions are exceptions that apply inside it,
the deepest applicable one deciding (two applicable siblings that disagree: deny). A permit whose
period has ended (or not yet begun) no longer grants: it denies from the end of that period.
A Consent made ``inactive`` or ``rejected`` no longer grants what it permitted. Among the Consents
that speak to a purpose, the latest change wins (``dateTime``, else ``meta.lastUpdated``; a tie
denies). A Consent the hub cannot interpret denies every purpose it may concern, with a note.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

CONSENT_SCOPE = "http://terminology.hl7.org/CodeSystem/consentscope"
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
LOINC = "http://loinc.org"
URI_SYSTEM = "urn:ietf:rfc:3986"
_NAMESPACE = uuid.UUID("0b6f7d5e-8a51-5c1e-9a0e-3c4a1f6e2d90")

# Scopes whose Consents govern the use of a person's information; an advance directive ("adr")
# says nothing about it and is left alone.
_PRIVACY_SCOPES = {"patient-privacy", "treatment", "research"}
_IGNORED_SCOPES = {"adr"}
_NOT_IN_FORCE = {"draft", "proposed", "entered-in-error"}
_ENDED = {"inactive", "rejected"}


class ConsentUnreadable(ValueError):
    """A Consent the hub cannot interpret: it denies, and the reason is shown in the status."""


@dataclass(frozen=True, slots=True)
class PlatformDecision:
    granted: bool
    at: datetime  # when this became the platform's position
    consent_id: str


def parse_instant(value: object, *, end: bool = False) -> datetime:
    """A FHIR date or dateTime as an aware UTC instant; a partial date at its start, or (for
    the end of a period) at the end of the year, month or day it names."""
    if not isinstance(value, str) or not value:
        raise ConsentUnreadable(f"{value!r} is not a FHIR date or dateTime")
    try:
        if len(value) == 4:
            start, step = datetime(int(value), 1, 1, tzinfo=UTC), "year"
        elif len(value) == 7:
            start, step = datetime(int(value[:4]), int(value[5:7]), 1, tzinfo=UTC), "month"
        elif len(value) == 10:
            start, step = datetime.fromisoformat(value).replace(tzinfo=UTC), "day"
        else:
            parsed = datetime.fromisoformat(value)
            if parsed.tzinfo is None:
                raise ConsentUnreadable(f"{value!r} has a time but no time zone")
            return parsed.astimezone(UTC)
    except ValueError as exc:
        raise ConsentUnreadable(f"{value!r} is not a FHIR date or dateTime") from exc
    if not end:
        return start
    if step == "day":
        return start + timedelta(days=1)
    if step == "month":
        return start.replace(year=start.year + start.month // 12, month=start.month % 12 + 1)
    return start.replace(year=start.year + 1)


def _codes(purposes: dict[str, str]) -> dict[tuple[str, str], str]:
    return {tuple(coding.split("|", 1)): purpose for purpose, coding in purposes.items()}  # type: ignore[misc]


def _named(provision: dict[str, Any], codes: dict[tuple[str, str], str]) -> set[str] | None:
    """The hub purposes a provision names; None when it names none (it applies to all)."""
    listed = provision.get("purpose")
    if listed is None:
        return None
    if not isinstance(listed, list):
        raise ConsentUnreadable("provision.purpose is not a list of Codings")
    named = set()
    for coding in listed:
        if not isinstance(coding, dict):
            raise ConsentUnreadable("provision.purpose holds something that is not a Coding")
        purpose = codes.get((str(coding.get("system")), str(coding.get("code"))))
        if purpose is not None:
            named.add(purpose)
    return named


def _type(provision: dict[str, Any]) -> bool:
    kind = provision.get("type")
    if kind not in ("permit", "deny"):
        raise ConsentUnreadable(f"provision.type is {kind!r}, not permit or deny")
    return kind == "permit"


def _period(provision: dict[str, Any]) -> tuple[datetime | None, datetime | None]:
    period = provision.get("period")
    if period is None:
        return None, None
    if not isinstance(period, dict):
        raise ConsentUnreadable("provision.period is not a Period")
    start = parse_instant(period["start"]) if "start" in period else None
    end = parse_instant(period["end"], end=True) if "end" in period else None
    return start, end


def _in_period(window: tuple[datetime | None, datetime | None], now: datetime) -> bool:
    start, end = window
    return (start is None or start <= now) and (end is None or now < end)


def _nested(
    provision: dict[str, Any], purpose: str, codes: dict[tuple[str, str], str], now: datetime
) -> bool | None:
    """The verdict of the deepest applicable exception under ``provision``, if any applies."""
    children = provision.get("provision", [])
    if not isinstance(children, list):
        raise ConsentUnreadable("provision.provision is not a list")
    verdicts = set()
    for child in children:
        if not isinstance(child, dict):
            raise ConsentUnreadable("a nested provision is not an object")
        named = _named(child, codes)
        permit = _type(child)
        window = _period(child)
        if (named is None or purpose in named) and _in_period(window, now):
            deeper = _nested(child, purpose, codes, now)
            verdicts.add(permit if deeper is None else deeper)
    if not verdicts:
        return None
    return verdicts == {True}  # siblings that disagree: deny


def _change_time(consent: dict[str, Any]) -> datetime:
    if "dateTime" in consent:
        return parse_instant(consent["dateTime"])
    updated = consent.get("meta", {}).get("lastUpdated")
    if updated is None:
        raise ConsentUnreadable("neither dateTime nor meta.lastUpdated says when it was made")
    return parse_instant(updated)


def interpret(
    consent: dict[str, Any], purposes: dict[str, str], now: datetime
) -> dict[str, tuple[bool, datetime]]:
    """Hub purpose -> (granted, since when) for the purposes this Consent speaks to."""
    codes = _codes(purposes)
    status = consent.get("status")
    if status in _NOT_IN_FORCE:
        return {}
    if status != "active" and status not in _ENDED:
        raise ConsentUnreadable(f"status {status!r} is not a Consent status")
    scopes = {c.get("code") for c in consent.get("scope", {}).get("coding", [])}
    if scopes & _IGNORED_SCOPES and not scopes & _PRIVACY_SCOPES:
        return {}
    if not scopes & _PRIVACY_SCOPES:
        raise ConsentUnreadable(f"scope {sorted(map(str, scopes))} is not one the hub knows")
    root = consent.get("provision")
    if not isinstance(root, dict):
        raise ConsentUnreadable("it has no provision saying permit or deny")
    permit = _type(root)
    named = _named(root, codes)
    window = _period(root)
    changed = _change_time(consent)
    speaks_to = set(purposes) if named is None else named
    verdicts: dict[str, tuple[bool, datetime]] = {}
    for purpose in sorted(speaks_to):
        if status in _ENDED:
            if permit:  # what it permitted is withdrawn; an ended deny restricts nothing now
                verdicts[purpose] = (False, changed)
            continue
        if not _in_period(window, now):
            end = window[1]
            if permit:  # an expired (or future) permit grants nothing
                at = end if end is not None and end <= now else changed
                verdicts[purpose] = (False, max(changed, at))
            continue
        nested = _nested(root, purpose, codes, now)
        verdicts[purpose] = (permit if nested is None else nested, changed)
    return verdicts


def decide(
    consents: list[dict[str, Any]], purposes: dict[str, str], now: datetime
) -> tuple[dict[str, PlatformDecision], list[str]]:
    """Per hub purpose, the platform's position (the latest Consent that speaks to it), and a
    note for each Consent that could not be interpreted (it denies what it may concern)."""
    decisions: dict[str, PlatformDecision] = {}
    notes: list[str] = []
    for consent in consents:
        consent_id = str(consent.get("id", "?"))
        try:
            verdicts = interpret(consent, purposes, now)
        except (ConsentUnreadable, KeyError, TypeError, AttributeError) as exc:
            notes.append(f"Consent/{consent_id} could not be interpreted ({exc}); it denies")
            at = _fallback_time(consent, now)
            verdicts = {purpose: (False, at) for purpose in _maybe_named(consent, purposes)}
        for purpose, (granted, at) in verdicts.items():
            known = decisions.get(purpose)
            if known is None or at > known.at or (at == known.at and not granted):
                decisions[purpose] = PlatformDecision(granted, at, consent_id)
    return decisions, notes


def _fallback_time(consent: dict[str, Any], now: datetime) -> datetime:
    try:
        return _change_time(consent)
    except (ConsentUnreadable, AttributeError):
        return now


def _maybe_named(consent: dict[str, Any], purposes: dict[str, str]) -> set[str]:
    """The purposes an unreadable Consent may concern: those it names, else all of them."""
    try:
        named = _named(consent["provision"], _codes(purposes))
    except (ConsentUnreadable, KeyError, TypeError, AttributeError):
        return set(purposes)
    return set(purposes) if not named else named


def consent_identifier(subject_ref: str, purpose: str, changed_at: str) -> str:
    """The identifier of a written-back Consent: the same change always maps to the same one
    (a resend is a conditional create that matches)."""
    return f"urn:uuid:{uuid.uuid5(_NAMESPACE, f'{subject_ref}/{purpose}/{changed_at}')}"


def consent_resource(
    patient: dict[str, Any], coding: str, granted: bool, changed_at: str, identifier: str
) -> dict[str, Any]:
    """The Consent recording a change made on the hub: one purpose, permit or deny."""
    system, _, code = coding.partition("|")
    return {
        "resourceType": "Consent",
        "identifier": [{"system": URI_SYSTEM, "value": identifier}],
        "status": "active",
        "scope": {"coding": [{"system": CONSENT_SCOPE, "code": "patient-privacy"}]},
        "category": [{"coding": [{"system": LOINC, "code": "59284-0", "display": "Consent"}]}],
        "patient": patient,
        "dateTime": changed_at,
        # R4 requires a policy or policyRule (invariant ppc-1): opt-in or opt-out.
        "policyRule": {"coding": [{"system": ACT_CODE, "code": "OPTIN" if granted else "OPTOUT"}]},
        "provision": {
            "type": "permit" if granted else "deny",
            "purpose": [{"system": system, "code": code}],
        },
    }
