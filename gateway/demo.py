"""``health-gateway demo``: the whole gateway on simulated devices, with no hardware or network.

Two simulated blood-pressure cuffs are read through the real BLE stack (bleak on a simulated
BlueZ), and readings flow through consent filtering and the durable outbox to a local stand-in
care platform (FHIR) and a nurse-alert receiver (signed webhooks), both on loopback. The terminal
shows each step as it happens, and the hub page is served on loopback (port 8080, or any free
port when 8080 is taken) with a PIN per person.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import os
import signal
import socket
import sys
import tempfile
import time
from collections import Counter
from importlib import resources
from pathlib import Path
from string import Template
from typing import Any

import orjson
from aiohttp import web

from gateway.activity import Activity, ActivityEntry, IntakeRecord
from gateway.app import Gateway
from gateway.exporters.webhook.signing import parse_secret, sign
from gateway.logging import configure_logging, personal_strings
from gateway.preflight import preflight
from gateway.settings import load_settings


def compact_values(values: dict[str, tuple[float, str]]) -> str:
    """``systolic 128 / diastolic 82 mm[Hg], pulse_rate 71 /min``: values grouped by unit."""
    by_unit: dict[str, list[str]] = {}
    for name, (value, unit) in values.items():
        by_unit.setdefault(unit, []).append(f"{name} {value:g}")
    return ", ".join(" / ".join(parts) + f" {unit}" for unit, parts in by_unit.items())


class LiveView:
    """Prints the activity feed as readable lines."""

    def __init__(self, out: Any = sys.stdout) -> None:
        self.activity = Activity()
        self.activity.subscribe(self.show)
        self.counts: Counter[str] = Counter()
        self._out = out
        self._start = time.monotonic()
        self._colour = out.isatty()

    def paint(self, text: str, code: str) -> str:
        return f"\033[{code}m{text}\033[0m" if self._colour else text

    def line(self, text: str) -> None:
        elapsed = time.monotonic() - self._start
        print(f"{elapsed:6.1f}s  {text}", file=self._out, flush=True)

    def show(self, entry: ActivityEntry) -> None:
        f = entry.fields
        kind = entry.kind
        if kind == "stored":  # a batch: each reading and its destinations' decisions in turn
            for record in f["records"]:
                self._show_reading(record)
        elif kind == "filtered":  # an alert destination's decision
            self._show_decision(
                f["category"],
                f["destination"],
                f["purpose"],
                f.get("legal_basis") if f["passed"] else None,
                f.get("reason", "no consent for this purpose"),
            )
        elif kind == "alert.raised" and not f["phrase"]["id"].startswith("limit"):
            from gateway.api.noticed import text  # window rules: their own plain words

            self.counts[kind] += 1
            words = text(f["phrase"]["id"], f["phrase"]["params"])
            self.line(self.paint("ALERT   ", "1;31") + f" {words} ({f['severity']})")
        elif kind == "alert.raised":
            self.counts[kind] += 1
            self.line(
                self.paint("ALERT   ", "1;31")
                + f" {f['value']} {f['measured']:g} {f['unit']} is {f['direction']} "
                f"{f['limit']:g} ({f['severity']})"
            )
        elif kind == "alert.resolved":
            self.counts[kind] += 1
            self.line(self.paint("resolved", "1;32") + f" {f['value']} back within limits")
        elif kind == "delivered":  # a batch: a line per item, as the person follows each one
            self.counts[f"delivered:{f['destination']}"] += f["items"]
            for _ in range(f["items"]):
                self.line(f"  sent     {f['category']} -> {f['destination']} ({f['legal_basis']})")
        elif kind in ("retry", "dead_letter"):
            self.line(self.paint(f"  {kind}  {f['destination']}: {f['reason']}", "33"))
        elif kind == "dropped":
            self.line(self.paint(f"dropped  {f['device']}: {f['reason']}", "33"))

    def _show_reading(self, record: IntakeRecord) -> None:
        reading = record.reading
        self.counts["reading"] += 1
        values = {name: (q.value, q.unit) for name, q in reading.measurement.values.items()}
        self.line(
            f"{self.paint('reading ', '1;36')} {reading.device_ref}: {reading.measurement.kind} "
            + compact_values(values)
        )
        for item in record.items:
            if item.category == "reading":
                self._show_decision("reading", item.destination, item.purpose, item.legal_basis, "")
        for refusal in record.blocked:
            if refusal.category == "reading":
                self._show_decision(
                    "reading", refusal.destination, refusal.purpose, None, refusal.reason
                )

    def _show_decision(
        self, category: str, destination: str, purpose: str, basis: str | None, reason: str
    ) -> None:
        """One filter line: queued under its legal basis, or blocked with the reason."""
        self.counts[f"{'passed' if basis else 'blocked'}:{destination}"] += 1
        if basis:
            verdict = self.paint(f"queued ({basis})", "32")
        else:
            verdict = self.paint("blocked: " + reason, "33")
        self.line(f"  filter   {category} -> {destination} ({purpose}): {verdict}")


def care_platform(view: LiveView) -> web.Application:
    """A stand-in FHIR server: accepts transaction Bundles and answers a transaction-response."""

    async def transaction(request: web.Request) -> web.Response:
        bundle = orjson.loads(await request.read())
        types = Counter(entry["resource"]["resourceType"] for entry in bundle["entry"])
        summary = ", ".join(f"{count} {name}" for name, count in sorted(types.items()))
        view.line(view.paint("  care platform received a FHIR transaction: ", "35") + summary)
        response = {
            "resourceType": "Bundle",
            "type": "transaction-response",
            "entry": [{"response": {"status": "201 Created"}} for _ in bundle["entry"]],
        }
        return web.Response(body=orjson.dumps(response), content_type="application/fhir+json")

    app = web.Application()
    app.router.add_post("/fhir", transaction)
    return app


def alert_receiver(view: LiveView, key: bytes) -> web.Application:
    """A stand-in nurse-alert endpoint that checks the Standard Webhooks signature."""

    async def receive(request: web.Request) -> web.Response:
        body = await request.read()
        message_id = request.headers.get("webhook-id", "")
        timestamp = int(request.headers.get("webhook-timestamp", "0"))
        expected = sign(key, message_id, timestamp, body)
        if not hmac.compare_digest(expected, request.headers.get("webhook-signature", "")):
            view.line(view.paint("  alert receiver: signature INVALID, rejected", "31"))
            return web.Response(status=401)
        event = orjson.loads(body)
        data = event["data"]
        view.line(
            view.paint("  nurse alert receiver: signature valid, ", "35")
            + f"{event['type']} {data['value']['name']} {data['value']['value']:g} "
            f"{data['value']['unit']} ({data['severity']})"
        )
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hooks/alerts", receive)
    return app


async def _serve(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    return runner, f"http://{host}:{port}"


DEMO_PINS = {"197001011234": ("Anna", "1111"), "195505055555": ("Bertil", "2222")}


def _free(port: int) -> int:
    """``port`` if it can be bound on loopback now, else 0 (any free port)."""
    if port == 0:
        return 0
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return 0
    return port


def _write_pins(path: Path) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        for subject, (_name, pin) in DEMO_PINS.items():
            handle.write(f"{subject} {pin}\n")


def _write_secret(path: Path) -> str:
    secret = "whsec_" + base64.b64encode(os.urandom(32)).decode()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(secret)
    return secret


async def run_demo(*, duration_s: float, data_dir: Path | None, port: int = 8080) -> int:
    with tempfile.TemporaryDirectory(prefix="hgw-demo-") as temporary:
        base = data_dir or Path(temporary)
        base.mkdir(parents=True, exist_ok=True, mode=0o700)
        view = LiveView()
        secret = _write_secret(base / "alerts.secret")
        _write_pins(base / "pins")
        care_runner, care_base = await _serve(care_platform(view))
        alert_runner, alert_base = await _serve(alert_receiver(view, parse_secret(secret)))
        try:
            template = resources.files("gateway").joinpath("demo.toml").read_text()
            config_path = base / "demo.toml"
            config_path.write_text(
                Template(template).substitute(
                    data_dir=base / "data",
                    care_url=f"{care_base}/fhir",
                    alerts_url=f"{alert_base}/hooks/alerts",
                    alerts_secret_file=base / "alerts.secret",
                    api_listen=f"127.0.0.1:{_free(port)}",
                    pin_file=base / "pins",
                )
            )
            settings = load_settings(config_path)
            preflight(settings)
            configure_logging(format="console", level="warning", secrets=personal_strings(settings))
            print(
                "health-gateway demo: 2 simulated blood-pressure cuffs -> consent filter -> "
                "durable outbox -> local care platform (FHIR) and nurse alerts (signed webhook)\n"
                f"config: {config_path}\n"
                f"Runs for {duration_s:g} s; Ctrl-C stops it sooner.\n",
                flush=True,
            )
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(signum, stop.set)
            loop.call_later(duration_s, stop.set)
            gateway = Gateway(settings, activity=view.activity)
            announcer = asyncio.create_task(_announce_page(gateway, duration_s))
            try:
                await gateway.run(stop)
            finally:
                announcer.cancel()
                await asyncio.gather(announcer, return_exceptions=True)
        finally:
            await alert_runner.cleanup()
            await care_runner.cleanup()
        _summary(view)
    return 0


async def _announce_page(gateway: Gateway, duration_s: float) -> None:
    await gateway.ready.wait()
    if gateway.api is None or gateway.api.url is None:
        return
    pins = ", ".join(f"{pin} for {name}" for name, pin in DEMO_PINS.values())
    hint = " (add --duration 600 to keep it up longer)" if duration_s < 120 else ""
    print(f"Hub page: {gateway.api.url}/  PIN {pins}{hint}\n", flush=True)


def _summary(view: LiveView) -> None:
    counts = view.counts
    print(
        f"\nSummary: {counts['reading']} readings taken, "
        f"{counts['delivered:care-platform']} delivered to the care platform, "
        f"{counts['blocked:care-platform']} withheld from it for lack of consent, "
        f"{counts['alert.raised']} alerts raised, "
        f"{counts['delivered:nurse-alerts']} alert messages delivered."
    )
