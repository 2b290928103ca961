"""The simulated BlueZ driven by bleak's real BlueZ backend (BleakScanner, BleakClient)."""

from __future__ import annotations

import asyncio
import os
from datetime import datetime
from pathlib import Path

import pytest
from bleak import BleakClient, BleakScanner
from bleak.backends.bluezdbus.version import BlueZFeatures
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData
from bleak.exc import BleakGATTProtocolError, BleakGATTProtocolErrorCode

from devices.gatt import decode
from devices.profiles import (
    BATTERY_LEVEL,
    BATTERY_SERVICE,
    BLOOD_PRESSURE_FEATURE,
    BLOOD_PRESSURE_MEASUREMENT,
    BLOOD_PRESSURE_SERVICE,
    INTERMEDIATE_CUFF_PRESSURE,
    uuid16,
)
from devices.sim.blood_pressure_cuff import SimulatedBloodPressureCuff
from devices.sim.bluez import BlueZNameTaken, SimulatedBlueZ
from devices.sim.dbus_daemon import MAX_SOCKET_PATH, DbusDaemonMissing, PrivateDbusDaemon
from devices.sim.peripheral import AttError, Characteristic, Peripheral, Service
from devices.sim.radio import SimulatedRadio
from devices.sim.script import script_to_measurements
from devices.sim.system_bus import SYSTEM_BUS_ENV
from gateway.models import Measurement, Quantity

CUFF_ADDRESS = "C4:7C:8D:6A:12:34"
OTHER_ADDRESS = "E0:11:22:33:44:55"
CCCD = uuid16(0x2902)
STEP = 5.0  # generous per-step deadline; each step normally takes milliseconds


def reading(systolic: float, diastolic: float, pulse: float) -> Measurement:
    return Measurement(
        kind="blood_pressure",
        values={
            "systolic": Quantity(value=systolic, unit="mm[Hg]"),
            "diastolic": Quantity(value=diastolic, unit="mm[Hg]"),
            "pulse_rate": Quantity(value=pulse, unit="/min"),
        },
        measured_at=datetime(2026, 11, 20, 8, 0, 0),
    )


def make_cuff(readings: list[Measurement] | None = None) -> SimulatedBloodPressureCuff:
    return SimulatedBloodPressureCuff(
        CUFF_ADDRESS,
        "BP Cuff",
        readings if readings is not None else [reading(120, 80, 60)],
        interval_s=0.01,
        state_file=None,
    )


class BatteryPeripheral(Peripheral):
    """A tiny device with a readable, writable battery level, for read/write routing."""

    def __init__(self) -> None:
        super().__init__(
            OTHER_ADDRESS,
            "Battery Thing",
            [
                Service(
                    BATTERY_SERVICE,
                    (Characteristic(BATTERY_LEVEL, ("read", "write", "notify"), b"\x64"),),
                )
            ],
        )
        self.level = 100
        self.writes: list[bytes] = []

    def on_read(self, char_uuid: str) -> bytes:
        return bytes([self.level])

    def on_write(self, char_uuid: str, data: bytes) -> None:
        if len(data) != 1:
            raise AttError(0x80, "one byte expected")
        self.writes.append(data)
        self.level = data[0]


def socket_exists(path: str) -> bool:
    return Path(path).exists()


async def find(address: str) -> BLEDevice:
    device = await BleakScanner.find_device_by_address(address, timeout=STEP)
    assert device is not None, f"{address} not found"
    return device


async def test_discovery_by_address(bluez: SimulatedBlueZ) -> None:
    bluez.add_peripheral(make_cuff())

    device = await find(CUFF_ADDRESS)

    assert device.address == CUFF_ADDRESS
    assert device.name == "BP Cuff"
    assert not bluez.discovering  # the scanner stopped its discovery session


async def test_discovery_by_service_uuid_reports_only_matching_devices(
    bluez: SimulatedBlueZ,
) -> None:
    bluez.add_peripheral(make_cuff())
    bluez.add_peripheral(BatteryPeripheral())
    seen: list[tuple[str, list[str]]] = []
    twice = asyncio.Event()

    def on_advertisement(device: BLEDevice, adv: AdvertisementData) -> None:
        seen.append((device.address, adv.service_uuids))
        if sum(1 for address, _ in seen if address == CUFF_ADDRESS) >= 2:
            twice.set()

    async with BleakScanner(on_advertisement, service_uuids=[BLOOD_PRESSURE_SERVICE]):
        await asyncio.wait_for(twice.wait(), STEP)

    # Both devices advertise on every tick; two cuff reports mean the other was filtered out.
    assert {address for address, _ in seen} == {CUFF_ADDRESS}
    assert all(BLOOD_PRESSURE_SERVICE in uuids for _, uuids in seen)


