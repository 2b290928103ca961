"""Consent fails closed: a lost registry is never rebuilt from the config file.

The registry in the database is the truth about what each person chose; the config's
``[subjects.consent]`` only seeds a person the hub has never seen. Three things can make the
hub forget what it knew, and each would otherwise let the config's old choices come back (an
analytics withdrawal undone, readings sent on): the reference key lost or replaced (every
person gets a new reference, with no record under it), the database emptied or swapped, or
the consent rows deleted. Each is recognised at start:

- a check value of the reference key kept in ``meta`` no longer matches the key;
- the audit anchor beside the database names entries the database does not have;
- a person has history (readings, audit entries) but no consent record.

Then nobody concerned is seeded. Their care purposes (care, alerting: what the hub is for)
go on as configured, every other purpose stops, until an operator records that person's
choices again (``OPERATOR_ACTION``). The state is kept in ``meta`` so a restart does not
forget it, and it is audited.
"""

from __future__ import annotations

import hmac
import sqlite3

from gateway.privacy.audit_anchor import Anchor
from gateway.storage import audit_log, consents, meta

# In ``meta``: a check value of the reference key, and why the registry was found lost.
KEY_CHECK = "references.key_check"
LOST = "consent.registry_lost"
# Purposes that go on, as configured, for a person whose choices were lost: the hub's job.
CARE_PURPOSES = frozenset({"care", "alerting"})
OPERATOR_ACTION = (
    "non-care processing is stopped for them until their consents are recorded again:"
    " health-gateway consent PERSON purpose=yes|no ... (or on the hub page)"
)


def key_check(reference_key: bytes) -> str:
    return hmac.digest(reference_key, b"reference-key-check", "sha256").hex()[:32]


def lost_reason(connection: sqlite3.Connection, check: str, anchor: Anchor | None) -> str | None:
    """Why the registry as a whole cannot be trusted now, or None (on the database thread)."""
    recorded = meta.get(connection, LOST)
    if recorded is not None:
        return recorded
    stored = meta.get(connection, KEY_CHECK)
    if stored is not None and stored != check:
        return "the reference key was replaced or lost"
    head = audit_log.head(connection)
    if anchor is not None and (head is None or head[0] < anchor.seq):
        return "the database was emptied or replaced (the audit anchor names entries it lacks)"
    return None


def remember(connection: sqlite3.Connection, check: str, reason: str | None) -> None:
    """Keep the key's check value, and the lost state while anyone is still waiting."""
    # Written only when they change: a start on a full disk must not need to write.
    if meta.get(connection, KEY_CHECK) != check:
        meta.put(connection, KEY_CHECK, check)
    if meta.get(connection, LOST) != reason:
        if reason is None:
            meta.delete(connection, LOST)
        else:
            meta.put(connection, LOST, reason)


def resolved(connection: sqlite3.Connection) -> None:
    """Everyone's choices are recorded again: the registry is whole."""
    meta.delete(connection, LOST)


def has_history(connection: sqlite3.Connection, subject_ref: str) -> bool:
    return consents.has_history(connection, subject_ref)


def care_only(consent: dict[str, bool]) -> dict[str, bool]:
    return {p: g for p, g in consent.items() if p in CARE_PURPOSES}
