"""The person's page: ``GET /``, its static files, and signing in and out (``/session``)."""

from __future__ import annotations

import functools
import hashlib
import html
import re
from dataclasses import dataclass
from datetime import UTC
from importlib import resources

import orjson
import structlog
from aiohttp import web

from gateway.api.context import context_of, page_language
from gateway.api.middleware import CSRF_HEADER, cross_site
from gateway.api.responses import ApiError, json_object, json_response
from gateway.api.security import SESSION_COOKIE, match_pin, same_secret
from gateway.i18n import Translator
from gateway.privacy.rights import SubjectNotFound

log = structlog.get_logger(__name__)

CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
}


@dataclass(frozen=True, slots=True)
class StaticFile:
    body: bytes
    content_type: str
    etag: str


def load_static() -> dict[str, StaticFile]:
    """The page's files, shipped as package data and read once at start."""
    files: dict[str, StaticFile] = {}
    folder = resources.files("gateway").joinpath("static")
    for entry in folder.iterdir():
        suffix = "." + entry.name.rsplit(".", 1)[-1] if "." in entry.name else ""
        if entry.is_file() and suffix in CONTENT_TYPES:
            body = entry.read_bytes()
            etag = '"' + hashlib.sha256(body).hexdigest()[:20] + '"'
            files[entry.name] = StaticFile(body, CONTENT_TYPES[suffix], etag)
    return files


STATIC = web.AppKey("static", dict)


def _serve(request: web.Request, name: str) -> web.Response:
    found: StaticFile | None = request.app[STATIC].get(name)
    if found is None:
        raise ApiError(404, "no such file")
    headers = {"ETag": found.etag, "Cache-Control": "no-cache"}
    if request.headers.get("If-None-Match") == found.etag:
        return web.Response(status=304, headers=headers)
    return web.Response(body=found.body, headers={"Content-Type": found.content_type, **headers})


PLACEHOLDER = re.compile(r"\{\{([a-z_.]+)\}\}")


@functools.cache
def localised_index(template: bytes, language: str) -> StaticFile:
    """``index.html`` in one language: ``{{key}}`` replaced by the catalogue's text (escaped),
    ``{{lang}}`` by the language and ``{{messages}}`` by the script's own messages as JSON."""
    tr = Translator(language, UTC)  # the page's fixed texts hold no times

    def fill(match: re.Match[str]) -> str:
        key = match.group(1)
        if key == "lang":
            return language
        if key == "messages":
            # JSON inside <script type="application/json">: "</" could end the element early.
            return orjson.dumps(tr.page_messages()).decode().replace("</", "<\\/")
        return html.escape(tr.t(key))

    body = PLACEHOLDER.sub(fill, template.decode("utf-8")).encode("utf-8")
    etag = '"' + hashlib.sha256(body).hexdigest()[:20] + '"'
    return StaticFile(body, CONTENT_TYPES[".html"], etag)


async def index(request: web.Request) -> web.Response:
    template: StaticFile | None = request.app[STATIC].get("index.html")
    if template is None:
        raise ApiError(404, "no such file")
    page = localised_index(template.body, page_language(request))
    headers = {"ETag": page.etag, "Cache-Control": "no-cache", "Vary": "Accept-Language"}
    if request.headers.get("If-None-Match") == page.etag:
        return web.Response(status=304, headers=headers)
    return web.Response(body=page.body, headers={"Content-Type": page.content_type, **headers})


async def static(request: web.Request) -> web.Response:
    return _serve(request, request.match_info["name"])


def _session_body(subject_id: str, csrf: str, via: str, pin_enabled: bool) -> dict[str, object]:
    return {
        "signed_in": True,
        "subject": subject_id,
        "csrf": csrf,
        "via": via,
        "pin_enabled": pin_enabled,
    }


async def session_get(request: web.Request) -> web.Response:
    context = context_of(request)
    session = context.sessions.get(request.cookies.get(SESSION_COOKIE))
    if session is None:
        return json_response({"signed_in": False, "pin_enabled": bool(context.pins)})
    return json_response(
        _session_body(session.subject_id, session.csrf, session.via, bool(context.pins))
    )


def _too_many(seconds: float) -> ApiError:
    wait = max(1, round(seconds))
    return ApiError(
        429,
        f"too many wrong tries; try again in {wait} second{'' if wait == 1 else 's'}",
        {"Retry-After": str(wait)},
    )


async def session_create(request: web.Request) -> web.Response:
    """Sign in with ``{"pin": "..."}`` or ``{"token": "...", "subject": "..."}``."""
    context = context_of(request)
    if cross_site(request):
        raise ApiError(403, "cross-site request refused")
    # The try is counted from here, before the body is read, so that tries in flight are
    # counted too; it is given back (released) once judged or abandoned.
    waiting = context.limiter.admit()
    if waiting > 0:
        raise _too_many(waiting)
    try:
        return await _judge_sign_in(request)
    finally:
        context.limiter.release()


async def _judge_sign_in(request: web.Request) -> web.Response:
    context = context_of(request)
    body = await json_object(request)
    pin, token = body.get("pin"), body.get("token")
    subject_id: str | None = None
    via = "pin"
    if isinstance(pin, str) and pin:
        subject_id = match_pin(pin.strip(), context.pins)
    elif isinstance(token, str) and token:
        via = "token"
        if same_secret(token.strip(), context.token):
            wanted = body.get("subject")
            if not isinstance(wanted, str) or not wanted.strip():
                raise ApiError(400, "subject: the person's id is needed with the API token")
            try:
                subject_id = context.rights.subject(wanted.strip()).id
            except SubjectNotFound:
                raise ApiError(404, "no subject with this id is configured on this hub") from None
    else:
        raise ApiError(400, "pin: enter your PIN")
    if subject_id is None:
        lock = context.limiter.failed()
        log.warning("page_sign_in_refused", via=via, locked_s=lock)
        if lock > 0:
            raise _too_many(lock)
        raise ApiError(401, "wrong PIN" if via == "pin" else "wrong API token")
    context.limiter.succeeded()
    session = context.sessions.create(subject_id, via)
    log.info("page_signed_in", via=via, subject=context.rights.subject_ref(subject_id))
    response = json_response(
        _session_body(subject_id, session.csrf, via, bool(context.pins)), status=201
    )
    response.set_cookie(
        SESSION_COOKIE,
        session.id,
        httponly=True,
        samesite="Strict",
        secure=request.secure,
        path="/",
        max_age=int(context.sessions.idle_s),
    )
    return response


async def session_delete(request: web.Request) -> web.Response:
    context = context_of(request)
    session = context.sessions.get(request.cookies.get(SESSION_COOKIE))
    if session is not None:
        if cross_site(request):
            raise ApiError(403, "cross-site request refused")
        if not same_secret(request.headers.get(CSRF_HEADER, ""), session.csrf):
            raise ApiError(403, f"missing or wrong {CSRF_HEADER} header")
        context.sessions.end(session.id)
    response = json_response({"signed_in": False, "pin_enabled": bool(context.pins)})
    response.del_cookie(SESSION_COOKIE, path="/")
    return response
