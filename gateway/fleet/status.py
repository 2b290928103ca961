"""The hub's status for the fleet: what operations needs to see, and nothing about the people.

Built from the operator's snapshot (``Hub.status()``) by copying the fields operations needs, not by
removing what it must not see: a field added to the snapshot later stays on the hub until someone
decides it belongs here. Devices are named by their config reference and profile, never by their
Bluetooth address (which identifies a household's device); no subject, reading or value is in it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from gateway import __version__


@dataclass(slots=True)
class ConfigState:
    """The running remote config version and the last refusal, as the status reports them."""

    version: int = 0
    applied_at: str | None = None
    refused_version: int | None = None
    refused_reason: str | None = None
    refused_at: str | None = None

    def applied(self, version: int) -> None:
        self.version = version
        self.applied_at = _now()

    def refused(self, reason: str, version: int | None = None) -> None:
        self.refused_version, self.refused_reason, self.refused_at = version, reason, _now()


@dataclass(slots=True)
class StatusClock:
    started_monotonic: float = field(default_factory=time.monotonic)

    def uptime_s(self) -> int:
        return int(time.monotonic() - self.started_monotonic)


DEVICE_FIELDS = (
    "ref",
    "profile",
    "connected",
    "last_seen",
    "battery_level",
    "last_error",
    "decode_errors",
    "readings",
)


def _age_s(iso: str | None, now: datetime) -> int | None:
    if iso is None:
        return None
    return max(0, int((now - datetime.fromisoformat(iso)).total_seconds()))


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def offline_status(hub_id: str) -> dict[str, Any]:
    """What the broker publishes for us (the last will) or we publish on a clean stop."""
    return {"hub_id": hub_id, "online": False, "version": __version__}


def fleet_status(
    snapshot: dict[str, Any] | None,
    *,
    hub_id: str,
    uptime_s: int,
    config: ConfigState,
) -> dict[str, Any]:
    """The retained ``hubs/{hub_id}/status`` document (``snapshot`` None: the hub is starting)."""
    now = datetime.now(UTC)
    status: dict[str, Any] = {
        "hub_id": hub_id,
        "online": True,
        "version": __version__,
        "uptime_s": uptime_s,
        "ready": bool(snapshot and snapshot.get("ready")),
        "config": {
            "version": config.version,
            "applied_at": config.applied_at,
            "refused": None
            if config.refused_reason is None
            else {
                "version": config.refused_version,
                "reason": config.refused_reason,
                "at": config.refused_at,
            },
        },
    }
    if snapshot is None:
        return status
    status["destinations"] = [
        {
            "name": destination["name"],
            "kind": destination["kind"],
            "queued": destination["queued"],
            "oldest_queued_age_s": _age_s(destination.get("oldest_queued_at"), now),
            "dead_letters": destination["dead_letters"],
            "last_error": destination.get("last_error"),
            "last_error_at": destination.get("last_error_at"),
            "last_delivery_at": destination.get("last_delivery_at"),
        }
        for destination in snapshot.get("destinations", [])
    ]
    status["devices"] = [
        {name: device.get(name) for name in DEVICE_FIELDS} for device in snapshot.get("devices", [])
    ]
    pipeline = snapshot.get("pipeline") or {}
    status["decode_errors"] = sum(d.get("decode_errors", 0) for d in snapshot.get("devices", []))
    status["quarantined_rows"] = snapshot.get("quarantined", pipeline.get("quarantined", 0))
    return status