async def test_connect_resolves_services_with_bluez_handles(bluez: SimulatedBlueZ) -> None:
    bluez.add_peripheral(make_cuff())
    device = await find(CUFF_ADDRESS)

    async with BleakClient(device, timeout=STEP) as client:
        service = client.services.get_service(BLOOD_PRESSURE_SERVICE)
        assert service is not None
        chars = {c.uuid: c for c in service.characteristics}
        assert set(chars) == {
            BLOOD_PRESSURE_MEASUREMENT,
            INTERMEDIATE_CUFF_PRESSURE,
            BLOOD_PRESSURE_FEATURE,
        }
        measurement = chars[BLOOD_PRESSURE_MEASUREMENT]
        assert measurement.properties == ["indicate"]
        assert [d.uuid for d in measurement.descriptors] == [CCCD]
        # bluetoothd's layout: service, then declaration/value(/CCCD) handles in order.
        assert service.handle < measurement.handle < measurement.descriptors[0].handle
        assert await client.read_gatt_char(BLOOD_PRESSURE_FEATURE) == bytearray(b"\x00\x00")
        with pytest.raises(BleakGATTProtocolError) as excinfo:
            await client.read_gatt_char(BLOOD_PRESSURE_MEASUREMENT)  # indicate only
        assert excinfo.value.code == BleakGATTProtocolErrorCode.READ_NOT_PERMITTED

    assert not client.is_connected


async def test_indication_is_received_and_decodes(bluez: SimulatedBlueZ) -> None:
    cuff = make_cuff([reading(190, 100, 90), reading(125, 82, 70)])
    bluez.add_peripheral(cuff)
    device = await find(CUFF_ADDRESS)
    received: asyncio.Queue[bytes] = asyncio.Queue()

    async with BleakClient(device, timeout=STEP) as client:
        await client.start_notify(
            BLOOD_PRESSURE_MEASUREMENT, lambda _char, data: received.put_nowait(bytes(data))
        )
        first = decode(BLOOD_PRESSURE_MEASUREMENT, await asyncio.wait_for(received.get(), STEP))
        second = decode(BLOOD_PRESSURE_MEASUREMENT, await asyncio.wait_for(received.get(), STEP))
        await client.stop_notify(BLOOD_PRESSURE_MEASUREMENT)

    assert first.kind == "blood_pressure"
    assert first.values["systolic"] == Quantity(value=190, unit="mm[Hg]")
    assert first.values["diastolic"] == Quantity(value=100, unit="mm[Hg]")
    assert first.values["pulse_rate"] == Quantity(value=90, unit="/min")
    assert first.values["mean_arterial_pressure"] == Quantity(value=130, unit="mm[Hg]")
    assert first.measured_at == datetime(2026, 11, 20, 8, 0, 0)
    assert second.values["systolic"].value == 125
    assert cuff.delivered == 2


async def test_reading_without_timestamp_gets_the_cuff_clock(bluez: SimulatedBlueZ) -> None:
    undated = reading(130, 85, 72).model_copy(update={"measured_at": None})
    cuff = SimulatedBloodPressureCuff(
        CUFF_ADDRESS, "BP Cuff", [undated], interval_s=0.01, state_file=None, clock_offset_s=-3600
    )
    bluez.add_peripheral(cuff)
    received: asyncio.Queue[bytes] = asyncio.Queue()

    before = cuff.clock.stamp()
    async with BleakClient(await find(CUFF_ADDRESS), timeout=STEP) as client:
        await client.start_notify(
            BLOOD_PRESSURE_MEASUREMENT, lambda _char, data: received.put_nowait(bytes(data))
        )
        decoded = decode(BLOOD_PRESSURE_MEASUREMENT, await asyncio.wait_for(received.get(), STEP))
    after = cuff.clock.stamp()

    assert decoded.measured_at is not None
    assert before <= decoded.measured_at <= after
    assert decoded.measured_at.tzinfo is None


async def test_device_initiated_link_drop_is_seen_by_the_client(bluez: SimulatedBlueZ) -> None:
    cuff = make_cuff()
    bluez.add_peripheral(cuff)
    dropped = asyncio.Event()

    client = BleakClient(await find(CUFF_ADDRESS), lambda _c: dropped.set(), timeout=STEP)
    await client.connect()
    try:
        assert cuff.connected
        cuff.drop_link()
        await asyncio.wait_for(dropped.wait(), STEP)
        assert not client.is_connected
        assert not cuff.connected
    finally:
        await client.disconnect()

    # The device advertises again and can be found and reconnected.
    async with BleakClient(await find(CUFF_ADDRESS), timeout=STEP) as again:
        assert again.services.get_service(BLOOD_PRESSURE_SERVICE) is not None


