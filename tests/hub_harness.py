"""A real gateway in the test's event loop, with its API on a free loopback port.

Used by the API, CLI, metrics and browser tests: the real ``Gateway`` (real SQLite, real
rights, real aiohttp server, simulated devices through the real BLE stack when configured),
real loopback receivers for its destinations, and a PIN file for the page.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from gateway.activity import Activity, ActivityEntry
from gateway.app import Gateway
from gateway.settings import Settings, parse_settings
from tests.configs import ADULT, REFUSER, base_config, webhook_secret
from tests.receivers import Answer, Receiver

PINS = {ADULT: "4711", REFUSER: "8080"}
CUFF_ADDRESS = "C4:7C:8D:6A:00:01"


def cuff(readings: list[dict[str, Any]], interval_s: float = 0.05, subject: str = ADULT) -> dict:
    return {
        "address": CUFF_ADDRESS,
        "profile": "blood_pressure",
        "subject": subject,
        "name": "Blood pressure monitor",
        "simulated": True,
        "simulation": {"interval_s": interval_s, "readings": readings},
    }


def hub_config(tmp_path: Path, care_url: str, alerts_url: str) -> dict[str, Any]:
    secret = tmp_path / "alerts.secret"
    secret.write_text(webhook_secret())
    pins = tmp_path / "pins"
    pins.write_text("".join(f"{subject} {pin}\n" for subject, pin in PINS.items()))
    pins.chmod(0o600)
    config = base_config(tmp_path / "data", secret, care_url, alerts_url)
    config["gateway"]["api"] = {"listen": "127.0.0.1:0", "pin_file": str(pins)}
    # English unless a test asks for Swedish (a new config's default) or a browser prefers it.
    config["gateway"]["locale"] = "en"
    config["gateway"]["time_zone"] = "Europe/Stockholm"
    config["subjects"][0]["consent"]["analytics"] = True
    config["subjects"].append(
        {"id": REFUSER, "birth_date": "1980-02-02", "consent": {"care": False, "alerting": True}}
    )
    return config


class Waiter:
    """Wakes tests when the gateway's activity feed shows what they wait for (no polling)."""

    def __init__(self, activity: Activity) -> None:
        self.entries: list[ActivityEntry] = []
        self._changed = asyncio.Event()
        activity.subscribe(self._seen)

    def _seen(self, entry: ActivityEntry) -> None:
        self.entries.append(entry)
        self._changed.set()

    def count(self, kind: str, **fields: Any) -> int:
        """Items in the entries of ``kind`` (a batch entry counts its ``items``)."""
        return sum(
            int(e.fields.get("items", 1))
            for e in self.entries
            if e.kind == kind and all(e.fields.get(k) == v for k, v in fields.items())
        )

    def queued(self, destination: str) -> int:
        """Readings a destination's chain let through, from the intake batches."""
        return sum(
            e.fields["passed"].get(destination, 0) for e in self.entries if e.kind == "stored"
        )

    async def until_queued(self, destination: str, items: int, timeout: float = 20.0) -> None:
        async def wait() -> None:
            while self.queued(destination) < items:
                self._changed.clear()
                await self._changed.wait()

        await asyncio.wait_for(wait(), timeout)

    async def until(self, kind: str, count: int = 1, timeout: float = 20.0, **fields: Any) -> None:
        async def wait() -> None:
            while self.count(kind, **fields) < count:
                self._changed.clear()
                await self._changed.wait()

        await asyncio.wait_for(wait(), timeout)

    async def until_items(
        self, kind: str, items: int, timeout: float = 20.0, **fields: Any
    ) -> None:
        """Until entries of ``kind`` account for ``items`` items (a batch is one entry)."""

        def counted() -> int:
            return sum(
                int(e.fields.get("items", 1))
                for e in self.entries
                if e.kind == kind and all(e.fields.get(k) == v for k, v in fields.items())
            )

        async def wait() -> None:
            while counted() < items:
                self._changed.clear()
                await self._changed.wait()

        await asyncio.wait_for(wait(), timeout)


@dataclass
class Hub:
    gateway: Gateway
    settings: Settings
    url: str
    token: str
    waiter: Waiter
    care: Receiver
    alerts: Receiver

    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@contextlib.asynccontextmanager
async def running_hub(
    tmp_path: Path,
    *,
    devices: list[dict[str, Any]] | None = None,
    care_answer: Answer | None = None,
    care_platform: Receiver | None = None,
    tweak: Any = None,
) -> AsyncIterator[Hub]:
    # ``care_platform``: a receiver not yet started, e.g. one in front of the real FHIR server.
    care = await (care_platform or Receiver(care_answer or Answer(200))).start()
    alerts = await Receiver(Answer(204, body=b"")).start()
    config = hub_config(tmp_path, care.url + "/fhir", alerts.url + "/hooks/alerts")
    config["devices"] = devices or []
    if tweak is not None:
        tweak(config)
    settings = parse_settings(config)
    activity = Activity()
    waiter = Waiter(activity)
    gateway = Gateway(settings, activity=activity)
    stop = asyncio.Event()
    task = asyncio.create_task(gateway.run(stop))
    try:
        ready = asyncio.create_task(gateway.ready.wait())
        done, _ = await asyncio.wait({ready, task}, timeout=30, return_when="FIRST_COMPLETED")
        if task in done:
            ready.cancel()
            task.result()  # raises what stopped the gateway
        assert ready in done, "the gateway did not get ready within 30 s"
        assert gateway.api is not None and gateway.api.url is not None
        token = (settings.gateway.data_dir / "api-token").read_text().strip()
        yield Hub(gateway, settings, gateway.api.url, token, waiter, care, alerts)
    finally:
        stop.set()
        try:
            await asyncio.wait_for(task, 30)
        finally:
            await care.stop()
            await alerts.stop()


async def sign_in(session: aiohttp.ClientSession, hub: Hub, pin: str) -> str:
    """Sign in like the page does; returns the CSRF token (the cookie stays in the jar)."""
    async with session.post(hub.url + "/session", json={"pin": pin}) as response:
        assert response.status == 201, await response.text()
        body = await response.json()
    return str(body["csrf"])
