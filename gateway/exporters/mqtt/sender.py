"""The MQTT sink: one QoS 1 message per queued event, delivered when the broker's PUBACK says so.

The session connects on the first delivery, not at start, so a broker that is down when the hub
starts only delays this destination; its items wait in the outbox like any other's.
"""

from __future__ import annotations

import asyncio

import orjson

from gateway.exporters.base import Outcome
from gateway.exporters.mqtt.config import MqttDestination
from gateway.exporters.mqtt.session import MqttRefused, MqttSession, MqttUnavailable, TlsFiles
from gateway.storage.outbox import QueuedItem


class MqttSink:
    """Publishes each item to the destination's topic with the hub id and event id as properties."""

    def __init__(self, destination: MqttDestination, hub_id: str) -> None:
        self.name = destination.name
        self.max_batch = destination.batch_max_items
        self.max_bytes = None
        self.linger_s = destination.linger_s
        self._destination = destination
        self._hub_id = hub_id
        self._session: MqttSession | None = None

    def topic(self, kind: str) -> str:
        return self._destination.topic.format(hub_id=self._hub_id, kind=kind)

    def _new_session(self) -> MqttSession:
        destination = self._destination
        return MqttSession(
            destination.url,
            client_id=destination.client_id or self._hub_id,
            tls=TlsFiles(
                destination.ca_file, destination.client_cert_file, destination.client_key_file
            ),
            session_expiry_s=destination.session_expiry_s,
            timeout_s=destination.timeout_s,
        )

    async def _connected(self) -> MqttSession:
        if self._session is None:
            self._session = self._new_session()
            await self._session.connect()
        elif not self._session.connected:
            await self._session.wait_connected()  # paho reconnects by itself
        return self._session

    async def deliver(self, items: list[QueuedItem]) -> Outcome:
        try:
            session = await self._connected()
        except MqttRefused as exc:
            # A refused connection (bad certificate, banned client) needs an operator; the items
            # stay queued and the destination shows the broker's reason.
            return Outcome(retry=[item.id for item in items], reason=exc.reason)
        except (MqttUnavailable, OSError) as exc:
            await self._drop_unconnected_session()
            return Outcome(retry=[item.id for item in items], reason=str(exc))
        results = await asyncio.gather(
            *(self._publish(session, item) for item in items), return_exceptions=True
        )
        outcome = Outcome()
        for item, result in zip(items, results, strict=True):
            if result is None:
                outcome.delivered.append(item.id)
            elif isinstance(result, MqttRefused):
                outcome.failed.append((item.id, None, result.reason))
                outcome.reason = result.reason
            elif isinstance(result, MqttUnavailable | OSError):
                outcome.retry.append(item.id)
                outcome.reason = str(result)
            else:
                raise result
        return outcome

    async def _publish(self, session: MqttSession, item: QueuedItem) -> None:
        kind = (
            orjson.loads(item.body).get("kind", "reading")
            if "{kind}" in self._destination.topic
            else ""
        )
        await session.publish(
            self.topic(str(kind)),
            item.body,
            expiry_s=self._destination.message_expiry_s,
            user_properties=[("hub_id", self._hub_id), ("event_id", item.idempotency_key)],
        )

    async def _drop_unconnected_session(self) -> None:
        # A session whose first connect failed is rebuilt next time (its paho loop keeps trying
        # otherwise, and a changed certificate file would never be read again).
        if self._session is not None and not self._session.connected:
            await self._session.close()
            self._session = None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
