"""Real aiohttp servers on loopback that stand in for the care platform and alert endpoint.

Each records what it received and answers according to a script of responses, so tests can
make a destination fail, throttle or refuse and then recover. With an ``upstream`` (the real FHIR
server) a receiver is a fault-injecting proxy: an ``Answer(forward=True)`` passes the request on
and returns the real answer, or, with ``hang=True`` too, lets the server apply it and then never
answers the gateway (the case of a crash or timeout after the POST and before its response).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson
from aiohttp import web

_FORWARDED_HEADERS = {"content-type", "accept", "authorization", "if-none-exist"}


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    query: str = ""

    def json(self) -> Any:
        return orjson.loads(self.body)


@dataclass
class Answer:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b"{}"
    hang: bool = False  # never answer (the client times out)
    forward: bool = False  # pass the request to the upstream server and answer with its answer


class Receiver:
    """Answers each request with the next scripted ``Answer`` (then ``default``) and records it."""

    def __init__(
        self,
        default: Answer | None = None,
        responder: Callable[[Received], Answer | None] | None = None,
        upstream: str | None = None,
    ) -> None:
        self.script: deque[Answer] = deque()
        self.upstream = upstream  # base URL the request path is appended to
        self.default = default or Answer(forward=upstream is not None)
        self.responder = responder  # decides from the request itself, before script/default
        self.requests: list[Received] = []  # every request, including refused ones
        self.accepted: list[Received] = []  # requests answered with 2xx
        self.forwarded: list[tuple[Received, int]] = []  # (request, the upstream's status)
        self.url = ""
        self._runner: web.AppRunner | None = None
        self._changed = asyncio.Condition()

    async def start(self, port: int = 0) -> Receiver:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        record = Received(request.path, dict(request.headers), body, request.query_string)
        answer = self.responder(record) if self.responder else None
        if answer is None:
            answer = self.script.popleft() if self.script else self.default
        if answer.forward:
            answer = await self._forward(request, record, answer.hang)
        async with self._changed:
            self.requests.append(record)
            if 200 <= answer.status < 300 and not answer.hang:
                self.accepted.append(record)
            self._changed.notify_all()
        if answer.hang:
            await asyncio.Event().wait()
        return web.Response(status=answer.status, headers=answer.headers, body=answer.body)

    async def _forward(self, request: web.Request, record: Received, hang: bool) -> Answer:
        if self.upstream is None:
            raise AssertionError("Answer(forward=True) needs a Receiver with an upstream")
        headers = {k: v for k, v in request.headers.items() if k.lower() in _FORWARDED_HEADERS}
        async with (
            aiohttp.ClientSession() as session,
            session.request(
                request.method, self.upstream + request.path_qs, data=record.body, headers=headers
            ) as response,
        ):
            body = await response.read()
            status = response.status
            content_type = response.headers.get("Content-Type", "application/json")
        async with self._changed:
            self.forwarded.append((record, status))
            self._changed.notify_all()
        return Answer(status, {"Content-Type": content_type}, body, hang=hang)

    async def wait_for(self, predicate: Any, timeout: float = 20.0) -> None:
        """Wait until ``predicate(self)`` holds, woken by each request (no polling)."""

        async def until() -> None:
            async with self._changed:
                await self._changed.wait_for(lambda: predicate(self))

        await asyncio.wait_for(until(), timeout)


def fhir_transaction_response(request_body: bytes) -> bytes:
    bundle = orjson.loads(request_body)
    return orjson.dumps(
        {
            "resourceType": "Bundle",
            "type": "transaction-response",
            "entry": [{"response": {"status": "201 Created"}} for _ in bundle.get("entry", [])],
        }
    )
