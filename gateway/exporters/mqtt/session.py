"""One MQTT 5 connection to a broker, for the fleet uplink and the hub's status and config.

Why paho-mqtt, used directly: it is the Eclipse reference client, kept up to date, and it speaks
MQTT 5 fully. The asyncio wrappers around it (aiomqtt) throw away the PUBACK's reason code, so a
publish the broker refuses ("Not authorized" from an ACL) would look delivered and its reading
would be lost; here a refusal is an error with the broker's reason. gmqtt keeps reason codes but is
barely maintained. paho's network loop runs on its own thread (``loop_start``), the one thread this
module adds; every callback hands its result to the event loop with ``call_soon_threadsafe``.

What "delivered" means: QoS 1 and the broker's PUBACK with a success code. paho keeps unacknowledged
messages in memory only, so a hub restart relies on our durable outbox to send them again; the
persistent session (``clean_start`` false, a session expiry) keeps what the broker holds for us
across a reconnect.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import paho.mqtt.client as paho
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode


class MqttError(Exception):
    """An MQTT operation failed; the message says why in words an operator can act on."""


class MqttUnavailable(MqttError):
    """The broker could not be reached or did not answer in time: retry later."""


class MqttRefused(MqttError):
    """The broker answered and refused (its MQTT 5 reason code): retrying will not help."""

    def __init__(self, reason: str, code: int) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code


@dataclass(frozen=True)
class TlsFiles:
    ca_file: Path | None = None
    client_cert_file: Path | None = None
    client_key_file: Path | None = None


@dataclass(frozen=True)
class Will:
    """The message the broker publishes for us if we vanish (the hub's "offline" status)."""

    topic: str
    payload: bytes
    retain: bool = True


def broker_address(url: str) -> tuple[str, int, bool]:
    """(host, port, tls) from ``mqtts://host:port`` or ``mqtt://host:port``."""
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts"):
        raise MqttError(f"unsupported MQTT URL scheme {parts.scheme!r}: use mqtts:// or mqtt://")
    if not parts.hostname:
        raise MqttError("the MQTT URL has no host")
    tls = parts.scheme == "mqtts"
    return parts.hostname, parts.port or (8883 if tls else 1883), tls


Message = tuple[str, bytes, bool]  # topic, payload, retained
OnMessage = Callable[[str, bytes, bool], None]


class MqttSession:
    """A persistent MQTT 5 session: connect once, publish with PUBACK, subscribe.

    ``publish`` returns when the broker acknowledged the message, raises ``MqttRefused`` with the
    broker's reason when it refused it, and ``MqttUnavailable`` when no answer came in
    ``timeout_s`` (the caller keeps the item and tries again).
    """

    def __init__(
        self,
        url: str,
        client_id: str,
        *,
        tls: TlsFiles | None = None,
        session_expiry_s: int = 7 * 24 * 3600,
        keepalive_s: int = 30,
        will: Will | None = None,
        timeout_s: float = 10.0,
        on_message: OnMessage | None = None,
    ) -> None:
        self.host, self.port, self._tls = broker_address(url)
        self.client_id = client_id
        self._timeout_s = timeout_s
        self._session_expiry_s = session_expiry_s
        self._keepalive_s = keepalive_s
        self._loop: asyncio.AbstractEventLoop | None = None
        self._connected = asyncio.Event()
        self._connect_error: MqttError | None = None
        self._acks: dict[int, asyncio.Future[None]] = {}
        self._early: dict[int, ReasonCode] = {}  # PUBACKs that came before the future existed
        self._lock = threading.Lock()
        # Set before connecting so that messages a persistent session kept arrive with the CONNACK.
        self._on_message = on_message
        self._subacks: dict[int, asyncio.Future[None]] = {}
        self._client = paho.Client(
            paho.CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=paho.MQTTv5,
        )
        if self._tls:
            files = tls or TlsFiles()
            context = ssl.create_default_context(
                cafile=str(files.ca_file) if files.ca_file else None
            )
            if files.client_cert_file is not None:
                context.load_cert_chain(
                    str(files.client_cert_file),
                    str(files.client_key_file) if files.client_key_file else None,
                )
            self._client.tls_set_context(context)
        if will is not None:
            self._client.will_set(will.topic, will.payload, qos=1, retain=will.retain)
        self._client.reconnect_delay_set(min_delay=1, max_delay=60)
        self._client.on_connect = self._handle_connect
        self._client.on_disconnect = self._handle_disconnect
        self._client.on_publish = self._handle_publish
        self._client.on_message = self._handle_message
        self._client.on_subscribe = self._handle_subscribe

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    async def connect(self) -> None:
        """Connect (and keep reconnecting in the background); wait for the first CONNACK."""
        self._loop = asyncio.get_running_loop()
        properties = Properties(PacketTypes.CONNECT)
        properties.SessionExpiryInterval = self._session_expiry_s
        self._client.connect_async(
            self.host,
            self.port,
            keepalive=self._keepalive_s,
            clean_start=False,
            properties=properties,
        )
        self._client.loop_start()
        await self.wait_connected()

    async def wait_connected(self, timeout_s: float | None = None) -> None:
        try:
            async with asyncio.timeout(timeout_s or self._timeout_s):
                await self._connected.wait()
        except TimeoutError:
            if self._connect_error is not None:
                raise self._connect_error from None
            raise MqttUnavailable(
                f"no answer from the MQTT broker at {self.host}:{self.port}"
            ) from None

    async def publish(
        self,
        topic: str,
        payload: bytes,
        *,
        retain: bool = False,
        expiry_s: int | None = None,
        user_properties: list[tuple[str, str]] | None = None,
        content_type: str | None = "application/json",
    ) -> None:
        """Publish at QoS 1 and wait for the broker's PUBACK."""
        if not self._connected.is_set():
            raise self._connect_error or MqttUnavailable(
                f"not connected to the MQTT broker at {self.host}:{self.port}"
            )
        properties = Properties(PacketTypes.PUBLISH)
        if expiry_s is not None:
            properties.MessageExpiryInterval = expiry_s
        if content_type is not None:
            properties.ContentType = content_type
        if user_properties:
            properties.UserProperty = user_properties
        assert self._loop is not None
        done: asyncio.Future[None] = self._loop.create_future()
        # Not under our lock: paho holds its own message lock while it calls on_publish, and
        # on_publish takes ours. A PUBACK that arrives before we register waits in _early.
        info = self._client.publish(topic, payload, qos=1, retain=retain, properties=properties)
        with self._lock:
            early = self._early.pop(info.mid, None)
            if early is None:
                self._acks[info.mid] = done
        if early is not None:
            _settle(done, early)
        if info.rc not in (paho.MQTT_ERR_SUCCESS, paho.MQTT_ERR_NO_CONN):
            with self._lock:
                self._acks.pop(info.mid, None)
            raise MqttUnavailable(f"publish failed: {paho.error_string(info.rc)}")
        try:
            async with asyncio.timeout(self._timeout_s):
                await done
        except TimeoutError:
            with self._lock:
                self._acks.pop(info.mid, None)
            raise MqttUnavailable(
                "the MQTT broker did not acknowledge the message in time"
            ) from None

    async def subscribe(self, topic: str, on_message: OnMessage | None = None) -> None:
        """Subscribe at QoS 1 and wait for the SUBACK; messages go to ``on_message`` on the loop."""
        if on_message is not None:
            self._on_message = on_message
        assert self._loop is not None
        granted: asyncio.Future[None] = self._loop.create_future()
        with self._lock:
            result, mid = self._client.subscribe(topic, qos=1)
            self._subacks[mid] = granted
        if result != paho.MQTT_ERR_SUCCESS:
            raise MqttUnavailable(f"subscribe failed: {paho.error_string(result)}")
        try:
            async with asyncio.timeout(self._timeout_s):
                await granted
        except TimeoutError:
            raise MqttUnavailable("the MQTT broker did not acknowledge the subscription") from None

    async def close(self) -> None:
        """Disconnect cleanly (the broker does not publish the will) and stop the network thread."""
        with contextlib.suppress(Exception):
            self._client.disconnect()
        await asyncio.to_thread(self._client.loop_stop)
        self._connected.clear()
        for future in self._acks.values():
            if not future.done():
                future.set_exception(MqttUnavailable("the MQTT session was closed"))
        self._acks.clear()

    # paho's callbacks run on its network thread: hand everything to the event loop.

    def _call(self, function: Callable[..., None], *args: object) -> None:
        if self._loop is not None and not self._loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed in between
                self._loop.call_soon_threadsafe(function, *args)

    def _handle_connect(
        self,
        _client: paho.Client,
        _userdata: object,
        _flags: paho.ConnectFlags,
        reason_code: ReasonCode,
        _properties: Properties | None,
    ) -> None:
        if reason_code.is_failure:
            error = MqttRefused(
                f"the MQTT broker refused the connection: {reason_code}", int(reason_code.value)
            )
            self._call(self._set_connect_error, error)
        else:
            self._call(self._set_connected)

    def _set_connected(self) -> None:
        self._connect_error = None
        self._connected.set()

    def _set_connect_error(self, error: MqttError) -> None:
        self._connect_error = error
        self._connected.clear()

    def _handle_disconnect(
        self,
        _client: paho.Client,
        _userdata: object,
        _flags: paho.DisconnectFlags,
        _reason_code: ReasonCode,
        _properties: Properties | None,
    ) -> None:
        self._call(self._connected.clear)

    def _handle_publish(
        self,
        _client: paho.Client,
        _userdata: object,
        mid: int,
        reason_code: ReasonCode,
        _properties: Properties | None,
    ) -> None:
        with self._lock:
            future = self._acks.pop(mid, None)
            if future is None:
                self._early[mid] = reason_code
                return
        self._call(_settle, future, reason_code)

    def _handle_subscribe(
        self,
        _client: paho.Client,
        _userdata: object,
        mid: int,
        reason_codes: list[ReasonCode],
        _properties: Properties | None,
    ) -> None:
        with self._lock:
            future = self._subacks.pop(mid, None)
        if future is not None:
            failed = next((code for code in reason_codes if code.is_failure), None)
            self._call(_settle_subscribe, future, failed)

    def _handle_message(
        self, _client: paho.Client, _userdata: object, message: paho.MQTTMessage
    ) -> None:
        if self._on_message is not None:
            self._call(
                self._on_message, message.topic, bytes(message.payload), bool(message.retain)
            )


def _settle(future: asyncio.Future[None], reason_code: ReasonCode) -> None:
    if future.done():
        return
    if reason_code.is_failure:
        future.set_exception(
            MqttRefused(
                f"the MQTT broker refused the message: {reason_code}", int(reason_code.value)
            )
        )
    else:
        future.set_result(None)


def _settle_subscribe(future: asyncio.Future[None], failed: ReasonCode | None) -> None:
    if future.done():
        return
    if failed is not None:
        future.set_exception(
            MqttRefused(f"the MQTT broker refused the subscription: {failed}", int(failed.value))
        )
    else:
        future.set_result(None)
