"""The gateway's aiohttp server: the operator API, the probes and the person's page."""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING

import structlog
from aiohttp import web

from gateway.api import operator, page
from gateway.api.connections import (
    REFUSALS,
    ConnectionGuard,
    ConnectionLimits,
    GuardedSite,
    RefusalReport,
)
from gateway.api.context import CONTEXT, ApiContext
from gateway.api.hosts import HOST_NAMES, host_names, known_host
from gateway.api.middleware import Handler, authenticate, errors, lan_only, security_headers
from gateway.api.responses import BODY_TIMEOUT
from gateway.api.security import (
    Sessions,
    check_api_settings,
    load_pins,
    load_token,
    parse_networks,
    token_path,
)
from gateway.api.summary import SummaryBuilder
from gateway.errors import GatewayError
from gateway.metrics import GatewayMetrics
from gateway.settings import split_listen

if TYPE_CHECKING:
    from gateway.hub import Hub
    from gateway.privacy.references import References
    from gateway.storage.crypto import Sealer

log = structlog.get_logger(__name__)

# (method, path, handler): the one route table; the OpenAPI document is checked against it.
ROUTES: list[tuple[str, str, Handler]] = [
    ("GET", "/healthz", operator.healthz),
    ("GET", "/readyz", operator.readyz),
    ("GET", "/metrics", operator.metrics),
    ("GET", "/api/openapi.json", operator.openapi),
    ("GET", "/api/status", operator.status),
    ("GET", "/api/devices", operator.devices),
    ("GET", "/api/subjects/{subject}", operator.subject_access),
    ("GET", "/api/subjects/{subject}/summary", operator.subject_summary),
    ("GET", "/api/subjects/{subject}/events", operator.subject_events),
    ("GET", "/api/subjects/{subject}/export", operator.subject_export),
    ("DELETE", "/api/subjects/{subject}/data", operator.subject_erase),
    ("PUT", "/api/subjects/{subject}/consent", operator.subject_consent),
    ("PUT", "/api/subjects/{subject}/restriction", operator.subject_restriction),
    ("GET", "/api/audit", operator.audit_log),
    ("GET", "/api/dead-letters", operator.dead_letters),
    ("POST", "/api/dead-letters/requeue", operator.requeue),
    ("POST", "/api/quarantine/requeue", operator.requeue_quarantined),
    ("GET", "/api/held-weighings", operator.held_weighings),
    ("POST", "/api/held-weighings/{id}/assign", operator.held_assign),
    ("POST", "/api/held-weighings/{id}/discard", operator.held_discard),
    ("GET", "/", page.index),
    ("GET", "/static/{name}", page.static),
    ("GET", "/session", page.session_get),
    ("POST", "/session", page.session_create),
    ("DELETE", "/session", page.session_delete),
]


def build_app(context: ApiContext, refusals: RefusalReport) -> web.Application:
    app = web.Application(
        middlewares=[errors, known_host, lan_only, authenticate], client_max_size=64 * 1024
    )
    api = context.hub.settings.gateway.api
    app[CONTEXT] = context
    app[HOST_NAMES] = host_names(api)
    app[BODY_TIMEOUT] = api.body_timeout_s
    app[REFUSALS] = refusals
    app[page.STATIC] = page.load_static()
    for method, path, handler in ROUTES:
        app.router.add_route(method, path, handler)
    app.on_response_prepare.append(security_headers)

    async def close_streams(_app: web.Application) -> None:
        context.events.close_all()

    app.on_shutdown.append(close_streams)
    return app


class ApiServer:
    """Started by ``Gateway._serve`` once the workers exist; stopped first at shutdown."""

    def __init__(self, hub: Hub, references: References, sealer: Sealer) -> None:
        self._hub = hub
        self._references = references
        self._sealer = sealer
        self._runner: web.AppRunner | None = None
        self._refusals: RefusalReport | None = None
        self.context: ApiContext | None = None
        self.url: str | None = None
        # Subscribe now, before any device is read, so no reading is missed by the metrics.
        self.metrics = GatewayMetrics(hub)

    async def start(self) -> None:
        settings = self._hub.settings
        api = settings.gateway.api
        check_api_settings(settings)
        token, created = load_token(settings)
        if created:
            log.info("api_token_created", path=str(token_path(settings)))
        context = ApiContext(
            hub=self._hub,
            references=self._references,
            summaries=SummaryBuilder(settings, self._sealer),
            metrics=self.metrics,
            token=token,
            pins=load_pins(settings),
            networks=parse_networks(api),
            sessions=Sessions(api.session_idle_s),
        )
        self._hub.activity.subscribe(context.events.observe)
        self._hub.activity.subscribe(context.alerts.observe)
        self.context = context
        refusals = RefusalReport()
        self.metrics.api_refusals = refusals.totals  # the same dict: counted once, shown live
        # keepalive_timeout: aiohttp closes a connection idle this long between requests.
        # lingering_time: how long it reads a body nobody asked for (or one that timed out)
        # before closing; bounded by the same time a body is given to arrive.
        runner = web.AppRunner(
            build_app(context, refusals),
            access_log=None,
            shutdown_timeout=1.0,
            keepalive_timeout=api.idle_timeout_s,
            lingering_time=api.body_timeout_s,
        )
        await runner.setup()
        assert runner.server is not None
        guard = ConnectionGuard(
            runner.server,
            context.networks,
            ConnectionLimits(api.max_connections, api.header_timeout_s),
            refusals,
        )
        host, port = split_listen(api.listen)
        site = GuardedSite(runner, host, port, guard)
        try:
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            hint = (
                "another program uses this port; pick another one"
                if exc.errno == errno.EADDRINUSE
                else "check the address"
            )
            raise GatewayError(
                f"gateway.api.listen: cannot listen on {api.listen} ({exc.strerror}); {hint}"
            ) from None
        self._runner = runner
        self._refusals = refusals
        bound_host, bound_port = runner.addresses[0][:2]
        shown = f"[{bound_host}]" if ":" in bound_host else bound_host
        self.url = f"http://{shown}:{bound_port}"
        log.info("api_listening", url=self.url, page=bool(context.pins) or "token only")

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
            if self._refusals is not None:
                self._refusals.flush()
            log.info("api_stopped")
