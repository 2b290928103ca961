"""Filter chains: consent, restriction, minimisation, in isolation and composed."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from filters.chain import ChainContext, Item, run_chain
from filters.consent import not_restricted, require_consent
from filters.minimise import FieldLeak, allow_fields, enforce_allow_list

FIELDS = ["kind", "values", "subject", "company", "birth_date", "measured_at", "status"]


def context(granted: set[tuple[str, str]], restricted: frozenset[str] = frozenset()):
    return ChainContext(
        "dest", "analytics", lambda ref, p: (ref, p) in granted, lambda ref: ref in restricted
    )


def item(category="reading", vital=False, payload=None):
    return Item(
        "r-1", "s-1", category, payload or {f: f"<{f}>" for f in FIELDS}, vital_interest=vital
    )


def test_consent_decides_and_records_the_legal_basis():
    assert run_chain([require_consent], item(), context(set())) is None
    passed = run_chain([require_consent], item(), context({("s-1", "analytics")}))
    assert passed is not None and passed.legal_basis == "consent"


def test_vital_interest_passes_only_for_alerts_that_carry_it():
    assert run_chain([require_consent], item(vital=True), context(set())) is None  # a reading
    alert = run_chain([require_consent], item("alert", vital=True), context(set()))
    assert alert is not None and alert.legal_basis == "vital_interest"
    assert run_chain([require_consent], item("alert"), context(set())) is None


def test_restriction_stops_everything_even_with_consent():
    ctx = context({("s-1", "analytics")}, frozenset({"s-1"}))
    assert run_chain([require_consent, not_restricted], item("alert", vital=True), ctx) is None


@given(
    allowed=st.lists(st.sampled_from(FIELDS), unique=True),
    extra=st.dictionaries(st.text(min_size=1, max_size=8), st.integers(), max_size=4),
)
def test_minimised_payload_never_holds_a_field_outside_the_list(allowed, extra):
    payload = {**{f: f"<{f}>" for f in FIELDS}, **extra}
    out = run_chain([allow_fields(allowed)], item(payload=payload), context(set()))
    assert out is not None
    assert set(out.payload) <= set(allowed)
    assert set(out.fields) == set(out.payload)


def test_last_step_catches_a_field_added_after_minimisation():
    enforce_allow_list(["kind"], frozenset({"kind", "values"}))
    with pytest.raises(FieldLeak, match="subject"):
        enforce_allow_list(["kind", "subject"], frozenset({"kind"}))
