"""The API's listening socket, guarded below HTTP: who may connect, how many, and for how long.

aiohttp reads a request from any peer and, by default, keeps a connection that sends nothing
for its keep-alive time (an hour). On a hub that also delivers alerts, idle connections cost
file descriptors the deliveries need, and a LAN device can hold hundreds of them. So every new
connection passes ``GuardedConnection.connection_made`` before aiohttp sees a byte:

- a peer outside ``gateway.api.allowed_networks`` is closed at once, nothing read;
- beyond ``max_connections`` open connections, a new one is closed at once;
- a connection must deliver a complete request head (``\\r\\n\\r\\n``) within
  ``header_timeout_s`` of opening, or it is closed (slow or silent clients);
- later, idle keep-alive time is aiohttp's ``keepalive_timeout`` (``idle_timeout_s``), and a
  request body must arrive within ``body_timeout_s`` (``responses.json_object``).

Refused and timed-out connections are counted and logged at most once per ``REPORT_EVERY_S``:
a flood must not grow the journal by a line per connection.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import structlog
from aiohttp import web
from yarl import URL

from gateway.api.security import Network, address_allowed

log = structlog.get_logger(__name__)

REPORT_EVERY_S = 60.0
HEAD_END = b"\r\n\r\n"


@dataclass(slots=True)
class RefusalReport:
    """Counts closed connections by reason; logs a summary at most once per interval."""

    interval_s: float = REPORT_EVERY_S
    clock: Callable[[], float] = time.monotonic
    totals: dict[str, int] = field(default_factory=dict)
    _unreported: dict[str, int] = field(default_factory=dict)
    _last_report: float | None = None

    def count(self, reason: str) -> None:
        self.totals[reason] = self.totals.get(reason, 0) + 1
        self._unreported[reason] = self._unreported.get(reason, 0) + 1
        now = self.clock()
        if self._last_report is None or now - self._last_report >= self.interval_s:
            self._report(now)

    def flush(self) -> None:
        """Log what was counted since the last line (at shutdown)."""
        if self._unreported:
            self._report(self.clock())

    def _report(self, now: float) -> None:
        log.warning(
            "api_connections_closed",
            **self._unreported,
            next_report_in_s=self.interval_s,
        )
        self._unreported = {}
        self._last_report = now


REFUSALS = web.AppKey("refusals", RefusalReport)


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    max_connections: int
    header_timeout_s: float


class ConnectionGuard:
    """The state every guarded connection shares: aiohttp's server, the rules, the open set."""

    def __init__(
        self,
        server: web.Server,
        networks: list[Network],
        limits: ConnectionLimits,
        report: RefusalReport,
    ) -> None:
        self.server = server
        self.networks = networks
        self.limits = limits
        self.report = report
        self.open: set[GuardedConnection] = set()

    def protocol(self) -> GuardedConnection:
        return GuardedConnection(self)


class GuardedConnection(asyncio.Protocol):
    """Decides about a connection, then hands every event on to aiohttp's request handler."""

    def __init__(self, guard: ConnectionGuard) -> None:
        self._guard = guard
        self._inner: asyncio.Protocol | None = None
        self._transport: asyncio.Transport | None = None
        self._head_deadline: asyncio.TimerHandle | None = None
        self._tail = b""  # the last bytes seen, for a head end split across two reads

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        guard = self._guard
        peer = transport.get_extra_info("peername")
        host = peer[0] if isinstance(peer, tuple) and peer else None
        if not address_allowed(host, guard.networks):
            transport.abort()  # closed before anything is read
            guard.report.count("outside_allowed_networks")
            return
        if len(guard.open) >= guard.limits.max_connections:
            transport.abort()
            guard.report.count("over_max_connections")
            return
        guard.open.add(self)
        self._transport = transport
        self._head_deadline = asyncio.get_running_loop().call_later(
            guard.limits.header_timeout_s, self._head_too_slow
        )
        self._inner = guard.server()
        self._inner.connection_made(transport)

    def _head_too_slow(self) -> None:
        self._head_deadline = None
        if self._transport is not None:
            self._guard.report.count("request_head_timed_out")
            self._transport.abort()

    def data_received(self, data: bytes) -> None:
        if self._head_deadline is not None:
            seen = self._tail + data
            if HEAD_END in seen:
                self._head_deadline.cancel()
                self._head_deadline = None
                self._tail = b""
            else:
                self._tail = seen[-(len(HEAD_END) - 1) :]
        if self._inner is not None:
            self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received() if self._inner is not None else None

    def pause_writing(self) -> None:
        if self._inner is not None:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._inner is not None:
            self._inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None
        self._guard.open.discard(self)
        self._transport = None
        inner, self._inner = self._inner, None
        if inner is not None:
            inner.connection_lost(exc)


class GuardedSite(web.BaseSite):
    """A TCP site like ``web.TCPSite`` whose connections go through a ``ConnectionGuard``."""

    __slots__ = ("_guard", "_host", "_port")

    def __init__(
        self, runner: web.BaseRunner, host: str, port: int, guard: ConnectionGuard
    ) -> None:
        super().__init__(runner)
        self._host = host
        self._port = port
        self._guard = guard

    @property
    def name(self) -> str:
        return str(URL.build(scheme="http", host=self._host, port=self._port))

    async def start(self) -> None:
        await super().start()
        loop = asyncio.get_running_loop()
        # BaseSite.stop and BaseRunner.addresses read the server from ``_server``.
        self._server = await loop.create_server(
            self._guard.protocol, self._host, self._port, backlog=self._backlog
        )
