"""What every request handler reaches: the gateway's parts and the API's own state."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from aiohttp import web

from gateway.activity import ActivityEntry
from gateway.api.security import LoginLimiter, Network, Session, Sessions
from gateway.api.summary import AlertMemory, SummaryBuilder
from gateway.i18n import LANGUAGES, choose_language
from gateway.metrics import GatewayMetrics
from gateway.privacy.rights import Rights

if TYPE_CHECKING:
    from gateway.hub import Hub
    from gateway.privacy.references import References

_ALERTS = frozenset({"alert.raised", "alert.resolved"})


class SubjectStream:
    """One open ``/events`` connection: woken when something about its person changed."""

    def __init__(self, subject_ref: str) -> None:
        self.subject_ref = subject_ref
        self.changed = asyncio.Event()
        self.closed = False

    def close(self) -> None:
        self.closed = True
        self.changed.set()


class SubjectEvents:
    """Fans the activity feed out to the page's event streams, per person, coalesced.

    A stream is only told *that* something changed (a reading, a delivery, an alert, a consent
    change); the page then fetches its summary again. Nothing personal travels in the event.
    """

    def __init__(self) -> None:
        self._streams: set[SubjectStream] = set()

    def open(self, subject_ref: str) -> SubjectStream:
        stream = SubjectStream(subject_ref)
        self._streams.add(stream)
        return stream

    def discard(self, stream: SubjectStream) -> None:
        self._streams.discard(stream)

    def close_all(self) -> None:
        for stream in self._streams:
            stream.close()

    def notify(self, subject_ref: str | None) -> None:
        for stream in self._streams:
            if subject_ref is None or stream.subject_ref == subject_ref:
                stream.changed.set()

    def observe(self, entry: ActivityEntry) -> None:
        kind = entry.kind
        if kind == "stored" or kind == "delivered":  # a batch: each person in it, once
            # "stored", not a step before it: a page that refreshes on the signal must find
            # the reading.
            for subject_ref in entry.fields["subject_refs"]:
                self.notify(str(subject_ref))
        elif kind in _ALERTS:
            subject_ref = entry.fields.get("subject_ref")
            self.notify(str(subject_ref) if subject_ref else None)


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is asking: the operator (API token) or a person's page session."""

    kind: str  # "token" or "session"
    session: Session | None = None

    @property
    def audit_source(self) -> str:
        return "hub-page" if self.kind == "session" else "operator-api"


@dataclass(slots=True)
class ApiContext:
    hub: Hub
    references: References
    summaries: SummaryBuilder
    metrics: GatewayMetrics
    token: str
    pins: dict[str, str]
    networks: list[Network]
    sessions: Sessions
    limiter: LoginLimiter = field(default_factory=LoginLimiter)
    events: SubjectEvents = field(default_factory=SubjectEvents)
    alerts: AlertMemory = field(default_factory=AlertMemory)

    @property
    def rights(self) -> Rights:
        return self.hub.subject_rights()


CONTEXT = web.AppKey("context", ApiContext)
PRINCIPAL = web.RequestKey("principal", Principal)


def context_of(request: web.Request) -> ApiContext:
    return request.app[CONTEXT]


def page_language(request: web.Request) -> str:
    """The page's language: ``?lang=`` when given, else the hub's setting and the browser's."""
    asked = request.query.get("lang")
    if asked in LANGUAGES:
        return asked
    configured = context_of(request).hub.settings.gateway.locale
    return choose_language(configured, request.headers.get("Accept-Language"))


def principal_of(request: web.Request) -> Principal:
    principal: Principal = request[PRINCIPAL]
    return principal
