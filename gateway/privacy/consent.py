"""The consent registry: per subject, per purpose, with the time and source of every change.

Config ``[subjects.consent]`` only seeds subjects that have no record yet; after that the
registry in the database is the truth. Lookups are served from memory (the hot path asks for
every reading), and every change is written through to the database and the audit log.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime

from filters.consent import disclosure_basis
from gateway.privacy import audit
from gateway.privacy.restriction import Restrictions
from gateway.storage import consents
from gateway.storage.outbox import CATEGORY_NOTICE, QueuedItem


class ConsentRegistry:
    def __init__(self) -> None:
        self._granted: dict[tuple[str, str], bool] = {}
        # People whose recorded choices were lost (``consent_guard``): only their care
        # purposes, as configured, until an operator records their choices again.
        self._lost: dict[str, dict[str, bool]] = {}
        self.lost_reason: str | None = None

    def load(self, connection: sqlite3.Connection) -> None:
        self._granted = consents.load(connection)

    def is_granted(self, subject_ref: str, purpose: str) -> bool:
        """Absent means not granted."""
        granted = self._granted.get((subject_ref, purpose))
        if granted is None and self._lost:
            return self._lost.get(subject_ref, {}).get(purpose, False)
        return bool(granted)

    def mark_lost(self, subject_ref: str, care: dict[str, bool]) -> None:
        """This person's choices are lost: only ``care`` (care purposes) holds for now."""
        self._lost[subject_ref] = dict(care)

    def is_lost(self, subject_ref: str) -> bool:
        return subject_ref in self._lost

    def lost_care(self, subject_ref: str) -> dict[str, bool]:
        """What still holds for a person whose choices were lost (their care purposes)."""
        return dict(self._lost.get(subject_ref, {}))

    @property
    def waiting(self) -> int:
        """People whose non-care processing waits for an operator."""
        return len(self._lost)

    def purposes(self, subject_ref: str) -> dict[str, bool]:
        found = {p: g for (ref, p), g in self._granted.items() if ref == subject_ref}
        return found or self.lost_care(subject_ref)

    def has_record(self, subject_ref: str) -> bool:
        return any(ref == subject_ref for ref, _ in self._granted)

    def seed(
        self, connection: sqlite3.Connection, subject_ref: str, consent: dict[str, bool]
    ) -> bool:
        """Record the config's consents for a subject the registry has never seen (at start)."""
        if self.has_record(subject_ref):
            return False
        self.write(connection, subject_ref, consent, source="config")
        self.apply(subject_ref, consent)
        return True

    def write(
        self,
        connection: sqlite3.Connection,
        subject_ref: str,
        consent: dict[str, bool],
        source: str,
    ) -> None:
        """Persist and audit a change inside the caller's transaction (memory is not touched)."""
        now = datetime.now(UTC)
        consents.record(connection, subject_ref, consent, now.isoformat(), source)
        audit.append(
            connection,
            "consent.changed",
            {"purposes": dict(sorted(consent.items())), "source": source},
            subject_ref=subject_ref,
            at=now,
        )

    def apply(self, subject_ref: str, consent: dict[str, bool]) -> None:
        """Make a committed change visible to the hot path."""
        for purpose, granted in consent.items():
            self._granted[(subject_ref, purpose)] = granted
        self._lost.pop(subject_ref, None)  # recorded now: no longer waiting


class ConsentRule:
    """The consent rule (``filters.consent.disclosure_basis``) over the hub's current state.

    One instance serves both moments the rule is applied: when a reading or an alert is
    queued (every destination's chain starts with ``filters.consent.consent_gate``, fed by the
    same registry and restrictions) and when a queued item is about to be sent (``may_send``).
    """

    def __init__(self, consents: ConsentRegistry, restrictions: Restrictions) -> None:
        self.consents = consents
        self.restrictions = restrictions

    def basis(
        self, subject_ref: str, purpose: str, *, category: str, vital_interest: bool
    ) -> str | None:
        """The legal basis for disclosing this now, or None when it may not be disclosed."""
        return disclosure_basis(
            granted=self.consents.is_granted(subject_ref, purpose),
            restricted=self.restrictions.is_restricted(subject_ref),
            category=category,
            vital_interest=vital_interest,
        )

    def may_send(self, item: QueuedItem) -> bool:
        """Checked again when sending, not only when queuing: a withdrawal or a restriction
        made while an item waited stops it."""
        if item.category == "aggregate":
            return True  # anonymous: built only from consenting, unrestricted people's readings
        if item.category == CATEGORY_NOTICE:
            return True  # the care team is told monitoring stopped (its own legal basis)
        return (
            self.basis(
                item.subject_ref,
                item.purpose,
                category=item.category,
                vital_interest=item.legal_basis == "vital_interest",
            )
            is not None
        )
