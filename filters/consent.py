"""Consent and restriction: the gates in front of every destination (DESIGN.md 3.1, 3.3)."""

from __future__ import annotations

from filters.chain import ChainContext, Item


def require_consent(item: Item, ctx: ChainContext) -> Item | None:
    """Pass only if the subject has granted the destination's purpose.

    A critical alert whose rule enables vital interest passes without consent, and says so:
    its legal basis becomes ``vital_interest`` so that the audit log and the person's page show it.
    """
    if ctx.is_granted(item.subject_ref, ctx.purpose):
        item.legal_basis = "consent"
        return item
    if item.category == "alert" and item.vital_interest:
        item.legal_basis = "vital_interest"
        return item
    return None


def not_restricted(item: Item, ctx: ChainContext) -> Item | None:
    """A subject who restricted processing gets storage only: nothing is disclosed."""
    return None if ctx.is_restricted(item.subject_ref) else item
