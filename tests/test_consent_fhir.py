"""Reading FHIR Consent resources into hub purposes (gateway.consent_fhir), rule by rule."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from gateway.exporters.fhir.consent import ConsentUnreadable, decide, parse_instant
from gateway.settings import DEFAULT_CONSENT_PURPOSES, V3_ACT_REASON

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def consent(kind="permit", codes=("TREAT",), when="2026-11-01T10:00:00Z", **extra):
    provision = {"type": kind}
    if codes is not None:
        provision["purpose"] = [{"system": V3_ACT_REASON, "code": c} for c in codes]
    provision.update(extra.pop("provision", {}))
    return {
        "resourceType": "Consent",
        "id": extra.pop("id", "c1"),
        "status": extra.pop("status", "active"),
        "scope": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/consentscope",
                    "code": extra.pop("scope", "patient-privacy"),
                }
            ]
        },
        "dateTime": when,
        "provision": provision,
        **extra,
    }


def granted(consents):
    decisions, notes = decide(consents, DEFAULT_CONSENT_PURPOSES, NOW)
    return {p: d.granted for p, d in decisions.items()}, notes


def test_a_permit_for_treatment_grants_care_and_says_nothing_of_other_purposes():
    assert granted([consent()]) == ({"care": True}, [])


def test_a_deny_withdraws_the_purposes_it_names():
    assert granted([consent("deny", ("TREAT", "ETREAT"))]) == (
        {"care": False, "alerting": False},
        [],
    )


def test_a_provision_without_purpose_speaks_to_every_purpose():
    result, _ = granted([consent("deny", None)])
    assert result == dict.fromkeys(DEFAULT_CONSENT_PURPOSES, False)


def test_an_expired_permit_denies_from_the_end_of_its_period():
    expired = consent(provision={"period": {"start": "2026-01-01", "end": "2026-06-30"}})
    decisions, _ = decide([expired], DEFAULT_CONSENT_PURPOSES, NOW)
    assert decisions["care"].granted is False
    assert decisions["care"].at == datetime(2026, 11, 1, 10, tzinfo=UTC)  # made after the end
    current = consent(provision={"period": {"start": "2026-01-01", "end": "2026-12"}})
    assert granted([current])[0] == {"care": True}  # to the end of December


def test_a_nested_provision_is_an_exception_inside_its_parent():
    with_exception = consent(
        "permit",
        None,
        provision={
            "provision": [
                {"type": "deny", "purpose": [{"system": V3_ACT_REASON, "code": "HRESCH"}]}
            ]
        },
    )
    result, _ = granted([with_exception])
    assert result["care"] is True
    assert result["research"] is False


def test_a_nested_exception_outside_its_period_does_not_apply():
    lapsed = consent(
        provision={
            "provision": [{"type": "deny", "period": {"end": "2026-03-01T00:00:00Z"}}],
        }
    )
    assert granted([lapsed])[0] == {"care": True}


def test_the_latest_consent_for_a_purpose_wins():
    older = consent("permit", when="2026-10-01T00:00:00Z", id="a")
    newer = consent("deny", when="2026-11-01T00:00:00Z", id="b")
    assert granted([newer, older])[0] == {"care": False}
    assert granted([older, consent("permit", when="2026-12-01T00:00:00Z", id="c"), newer])[0] == {
        "care": True
    }


def test_an_inactive_permit_no_longer_grants_and_a_draft_says_nothing():
    assert granted([consent(status="inactive")])[0] == {"care": False}
    assert granted([consent(status="draft")])[0] == {}
    assert granted([consent(scope="adr")])[0] == {}  # an advance directive is not about this


@pytest.mark.parametrize(
    "broken",
    [
        consent(kind="maybe"),
        consent(status="withdrawn"),
        consent(scope="something-else"),
        consent(provision={"period": {"end": "soon"}}),
        consent(when="2026-11-01T10:00:00"),  # no time zone
        {**consent(), "provision": "permit"},
    ],
)
def test_a_consent_that_cannot_be_interpreted_denies_and_says_so(broken):
    result, notes = granted([broken])
    assert result and not any(result.values())
    assert len(notes) == 1 and "could not be interpreted" in notes[0]


def test_partial_fhir_dates_cover_their_whole_span():
    assert parse_instant("2026") == datetime(2026, 1, 1, tzinfo=UTC)
    assert parse_instant("2026-12", end=True) == datetime(2027, 1, 1, tzinfo=UTC)
    assert parse_instant("2026-02-28", end=True) == datetime(2026, 3, 1, tzinfo=UTC)
    with pytest.raises(ConsentUnreadable):
        parse_instant("28/02/2026")
