"""Data subject rights: access, export, erasure, restriction and consent change (DESIGN.md 3.5).

Every operation runs in one database transaction on the writer thread and is audited. The
in-memory views the hot path consults (consents, restrictions) are updated only after the
transaction has committed, so they never claim something the database does not hold.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from gateway.exporters.fhir.payload import reading_entries
from gateway.privacy import audit, consent_guard
from gateway.privacy.consent import ConsentRegistry
from gateway.privacy.references import References
from gateway.privacy.restriction import Restrictions
from gateway.settings import Settings, SubjectSettings
from gateway.storage import consents as consent_rows
from gateway.storage import quarantine, readings
from gateway.storage.alert_state import AlertStateStore
from gateway.storage.crypto import Sealer
from gateway.storage.database import Database, Priority, Transaction, reading_aad
from gateway.storage.outbox import Outbox

# Why a stored reading is listed without its content in an access answer.
UNREADABLE = (
    "stored, but it cannot be opened (damaged, or sealed with another storage key);"
    " the operator can restore the key or the database from a backup"
)


class SubjectNotFound(KeyError):
    """No configured subject has this id."""


@dataclass(frozen=True, slots=True)
class RightsChange:
    """A committed change, told to listeners (consent write-back, the care team's notice)."""

    kind: str  # "consent", "restriction" or "erasure"
    subject_id: str
    subject_ref: str
    source: str
    withdrawn: tuple[str, ...] = ()  # purposes no longer granted
    granted: tuple[str, ...] = ()  # purposes newly granted
    restricted: bool | None = None


@dataclass(frozen=True, slots=True)
class ConsentChange:
    changed: dict[str, bool]
    purged: dict[str, int]  # purpose -> queued items removed


class Rights:
    def __init__(
        self,
        settings: Settings,
        database: Database,
        references: References,
        sealer: Sealer,
        consents: ConsentRegistry,
        restrictions: Restrictions,
        outbox: Outbox,
        *,
        anchor: Callable[[sqlite3.Connection], None] | None = None,
    ) -> None:
        self._outbox = outbox
        # Writes the audit log's head outside the database once a change has committed.
        self._anchor = anchor
        # What else keeps a person's identifiers in memory (exporters' pseudonym caches).
        self._forgetters: list[Callable[[Collection[str]], None]] = []
        self._subjects = {subject.id: subject for subject in settings.subjects}
        self._database = database
        self._references = references
        self._sealer = sealer
        self._consents = consents
        self._restrictions = restrictions
        # Awaited after each change has committed (the consent write-back, the care team's
        # notice); a listener handles its own failures.
        self.listeners: list[Callable[[RightsChange], Awaitable[None]]] = []
        # Called with a subject reference after an erasure: whatever holds that person's data in
        # memory (the alert engine's windows) forgets it.
        self.on_erased: list[Callable[[str], None]] = []

    async def _tell(self, change: RightsChange) -> None:
        for listener in self.listeners:
            await listener(change)

    def on_erasure(self, forget: Callable[[Collection[str]], None]) -> None:
        """``forget(identifiers)`` is called with a person's identifiers once their data is
        erased, so nothing derived from them is kept in memory either."""
        self._forgetters.append(forget)

    def subject(self, subject_id: str) -> SubjectSettings:
        try:
            return self._subjects[subject_id]
        except KeyError:
            raise SubjectNotFound(subject_id) from None

    def subject_ref(self, subject_id: str) -> str:
        return self._references.subject_ref(self.subject(subject_id).id)

    # Access and portability -------------------------------------------------------------

    async def access(self, subject_id: str) -> dict[str, Any]:
        """Everything held about a person: identity, consents, readings, queue, disclosures."""
        subject = self.subject(subject_id)
        ref = self._references.subject_ref(subject_id)
        held = await self._database.call(lambda c: self._held(c, ref), priority=Priority.INTAKE)
        return {
            "subject": {
                "id": subject.id,
                "company_id": subject.company_id,
                "birth_date": subject.birth_date.isoformat(),
                "reference": ref,
            },
            "consents": held["consents"],
            "restricted": self._restrictions.is_restricted(ref),
            "readings": held["readings"],
            "unreadable_readings": held["unreadable_readings"],
            "quarantined": held["quarantined"],
            "queued": held["queued"],
            "dead_letters": held["dead_letters"],
            "alert_state": held["alert_state"],
            "audit": held["audit"],
            "generated_at": datetime.now(UTC).isoformat(),
        }

    def _held(self, connection: sqlite3.Connection, ref: str) -> dict[str, Any]:
        held_readings = []
        unreadable = []
        for reading_id, payload in readings.of_subject(connection, ref):
            opened = self._sealer.try_open(payload, reading_aad(reading_id))
            if opened is None:
                # Reported, not raised: one damaged row never blocks the person's access.
                unreadable.append({"reading_id": reading_id, "problem": UNREADABLE})
            else:
                held_readings.append(orjson.loads(opened))
        choices = {
            purpose: {"granted": granted, "changed_at": changed_at, "source": source}
            for purpose, granted, changed_at, source in consent_rows.of_subject(connection, ref)
        }
        queued = [
            {
                "destination": d,
                "purpose": p,
                "category": c,
                "reading_id": r,
                "queued_at": datetime.fromtimestamp(t, UTC).isoformat(),
                "attempts": a,
            }
            for d, p, c, r, t, a in Outbox.queued_of_subject(connection, ref)
        ]
        dead_letters = [
            {
                "destination": d,
                "purpose": p,
                "category": c,
                "reading_id": r,
                "status": s,
                "failed_at": datetime.fromtimestamp(t, UTC).isoformat(),
            }
            for d, p, c, r, s, t in Outbox.dead_letters_of_subject(connection, ref)
        ]
        entries = [
            {"seq": e.seq, "at": e.at, "event": e.event, **e.data}
            for e in audit.entries(connection, subject_ref=ref, limit=100_000)
        ]
        alert_state = [
            {"slot": slot, "state": state}
            for row_ref, slot, state in AlertStateStore(self._sealer).load(connection, ref)
            if row_ref == ref
        ]
        return {
            "readings": held_readings,
            "unreadable_readings": unreadable,
            "quarantined": [
                {"destination": d, "reading_id": r, "reason": why}
                for d, r, why in quarantine.of_subject(connection, ref)
            ],
            "alert_state": alert_state,
            "consents": choices,
            "queued": queued,
            "dead_letters": dead_letters,
            "audit": entries,
        }

    async def export_json(self, subject_id: str) -> dict[str, Any]:
        data = await self.access(subject_id)
        ref = data["subject"]["reference"]
        await self._database.call(
            lambda c: self._audit_once(
                c, "subject.exported", {"format": "json", "readings": len(data["readings"])}, ref
            ),
            priority=Priority.INTAKE,
        )
        return {"format": "health-gateway/export-v1", **data}

    async def export_fhir(self, subject_id: str, identifier_system: str) -> dict[str, Any]:
        """The person's readings as a FHIR R4 ``collection`` Bundle of Devices and Observations."""
        data = await self.access(subject_id)
        entries: list[dict[str, Any]] = []
        seen: set[str] = set()
        for event in data["readings"]:
            for entry in reading_entries(event, identifier_system):
                if entry["fullUrl"] not in seen:
                    seen.add(entry["fullUrl"])
                    entries.append({"fullUrl": entry["fullUrl"], "resource": entry["resource"]})
        ref = data["subject"]["reference"]
        await self._database.call(
            lambda c: self._audit_once(
                c, "subject.exported", {"format": "fhir", "readings": len(data["readings"])}, ref
            ),
            priority=Priority.INTAKE,
        )
        return {
            "resourceType": "Bundle",
            "type": "collection",
            "timestamp": datetime.now(UTC).isoformat(),
            "entry": entries,
        }

    def _audit_once(
        self, connection: sqlite3.Connection, event: str, data: dict[str, Any], ref: str
    ) -> None:
        with Transaction(connection):
            audit.append(connection, event, data, subject_ref=ref)
        self._anchored(connection)

    def _anchored(self, connection: sqlite3.Connection) -> None:
        if self._anchor is not None:
            self._anchor(connection)

    # Erasure ------------------------------------------------------------------------------

    async def erase(self, subject_id: str, source: str) -> dict[str, int]:
        """Delete readings, queued items, dead letters and consents; withdraw every purpose.

        Consents are recorded as withdrawn (not merely deleted) so that the config's initial
        consents do not silently come back at the next start. The audit log keeps a tombstone
        with counts only, no health values.
        """
        ref = self.subject_ref(subject_id)
        purposes = set(self._consents.purposes(ref)) | set(self.subject(subject_id).consent)

        def erase(connection: sqlite3.Connection) -> tuple[dict[str, int], dict[str, bool]]:
            with Transaction(connection):
                counts = dict.fromkeys(
                    (
                        "readings",
                        "queued",
                        "dead_letters",
                        "quarantined",
                        "consents",
                        "alert_state",
                    ),
                    0,
                )
                for held_under in [ref, *self._former_refs(connection, subject_id)]:
                    for name, deleted in self._erase_ref(connection, held_under).items():
                        counts[name] += deleted
                if self._consents.is_lost(ref) and self._consents.waiting == 1:
                    consent_guard.resolved(connection)
                withdrawn = {purpose: False for purpose in sorted(purposes)}
                self._consents.write(connection, ref, withdrawn, source=f"erasure:{source}")
                audit.append(
                    connection,
                    "subject.erased",
                    {"counts": counts, "source": source},
                    subject_ref=ref,
                )
            self._anchored(connection)
            return counts, withdrawn

        was_granted = tuple(p for p in sorted(purposes) if self._consents.is_granted(ref, p))
        counts, withdrawn = await self._database.call(erase, priority=Priority.INTAKE)
        for forget in self.on_erased:
            forget(ref)
        self._consents.apply(ref, withdrawn)
        self._restrictions.apply(ref, False)
        subject = self.subject(subject_id)
        identifiers = {subject.id} | ({subject.company_id} if subject.company_id else set())
        self._references.forget(subject.id)
        for forget in self._forgetters:
            forget(identifiers)
        await self._tell(RightsChange("erasure", subject_id, ref, source, withdrawn=was_granted))
        return counts

    def _erase_ref(self, connection: sqlite3.Connection, ref: str) -> dict[str, int]:
        return {
            "readings": readings.delete_of_subject(connection, ref),
            "queued": self._outbox.purge(connection, ref),
            "dead_letters": Outbox.delete_dead_letters_of_subject(connection, ref),
            "quarantined": quarantine.delete_of_subject(connection, ref),
            "consents": consent_rows.delete_of_subject(connection, ref),  # and restriction
            "alert_state": AlertStateStore.erase(connection, ref),
        }

    def _former_refs(self, connection: sqlite3.Connection, subject_id: str) -> list[str]:
        """References this person's readings are stored under from before the reference key
        was replaced: readings under a reference no configured person has now, whose sealed
        event names this person. Erasure removes those too, whatever the key."""
        current = {self._references.subject_ref(s) for s in self._subjects}
        subject = self.subject(subject_id)
        found = []
        for other in sorted(readings.subject_refs(connection) - current):
            for reading_id, payload in readings.first_of_subject(connection, other, 5):
                opened = self._sealer.try_open(payload, reading_aad(reading_id))
                if opened is None:
                    continue  # damaged, or sealed with another storage key: try the next one
                if orjson.loads(opened).get("subject") == subject.id:
                    found.append(other)
                break
        return found

    # Restriction and consent ----------------------------------------------------------------

    async def set_restriction(self, subject_id: str, restricted: bool, source: str) -> bool:
        ref = self.subject_ref(subject_id)

        def write(connection: sqlite3.Connection) -> None:
            with Transaction(connection):
                consent_rows.record_restriction(
                    connection, ref, restricted, datetime.now(UTC).isoformat(), source
                )
                audit.append(
                    connection,
                    "restriction.changed",
                    {"restricted": restricted, "source": source},
                    subject_ref=ref,
                )
            self._anchored(connection)

        was = self._restrictions.is_restricted(ref)
        await self._database.call(write, priority=Priority.INTAKE)
        self._restrictions.apply(ref, restricted)
        if was != restricted:
            await self._tell(
                RightsChange("restriction", subject_id, ref, source, restricted=restricted)
            )
        return restricted

    async def change_consent(
        self, subject_id: str, changes: dict[str, bool], source: str
    ) -> ConsentChange:
        """Grant or withdraw purposes; a withdrawal purges what is queued for that purpose."""
        ref = self.subject_ref(subject_id)
        effective = {p: g for p, g in changes.items() if self._consents.is_granted(ref, p) != g}
        was_lost = self._consents.is_lost(ref)
        if was_lost:
            # Their choices were lost: this records them again, in full. The care purposes
            # that went on meanwhile are recorded as they stand unless this changes them.
            effective = {**self._consents.lost_care(ref), **changes}
        last_waiting = was_lost and self._consents.waiting == 1

        def write(connection: sqlite3.Connection) -> dict[str, int]:
            purged: dict[str, int] = {}
            with Transaction(connection):
                if effective:
                    self._consents.write(connection, ref, effective, source=source)
                if last_waiting:
                    consent_guard.resolved(connection)
                for purpose, granted in effective.items():
                    if not granted:
                        purged[purpose] = self._outbox.purge(connection, ref, purpose)
                        audit.append(
                            connection,
                            "consent.withdrawn.purged",
                            {"purpose": purpose, "queued_items_removed": purged[purpose]},
                            subject_ref=ref,
                        )
            self._anchored(connection)
            return purged

        purged = await self._database.call(write, priority=Priority.INTAKE)
        self._consents.apply(ref, effective)
        if effective:
            await self._tell(
                RightsChange(
                    "consent",
                    subject_id,
                    ref,
                    source,
                    withdrawn=tuple(sorted(p for p, g in effective.items() if not g)),
                    granted=tuple(sorted(p for p, g in effective.items() if g)),
                )
            )
        return ConsentChange(effective, purged)
