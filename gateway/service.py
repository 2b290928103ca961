"""The service: the gateway under its config, and a signed remote config applied without a restart.

Without a ``[fleet]`` section this is one ``Gateway.run``. With one, the hub also keeps its fleet
link (status, last will, config), and a verified config from the care provider replaces the
running one atomically: it is checked as a whole config (and by the same preflight as
``check-config``) before anything stops; the running gateway then stops as on SIGTERM (nothing in
flight is lost) and a new one starts on the merged config. If the new one cannot start, the
previous config runs again and the refusal is reported. The accepted config is kept in
``data_dir/fleet/config.jws`` and verified again at every start, so it survives restarts.
Consent changes it carries go through the consent registry (audited, with source
``fleet-config``): only purposes whose value changed from the previous config are applied, so a
withdrawal the person made on the page is not undone by an unrelated config change.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from devices.state import write_bytes_atomically
from gateway.app import Gateway
from gateway.errors import GatewayError
from gateway.fleet.identity import HubIdError, load_or_create_hub_id
from gateway.fleet.status import ConfigState
from gateway.preflight import preflight
from gateway.settings import ConfigError, Settings, parse_settings

if TYPE_CHECKING:
    from gateway.fleet.link import FleetLink
    from gateway.fleet.remote_config import RemoteConfig

log = structlog.get_logger("gateway.service")

KEPT_CONFIG = Path("fleet") / "config.jws"


def merged_settings(base: Settings, sections: dict[str, Any]) -> Settings:
    """The local config with the remote sections in place of its own; ConfigError if invalid."""
    document = base.model_dump(exclude_unset=True)
    document.update(sections)
    settings = parse_settings(document)
    preflight(settings)
    return settings


def consent_changes(before: Settings, after: Settings) -> dict[str, dict[str, bool]]:
    """Per person (in ``after``), the purposes whose configured consent changed."""
    previous = {subject.id: dict(subject.consent) for subject in before.subjects}
    changes: dict[str, dict[str, bool]] = {}
    for subject in after.subjects:
        old = previous.get(subject.id)
        if old is None:
            continue  # a new person is seeded from config like any other at start
        changed = {p: g for p, g in subject.consent.items() if old.get(p, False) != g}
        changed |= {p: False for p, g in old.items() if g and p not in subject.consent}
        if changed:
            changes[subject.id] = changed
    return changes


@dataclass
class _Switch:
    settings: Settings
    token: bytes
    version: int
    consents: dict[str, dict[str, bool]]
    done: asyncio.Future[str | None]


class Service:
    def __init__(self, base: Settings) -> None:
        self.base = base
        self.settings = base
        self.config = ConfigState()
        self.gateway: Gateway | None = None
        self._kept = base.gateway.data_dir / KEPT_CONFIG
        self._switch: _Switch | None = None
        self._generation_stop = asyncio.Event()
        try:
            self.hub_id = base.gateway.hub_id or load_or_create_hub_id(base.gateway.data_dir)
        except HubIdError as exc:
            raise GatewayError(str(exc)) from None

    def _load_kept_config(self) -> None:
        """Run the remote config accepted before, if it still verifies and validates."""
        if self.base.fleet is None or not self._kept.exists():
            return
        # Only where a fleet is: the MQTT client, the JWS check and its key formats.
        from gateway.fleet.link import read_config_key
        from gateway.fleet.remote_config import RemoteConfigRefused, open_remote_config

        key = read_config_key(self.base.fleet)
        if key is None:
            return
        try:
            remote = open_remote_config(
                self._kept.read_bytes(), key, hub_id=self.hub_id, running_version=0
            )
            self.settings = merged_settings(self.base, remote.sections)
        except (RemoteConfigRefused, ConfigError) as exc:
            # The local config runs; the status says why the kept one does not.
            self.config.refused(f"the kept remote config no longer applies: {exc}")
            log.warning("fleet_kept_config_refused", reason=str(exc))
            return
        self.config.applied(remote.version)

    async def run(self, stop: asyncio.Event) -> None:
        self._load_kept_config()
        link: FleetLink | None = None
        link_task: asyncio.Task[None] | None = None
        if self.base.fleet is not None:
            from gateway.fleet.link import FleetLink  # the MQTT client only where a fleet is

            link = FleetLink(self.base.fleet, self.hub_id, self._snapshot, self._apply, self.config)
            link_task = asyncio.create_task(link.run(), name="fleet-link")
        try:
            await self._generations(stop)
        finally:
            if link_task is not None and link is not None:
                link_task.cancel()
                await asyncio.gather(link_task, return_exceptions=True)
                await link.close()

    async def _generations(self, stop: asyncio.Event) -> None:
        previous: tuple[Settings, bytes | None] | None = None
        while True:
            self._generation_stop = asyncio.Event()
            self.gateway = Gateway(self.settings)
            either = asyncio.create_task(self._until_either(stop, self._generation_stop))
            run = asyncio.create_task(self.gateway.run(self._generation_stop))
            switch, self._switch = self._switch, None
            if switch is not None:
                failed = await self._started_or_failed(run)
                if failed is not None:
                    assert previous is not None
                    either.cancel()
                    self.settings, kept = previous
                    if kept is None:
                        self._kept.unlink(missing_ok=True)
                    else:
                        write_bytes_atomically(self._kept, kept)
                    switch.done.set_result(f"the new config did not start: {failed}")
                    continue
                self.config.applied(switch.version)
                await self._apply_consents(switch.consents)
                switch.done.set_result(None)
            try:
                await run
            finally:
                either.cancel()
            if stop.is_set() or self._switch is None:
                return
            previous = (self.settings, self._kept.read_bytes() if self._kept.exists() else None)
            self.settings = self._switch.settings
            write_bytes_atomically(self._kept, self._switch.token)

    @staticmethod
    async def _until_either(stop: asyncio.Event, generation_stop: asyncio.Event) -> None:
        await stop.wait()
        generation_stop.set()

    async def _started_or_failed(self, run: asyncio.Task[None]) -> str | None:
        assert self.gateway is not None
        ready = asyncio.create_task(self.gateway.ready.wait())
        await asyncio.wait([ready, run], return_when=asyncio.FIRST_COMPLETED)
        if ready.done():
            return None
        ready.cancel()
        exc = run.exception()
        return "it stopped at start" if exc is None else str(exc).splitlines()[0]

    async def _apply_consents(self, changes: dict[str, dict[str, bool]]) -> None:
        assert self.gateway is not None
        rights = self.gateway.subject_rights()
        for subject_id, purposes in changes.items():
            change = await rights.change_consent(subject_id, purposes, source="fleet-config")
            log.info("fleet_consent_applied", purposes=sorted(change.changed))

    async def _snapshot(self) -> dict[str, Any] | None:
        gateway = self.gateway
        if gateway is None or not gateway.ready.is_set():
            return None
        with contextlib.suppress(Exception):  # a gateway between generations has no database
            return await gateway.status()
        return None

    async def _apply(self, remote: RemoteConfig) -> str | None:
        try:
            settings = merged_settings(self.base, remote.sections)
        except ConfigError as exc:
            return f"the config is not valid: {exc}"
        if self._switch is not None:
            return "another config is being applied"
        done: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()
        self._switch = _Switch(
            settings,
            remote.token,
            remote.version,
            consent_changes(self.settings, settings),
            done,
        )
        self._generation_stop.set()  # the running gateway stops as on SIGTERM
        return await done
