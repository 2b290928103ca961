"""What every request handler reaches: the gateway's parts and the API's own state."""

from __future__ import annotations

import asyncio
from collections import OrderedDict
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

_REMEMBERED_READINGS = 4096
_REFRESHES = frozenset({"stored", "alert.raised", "alert.resolved", "delivered"})
_CHANGES_A_PAGE = _REFRESHES | {"reading"}  # "reading" only to remember whose it is


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
        self._reading_subject: OrderedDict[str, str] = OrderedDict()

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
        if entry.kind not in _CHANGES_A_PAGE:
            return
        fields = entry.fields
        reading_id = fields.get("reading_id")
        subject_ref = fields.get("subject_ref")
        if entry.kind == "reading" and reading_id and subject_ref:
            self._reading_subject[str(reading_id)] = str(subject_ref)
            while len(self._reading_subject) > _REMEMBERED_READINGS:
                self._reading_subject.popitem(last=False)
        # "stored", not "reading": a page that refreshes on the signal must find the reading.
        if entry.kind in _REFRESHES:
            if subject_ref is None and reading_id is not None:
                subject_ref = self._reading_subject.get(str(reading_id))
                if subject_ref is None:
                    return  # a delivery of a reading from before this start: nothing new shown
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
