"""The stand-in care platform, alert endpoint and analytics collector, in its own process.

``python -m bench.receiver`` serves on 127.0.0.1 (port chosen by the kernel), prints
``ready <port>`` and then one line per request it accepted:

* ``fhir <monotonic_ns> <readings> <entries> <bytes>``: a FHIR transaction Bundle; ``readings``
  counts blood-pressure panel Observations (one per reading).
* ``hook <monotonic_ns> <measured_at> <type>``: a Standard Webhooks alert whose signature
  verified; ``monotonic_ns`` is taken when the whole request has been read, before verifying.
* ``analytics <monotonic_ns> <events> <bytes>``: a JSON batch of analytics events.

It runs in a process of its own so that the gateway's CPU time is measured without it (both
run on the same machine and compete for its cores). ``CLOCK_MONOTONIC`` is one clock for every
process on Linux, so its timestamps compare with the gateway's. It exits when its standard
input closes (the benchmark ended or died) or after ``--max-seconds``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import hmac
import sys
import time

import orjson
from aiohttp import web

BP_PANEL_CODE = "150020"


def _panels(bundle: dict) -> int:
    count = 0
    for entry in bundle.get("entry", ()):
        resource = entry.get("resource", {})
        if resource.get("resourceType") == "Observation" and "component" in resource:
            if resource["code"]["coding"][0]["code"] == BP_PANEL_CODE:
                count += 1
    return count


class Receiver:
    def __init__(self, secret: str | None) -> None:
        self._key = base64.b64decode(secret.removeprefix("whsec_")) if secret is not None else None
        self._out = sys.stdout

    def _emit(self, line: str) -> None:
        self._out.write(line + "\n")
        self._out.flush()

    async def fhir(self, request: web.Request) -> web.Response:
        body = await request.read()
        now = time.monotonic_ns()
        bundle = orjson.loads(body)
        entries = bundle.get("entry", [])
        self._emit(f"fhir {now} {_panels(bundle)} {len(entries)} {len(body)}")
        answer = {
            "resourceType": "Bundle",
            "type": "transaction-response",
            "entry": [{"response": {"status": "201 Created"}} for _ in entries],
        }
        return web.Response(body=orjson.dumps(answer), content_type="application/fhir+json")

    async def hook(self, request: web.Request) -> web.Response:
        body = await request.read()
        now = time.monotonic_ns()
        if not self._verify(request, body):
            return web.Response(status=401, text="bad signature")
        document = orjson.loads(body)
        measured_at = document["data"].get("measured_at") or "-"
        self._emit(f"hook {now} {measured_at} {document['type']}")
        return web.Response(status=204)

    async def analytics(self, request: web.Request) -> web.Response:
        body = await request.read()
        now = time.monotonic_ns()
        document = orjson.loads(body)
        events = document.get("events", document) if isinstance(document, dict) else document
        self._emit(f"analytics {now} {len(events)} {len(body)}")
        return web.Response(status=202)

    def _verify(self, request: web.Request, body: bytes) -> bool:
        if self._key is None:
            return True
        message_id = request.headers.get("webhook-id", "")
        timestamp = request.headers.get("webhook-timestamp", "")
        signed = f"{message_id}.{timestamp}.".encode() + body
        expected = base64.b64encode(hmac.digest(self._key, signed, hashlib.sha256)).decode()
        offered = request.headers.get("webhook-signature", "").split()
        return any(
            hmac.compare_digest(sig.removeprefix("v1,"), expected)
            for sig in offered
            if sig.startswith("v1,")
        )


async def serve(secret: str | None, max_seconds: float) -> None:
    receiver = Receiver(secret)
    app = web.Application(client_max_size=256 * 1024 * 1024)
    app.router.add_post("/fhir", receiver.fhir)
    app.router.add_post("/hooks/alerts", receiver.hook)
    app.router.add_post("/analytics", receiver.analytics)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    print(f"ready {port}", flush=True)
    stdin = asyncio.StreamReader()
    await asyncio.get_running_loop().connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin
    )
    try:
        await asyncio.wait_for(stdin.read(), max_seconds)  # returns at end of file
    except TimeoutError:
        pass
    finally:
        await runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--secret-file", help="verify webhook signatures with this whsec_ secret")
    parser.add_argument("--max-seconds", type=float, default=3600.0)
    args = parser.parse_args()
    secret = None
    if args.secret_file:
        with open(args.secret_file, encoding="utf-8") as handle:
            secret = handle.read().strip()
    asyncio.run(serve(secret, args.max_seconds))


if __name__ == "__main__":
    main()
