"""JSON in and out (orjson), and errors as ``{"error": "..."}`` with the right status."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from aiohttp import web

JSON = "application/json"
# Seconds a client has to send a request body (gateway.api.body_timeout_s).
BODY_TIMEOUT = web.AppKey("body_timeout_s", float)


class ApiError(Exception):
    """An error the client can act on; becomes ``{"error": message}`` with ``status``."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


def json_response(
    data: Any, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type=JSON, headers=headers)


def error_response(
    status: int, message: str, headers: dict[str, str] | None = None
) -> web.Response:
    return json_response({"error": message}, status=status, headers=headers)


async def json_object(request: web.Request) -> dict[str, Any]:
    """The request body as a JSON object, or a 400 that says what is wrong.

    A body that does not arrive within the body time-out is a 408: a slow sender must not
    hold a connection (or a sign-in try) for longer.
    """
    timeout_s = request.app.get(BODY_TIMEOUT, 10.0)
    try:
        async with asyncio.timeout(timeout_s):
            raw = await request.read()
    except TimeoutError:
        raise ApiError(408, f"the request body did not arrive within {timeout_s:g} s") from None
    if not raw:
        raise ApiError(400, "the request needs a JSON object as its body")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise ApiError(400, "the body is not valid JSON") from None
    if not isinstance(body, dict):
        raise ApiError(400, "the body must be a JSON object")
    return body