async def test_client_with_only_an_address_and_pairing(bluez: SimulatedBlueZ) -> None:
    bluez.add_peripheral(make_cuff())

    # bleak scans on its own for a bare address, then sets Trusted and calls Pair.
    async with BleakClient(CUFF_ADDRESS, timeout=STEP, pair=True) as client:
        assert client.is_connected
        assert client.services.get_service(BLOOD_PRESSURE_SERVICE) is not None


async def test_reads_and_writes_reach_the_model(bluez: SimulatedBlueZ) -> None:
    thing = BatteryPeripheral()
    bluez.add_peripheral(thing)

    async with BleakClient(await find(OTHER_ADDRESS), timeout=STEP) as client:
        assert await client.read_gatt_char(BATTERY_LEVEL) == bytearray(b"\x64")
        await client.write_gatt_char(BATTERY_LEVEL, b"\x2a", response=True)
        assert thing.writes == [b"\x2a"]
        assert await client.read_gatt_char(BATTERY_LEVEL) == bytearray(b"\x2a")
        with pytest.raises(BleakGATTProtocolError) as excinfo:
            await client.write_gatt_char(BATTERY_LEVEL, b"\x01\x02", response=True)
        assert excinfo.value.code == 0x80


async def test_notify_is_only_sent_to_a_subscribed_central(bluez: SimulatedBlueZ) -> None:
    thing = BatteryPeripheral()
    bluez.add_peripheral(thing)
    received: asyncio.Queue[bytes] = asyncio.Queue()

    assert not await thing.notify(BATTERY_LEVEL, b"\x10")  # nobody connected
    async with BleakClient(await find(OTHER_ADDRESS), timeout=STEP) as client:
        assert not await thing.notify(BATTERY_LEVEL, b"\x11")  # connected, not subscribed
        await client.start_notify(BATTERY_LEVEL, lambda _c, d: received.put_nowait(bytes(d)))
        assert thing.is_notifying(BATTERY_LEVEL)
        assert await thing.notify(BATTERY_LEVEL, b"\x12")
        assert await asyncio.wait_for(received.get(), STEP) == b"\x12"
        await client.stop_notify(BATTERY_LEVEL)
        assert not thing.is_notifying(BATTERY_LEVEL)
    assert received.empty()


async def test_second_simulator_on_the_same_bus_fails_clearly(
    bluez: SimulatedBlueZ, dbus_address: str
) -> None:
    second = SimulatedBlueZ(dbus_address)
    with pytest.raises(BlueZNameTaken, match="already owned"):
        await second.start()

    # The first one still answers.
    bluez.add_peripheral(make_cuff())
    assert (await find(CUFF_ADDRESS)).address == CUFF_ADDRESS


async def test_missing_dbus_daemon_says_how_to_install_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))

    with pytest.raises(DbusDaemonMissing) as excinfo:
        async with PrivateDbusDaemon(tmp_path):
            pass

    message = str(excinfo.value)
    assert "\n" not in message
    assert "sudo apt-get install dbus" in message
    assert isinstance(excinfo.value, RuntimeError)


async def test_long_work_dir_falls_back_to_a_short_socket_path(tmp_path: Path) -> None:
    # A socket path of 104 bytes: within the kernel's limit (107), beyond libdbus' (99).
    run_dir_and_socket = len("/dbus-12345678/bus.sock")
    deep = tmp_path / ("d" * (104 - len(os.fsencode(tmp_path)) - 1 - run_dir_and_socket))
    async with PrivateDbusDaemon(deep) as daemon:
        socket_path = daemon.address.split("path=", 1)[1].split(",", 1)[0]
        assert len(os.fsencode(socket_path)) <= MAX_SOCKET_PATH
        assert socket_exists(socket_path)
    assert not socket_exists(socket_path)


