"""The MQTT session against a real broker: Mosquitto with TLS, client certificates and ACLs."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.exporters.mqtt.session import MqttRefused, MqttSession, MqttUnavailable, TlsFiles
from tests.mqtt_broker import MosquittoBroker, TestAuthority

STEP = 10.0


@pytest.fixture
async def broker(tmp_path: Path) -> AsyncIterator[MosquittoBroker]:
    async with MosquittoBroker(tmp_path / "broker") as running:
        yield running


class Inbox:
    def __init__(self) -> None:
        self.messages: list[tuple[str, bytes, bool]] = []
        self._changed = asyncio.Event()

    def __call__(self, topic: str, payload: bytes, retained: bool) -> None:
        self.messages.append((topic, payload, retained))
        self._changed.set()

    async def wait_for(self, count: int) -> list[tuple[str, bytes, bool]]:
        async with asyncio.timeout(STEP):
            while len(self.messages) < count:
                self._changed.clear()
                await self._changed.wait()
        return self.messages


def _session(broker: MosquittoBroker, name: str, **kwargs: object) -> MqttSession:
    files = broker.client(name)
    return MqttSession(
        broker.url,
        client_id=name,
        tls=TlsFiles(files.ca_file, files.cert_file, files.key_file),
        **kwargs,  # type: ignore[arg-type]
    )


async def test_a_published_message_is_acknowledged_and_reaches_the_platform(
    broker: MosquittoBroker,
) -> None:
    platform = _session(broker, "platform")
    hub = _session(broker, "hub-1")
    inbox = Inbox()
    await platform.connect()
    await platform.subscribe("hubs/+/readings/#", inbox)
    await hub.connect()
    try:
        await hub.publish("hubs/hub-1/readings/weight", b'{"n": 1}', expiry_s=3600)
        [(topic, payload, _retained)] = await inbox.wait_for(1)
        assert (topic, payload) == ("hubs/hub-1/readings/weight", b'{"n": 1}')
    finally:
        await hub.close()
        await platform.close()


async def test_a_publish_outside_the_hubs_acl_is_refused_with_the_brokers_reason(
    broker: MosquittoBroker,
) -> None:
    hub = _session(broker, "hub-1")
    await hub.connect()
    try:
        with pytest.raises(MqttRefused) as refused:
            await hub.publish("hubs/hub-2/readings/weight", b"{}")
        assert "Not authorized" in refused.value.reason
        assert refused.value.code == 0x87
        await hub.publish("hubs/hub-1/readings/weight", b"{}")  # its own topic still works
    finally:
        await hub.close()


async def test_a_client_without_a_certificate_from_the_ca_cannot_connect(
    broker: MosquittoBroker, tmp_path: Path
) -> None:
    (tmp_path / "stranger").mkdir()
    foreign = TestAuthority(tmp_path / "stranger").issue("hub-1")  # same name, another CA
    hub = MqttSession(
        broker.url,
        client_id="hub-1",
        tls=TlsFiles(broker.authority.ca_file, foreign.cert_file, foreign.key_file),
        timeout_s=2.0,
    )
    with pytest.raises(MqttUnavailable):
        await hub.connect()
    await hub.close()


async def test_messages_for_an_offline_consumer_survive_a_broker_restart(
    broker: MosquittoBroker,
) -> None:
    # The platform's consumer has a persistent session, then goes away.
    consumer = _session(broker, "platform")
    await consumer.connect()
    await consumer.subscribe("hubs/+/readings/#", Inbox())
    await consumer.close()

    hub = _session(broker, "hub-1")
    await hub.connect()
    for n in range(3):
        await hub.publish("hubs/hub-1/readings/weight", f'{{"n": {n}}}'.encode())

    await broker.restart()
    # The hub's session reconnects by itself and publishes again after the restart.
    await hub.wait_connected(STEP)
    await hub.publish("hubs/hub-1/readings/weight", b'{"n": 3}')
    await hub.close()

    inbox = Inbox()
    again = _session(broker, "platform", on_message=inbox)  # stored messages follow the CONNACK
    await again.connect()
    try:
        messages = await inbox.wait_for(4)
        assert sorted(payload for _topic, payload, _r in messages) == [
            f'{{"n": {n}}}'.encode() for n in range(4)
        ]
    finally:
        await again.close()
