"""The activity feed: what the gateway just did, for the demo's live view and the hub page.

This is the person's own data shown on their own hub, not a log: it never goes to the log
output. Subscribers are called synchronously and must not block; recent entries are kept in a
small ring buffer.

Readings are reported per batch, not per step: intake emits one ``stored`` entry per stored
batch (counts per destination and outcome, and a record per reading for the few readers that
show readings one by one), delivery one ``delivered`` entry per sent batch and legal basis.
Alerts, drops, retries and the like stay one entry each: they are rare, and each one matters.

The entries, by kind:

- ``stored``: ``items`` (readings stored), ``taken_at`` (when intake took the batch),
  ``subject_refs`` (frozenset), ``passed`` and ``blocked`` (destination -> items its chain let
  through / stopped, reading destinations only), ``records`` (an ``IntakeRecord`` per reading,
  in the order they were stored);
- ``delivered``: ``destination``, ``category``, ``legal_basis``, ``items``, ``reading_ids``
  (tuple), ``subject_refs`` (frozenset);
- ``filtered``: one decision of an alert destination's chain (``destination``, ``purpose``,
  ``category``, ``reading_id``, ``passed``, then ``legal_basis`` or ``reason``);
- ``alert.raised`` / ``alert.resolved``: one alert, reported once its batch is stored;
- ``dropped``, ``retry``, ``dead_letter``, ``quarantined``, ``outbox_full``, ``disk_full``,
  ``disk_space_back``, ``consent_synced``: one each, as they happen.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

import structlog

if TYPE_CHECKING:
    from gateway.intake.alerts import AlertEvent
    from gateway.intake.events import BoundReading
    from gateway.intake.window_alert_event import WindowAlertEvent
    from gateway.storage.outbox import NewItem

log = structlog.get_logger(__name__)


class ActivityEntry(NamedTuple):
    """One thing the gateway did: one batch of readings, or one rare event."""

    at: float
    kind: str
    fields: dict[str, Any]


class Blocked(NamedTuple):
    """A destination's chain stopped a reading (or an alert) from being queued for it."""

    destination: str
    purpose: str
    category: str
    key: str  # the item's idempotency key: the reading's id, or the alert's
    reason: str


@dataclass(slots=True)
class IntakeRecord:
    """One stored reading as intake handled it: what was queued for it, what was stopped, and
    the alerts it raised. The pipeline's own working record, handed to readers as it is (no
    copy is made per reading for the feed)."""

    reading: BoundReading
    event: dict[str, Any]  # the reading as stored (the event schema, gateway/intake/events.py)
    items: list[NewItem]  # queued, reading and alert destinations alike
    alerts: list[AlertEvent | WindowAlertEvent] = field(default_factory=list)
    blocked: list[Blocked] = field(default_factory=list)


Subscriber = Callable[[ActivityEntry], None]


class Activity:
    def __init__(self, keep: int = 200) -> None:
        self.recent: deque[ActivityEntry] = deque(maxlen=keep)
        self._subscribers: list[Subscriber] = []

    def subscribe(self, subscriber: Subscriber) -> None:
        self._subscribers.append(subscriber)

    def emit(self, kind: str, /, **fields: Any) -> None:
        entry = ActivityEntry(time.time(), kind, fields)
        self.recent.append(entry)
        self._tell(entry)

    def emit_batch(self, kind: str, /, **fields: Any) -> None:
        """Like ``emit``, for a batch whose fields hold its readings' records: told to the
        subscribers but not kept in ``recent`` (200 batches of records would hold megabytes)."""
        self._tell(ActivityEntry(time.time(), kind, fields))

    def _tell(self, entry: ActivityEntry) -> None:
        for subscriber in self._subscribers:
            try:
                subscriber(entry)
            except Exception:  # a broken view must not stop the gateway
                log.exception("activity_subscriber_failed", kind=entry.kind)
