"""What every exporter is: a ``Route`` (what it takes and how its payload is made from a reading)
and a ``Sink`` (how a batch of queued items is sent, with an ``Outcome`` per item).

Queueing and retrying are not the exporters' business: ``gateway.delivery`` does them for every
kind alike, as the OpenTelemetry Collector's exporter helper does for its exporters.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Protocol

import aiohttp

from filters.chain import Filter, Item
from gateway.settings import Settings
from gateway.storage.outbox import QueuedItem

RETRYABLE_STATUS = frozenset({408, 425, 429})
# The destination refused our credentials (an expired or revoked token): no item is at fault,
# so none is given up; the destination is paused with its items kept queued.
CREDENTIALS_REFUSED_STATUS = frozenset({401, 403})


@dataclass(slots=True)
class Outcome:
    """What happened to each item of one delivery attempt, by outbox id."""

    delivered: list[int] = field(default_factory=list)
    retry: list[int] = field(default_factory=list)
    failed: list[tuple[int, int | None, str]] = field(default_factory=list)  # id, status, excerpt
    retry_after_s: float | None = None
    reason: str | None = None
    paused: bool = False  # the destination refused our credentials: hold it, keep the items


@dataclass(slots=True)
class Route:
    """One destination as intake sees it: what it takes, its chain, and its payload format.

    Built once at start by the kind's factory; the same route builds a queued reading's payload
    again from the stored reading when it is sent."""

    name: str
    purpose: str
    category: str  # "reading" or "alert"
    priority: int
    steps: list[Filter]
    allowed: frozenset[str]
    format: Callable[[Item], dict[str, Any]]
    wake: Callable[[], None] = lambda: None
    # Destinations whose purpose needs no direct identifier: the serialised payload is checked
    # for every configured identifier before it may enter the outbox.
    forbid_identifiers: bool = False
    # The payload is a flat event whose keys are the fields sent (analytics), rather than a
    # format built from the fields (FHIR entries, alert bodies).
    payload_is_event: bool = False


class Sink(Protocol):
    name: str
    max_batch: int
    max_bytes: int | None  # cap on the summed payload sizes of one batch (None: count only)
    linger_s: float

    async def deliver(self, items: list[QueuedItem]) -> Outcome: ...

    async def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class ExportContext:
    """What every kind's factory may use besides its own config: the shared HTTP session, the
    hub's id (docs/fleet.md), which each format carries where it has a place for it, and the
    whole config (for paths it derives from it, such as a pseudonym key under ``data_dir``)."""

    session: aiohttp.ClientSession
    hub_id: str
    settings: Settings


@dataclass(slots=True)
class Built:
    """A configured destination, ready to run: its route, its sink, and its retry timing."""

    route: Route
    sink: Sink
    retry_initial_s: float
    retry_max_s: float
    # Drops what the route keeps in memory about a person (their identifiers), on erasure.
    forget: Callable[[Collection[str]], None] | None = None


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
