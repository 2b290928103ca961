"""The alert sink: one signed Standard Webhooks POST per alert, never batched or delayed."""

from __future__ import annotations

import time

import aiohttp
import orjson

from gateway.exporters.base import Outcome
from gateway.exporters.http import post
from gateway.exporters.webhook.config import WebhookDestination
from gateway.exporters.webhook.signing import sign
from gateway.storage.outbox import QueuedItem


class WebhookSink:
    max_batch = 1
    max_bytes: int | None = None
    linger_s = 0.0

    def __init__(
        self,
        settings: WebhookDestination,
        session: aiohttp.ClientSession,
        key: bytes,
        hub_id: str | None = None,
    ) -> None:
        self.name = settings.name
        self._settings = settings
        self._session = session
        self._key = key
        # The hub's id as the body's first member (docs/fleet.md): spliced into the queued
        # event's bytes, so every event kind (alerts, monitoring notices) carries it alike.
        self._hub_member = b"" if not hub_id else b'{"hub_id":' + orjson.dumps(hub_id) + b","

    async def deliver(self, items: list[QueuedItem]) -> Outcome:
        outcome = Outcome()
        for item in items:
            body = item.body  # the event as queued: what the signature covers
            if self._hub_member and body.startswith(b"{") and len(body) > 2:
                body = self._hub_member + body[1:]
            timestamp = int(time.time())
            headers = {
                "Content-Type": "application/json",
                "webhook-id": item.idempotency_key,
                "webhook-timestamp": str(timestamp),
                "webhook-signature": sign(self._key, item.idempotency_key, timestamp, body),
            }
            result, _status, _text = await post(
                self._session,
                self._settings.url,
                body,
                headers,
                self._settings.timeout_s,
                [item.id],
            )
            outcome.delivered += result.delivered
            outcome.retry += result.retry
            outcome.failed += result.failed
            outcome.retry_after_s = result.retry_after_s or outcome.retry_after_s
            outcome.reason = result.reason or outcome.reason
            if result.paused:  # credentials refused: the rest would be too; they stay queued
                outcome.paused = True
                break
        return outcome

    async def close(self) -> None:
        return None
