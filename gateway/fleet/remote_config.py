"""Signed remote configuration: what a message on ``hubs/{hub_id}/config`` must be to be applied.

The payload is a compact JWS (EdDSA, Ed25519) by the care provider's key over JSON
``{"hub_id": ..., "version": N, "config": {...}}``. ``config`` holds the sections of the TOML file
that may change remotely; anything else (data folder, API listener, keys, the fleet section itself)
stays under the local operator's control, so a stolen signing key cannot move data elsewhere on disk
or open the hub's API. Checking the result as a whole config is the caller's job (it knows the
running settings); this module checks origin, addressee and order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from gateway.fleet.jws import JwsError, verify

REMOTE_SECTIONS = frozenset({"subjects", "devices", "destinations", "alert_rules"})


class RemoteConfigRefused(ValueError):
    """The message is not applied; the text says why (it goes into the hub's status)."""


class AlreadyRunning(RemoteConfigRefused):
    """The version that runs now, seen again (a retained message after a reconnect)."""


@dataclass(frozen=True)
class RemoteConfig:
    version: int
    sections: dict[str, Any]
    token: bytes  # the signed message itself, kept so the hub can verify it again at start


def open_remote_config(
    token: bytes, key: Ed25519PublicKey, *, hub_id: str, running_version: int
) -> RemoteConfig:
    """The verified config for this hub, newer than ``running_version``, or RemoteConfigRefused."""
    try:
        payload = verify(token, key)
    except JwsError as exc:
        raise RemoteConfigRefused(f"signature: {exc}") from exc
    try:
        document = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise RemoteConfigRefused("the signed payload is not JSON") from exc
    if not isinstance(document, dict):
        raise RemoteConfigRefused("the signed payload is not a JSON object")
    if document.get("hub_id") != hub_id:
        raise RemoteConfigRefused("the config is addressed to another hub")
    version = document.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise RemoteConfigRefused("version must be a positive integer")
    if version == running_version:
        raise AlreadyRunning(f"version {version} is the running version")
    if version < running_version:
        raise RemoteConfigRefused(
            f"version {version} is not newer than the running version {running_version}"
        )
    sections = document.get("config")
    if not isinstance(sections, dict):
        raise RemoteConfigRefused("config must be a JSON object")
    foreign = sorted(set(sections) - REMOTE_SECTIONS)
    if foreign:
        raise RemoteConfigRefused(
            f"config may only change {', '.join(sorted(REMOTE_SECTIONS))}; not {', '.join(foreign)}"
        )
    return RemoteConfig(version=version, sections=sections, token=token)
