"""The hub's link to its fleet broker: the retained status, the last will, the signed config.

It lives as long as the service (across config changes), keeps one MQTT session, and never holds
up the hub: a broker that is away only means the status waits and no new config arrives.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
import structlog
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from gateway.exporters.mqtt.session import MqttError, MqttSession, TlsFiles, Will
from gateway.fleet.jws import JwsError, load_public_key
from gateway.fleet.remote_config import (
    AlreadyRunning,
    RemoteConfig,
    RemoteConfigRefused,
    open_remote_config,
)
from gateway.fleet.status import ConfigState, StatusClock, fleet_status, offline_status
from gateway.settings import ConfigError, FleetSettings

log = structlog.get_logger("gateway.fleet")

# How often the status is rebuilt to see whether it changed; it is published on a change and at
# least every ``status_interval_s``.
CHANGE_CHECK_S = 5.0

Snapshot = Callable[[], Awaitable[dict[str, Any] | None]]
# Applies a verified config; returns None when it runs, or the reason it was refused.
ApplyConfig = Callable[[RemoteConfig], Awaitable[str | None]]


def status_topic(hub_id: str) -> str:
    return f"hubs/{hub_id}/status"


def config_topic(hub_id: str) -> str:
    return f"hubs/{hub_id}/config"


def read_config_key(settings: FleetSettings) -> Ed25519PublicKey | None:
    if settings.config_public_key_file is None:
        return None
    key = "fleet.config_public_key_file"
    try:
        return load_public_key(settings.config_public_key_file.read_bytes())
    except OSError as exc:
        raise ConfigError(
            f"{key}: cannot read {settings.config_public_key_file} ({exc.strerror})"
        ) from None
    except JwsError as exc:
        raise ConfigError(f"{key}: {exc}") from None


class FleetLink:
    def __init__(
        self,
        settings: FleetSettings,
        hub_id: str,
        snapshot: Snapshot,
        apply_config: ApplyConfig,
        config: ConfigState,
    ) -> None:
        self._settings = settings
        self._hub_id = hub_id
        self._snapshot = snapshot
        self._apply_config = apply_config
        self.config = config
        self._key = read_config_key(settings)
        self._clock = StatusClock()
        self._changed = asyncio.Event()
        self._configs: asyncio.Queue[bytes] = asyncio.Queue(maxsize=4)
        self._session = self._new_session()

    def status_changed(self) -> None:
        """Publish soon (a config was applied or refused, a device came or went)."""
        self._changed.set()

    def _on_message(self, topic: str, payload: bytes, _retained: bool) -> None:
        if topic != config_topic(self._hub_id) or not payload:
            return  # an empty retained message clears the topic: nothing to apply
        if self._configs.full():
            self._configs.get_nowait()  # only the newest matters: versions must increase
        self._configs.put_nowait(payload)

    async def run(self) -> None:
        """Connect (retrying while the broker is away), then publish and listen until cancelled."""
        connected = False
        while not connected:
            try:
                await self._session.connect()
                connected = True
            except MqttError as exc:
                log.warning("fleet_broker_unreachable", reason=str(exc))
                await self._session.close()
                await asyncio.sleep(self._settings.status_interval_s)
                self._session = self._new_session()
        if self._key is not None:
            await self._session.subscribe(config_topic(self._hub_id))
        await asyncio.gather(self._publish_status(), self._take_configs())

    def _new_session(self) -> MqttSession:
        """A session whose last will says this hub went offline."""
        settings, hub_id = self._settings, self._hub_id
        return MqttSession(
            settings.url,
            client_id=hub_id,
            tls=TlsFiles(settings.ca_file, settings.client_cert_file, settings.client_key_file),
            will=Will(status_topic(hub_id), orjson.dumps(offline_status(hub_id))),
            on_message=self._on_message,
        )

    async def _publish_status(self) -> None:
        last: dict[str, Any] | None = None
        since_publish = self._settings.status_interval_s  # publish at once
        while True:
            status = fleet_status(
                await self._snapshot(),
                hub_id=self._hub_id,
                uptime_s=self._clock.uptime_s(),
                config=self.config,
            )
            comparable = {k: v for k, v in status.items() if k != "uptime_s"}
            if comparable != last or since_publish >= self._settings.status_interval_s:
                try:
                    await self._session.publish(
                        status_topic(self._hub_id), orjson.dumps(status), retain=True
                    )
                    last, since_publish = comparable, 0.0
                except MqttError as exc:
                    log.warning("fleet_status_not_published", reason=str(exc))
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(CHANGE_CHECK_S):
                    await self._changed.wait()
            since_publish += CHANGE_CHECK_S

    async def _take_configs(self) -> None:
        while True:
            payload = await self._configs.get()
            if self._key is None:
                continue
            try:
                remote = open_remote_config(
                    payload, self._key, hub_id=self._hub_id, running_version=self.config.version
                )
            except AlreadyRunning:
                continue  # the retained copy of what already runs, seen again on reconnect
            except RemoteConfigRefused as exc:
                self.config.refused(str(exc))
                log.warning("fleet_config_refused", reason=str(exc))
                self.status_changed()
                continue
            reason = await self._apply_config(remote)
            if reason is None:
                self.config.applied(remote.version)
                log.info("fleet_config_applied", version=remote.version)
            else:
                self.config.refused(reason, remote.version)
                log.warning("fleet_config_refused", version=remote.version, reason=reason)
            self.status_changed()

    async def close(self) -> None:
        """A clean stop: say "offline" ourselves (the broker sends the will only if we vanish)."""
        with contextlib.suppress(MqttError):
            if self._session.connected:
                await self._session.publish(
                    status_topic(self._hub_id),
                    orjson.dumps(offline_status(self._hub_id)),
                    retain=True,
                )
        await self._session.close()
