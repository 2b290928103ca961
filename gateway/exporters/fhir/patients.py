"""The care platform's ``Patient`` ids, for destinations that reference the person by
``Patient/{id}`` rather than by identifier (``patient_reference = "resolved"``).

A person's id is looked up once (``Patient?identifier=system|value``) and kept for the life of
the process. A person the platform has no single Patient for keeps the reference by identifier
(the reading is delivered all the same, and the platform can resolve it later); a platform that
cannot be reached makes the batch wait and retry, as its POST would.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import aiohttp
import orjson

FHIR_JSON = "application/fhir+json"


class PatientLookupFailed(Exception):
    """The platform did not answer the search: the batch is retried."""


class PatientDirectory:
    def __init__(
        self,
        session: aiohttp.ClientSession,
        base_url: str,
        headers: dict[str, str],
        identifier_system: str,
        timeout_s: float,
    ) -> None:
        self._session = session
        self._base = base_url.rstrip("/")
        self._headers = {**headers, "Accept": FHIR_JSON}
        self._system = identifier_system
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._ids: dict[str, str | None] = {}

    async def patient_id(self, value: str) -> str | None:
        if value not in self._ids:
            self._ids[value] = await self._search(value)
        return self._ids[value]

    async def _search(self, value: str) -> str | None:
        query = urlencode({"identifier": f"{self._system}|{value}"})
        try:
            async with self._session.get(
                f"{self._base}/Patient?{query}", headers=self._headers, timeout=self._timeout
            ) as response:
                body = await response.read()
                status = response.status
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise PatientLookupFailed(f"Patient search failed: {type(exc).__name__}") from None
        if status != 200:
            raise PatientLookupFailed(f"Patient search answered HTTP {status}")
        try:
            bundle = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise PatientLookupFailed("Patient search answered something not JSON") from None
        patients = [e.get("resource", {}) for e in bundle.get("entry", [])]
        if len(patients) != 1 or "id" not in patients[0]:
            return None  # none, or several: the hub does not guess
        return str(patients[0]["id"])

    async def resolve_body(self, body: bytes) -> bytes:
        """A stored FHIR item with each Observation's subject as ``Patient/{id}`` where the
        person has one Patient on the platform (the same layout, so it still splices)."""
        item: dict[str, Any] = orjson.loads(body)
        changed = False
        for entry in item.get("entries", []):
            subject = entry.get("resource", {}).get("subject")
            identifier = subject.get("identifier") if isinstance(subject, dict) else None
            if not identifier or identifier.get("system") != self._system:
                continue
            patient_id = await self.patient_id(str(identifier["value"]))
            if patient_id is not None:
                entry["resource"]["subject"] = {"reference": f"Patient/{patient_id}"}
                changed = True
        return orjson.dumps(item) if changed else body
