"""The activity feed: what the gateway just did, for the demo's live view and the hub page.

This is the person's own data shown on their own hub, not a log: it never goes to the log
output. Subscribers are called synchronously and must not block; recent entries are kept in a
small ring buffer.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import Any, NamedTuple

import structlog

log = structlog.get_logger(__name__)


class ActivityEntry(NamedTuple):
    """One thing the gateway did (a named tuple: several are made per reading)."""

    at: float
    kind: str
    fields: dict[str, Any]


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
        for subscriber in self._subscribers:
            try:
                subscriber(entry)
            except Exception:  # a broken view must not stop the gateway
                log.exception("activity_subscriber_failed", kind=kind)
