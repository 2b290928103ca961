"""The care team is told when monitoring of a person stops.

A withdrawal of ``care`` or ``alerting``, a restriction of processing, or an erasure means the
care team stops receiving that person's readings or alerts; without a word, the next high
reading would be "not sent to anyone" and nobody would know. Each such change queues one signed
Standard Webhooks event, ``monitoring.stopped``, for every alert webhook destination:

    {"type": "monitoring.stopped", "timestamp": ..., "data": {"notice_id": ..., "subject":
     {"identifier": {"system": ..., "value": ...}}, "reason": "consent_withdrawn" |
     "processing_restricted" | "data_erased", "purposes_stopped": ["alerting", "care"],
     "stopped_at": ...}}

It carries the identifier the care provider already holds, which purposes stopped and when: no
health values, no device, nothing else. Its legal basis is not the withdrawn consent (README
"The care team is told when monitoring stops"): it is queued with ``legal_basis =
"care_continuity"``, category ``notice``, which the send-time consent and restriction checks let
through, and its delivery is audited like every disclosure.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import structlog

from gateway.exporters.base import Route
from gateway.exporters.webhook.config import WebhookDestination
from gateway.privacy import audit
from gateway.privacy.rights import RightsChange
from gateway.settings import Settings
from gateway.storage.database import Database, Priority, Transaction
from gateway.storage.outbox import CATEGORY_NOTICE, PRIORITY_ALERT, NewItem, Outbox

log = structlog.get_logger(__name__)

EVENT_TYPE = "monitoring.stopped"
CATEGORY = CATEGORY_NOTICE
LEGAL_BASIS = "care_continuity"
# Not a consent purpose: a later withdrawal (which purges by purpose) leaves the notice queued.
PURPOSE = "care_continuity"
# The purposes whose end the care team must know of: what they receive from the hub.
WATCHED = ("alerting", "care")
REASONS = {
    "consent": "consent_withdrawn",
    "restriction": "processing_restricted",
    "erasure": "data_erased",
}


def stopped_purposes(change: RightsChange, granted: dict[str, bool]) -> tuple[str, ...]:
    """The watched purposes this change stops (none: no notice). A restriction leaves the
    consents as they are (``granted``): it stops every watched purpose that was granted."""
    if change.kind == "restriction":
        if not change.restricted:
            return ()
        return tuple(p for p in WATCHED if granted.get(p, False))
    return tuple(p for p in WATCHED if p in change.withdrawn)


class MonitoringNotices:
    def __init__(
        self,
        settings: Settings,
        database: Database,
        outbox: Outbox,
        routes: list[Route],
        granted: Callable[[str], dict[str, bool]],  # subject_ref -> the registry's purposes
    ) -> None:
        webhooks = {d.name: d for d in settings.destinations if isinstance(d, WebhookDestination)}
        self._targets = [
            (route, webhooks[route.name]) for route in routes if route.name in webhooks
        ]
        self._database = database
        self._outbox = outbox
        self._granted = granted

    async def on_change(self, change: RightsChange) -> None:
        purposes = stopped_purposes(change, self._granted(change.subject_ref))
        if not purposes or not self._targets:
            return
        now = datetime.now(UTC)
        notice_id = f"notice_{uuid.uuid4().hex}"
        items = [
            NewItem(
                destination=route.name,
                purpose=PURPOSE,
                category=CATEGORY,
                priority=PRIORITY_ALERT,
                subject_ref=change.subject_ref,
                reading_id=notice_id,
                idempotency_key=f"{notice_id}_{index}",
                legal_basis=LEGAL_BASIS,
                fields=(),
                payload=_body(notice_id, change, purposes, destination, now),
            )
            for index, (route, destination) in enumerate(self._targets)
        ]

        def enqueue(connection: Any) -> None:
            with Transaction(connection):
                self._outbox.enqueue(connection, items, time.time())
                audit.append(
                    connection,
                    "monitoring.stopped.queued",
                    {
                        "reason": REASONS[change.kind],
                        "purposes_stopped": list(purposes),
                        "destinations": [route.name for route, _ in self._targets],
                        "legal_basis": LEGAL_BASIS,
                    },
                    subject_ref=change.subject_ref,
                )

        await self._database.call(enqueue, priority=Priority.ALERT)
        for route, _ in self._targets:
            route.wake()
        log.info("monitoring_stopped_queued", reason=REASONS[change.kind], notices=len(items))


def _body(
    notice_id: str,
    change: RightsChange,
    purposes: tuple[str, ...],
    destination: WebhookDestination,
    now: datetime,
) -> dict[str, Any]:
    return {
        "type": EVENT_TYPE,
        "timestamp": now.isoformat(),
        "data": {
            "notice_id": notice_id,
            "subject": {
                "identifier": {"system": destination.identifier_system, "value": change.subject_id}
            },
            "reason": REASONS[change.kind],
            "purposes_stopped": list(purposes),
            "stopped_at": now.isoformat(),
        },
    }