async def test_random_cuff_sends_plausible_readings(bluez: SimulatedBlueZ) -> None:
    cuff = SimulatedBloodPressureCuff(
        CUFF_ADDRESS, "BP Cuff", None, interval_s=0.001, state_file=None, seed=7
    )
    bluez.add_peripheral(cuff)
    received: asyncio.Queue[bytes] = asyncio.Queue()

    async with BleakClient(await find(CUFF_ADDRESS), timeout=STEP) as client:
        await client.start_notify(
            BLOOD_PRESSURE_MEASUREMENT, lambda _char, data: received.put_nowait(bytes(data))
        )
        readings = [
            decode(BLOOD_PRESSURE_MEASUREMENT, await asyncio.wait_for(received.get(), STEP))
            for _ in range(20)
        ]

    assert cuff.pending is None
    assert cuff.delivered >= 20
    for m in readings:
        assert 110 <= m.values["systolic"].value <= 150
        assert 65 <= m.values["diastolic"].value <= 95
        assert m.values["diastolic"].value < m.values["systolic"].value
        assert 55 <= m.values["pulse_rate"].value <= 95
        assert m.measured_at is not None


async def test_unpair_removes_the_device_until_it_is_heard_again(bluez: SimulatedBlueZ) -> None:
    bluez.add_peripheral(make_cuff())

    client = BleakClient(await find(CUFF_ADDRESS), timeout=STEP, pair=True)
    await client.connect()
    await client.disconnect()
    await client.unpair()  # Adapter1.RemoveDevice

    again = await find(CUFF_ADDRESS)
    async with BleakClient(again, timeout=STEP) as fresh:
        assert fresh.is_connected


async def test_simulated_radio_points_bleak_at_the_simulator(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SYSTEM_BUS_ENV, "unix:path=/nonexistent/system_bus_socket")
    monkeypatch.setattr(BlueZFeatures, "checked_bluez_version", False)
    cuff = make_cuff()

    async with SimulatedRadio(tmp_path, [cuff]) as radio:
        assert os.environ[SYSTEM_BUS_ENV] == radio.address
        assert BlueZFeatures.checked_bluez_version and BlueZFeatures.supported_version
        async with BleakClient(await find(CUFF_ADDRESS), timeout=STEP) as client:
            assert client.is_connected
            assert cuff.connected

    assert os.environ[SYSTEM_BUS_ENV] == "unix:path=/nonexistent/system_bus_socket"
    assert not BlueZFeatures.checked_bluez_version
    assert not cuff.connected


def test_script_rows_become_measurements() -> None:
    rows = [
        {"systolic": 190, "diastolic": 100, "pulse_rate": 90, "measured_at": "2026-11-20T08:00"},
        {"systolic": 120.5, "diastolic": 80, "measured_at": datetime(2026, 11, 21, 9, 30)},
        {"systolic": 118, "diastolic": 76, "user_index": 2},
    ]

    first, second, third = script_to_measurements("blood_pressure", rows)

    assert first.kind == "blood_pressure"
    assert first.values == {
        "systolic": Quantity(value=190, unit="mm[Hg]"),
        "diastolic": Quantity(value=100, unit="mm[Hg]"),
        "pulse_rate": Quantity(value=90, unit="/min"),
    }
    assert first.measured_at == datetime(2026, 11, 20, 8, 0)
    assert second.values["systolic"].value == 120.5
    assert second.measured_at == datetime(2026, 11, 21, 9, 30)
    assert third.measured_at is None
    assert third.user_index == 2


@pytest.mark.parametrize(
    ("profile_name", "row", "message"),
    [
        ("blood_pressure", {"systolic": 120, "weight": 80}, r"row 1: unknown value 'weight'"),
        ("blood_pressure", {"systolic": "high"}, r"row 1: value 'systolic' must be a number"),
        ("blood_pressure", {"systolic": True}, r"value 'systolic' must be a number"),
        ("blood_pressure", {"systolic": 120, "measured_at": "yesterday"}, r"'measured_at'"),
        (
            "blood_pressure",
            {"systolic": 120, "measured_at": "2026-11-20T08:00:00+01:00"},
            r"'measured_at'.*offset",
        ),
        ("blood_pressure", {"measured_at": "2026-11-20T08:00:00"}, r"row 1: no values"),
        ("blood_pressure", {"systolic": 120, "user_index": -1}, r"'user_index'"),
        ("toaster", {"systolic": 120}, r"unknown profile 'toaster'"),
    ],
)
def test_bad_script_rows_name_the_field(profile_name: str, row: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        script_to_measurements(profile_name, [row])


def test_cuff_rejects_a_script_it_cannot_send() -> None:
    cuff_pressure_only = script_to_measurements("blood_pressure", [{"cuff_pressure": 80}])
    with pytest.raises(ValueError, match="systolic"):
        SimulatedBloodPressureCuff(
            CUFF_ADDRESS, "BP Cuff", cuff_pressure_only, interval_s=1, state_file=None
        )
