"""BleSource against simulated cuffs, through bleak's real BlueZ backend on a private bus."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from bleak import BleakClient, BleakScanner
from structlog.testing import capture_logs

from devices.gatt import encode
from devices.profiles import BLOOD_PRESSURE_MEASUREMENT
from devices.sim.blood_pressure_cuff import SimulatedBloodPressureCuff
from devices.sim.bluez import SimulatedBlueZ
from devices.sim.script import script_to_measurements
from devices.source import BleSource, DeviceTarget, Received
from gateway.models import Measurement

CUFF_ADDRESS = "C4:7C:8D:6A:12:34"
SECOND_ADDRESS = "C4:7C:8D:6A:56:78"
STEP = 5.0  # generous deadline per awaited step; each normally takes milliseconds
FAST = {"scan_timeout": 2.0, "backoff_initial": 0.01, "backoff_max": 0.05}


def script(*systolics: int) -> list[Measurement]:
    start = datetime(2026, 11, 20, 8, 0, 0)
    return script_to_measurements(
        "blood_pressure",
        [
            {
                "systolic": s,
                "diastolic": 80,
                "pulse_rate": 70,
                "measured_at": (start + timedelta(minutes=i)).isoformat(),
            }
            for i, s in enumerate(systolics)
        ],
    )


def cuff(
    readings: list[Measurement],
    *,
    address: str = CUFF_ADDRESS,
    interval_s: float = 0.01,
    state_file: Path | None = None,
) -> SimulatedBloodPressureCuff:
    return SimulatedBloodPressureCuff(
        address, "BP Cuff", readings, interval_s=interval_s, state_file=state_file
    )


class Collector:
    """The on_reading callback: keeps readings and lets a test wait for a count."""

    def __init__(self) -> None:
        self.items: list[Received] = []
        self._changed = asyncio.Event()

    def __call__(self, reading: Received) -> None:
        self.items.append(reading)
        self._changed.set()

    async def wait_for(self, count: int) -> None:
        async with asyncio.timeout(STEP):
            while len(self.items) < count:
                self._changed.clear()
                await self._changed.wait()

    def systolics(self) -> list[float]:
        return [r.measurement.values["systolic"].value for r in self.items]


@contextlib.asynccontextmanager
async def running(source: BleSource) -> AsyncIterator[None]:
    task = asyncio.create_task(source.run())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def target(address: str = CUFF_ADDRESS, ref: str = "device-1") -> DeviceTarget:
    return DeviceTarget(ref=ref, address=address, profile="blood_pressure")


async def test_scripted_readings_arrive_decoded_in_order(bluez: SimulatedBlueZ) -> None:
    device = cuff(script(121, 122, 123, 124))
    bluez.add_peripheral(device)
    collected = Collector()
    source = BleSource([target()], collected, **FAST)

    async with running(source):
        await collected.wait_for(4)
        status = source.status()[0]

    assert collected.systolics() == [121, 122, 123, 124]
    first = collected.items[0]
    assert first.target == target()
    assert first.characteristic == BLOOD_PRESSURE_MEASUREMENT
    assert first.measurement.kind == "blood_pressure"
    assert first.measurement.measured_at == datetime(2026, 11, 20, 8, 0, 0)
    assert first.received_at.tzinfo is UTC
    assert (status.ref, status.connected, status.readings, status.connects) == (
        "device-1",
        True,
        4,
        1,
    )
    assert status.decode_errors == 0
    assert status.last_seen is not None and status.last_seen.tzinfo is UTC
    # Cancelling the source disconnected the device.
    assert not device.connected
    assert not source.status()[0].connected


async def test_link_drop_mid_script_reconnects_without_duplicates(bluez: SimulatedBlueZ) -> None:
    device = cuff(script(131, 132, 133, 134, 135), interval_s=0.05)
    bluez.add_peripheral(device)
    collected = Collector()
    source = BleSource([target()], collected, **FAST)

    async with running(source):
        await collected.wait_for(2)
        device.drop_link()
        await collected.wait_for(5)
        await asyncio.wait_for(device.wait_delivered(5), STEP)
        status = source.status()[0]

    assert collected.systolics() == [131, 132, 133, 134, 135]
    assert status.connects == 2
    assert status.readings == 5
    assert device.pending == 0


async def test_malformed_payload_is_counted_and_skipped(bluez: SimulatedBlueZ) -> None:
    device = cuff(script(141, 142), interval_s=0.2)
    bluez.add_peripheral(device)
    collected = Collector()
    source = BleSource([target()], collected, **FAST)

    async with running(source):
        await collected.wait_for(1)
        # Fault injection: a truncated measurement, then a good one sent the same way.
        assert await device.notify(BLOOD_PRESSURE_MEASUREMENT, b"\x1e\x78\x00")
        extra = script_to_measurements(
            "blood_pressure",
            [{"systolic": 150, "diastolic": 80, "mean_arterial_pressure": 103, "pulse_rate": 70}],
        )[0]
        assert await device.notify(BLOOD_PRESSURE_MEASUREMENT, encode(0x2A35, extra))
        # D-Bus keeps the order, so once the good one is in the bad one was handled.
        await collected.wait_for(2)
        assert source.status()[0].decode_errors == 1
        await collected.wait_for(3)  # the cuff's own second reading, same connection
        status = source.status()[0]

    assert collected.systolics()[0] == 141
    assert sorted(collected.systolics()[1:]) == [142, 150]
    assert (status.decode_errors, status.readings, status.connects) == (1, 3, 1)
    assert device.delivered == 2  # injected bytes are not the cuff's readings


async def test_restarted_cuff_does_not_replay_delivered_readings(
    bluez: SimulatedBlueZ, tmp_path: Path
) -> None:
    readings = script(151, 152, 153, 154)
    state = tmp_path / "cuff-state.json"
    first_cuff = cuff(readings, interval_s=0.2, state_file=state)
    bluez.add_peripheral(first_cuff)
    first = Collector()

    async with running(BleSource([target()], first, **FAST)):
        await first.wait_for(2)
    await bluez.remove_peripheral(first_cuff)
    handed_over = first_cuff.delivered
    assert handed_over >= 2
    assert json.loads(state.read_text()) == {"delivered": handed_over}

    # Gateway and simulator restart: a new cuff object with the same memory.
    second_cuff = cuff(readings, interval_s=0.01, state_file=state)
    assert second_cuff.pending == len(readings) - handed_over
    bluez.add_peripheral(second_cuff)
    second = Collector()
    async with running(BleSource([target()], second, **FAST)):
        await asyncio.wait_for(second_cuff.wait_delivered(len(readings)), STEP)
        await second.wait_for(len(readings) - handed_over)

    assert first.systolics() + second.systolics() == [151, 152, 153, 154]


async def test_two_devices_share_one_scanner(bluez: SimulatedBlueZ) -> None:
    bluez.add_peripheral(cuff(script(161, 162)))
    bluez.add_peripheral(cuff(script(171, 172), address=SECOND_ADDRESS))
    collected = Collector()
    source = BleSource([target(), target(SECOND_ADDRESS, "device-2")], collected, **FAST)

    async with running(source):
        await collected.wait_for(4)
        statuses = source.status()

    by_ref: dict[str, list[float]] = {}
    for item in collected.items:
        by_ref.setdefault(item.target.ref, []).append(item.measurement.values["systolic"].value)
    assert by_ref == {"device-1": [161, 162], "device-2": [171, 172]}
    assert [s.connects for s in statuses] == [1, 1]


async def test_missing_device_is_retried_and_reported(bluez: SimulatedBlueZ) -> None:
    device = cuff(script(181))
    device.set_advertising(False)
    bluez.add_peripheral(device)
    collected = Collector()
    source = BleSource([target()], collected, scan_timeout=0.1, backoff_initial=0.01)

    with capture_logs() as logs:
        async with running(source):
            async with asyncio.timeout(STEP):
                failed = await source.wait_until(lambda s: s[0].last_error is not None)
            assert "not heard" in (failed[0].last_error or "")
            assert failed[0].connects == 0
            device.set_advertising(True)
            await collected.wait_for(1)

    assert collected.systolics() == [181]
    assert any(e["event"] == "ble.not_found" and e["device"] == "device-1" for e in logs)


async def test_no_log_line_carries_the_device_address(bluez: SimulatedBlueZ) -> None:
    device = cuff(script(191, 192, 193), interval_s=0.05)
    bluez.add_peripheral(device)
    collected = Collector()
    source = BleSource([target()], collected, **FAST)

    with capture_logs() as logs:
        async with running(source):
            await collected.wait_for(1)
            assert await device.notify(BLOOD_PRESSURE_MEASUREMENT, b"\xff")  # bad flags
            device.drop_link()
            await collected.wait_for(3)

    events = {entry["event"] for entry in logs}
    assert {"ble.connected", "ble.disconnected", "ble.decode_failed"} <= events
    decode_failed = next(e for e in logs if e["event"] == "ble.decode_failed")
    assert decode_failed["device"] == "device-1"
    assert decode_failed["characteristic"] == "2a35"
    assert decode_failed["payload_length"] == 1
    # Only what the spec allows: reference, short characteristic id, length, error message.
    assert set(decode_failed) == {
        "event",
        "log_level",
        "device",
        "characteristic",
        "payload_length",
        "error",
    }
    forbidden = _address_forms(CUFF_ADDRESS)
    for entry in logs:
        text = _flatten(entry)
        assert not any(form in text for form in forbidden), entry


def _address_forms(address: str) -> list[str]:
    forms = []
    for sep in (":", "_", "-", ""):
        joined = address.replace(":", sep)
        forms += [joined.upper(), joined.lower()]
    return forms


def _flatten(entry: dict[str, Any]) -> str:
    return " ".join(f"{key}={value!r}" for key, value in entry.items())


@pytest.mark.parametrize(
    ("targets", "message"),
    [
        ([DeviceTarget("a", CUFF_ADDRESS, "nope")], "unknown profile"),
        ([target(), target(CUFF_ADDRESS.lower(), "b")], "same address"),
    ],
)
def test_bad_targets_are_rejected(targets: list[DeviceTarget], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        BleSource(targets, lambda _r: None)


async def test_a_device_still_connected_in_bluez_is_adopted_without_scanning(
    bluez: SimulatedBlueZ,
) -> None:
    # As after a gateway crash: BlueZ keeps the link, the device does not advertise meanwhile.
    device = cuff(script(201, 202))
    bluez.add_peripheral(device)
    found = await BleakScanner.find_device_by_address(CUFF_ADDRESS, timeout=STEP)
    assert found is not None
    leftover = BleakClient(found, timeout=STEP)
    await leftover.connect()
    try:
        collected = Collector()
        source = BleSource([target()], collected, **FAST)
        async with running(source):
            await collected.wait_for(2)
            assert source.status()[0].connects == 1
        assert collected.systolics() == [201, 202]
        assert not device.connected  # the source's shutdown disconnected the device
    finally:
        await leftover.disconnect()
