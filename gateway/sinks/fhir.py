"""The care platform sink: FHIR R4 transaction Bundles over HTTPS."""

from __future__ import annotations

import aiohttp
import orjson

from gateway.fhir import transaction_bundle
from gateway.outbox import QueuedItem
from gateway.settings import FhirDestination
from gateway.sinks import Outcome
from gateway.sinks.http import post


class FhirSink:
    def __init__(
        self, settings: FhirDestination, session: aiohttp.ClientSession, token: str | None
    ) -> None:
        self.name = settings.name
        self.max_batch = settings.batch_max_items
        self.max_bytes: int | None = None
        self.linger_s = settings.linger_s
        self._settings = settings
        self._session = session
        self._headers = {
            "Content-Type": "application/fhir+json",
            "Accept": "application/fhir+json",
        }
        if token:
            self._headers["Authorization"] = f"Bearer {token}"

    async def deliver(self, items: list[QueuedItem]) -> Outcome:
        bundle = transaction_bundle([item.payload["entries"] for item in items])
        outcome, _status, _text = await post(
            self._session,
            self._settings.url,
            orjson.dumps(bundle),
            self._headers,
            self._settings.timeout_s,
            [item.id for item in items],
        )
        return outcome

    async def close(self) -> None:
        return None
