"""The hub in a fleet, against Mosquitto: its retained status and last will, and a signed remote
config applied without a restart (and a forged, foreign, stale or invalid one refused)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import jwt
import orjson
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway.exporters.mqtt.session import MqttSession, TlsFiles
from tests.configs import ADULT, free_port, write_config
from tests.mqtt_broker import MosquittoBroker
from tests.test_e2e import ADDRESSES, GatewayProcess, simulated_cuff

HUB = "hub-fleet-1"
STEP = 30.0


class Operations:
    """The care provider's side: reads every hub's status, publishes signed configs."""

    def __init__(self, broker: MosquittoBroker) -> None:
        files = broker.client("platform")
        self.status: list[dict[str, Any]] = []
        self._changed = asyncio.Event()
        self.session = MqttSession(
            broker.url,
            client_id="platform-ops",
            tls=TlsFiles(files.ca_file, files.cert_file, files.key_file),
            on_message=self._on_message,
        )

    def _on_message(self, topic: str, payload: bytes, _retained: bool) -> None:
        if topic == f"hubs/{HUB}/status":
            self.status.append(orjson.loads(payload))
            self._changed.set()

    async def start(self) -> Operations:
        await self.session.connect()
        await self.session.subscribe(f"hubs/{HUB}/status")
        return self

    async def until(self, predicate: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        async with asyncio.timeout(STEP):
            while not (self.status and predicate(self.status[-1])):
                self._changed.clear()
                await self._changed.wait()
        return self.status[-1]

    async def publish_config(self, token: str) -> None:
        await self.session.publish(f"hubs/{HUB}/config", token.encode(), retain=True)


def signed(key: Ed25519PrivateKey, version: int, config: dict[str, Any], hub: str = HUB) -> str:
    payload = {"hub_id": hub, "version": version, "config": config}
    return jwt.api_jws.encode(orjson.dumps(payload), key, algorithm="EdDSA")  # not our signer


def subject(analytics: bool) -> dict[str, Any]:
    return {
        "id": ADULT,
        "birth_date": "1970-01-01",
        "consent": {"care": True, "alerting": True, "analytics": analytics},
    }


def fleet_config(tmp_path: Path, broker: MosquittoBroker, public_key: Path, port: int) -> Path:
    hub = broker.client(HUB)
    token = tmp_path / "api-token"
    token.write_text("fleet-test-token-0123456789")
    token.chmod(0o600)
    return write_config(
        tmp_path / "gateway.toml",
        {
            "gateway": {
                "data_dir": str(tmp_path / "data"),
                "hub_id": HUB,
                "log_format": "json",
                "log_level": "info",
                "shutdown_grace_s": 1.0,
                "api": {"listen": f"127.0.0.1:{port}", "token_file": str(token)},
            },
            "fleet": {
                "url": broker.url,
                "ca_file": str(hub.ca_file),
                "client_cert_file": str(hub.cert_file),
                "client_key_file": str(hub.key_file),
                "status_interval_s": 3600,
                "config_public_key_file": str(public_key),
            },
            "subjects": [subject(analytics=False)],
            "devices": [
                simulated_cuff(
                    ADULT,
                    [{"systolic": 121, "diastolic": 80, "pulse_rate": 61}],
                )
            ],
            "destinations": [
                {
                    "name": "care-platform",
                    "kind": "fhir",
                    "purpose": "care",
                    "url": f"http://127.0.0.1:{free_port()}/fhir",  # nobody answers: it queues
                    "retry_initial_s": 30.0,
                }
            ],
        },
    )


async def consents(port: int) -> dict[str, Any]:
    headers = {"Authorization": "Bearer fleet-test-token-0123456789"}
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"http://127.0.0.1:{port}/api/subjects/{ADULT}", headers=headers) as response,
    ):
        assert response.status == 200
        return (await response.json())["consents"]


async def test_status_config_and_last_will_through_a_real_broker(tmp_path: Path) -> None:
    provider = Ed25519PrivateKey.generate()
    public_key = tmp_path / "config-public.pem"
    public_key.write_bytes(
        provider.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    async with MosquittoBroker(tmp_path / "broker") as broker:
        operations = await Operations(broker).start()
        port = free_port()
        gateway = GatewayProcess(fleet_config(tmp_path, broker, public_key, port))
        await gateway.start()
        try:
            # The retained status: queues and devices, nothing about the person.
            status = await operations.until(
                lambda s: s["online"] and s["ready"] and s["destinations"][0]["queued"] >= 1
            )
            assert status["config"]["version"] == 0
            assert status["devices"][0]["profile"] == "blood_pressure"
            text = orjson.dumps(status).decode()
            assert ADULT not in text and ADDRESSES[ADULT] not in text
            assert "121" not in text  # no reading value

            # Forged, foreign and invalid configs are refused and reported; nothing changes.
            refusals = [
                (signed(Ed25519PrivateKey.generate(), 1, {}), "signature"),
                (signed(provider, 1, {}, hub="hub-other"), "another hub"),
                (signed(provider, 1, {"alert_rules": [{"kind": "x"}]}), "not valid"),
            ]
            for token, reason in refusals:
                await operations.publish_config(token)
                status = await operations.until(
                    lambda s, r=reason: r in ((s["config"]["refused"] or {}).get("reason") or "")
                )
                assert status["config"]["version"] == 0
            assert (await consents(port))["analytics"]["granted"] is False

            # A valid config: applied without a restart; its consent change goes through the
            # registry (audited as the care provider's), not ignored.
            rule = {
                "kind": "blood_pressure",
                "value": "systolic",
                "above": 170,
                "unit": "mm[Hg]",
                "severity": "warning",
            }
            await operations.publish_config(
                signed(provider, 2, {"subjects": [subject(analytics=True)], "alert_rules": [rule]})
            )
            status = await operations.until(lambda s: s["config"]["version"] == 2 and s["ready"])
            held = await consents(port)
            assert held["analytics"]["granted"] is True
            assert held["analytics"]["source"] == "fleet-config"
            assert gateway.process is not None and gateway.process.returncode is None

            # A stale version after that is refused, and version 2 keeps running.
            await operations.publish_config(signed(provider, 1, {}))
            status = await operations.until(
                lambda s: "not newer" in ((s["config"]["refused"] or {}).get("reason") or "")
            )
            assert status["config"]["version"] == 2
        finally:
            gateway.kill()  # SIGKILL: the broker publishes the last will
        status = await operations.until(lambda s: s["online"] is False)
        assert status == {"hub_id": HUB, "online": False, "version": status["version"]}

        # After a restart the accepted config still runs (kept and verified again).
        again = GatewayProcess(gateway.config)
        await again.start()
        try:
            status = await operations.until(lambda s: s["online"] and s["ready"])
            assert status["config"]["version"] == 2
            assert await again.stop() == 0
        finally:
            again.kill()
        status = await operations.until(lambda s: s["online"] is False)  # said on a clean stop
        await operations.session.close()
