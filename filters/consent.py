"""Consent and restriction: the gates in front of every destination (DESIGN.md 3.1, 3.3)."""

from __future__ import annotations

from filters.chain import ChainContext, Item


def disclosure_basis(
    *, granted: bool, restricted: bool, category: str, vital_interest: bool
) -> str | None:
    """The consent rule: the legal basis on which something may be disclosed, or None.

    The one place the rule is written; the gateway applies it when an item is queued (through
    ``consent_gate``) and again when it is sent. A subject who restricted processing gets
    storage only. Otherwise their consent to the destination's purpose is the basis; without
    it, only a critical alert whose rule enables vital interest may go, and says so.
    """
    if restricted:
        return None
    if granted:
        return "consent"
    if category == "alert" and vital_interest:
        return "vital_interest"
    return None


def consent_gate(item: Item, ctx: ChainContext) -> Item | None:
    """``disclosure_basis`` as a chain step: the first step of every destination's chain."""
    basis = disclosure_basis(
        granted=ctx.is_granted(item.subject_ref, ctx.purpose),
        restricted=ctx.is_restricted(item.subject_ref),
        category=item.category,
        vital_interest=item.vital_interest,
    )
    if basis is None:
        return None
    item.legal_basis = basis
    return item


def require_consent(item: Item, ctx: ChainContext) -> Item | None:
    """Pass only if the subject has granted the destination's purpose.

    A critical alert whose rule enables vital interest passes without consent, and says so:
    its legal basis becomes ``vital_interest`` so that the audit log and the person's page show it.
    """
    basis = disclosure_basis(
        granted=ctx.is_granted(item.subject_ref, ctx.purpose),
        restricted=False,
        category=item.category,
        vital_interest=item.vital_interest,
    )
    if basis is None:
        return None
    item.legal_basis = basis
    return item


def not_restricted(item: Item, ctx: ChainContext) -> Item | None:
    """A subject who restricted processing gets storage only: nothing is disclosed."""
    return None if ctx.is_restricted(item.subject_ref) else item
