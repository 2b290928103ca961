"""Request guards, outermost first: errors as JSON, the LAN lock, then authentication and CSRF."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

import structlog
from aiohttp import web

from gateway.api.context import PRINCIPAL, Principal, context_of
from gateway.api.responses import ApiError, error_response
from gateway.api.security import SESSION_COOKIE, address_allowed, same_secret
from gateway.privacy.rights import SubjectNotFound

log = structlog.get_logger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CSRF_HEADER = "X-CSRF-Token"
# Outside /api/ but still the operator's: the metrics name the household's devices and count
# its alerts. The API token only (Prometheus: authorization.credentials_file); no page session.
TOKEN_ONLY_PATHS = frozenset({"/metrics"})


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        return error_response(exc.status, exc.message, exc.headers)
    except SubjectNotFound:
        return error_response(404, "no subject with this id is configured on this hub")
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        kept = {k: v for k, v in exc.headers.items() if k in ("Allow", "Retry-After")}
        return error_response(exc.status, exc.reason.lower(), kept)
    except Exception as exc:  # a bug: answer 500 in JSON, keep serving, log without the path
        log.error("api_request_failed", route=_route(request), error=type(exc).__name__)
        return error_response(500, "internal error; the gateway's log says more")


def _route(request: web.Request) -> str:
    """The route's pattern (``/api/subjects/{subject}``): a path may hold a person's id."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "(no route)"


@web.middleware
async def lan_only(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not address_allowed(request.remote, context_of(request).networks):
        log.warning("api_refused_address", route=_route(request))
        return error_response(
            403, "this address may not use the hub; see gateway.api.allowed_networks"
        )
    return await handler(request)


def cross_site(request: web.Request) -> bool:
    """True when the browser says the request comes from another site or origin."""
    fetch_site = request.headers.get("Sec-Fetch-Site")
    if fetch_site is not None and fetch_site not in ("same-origin", "none"):
        return True
    origin = request.headers.get("Origin")
    if origin is None:
        return False
    parts = urlsplit(origin)
    return parts.scheme != request.scheme or parts.netloc != request.host


@web.middleware
async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
    token_only = request.path in TOKEN_ONLY_PATHS
    if not request.path.startswith("/api/") and not token_only:
        return await handler(request)
    context = context_of(request)
    header = request.headers.get("Authorization")
    if header is not None:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not same_secret(token.strip(), context.token):
            raise ApiError(401, "wrong API token", {"WWW-Authenticate": 'Bearer realm="hub"'})
        request[PRINCIPAL] = Principal("token")
        return await handler(request)
    session = None if token_only else context.sessions.get(request.cookies.get(SESSION_COOKIE))
    if session is None:
        raise ApiError(
            401,
            "sign in: send Authorization: Bearer <token from gateway.api.token_file>",
            {"WWW-Authenticate": 'Bearer realm="hub"'},
        )
    if request.method not in SAFE_METHODS:
        if cross_site(request):
            log.warning("api_refused_cross_site", route=_route(request))
            raise ApiError(403, "cross-site request refused")
        if not same_secret(request.headers.get(CSRF_HEADER, ""), session.csrf):
            raise ApiError(403, f"missing or wrong {CSRF_HEADER} header")
    subject = request.match_info.get("subject")
    if request.path != "/api/openapi.json" and subject != session.subject_id:
        raise ApiError(403, "a page session may only reach its own person's data")
    request[PRINCIPAL] = Principal("session", session)
    return await handler(request)


async def security_headers(request: web.Request, response: web.StreamResponse) -> None:
    headers = response.headers
    headers.setdefault(
        "Content-Security-Policy",
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self';"
        " connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
    )
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("Referrer-Policy", "no-referrer")
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("Cache-Control", "no-store")
