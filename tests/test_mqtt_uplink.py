"""The fleet uplink (`kind = "mqtt"`) end to end: `health-gateway run` as a subprocess, a simulated
cuff on the real BLE stack, and Mosquitto with TLS client certificates and the per-hub ACL."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import orjson
import pytest

from gateway.exporters.mqtt.session import MqttSession, TlsFiles
from tests.configs import ADULT, write_config
from tests.mqtt_broker import MosquittoBroker
from tests.test_e2e import GatewayProcess, simulated_cuff

HUB = "hub-e2e-1"
STEP = 30.0


class Platform:
    """The care provider's consumer: a persistent session reading every hub's readings."""

    def __init__(self, broker: MosquittoBroker) -> None:
        files = broker.client("platform")
        self.messages: list[tuple[str, dict[str, Any]]] = []
        self._changed = asyncio.Event()
        self.session = MqttSession(
            broker.url,
            client_id="platform",
            tls=TlsFiles(files.ca_file, files.cert_file, files.key_file),
            on_message=self._on_message,
        )

    def _on_message(self, topic: str, payload: bytes, _retained: bool) -> None:
        self.messages.append((topic, orjson.loads(payload)))
        self._changed.set()

    async def start(self) -> Platform:
        await self.session.connect()
        await self.session.subscribe("hubs/+/readings/#")
        return self

    async def wait_for(self, count: int) -> list[tuple[str, dict[str, Any]]]:
        async with asyncio.timeout(STEP):
            while len({event["event_id"] for _t, event in self.messages}) < count:
                self._changed.clear()
                await self._changed.wait()
        return self.messages


def uplink_config(tmp_path: Path, broker: MosquittoBroker, topic: str, readings: int) -> Path:
    hub = broker.client(HUB)
    return write_config(
        tmp_path / "gateway.toml",
        {
            "gateway": {
                "data_dir": str(tmp_path / "data"),
                "hub_id": HUB,
                "log_format": "json",
                "log_level": "debug",
                "shutdown_grace_s": 3.0,
                "api": {"enabled": False},
            },
            "subjects": [
                {
                    "id": ADULT,
                    "birth_date": "1970-01-01",
                    "consent": {"care": True, "analytics": True},
                }
            ],
            "devices": [
                simulated_cuff(
                    ADULT,
                    [
                        {
                            "systolic": 120 + i,
                            "diastolic": 80,
                            "pulse_rate": 60,
                            "measured_at": f"2026-11-20T08:0{i}:00",
                        }
                        for i in range(readings)
                    ],
                )
            ],
            "destinations": [
                {
                    "name": "fleet-uplink",
                    "kind": "mqtt",
                    "purpose": "analytics",
                    "url": broker.url,
                    "topic": topic,
                    "ca_file": str(hub.ca_file),
                    "client_cert_file": str(hub.cert_file),
                    "client_key_file": str(hub.key_file),
                    "fields": ["kind", "values", "measured_day", "subject"],
                    "pseudonym_key_file": str(tmp_path / "data" / "keys" / "fleet-uplink.key"),
                    "retry_initial_s": 0.05,
                    "retry_max_s": 0.3,
                    "timeout_s": 3.0,
                }
            ],
        },
    )


def stored(events: list[dict[str, Any]]) -> int:
    return sum(e.get("count", 0) for e in events if e.get("event") == "readings_stored")


async def test_readings_reach_the_platform_across_a_broker_outage_and_a_hub_kill_9(
    tmp_path: Path,
) -> None:
    async with MosquittoBroker(tmp_path / "broker") as broker:
        await broker.stop()  # the broker is down while the hub takes the readings

        config = uplink_config(tmp_path, broker, "hubs/{hub_id}/readings/{kind}", readings=5)
        first = GatewayProcess(config)
        await first.start()
        try:
            await first.wait_until(lambda events: stored(events) >= 5)
            await first.wait_for_event(lambda e: e.get("event") == "delivery_retry")
        finally:
            first.kill()  # SIGKILL: nothing of the shutdown path runs
        await first.process.wait()

        await broker.start()
        platform = await Platform(broker).start()  # back online: the stored session delivers
        second = GatewayProcess(config)
        await second.start()
        try:
            messages = await platform.wait_for(5)
            assert await second.stop() == 0
        finally:
            second.kill()
            await platform.session.close()

    events = {event["event_id"]: (topic, event) for topic, event in messages}
    assert len(events) == 5
    assert {topic for topic, _event in events.values()} == {f"hubs/{HUB}/readings/blood_pressure"}
    systolic = sorted(event["values"]["systolic"]["value"] for _t, event in events.values())
    assert systolic == [120, 121, 122, 123, 124]
    for _topic, event in events.values():
        assert set(event) == {"event_id", "kind", "values", "measured_day", "subject"}
        assert event["subject"].startswith("k1.") and ADULT not in orjson.dumps(event).decode()


async def test_a_publish_the_brokers_acl_refuses_is_a_dead_letter_with_its_reason(
    tmp_path: Path,
) -> None:
    async with MosquittoBroker(tmp_path / "broker") as broker:
        # A topic under another hub's name: the per-hub ACL refuses it (MQTT 5 PUBACK 0x87).
        config = uplink_config(tmp_path, broker, "hubs/another-hub/readings/{kind}", readings=1)
        gateway = GatewayProcess(config)
        await gateway.start()
        try:
            failed = await gateway.wait_for_event(
                lambda e: e.get("event") == "delivery_dead_letter"
            )
            assert await gateway.stop() == 0
        finally:
            gateway.kill()
    assert failed["destination"] == "fleet-uplink"
    assert "Not authorized" in orjson.dumps(failed).decode()


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("mqtt://broker.example.eu:1883", "plain mqtt is only allowed to loopback"),
        ("https://broker.example.eu", "not an MQTT URL"),
        ("mqtts://user:secret@broker.example.eu", "authenticates by certificate"),
    ],
)
def test_an_unsafe_broker_url_is_refused_naming_the_key(
    tmp_path: Path, url: str, reason: str
) -> None:
    from gateway.settings import ConfigError, load_settings

    config = write_config(
        tmp_path / "gateway.toml",
        {
            "gateway": {"data_dir": str(tmp_path / "data")},
            "destinations": [
                {
                    "name": "fleet-uplink",
                    "kind": "mqtt",
                    "purpose": "analytics",
                    "url": url,
                    "fields": ["kind", "values"],
                    "pseudonym_key_file": str(tmp_path / "k"),
                }
            ],
        },
    )
    with pytest.raises(ConfigError) as error:
        load_settings(config)
    assert "destinations[0].url" in str(error.value) or "url" in str(error.value)
    assert reason in str(error.value)
    assert "secret" not in str(error.value)
