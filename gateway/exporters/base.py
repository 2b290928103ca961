"""Sinks deliver queued items to one destination and report an outcome per item."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Protocol

from gateway.storage.outbox import QueuedItem

RETRYABLE_STATUS = frozenset({408, 425, 429})


@dataclass(slots=True)
class Outcome:
    """What happened to each item of one delivery attempt, by outbox id."""

    delivered: list[int] = field(default_factory=list)
    retry: list[int] = field(default_factory=list)
    failed: list[tuple[int, int | None, str]] = field(default_factory=list)  # id, status, excerpt
    retry_after_s: float | None = None
    reason: str | None = None


class Sink(Protocol):
    name: str
    max_batch: int
    max_bytes: int | None  # cap on the summed payload sizes of one batch (None: count only)
    linger_s: float

    async def deliver(self, items: list[QueuedItem]) -> Outcome: ...

    async def close(self) -> None: ...


def is_retryable(status: int) -> bool:
    return status in RETRYABLE_STATUS or status >= 500


def parse_retry_after(value: str | None, *, cap_s: float = 3600.0) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), cap_s)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return min(max((when - datetime.now(UTC)).total_seconds(), 0.0), cap_s)


def excerpt(text: str, limit: int = 500) -> str:
    return text if len(text) <= limit else text[:limit] + "..."
