"""Consent from the care platform: read each person's FHIR ``Consent`` resources, apply them to
the consent registry, and write the hub's own changes back as ``Consent`` resources.

Every ``interval_s`` (and at once after a change on the hub), per subject: find the ``Patient``
by identifier (``identifier_system|id``, resolved once), fetch that patient's Consents changed
since the last look (``_lastUpdated``), and compare the platform's position per purpose (see
``gateway.exporters.fhir.consent``) with the registry's:

- they agree: nothing;
- they differ and the platform's change is the later one (or the hub's value only came from the
  config or from the platform itself): the platform's is applied through ``Rights`` with source
  ``care-platform`` (audited; a withdrawal purges the queue as a withdrawal on the page does);
- they differ and the hub's change (page, API, erasure) is the later one: it is written back as
  a ``Consent``, and so is a hub change the platform has no Consent for.

The registry in the database stays the truth the hot path reads. When the platform cannot be
reached the last known state holds: nothing is granted or withdrawn, and the status says since
when. A Consent that cannot be interpreted denies what it may concern and is named in the status.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import aiohttp
import orjson
import structlog

from gateway.activity import Activity
from gateway.exporters.fhir.config import FhirDestination
from gateway.exporters.fhir.consent import consent_identifier, consent_resource, decide
from gateway.privacy import audit
from gateway.privacy.rights import Rights, RightsChange
from gateway.secrets import read_secret
from gateway.settings import ConsentSyncSettings, Settings
from gateway.storage import consents as consent_rows
from gateway.storage.database import Database, Priority, Transaction

log = structlog.get_logger(__name__)

SOURCE = "care-platform"
_NOT_WRITTEN_BACK = {"config", SOURCE}  # the person did not make these on the hub
FHIR_JSON = "application/fhir+json"


class PlatformUnreachable(Exception):
    """The platform did not answer usefully: the last known state holds."""


@dataclass
class SubjectSync:
    """What the hub knows of one person on the platform."""

    patient_id: str | None = None
    consents: dict[str, dict[str, Any]] = field(default_factory=dict)  # id -> Consent
    seen_until: str | None = None  # the latest meta.lastUpdated fetched
    last_synced_at: str | None = None
    problem: str | None = None  # unreachable, no Patient, ...
    notes: list[str] = field(default_factory=list)  # Consents that could not be interpreted


@dataclass(frozen=True, slots=True)
class HubConsent:
    granted: bool
    changed_at: datetime
    changed_at_text: str
    source: str


class ConsentSync:
    def __init__(
        self,
        settings: Settings,
        sync: ConsentSyncSettings,
        destination: FhirDestination,
        token: str | None,
        rights: Rights,
        database: Database,
        session: aiohttp.ClientSession,
        activity: Activity,
    ) -> None:
        self._subjects = [subject.id for subject in settings.subjects]
        self._sync = sync
        self._destination = destination
        self._base = destination.url.rstrip("/")
        self._rights = rights
        self._database = database
        self._session = session
        self._activity = activity
        self._headers = {"Accept": FHIR_JSON, "Content-Type": FHIR_JSON}
        if token:
            self._headers["Authorization"] = f"Bearer {token}"
        self._state: dict[str, SubjectSync] = {s: SubjectSync() for s in self._subjects}
        self._wake = asyncio.Event()
        rights.listeners.append(self._on_change)

    async def _on_change(self, change: RightsChange) -> None:
        if change.source != SOURCE and change.kind in ("consent", "erasure"):
            self._wake.set()  # write it back now rather than at the next interval

    def status(self) -> dict[str, Any]:
        """Per subject (by position, never by identifier): last sync, problem, notes."""
        return {
            "destination": self._destination.name,
            "interval_s": self._sync.interval_s,
            "subjects": [
                {
                    "index": index,
                    "last_synced_at": state.last_synced_at,
                    "problem": state.problem,
                    "uninterpretable": list(state.notes),
                }
                for index, state in enumerate(self._state.values())
            ],
        }

    def patient_id(self, subject_id: str) -> str | None:
        """The platform's ``Patient`` id for a subject, once resolved."""
        state = self._state.get(subject_id)
        return state.patient_id if state else None

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self._wake.clear()
            await self.sync_once()
            waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self._wake.wait())]
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED),
                    self._sync.interval_s,
                )
            for waiter in waiters:
                waiter.cancel()

    async def sync_once(self) -> None:
        reachable = True
        for subject_id in self._subjects:
            state = self._state[subject_id]
            try:
                await self._sync_subject(subject_id, state)
                state.last_synced_at = datetime.now(UTC).isoformat()
            except PlatformUnreachable as exc:
                reachable = False
                if state.problem is None or not state.problem.startswith("unreachable"):
                    state.problem = f"unreachable since {datetime.now(UTC).isoformat()}: {exc}"
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a bug must not end the sync for everyone, nor stay hidden
                state.problem = f"failed: {type(exc).__name__}"
                log.exception("consent_sync_failed", destination=self._destination.name)
        if not reachable:
            log.warning("consent_sync_unreachable", destination=self._destination.name)
        self._activity.emit("consent_synced", destination=self._destination.name, ok=reachable)

    # One subject ---------------------------------------------------------------------------

    async def _sync_subject(self, subject_id: str, state: SubjectSync) -> None:
        if state.patient_id is None:
            state.patient_id = await self._find_patient(subject_id)
            if state.patient_id is None:
                state.problem = "no Patient with this identifier on the platform"
                return
        await self._fetch_changes(state)
        state.problem = None
        now = datetime.now(UTC)
        decisions, state.notes = decide(list(state.consents.values()), self._sync.purposes, now)
        hub = await self._database.call(
            lambda c: _hub_consents(c, self._rights.subject_ref(subject_id)),
            priority=Priority.INTAKE,
        )
        apply: dict[str, bool] = {}
        write_back: dict[str, HubConsent] = {}
        for purpose in self._sync.purposes:
            platform, mine = decisions.get(purpose), hub.get(purpose)
            if platform is not None and (mine is None or platform.granted != mine.granted):
                if (
                    mine is None
                    or mine.source in _NOT_WRITTEN_BACK
                    or platform.at >= mine.changed_at
                ):
                    apply[purpose] = platform.granted
                else:
                    write_back[purpose] = mine
            elif platform is None and mine is not None and mine.source not in _NOT_WRITTEN_BACK:
                write_back[purpose] = mine
        if apply:
            await self._rights.change_consent(subject_id, apply, source=SOURCE)
        if self._sync.write_back:
            for purpose, mine in write_back.items():
                await self._write_back(subject_id, state, purpose, mine)

    async def _find_patient(self, subject_id: str) -> str | None:
        query = urlencode({"identifier": f"{self._destination.identifier_system}|{subject_id}"})
        bundle = await self._get(f"{self._base}/Patient?{query}")
        patients = [e["resource"] for e in bundle.get("entry", []) if "resource" in e]
        if len(patients) != 1:
            return None  # none, or ambiguous: the hub will not guess whose consent it is
        return str(patients[0]["id"])

    async def _fetch_changes(self, state: SubjectSync) -> None:
        params = {"patient": f"Patient/{state.patient_id}", "_count": "1000"}
        if state.seen_until is not None:
            # ge, not gt: two changes in the same millisecond are both fetched (again).
            params["_lastUpdated"] = f"ge{state.seen_until}"
        url: str | None = f"{self._base}/Consent?{urlencode(params)}"
        while url is not None:
            bundle = await self._get(url)
            for entry in bundle.get("entry", []):
                consent = entry.get("resource", {})
                if consent.get("resourceType") == "Consent" and "id" in consent:
                    state.consents[str(consent["id"])] = consent
                    updated = consent.get("meta", {}).get("lastUpdated")
                    if isinstance(updated, str) and (
                        state.seen_until is None or updated > state.seen_until
                    ):
                        state.seen_until = updated
            url = next(
                (link["url"] for link in bundle.get("link", []) if link.get("relation") == "next"),
                None,
            )

    async def _write_back(
        self, subject_id: str, state: SubjectSync, purpose: str, mine: HubConsent
    ) -> None:
        ref = self._rights.subject_ref(subject_id)
        identifier = consent_identifier(ref, purpose, mine.changed_at_text)
        consent = consent_resource(
            {"reference": f"Patient/{state.patient_id}"},
            self._sync.purposes[purpose],
            mine.granted,
            mine.changed_at.isoformat(),
            identifier,
        )
        headers = {**self._headers, "If-None-Exist": f"identifier=urn:ietf:rfc:3986|{identifier}"}
        created = await self._call("POST", f"{self._base}/Consent", headers, orjson.dumps(consent))
        state.consents[str(created["id"])] = created
        written = f"Consent/{created['id']}"
        record = {"purpose": purpose, "granted": mine.granted, "consent": written}
        await self._database.call(lambda c: _audit(c, ref, record), priority=Priority.INTAKE)

    # HTTP ------------------------------------------------------------------------------------

    async def _get(self, url: str) -> dict[str, Any]:
        return await self._call("GET", url, self._headers, None)

    async def _call(
        self, method: str, url: str, headers: dict[str, str], body: bytes | None
    ) -> dict[str, Any]:
        timeout = aiohttp.ClientTimeout(total=self._destination.timeout_s)
        try:
            async with self._session.request(
                method, url, data=body, headers=headers, timeout=timeout
            ) as response:
                text = await response.read()
                status = response.status
        except TimeoutError:
            limit = self._destination.timeout_s
            raise PlatformUnreachable(f"timed out after {limit:g} s") from None
        except aiohttp.ClientError as exc:
            raise PlatformUnreachable(type(exc).__name__) from None
        if status >= 300:
            raise PlatformUnreachable(f"HTTP {status} for {method} {url.split('?')[0]}")
        try:
            answer = orjson.loads(text)
        except orjson.JSONDecodeError:
            raise PlatformUnreachable(f"not JSON from {method} {url.split('?')[0]}") from None
        if not isinstance(answer, dict):
            raise PlatformUnreachable(f"not a FHIR resource from {method} {url.split('?')[0]}")
        return answer


def _hub_consents(connection: sqlite3.Connection, subject_ref: str) -> dict[str, HubConsent]:
    return {
        purpose: HubConsent(
            granted, datetime.fromisoformat(changed_at), changed_at, source.split(":")[0]
        )
        for purpose, granted, changed_at, source in consent_rows.of_subject(connection, subject_ref)
    }


def _audit(connection: sqlite3.Connection, subject_ref: str, data: dict[str, Any]) -> None:
    with Transaction(connection):
        audit.append(connection, "consent.written_back", data, subject_ref=subject_ref)


def build_consent_sync(
    settings: Settings,
    rights: Rights,
    database: Database,
    session: aiohttp.ClientSession,
    activity: Activity,
) -> ConsentSync | None:
    """The sync the config asks for (``[consent_sync]``), or None."""
    sync = settings.consent_sync
    if sync is None:
        return None
    destination = next(
        d
        for d in settings.destinations
        if isinstance(d, FhirDestination) and d.name == sync.destination
    )
    token = read_secret(
        f"destinations.{destination.name}.token",
        destination.token_file,
        destination.token_env,
        required=False,
    )
    return ConsentSync(settings, sync, destination, token, rights, database, session, activity)
