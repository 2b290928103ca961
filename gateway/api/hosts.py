"""The Host header must name this hub: the defence against DNS rebinding.

A page on another site can make a browser on the home network resolve its own name to the
hub's address and then read the hub's answers as "same origin". Such a request still carries
the attacker's name in ``Host``, so the hub answers only to IP addresses (which a rebinding
page cannot use as its origin), ``localhost``, this machine's host name (and ``.local``), the
listen address if it is a name, and the names in ``gateway.api.host_names``.
"""

from __future__ import annotations

import ipaddress
import socket

from aiohttp import web

from gateway.api.connections import REFUSALS
from gateway.api.middleware import Handler
from gateway.api.responses import error_response
from gateway.settings import ApiSettings, split_listen

HOST_NAMES = web.AppKey("host_names", frozenset)


def host_names(api: ApiSettings) -> frozenset[str]:
    """Every name (lower case, no trailing dot) the hub answers to, besides IP addresses."""
    machine = socket.gethostname().lower().rstrip(".")
    names = {"localhost", machine, machine.split(".", 1)[0] + ".local", *api.host_names}
    listen_host, _port = split_listen(api.listen)
    if listen_host and not _is_ip(listen_host):
        names.add(listen_host.lower())
    return frozenset(name for name in names if name and name != ".local")


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return False
    return True


def host_allowed(header: str | None, names: frozenset[str]) -> bool:
    """True when ``header`` (a Host value, with or without port) names this hub."""
    if not header:
        return False
    header = header.strip()
    if header.startswith("["):  # [v6]:port
        literal, bracket, _rest = header[1:].partition("]")
        return bool(bracket) and _is_ip(literal)
    name = header.rsplit(":", 1)[0] if header.count(":") == 1 else header
    if _is_ip(name):
        return True
    return name.lower().rstrip(".") in names


@web.middleware
async def known_host(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not host_allowed(request.headers.get("Host"), request.app[HOST_NAMES]):
        request.app[REFUSALS].count("foreign_host_header")  # counted, logged at most once a minute
        return error_response(
            421,
            "this hub does not answer to that host name; use its IP address or a name listed"
            " in gateway.api.host_names",
        )
    return await handler(request)
