"""The analytics sink: JSON batches of minimised, pseudonymous events (bearer token auth)."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import aiohttp
import orjson

from gateway.exporters.aggregate.config import AggregateDestination
from gateway.exporters.analytics.config import AnalyticsDestination
from gateway.exporters.base import Outcome
from gateway.exporters.http import post
from gateway.storage.outbox import QueuedItem


class JsonBatchSink:
    """POSTs ``{"sent_at": ..., "<key>": [payload, ...]}``; one idempotency key per batch.

    With ``hub_id`` the batch also names the hub that sent it (analytics, docs/fleet.md). The
    anonymous aggregate reports go without it: a hub is one household, and a report that named it
    would no longer be anonymous."""

    def __init__(
        self,
        settings: AnalyticsDestination | AggregateDestination,
        session: aiohttp.ClientSession,
        token: str | None,
        *,
        key: str,
        max_batch: int,
        max_bytes: int | None,
        linger_s: float,
        hub_id: str | None = None,
    ) -> None:
        self.name = settings.name
        self._hub = {"hub_id": hub_id} if hub_id else {}
        self.max_batch = max_batch
        self.max_bytes = max_bytes
        self.linger_s = linger_s
        self._settings = settings
        self._session = session
        self._key = key
        self._headers = {"Content-Type": "application/json"}
        if token:
            self._headers["Authorization"] = f"Bearer {token}"

    async def deliver(self, items: list[QueuedItem]) -> Outcome:
        keys = "\n".join(item.idempotency_key for item in items).encode()
        headers = {**self._headers, "Idempotency-Key": hashlib.sha256(keys).hexdigest()}
        body = orjson.dumps(
            {
                "sent_at": datetime.now(UTC).isoformat(),
                **self._hub,
                self._key: [orjson.Fragment(item.body) for item in items],  # as queued
            }
        )
        outcome, _status, _text = await post(
            self._session,
            self._settings.url,
            body,
            headers,
            self._settings.timeout_s,
            [item.id for item in items],
        )
        return outcome

    async def close(self) -> None:
        return None
