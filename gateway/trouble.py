"""What needs someone's attention on the hub: Bluetooth, low batteries, devices not seen for days.

A hub whose radio is broken looks exactly like a quiet one (no readings either way), so the
operator's ``status``, ``/api/status`` and the page need to be told. The thresholds are the
config's ``gateway.low_battery_percent`` and ``gateway.device_unseen_days``.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog

from devices.adapter import BluetoothState, check_bluetooth
from gateway.settings import Settings

log = structlog.get_logger(__name__)

# /api/status may be polled by a page every few seconds; one D-Bus round trip per poll is
# cheap, but there is no need to ask BlueZ more often than this.
BLUETOOTH_RECHECK_S = 5.0
# How often the service asks on its own, so the journal says when Bluetooth stops or returns.
BLUETOOTH_WATCH_S = 60.0
NOT_USED = BluetoothState(True, None, None)


class TroubleWatch:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._since = datetime.now(UTC)  # a device never seen is "unseen" only after N days up
        self._bluetooth: BluetoothState | None = None
        self._checked_at = 0.0

    async def bluetooth(self) -> BluetoothState:
        """The radio's state (a few seconds old at most); NOT_USED when no device needs it."""
        if not self._settings.devices:
            return NOT_USED
        now = time.monotonic()
        if self._bluetooth is None or now - self._checked_at >= BLUETOOTH_RECHECK_S:
            state = await check_bluetooth()
            if state != self._bluetooth:
                if state.ok:
                    log.info("bluetooth_ok", adapter=state.adapter)
                else:
                    log.warning("bluetooth_unavailable", reason=state.reason)
            self._bluetooth, self._checked_at = state, now
        return self._bluetooth

    async def run(self) -> None:
        """Ask at the start and then every minute; changes are logged (never raises)."""
        while True:
            await self.bluetooth()
            await asyncio.sleep(BLUETOOTH_WATCH_S)

    def device_fields(self, device: dict[str, Any], now: datetime) -> dict[str, Any]:
        """``battery_low``, ``last_contact`` and ``unseen_days`` for one device of /api/devices."""
        level = device.get("battery_level")
        contacts = [
            datetime.fromisoformat(stamp)
            for stamp in (device.get("last_seen"), device.get("last_reading_at"))
            if stamp
        ]
        last = max((c if c.tzinfo else c.replace(tzinfo=UTC) for c in contacts), default=None)
        limit = timedelta(days=self._settings.gateway.device_unseen_days)
        silent_since = last or self._since
        unseen = now - silent_since >= limit
        low = self._settings.gateway.low_battery_percent
        return {
            "battery_low": level is not None and level <= low,
            "last_contact": last.isoformat() if last else None,
            "unseen_days": round((now - silent_since) / timedelta(days=1), 1) if unseen else None,
        }

    @staticmethod
    def warnings(bluetooth: BluetoothState, devices: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """One entry per thing to act on, Bluetooth first."""
        found: list[dict[str, Any]] = []
        if not bluetooth.ok:
            found.append(
                {
                    "kind": "bluetooth",
                    "device": None,
                    "message": f"Bluetooth is not working: {bluetooth.reason}",
                }
            )
        for device in devices:
            label = device.get("name") or device["ref"]
            if device.get("battery_low"):
                found.append(
                    {
                        "kind": "battery_low",
                        "device": device["ref"],
                        "message": f"{label}: battery at {device['battery_level']}%;"
                        " replace or charge it",
                    }
                )
            if device.get("unseen_days") is not None:
                since = (
                    f"not seen for {device['unseen_days']:g} days"
                    if device.get("last_contact")
                    else f"never seen in {device['unseen_days']:g} days"
                )
                found.append(
                    {
                        "kind": "device_unseen",
                        "device": device["ref"],
                        "message": f"{label}: {since}; is it switched on, in range and used?",
                    }
                )
        return found
