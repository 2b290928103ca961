"""The simulated health devices, driven by bleak's real client: behaviour a gateway relies on."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from bleak import BleakClient, BleakScanner
from bleak.exc import BleakDBusError, BleakGATTProtocolError

from devices.gatt import (
    BodyCompositionAssembler,
    decode,
    decode_battery_level,
    decode_current_time,
    encode_current_time,
)
from devices.gatt.racp import (
    RacpOpCode,
    RacpResponse,
    RacpResponseCode,
    abort_operation,
    decode_racp_response,
    delete_all_records,
    encode_racp_request,
    report_all_records,
    report_number_of_records,
    report_records_from,
)
from devices.profiles import (
    BATTERY_LEVEL,
    BLOOD_PRESSURE_MEASUREMENT,
    BODY_COMPOSITION_MEASUREMENT,
    BODY_SENSOR_LOCATION,
    CURRENT_TIME,
    GLUCOSE_MEASUREMENT,
    GLUCOSE_MEASUREMENT_CONTEXT,
    HEART_RATE_CONTROL_POINT,
    HEART_RATE_MEASUREMENT,
    PLX_CONTINUOUS_MEASUREMENT,
    RECORD_ACCESS_CONTROL_POINT,
    TEMPERATURE_TYPE,
    WEIGHT_MEASUREMENT,
)
from devices.sim.blood_pressure_cuff import SimulatedBloodPressureCuff
from devices.sim.bluez import SimulatedBlueZ
from devices.sim.body_composition_scale import SimulatedBodyCompositionScale
from devices.sim.glucose_meter import SimulatedGlucoseMeter
from devices.sim.health_device import Faults
from devices.sim.heart_rate_strap import SimulatedHeartRateStrap
from devices.sim.pulse_oximeter import SimulatedPulseOximeter
from devices.sim.script import script_to_measurements
from devices.sim.thermometer import SimulatedThermometer
from devices.sim.weight_scale import SimulatedWeightScale
from gateway.simulation import SIMULATORS
from tests.conftest import STEP

ADDRESS = "C4:7C:8D:6A:77:01"


async def connect(address: str = ADDRESS) -> BleakClient:
    device = await BleakScanner.find_device_by_address(address, timeout=STEP)
    assert device is not None, "not advertising"
    client = BleakClient(device, timeout=STEP)
    await client.connect()
    return client


class Inbox:
    """Values of one or more characteristics, in arrival order."""

    def __init__(self) -> None:
        self.values: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue()

    def callback(self, uuid: str) -> Callable[[Any, bytearray], None]:
        return lambda _char, data: self.values.put_nowait((uuid, bytes(data)))

    async def next(self) -> tuple[str, bytes]:
        return await asyncio.wait_for(self.values.get(), STEP)

    async def subscribe(self, client: BleakClient, *uuids: str) -> None:
        for uuid in uuids:
            await client.start_notify(uuid, self.callback(uuid))


def script(profile: str, *rows: dict) -> list:
    return script_to_measurements(profile, list(rows))


# -- clocks, battery, pairing -------------------------------------------------------------------


async def test_current_time_reads_the_offset_clock_and_a_write_sets_it(
    bluez: SimulatedBlueZ,
) -> None:
    cuff = SimulatedBloodPressureCuff(ADDRESS, "Cuff", [], 1.0, clock_offset_s=-5400)
    bluez.add_peripheral(cuff)
    client = await connect()
    try:
        shown = decode_current_time(bytes(await client.read_gatt_char(CURRENT_TIME)))
        assert shown is not None
        assert abs((shown - datetime.now()).total_seconds() + 5400) < 2
        assert decode_battery_level(bytes(await client.read_gatt_char(BATTERY_LEVEL))) == 100

        await client.write_gatt_char(CURRENT_TIME, encode_current_time(datetime.now()), True)
        shown = decode_current_time(bytes(await client.read_gatt_char(CURRENT_TIME)))
        assert shown is not None and abs((shown - datetime.now()).total_seconds()) < 2
        assert cuff.time_writes == 1

        with pytest.raises(BleakGATTProtocolError) as wrong_length:
            await client.write_gatt_char(CURRENT_TIME, b"\x00\x01", True)
        assert wrong_length.value.code == 0x0D
    finally:
        await client.disconnect()


async def test_a_strap_keeps_no_clock(bluez: SimulatedBlueZ) -> None:
    bluez.add_peripheral(SimulatedHeartRateStrap(ADDRESS, "Strap", None, 1.0))
    client = await connect()
    try:
        assert client.services.get_characteristic(CURRENT_TIME) is None
        assert await client.read_gatt_char(BODY_SENSOR_LOCATION) == bytearray(b"\x01")  # chest
    finally:
        await client.disconnect()


async def test_pairing_is_demanded_as_bluetoothd_reports_it(bluez: SimulatedBlueZ) -> None:
    cuff = SimulatedBloodPressureCuff(ADDRESS, "Cuff", [], 1.0, requires_pairing=True)
    cuff.accepts_pairing = False
    bluez.add_peripheral(cuff)
    client = await connect()
    try:
        assert decode_battery_level(bytes(await client.read_gatt_char(BATTERY_LEVEL))) == 100
        with pytest.raises(BleakDBusError) as refused:
            await client.read_gatt_char(CURRENT_TIME)
        assert (refused.value.dbus_error, refused.value.dbus_error_details) == (
            "org.bluez.Error.NotPermitted",
            "Not paired",
        )
        with pytest.raises(BleakDBusError):
            await client.start_notify(BLOOD_PRESSURE_MEASUREMENT, lambda _c, _d: None)
        with pytest.raises(BleakDBusError) as rejected:
            await client.pair()
        assert rejected.value.dbus_error == "org.bluez.Error.AuthenticationFailed"

        cuff.accepts_pairing = True
        await client.pair()
        assert cuff.bonded
        await client.read_gatt_char(CURRENT_TIME)
    finally:
        await client.disconnect()


# -- connect, measure, disconnect ---------------------------------------------------------------


async def test_cycle_mode_sleeps_advertises_after_a_measurement_bursts_and_hangs_up(
    bluez: SimulatedBlueZ,
) -> None:
    scale = SimulatedWeightScale(
        ADDRESS,
        "Scale",
        script(
            "weight", {"body_weight": 70.0, "user_index": 1}, {"body_weight": 60.0, "user_index": 2}
        ),
        interval_s=0,
        mode="cycle",
        linger_s=0.1,
        advertise_s=5.0,
    )
    bluez.add_peripheral(scale)
    assert not scale.advertising
    assert await BleakScanner.find_device_by_address(ADDRESS, timeout=0.2) is None

    scale.measure()
    scale.measure()
    assert scale.advertising and scale.stored == 2
    gone = asyncio.Event()
    device = await BleakScanner.find_device_by_address(ADDRESS, timeout=STEP)
    assert device is not None
    client = BleakClient(device, lambda _c: gone.set(), timeout=STEP)
    await client.connect()
    try:
        inbox = Inbox()
        await inbox.subscribe(client, WEIGHT_MEASUREMENT)
        readings = [decode(WEIGHT_MEASUREMENT, (await inbox.next())[1]) for _ in range(2)]
        await asyncio.wait_for(gone.wait(), STEP)  # the scale hangs up after its burst
    finally:
        await client.disconnect()

    assert [(r.user_index, r.values["body_weight"].value) for r in readings] == [
        (1, 70.0),
        (2, 60.0),
    ]
    assert all(r.measured_at is not None for r in readings)
    assert scale.stored == 0 and scale.delivered == 2 and scale.pending == 0
    assert not scale.advertising  # asleep until the next measurement
    assert scale.measure() is None  # the script is done


async def test_cycle_mode_stops_advertising_when_nobody_comes(bluez: SimulatedBlueZ) -> None:
    thermometer = SimulatedThermometer(
        ADDRESS, "Thermo", None, 0, mode="cycle", advertise_s=0.05, seed=1
    )
    bluez.add_peripheral(thermometer)
    stopped = asyncio.Event()
    original = thermometer.set_advertising

    def watch(advertising: bool) -> None:
        original(advertising)
        if not advertising:
            stopped.set()

    thermometer.set_advertising = watch  # type: ignore[method-assign]
    thermometer.measure()
    assert thermometer.advertising
    await asyncio.wait_for(stopped.wait(), STEP)

    assert not thermometer.advertising
    assert thermometer.stored == 1  # kept for the next time


async def test_cycle_mode_measures_on_its_own_timer(bluez: SimulatedBlueZ) -> None:
    thermometer = SimulatedThermometer(
        ADDRESS, "Thermo", script("temperature", {"body_temperature": 37.1}), 0.01, mode="cycle"
    )
    bluez.add_peripheral(thermometer)
    client = await connect()  # found once it measured and advertises
    try:
        inbox = Inbox()
        await inbox.subscribe(client, thermometer.MEASUREMENT)
        reading = decode(thermometer.MEASUREMENT, (await inbox.next())[1])
        assert await client.read_gatt_char(TEMPERATURE_TYPE) == bytearray(b"\x03")  # ear
    finally:
        await client.disconnect()
    assert reading.values["body_temperature"].value == pytest.approx(37.1)
    assert "temperature_type" not in reading.status  # told by 0x2A1D instead


async def test_a_link_dropped_mid_burst_keeps_the_rest_stored(bluez: SimulatedBlueZ) -> None:
    cuff = SimulatedBloodPressureCuff(
        ADDRESS,
        "Cuff",
        script("blood_pressure", *({"systolic": s, "diastolic": 80} for s in (120, 121, 122))),
        interval_s=0,
        mode="cycle",
        faults=Faults(drop_link_after=2),
    )
    bluez.add_peripheral(cuff)
    for _ in range(3):
        cuff.measure()
    client = await connect()
    inbox = Inbox()
    try:
        await inbox.subscribe(client, BLOOD_PRESSURE_MEASUREMENT)
        first = [decode(BLOOD_PRESSURE_MEASUREMENT, (await inbox.next())[1]) for _ in range(2)]
    finally:
        await client.disconnect()
    assert cuff.stored == 1 and cuff.advertising  # tries again for a while

    client = await connect()
    try:
        await inbox.subscribe(client, BLOOD_PRESSURE_MEASUREMENT)
        last = decode(BLOOD_PRESSURE_MEASUREMENT, (await inbox.next())[1])
    finally:
        await client.disconnect()
    assert [r.values["systolic"].value for r in [*first, last]] == [120, 121, 122]


async def test_malformed_fault_sends_a_truncated_copy_before_the_good_value(
    bluez: SimulatedBlueZ,
) -> None:
    cuff = SimulatedBloodPressureCuff(
        ADDRESS,
        "Cuff",
        script("blood_pressure", {"systolic": 120, "diastolic": 80}),
        0.01,
        faults=Faults(malformed_every=1),
    )
    bluez.add_peripheral(cuff)
    client = await connect()
    try:
        inbox = Inbox()
        await inbox.subscribe(client, BLOOD_PRESSURE_MEASUREMENT)
        (_, bad), (_, good) = await inbox.next(), await inbox.next()
    finally:
        await client.disconnect()
    assert bad == good[:-1]
    assert decode(BLOOD_PRESSURE_MEASUREMENT, good).values["systolic"].value == 120
    assert cuff.delivered == 1 and cuff.values_sent == 2


# -- profiles -------------------------------------------------------------------------------------


async def test_body_composition_is_split_into_packets_that_join_again(
    bluez: SimulatedBlueZ,
) -> None:
    scale = SimulatedBodyCompositionScale(ADDRESS, "Body", None, 1.0, seed=9)
    bluez.add_peripheral(scale)
    client = await connect()
    try:
        inbox = Inbox()
        await inbox.subscribe(client, BODY_COMPOSITION_MEASUREMENT)
        packets = [(await inbox.next())[1] for _ in range(2)]
    finally:
        await client.disconnect()
    assert all(len(p) <= 20 for p in packets)
    assembler = BodyCompositionAssembler()
    parts = [decode(BODY_COMPOSITION_MEASUREMENT, p) for p in packets]
    assert all(part.status["multiple_packet"] for part in parts)
    (joined,) = [m for part in parts for m in assembler.feed(part)]
    assert joined.user_index == 1
    assert len(joined.values) == 10


async def test_heart_rate_strap_streams_and_resets_energy(bluez: SimulatedBlueZ) -> None:
    strap = SimulatedHeartRateStrap(ADDRESS, "Strap", None, 0.005, seed=2)
    bluez.add_peripheral(strap)
    client = await connect()
    try:
        inbox = Inbox()
        await inbox.subscribe(client, HEART_RATE_MEASUREMENT)
        beats = [decode(HEART_RATE_MEASUREMENT, (await inbox.next())[1]) for _ in range(12)]
        assert strap.energy_expended_kj >= 0
        await client.write_gatt_char(HEART_RATE_CONTROL_POINT, b"\x01", response=True)
        assert strap.energy_expended_kj == 0
        with pytest.raises(BleakGATTProtocolError) as refused:
            await client.write_gatt_char(HEART_RATE_CONTROL_POINT, b"\x02", response=True)
        assert refused.value.code == 0x80
    finally:
        await client.disconnect()
    assert all(48 <= b.values["heart_rate"].value <= 175 for b in beats)
    assert all(b.status["sensor_contact"] == "detected" and b.status["rr_intervals"] for b in beats)
    assert "energy_expended" in beats[9].values
    assert all(b.measured_at is None for b in beats)
    with pytest.raises(ValueError, match="connected"):
        SimulatedHeartRateStrap(ADDRESS, "Strap", None, 1.0, mode="cycle")


async def test_pulse_oximeter_spot_checks_and_continuous_stream(bluez: SimulatedBlueZ) -> None:
    oximeter = SimulatedPulseOximeter(
        ADDRESS, "Oxi", script("spo2", {"spo2": 96, "pulse_rate": 61}), 0.005, continuous=True
    )
    bluez.add_peripheral(oximeter)
    client = await connect()
    try:
        inbox = Inbox()
        await inbox.subscribe(client, oximeter.MEASUREMENT, PLX_CONTINUOUS_MEASUREMENT)
        got = [await inbox.next() for _ in range(4)]
    finally:
        await client.disconnect()
    spot = [decode(u, d) for u, d in got if u == oximeter.MEASUREMENT]
    stream = [decode(u, d) for u, d in got if u == PLX_CONTINUOUS_MEASUREMENT]
    assert [(m.values["spo2"].value, m.measured_at is not None) for m in spot] == [(96, True)]
    assert stream and all(
        93 <= m.values["spo2"].value <= 99 and m.measured_at is None for m in stream
    )


# -- glucose meter and RACP -----------------------------------------------------------------------


class Racp:
    """A raw RACP client over bleak, for checking the meter's side of the procedure."""

    def __init__(self, client: BleakClient) -> None:
        self.client = client
        self.inbox = Inbox()

    async def start(self, context: bool = True) -> None:
        uuids = [GLUCOSE_MEASUREMENT, RECORD_ACCESS_CONTROL_POINT]
        if context:
            uuids.insert(1, GLUCOSE_MEASUREMENT_CONTEXT)
        await self.inbox.subscribe(self.client, *uuids)

    async def ask(self, request: Any) -> tuple[list[tuple[str, Any]], RacpResponse]:
        await self.client.write_gatt_char(
            RECORD_ACCESS_CONTROL_POINT, encode_racp_request(request), response=True
        )
        return await self.collect()

    async def collect(self) -> tuple[list[tuple[str, Any]], RacpResponse]:
        values = []
        while True:
            uuid, data = await self.inbox.next()
            if uuid == RECORD_ACCESS_CONTROL_POINT:
                return values, decode_racp_response(data)
            values.append((uuid, decode(uuid, data)))


def meter(**kwargs: Any) -> SimulatedGlucoseMeter:
    rows = [
        {"glucose": 101, "meal": "preprandial"},
        {"glucose": 102},
        {"glucose": 103, "meal": "postprandial", "sample_location": "alternate_site_test"},
    ]
    return SimulatedGlucoseMeter(ADDRESS, "Meter", script("glucose", *rows), 0, **kwargs)


async def test_racp_reports_records_with_their_contexts(bluez: SimulatedBlueZ) -> None:
    bluez.add_peripheral(meter())
    client = await connect()
    try:
        racp = Racp(client)
        await racp.start()
        values, done = await racp.ask(report_all_records())
        later, later_done = await racp.ask(report_records_from(3))
        _, counted = await racp.ask(report_number_of_records(2))
    finally:
        await client.disconnect()

    kinds = [(m.kind, m.status["sequence_number"]) for _, m in values]
    assert kinds == [
        ("glucose", 1),
        ("glucose_context", 1),
        ("glucose", 2),
        ("glucose", 3),
        ("glucose_context", 3),
    ]
    assert [m.status["context_follows"] for _, m in values if m.kind == "glucose"] == [
        True,
        False,
        True,
    ]
    assert values[4][1].status["meal"] == "postprandial"
    assert values[3][1].status["sample_location"] == "alternate_site_test"
    assert done == RacpResponse(
        request_op_code=RacpOpCode.REPORT_STORED_RECORDS, response_code=RacpResponseCode.SUCCESS
    )
    assert [m.status["sequence_number"] for _, m in later if m.kind == "glucose"] == [3]
    assert later_done.response_code == RacpResponseCode.SUCCESS
    assert counted.number_of_records == 2


async def test_racp_without_context_notifications_sends_no_context(bluez: SimulatedBlueZ) -> None:
    bluez.add_peripheral(meter())
    client = await connect()
    try:
        racp = Racp(client)
        await racp.start(context=False)
        values, _ = await racp.ask(report_all_records())
    finally:
        await client.disconnect()
    assert [m.kind for _, m in values] == ["glucose"] * 3
    assert not any(m.status["context_follows"] for _, m in values)


async def test_racp_answers_no_records_errors_delete_and_abort(bluez: SimulatedBlueZ) -> None:
    glucose = meter(record_interval_s=0.2)
    bluez.add_peripheral(glucose)
    client = await connect()
    try:
        racp = Racp(client)
        await racp.start()
        _, none = await racp.ask(report_records_from(40))
        assert none.response_code == RacpResponseCode.NO_RECORDS_FOUND
        # A reserved op code: the meter answers with a response code, the write succeeds.
        await client.write_gatt_char(RECORD_ACCESS_CONTROL_POINT, b"\x09\x01", response=True)
        _, unsupported = await racp.collect()
        assert unsupported == RacpResponse(
            request_op_code=0x09, response_code=RacpResponseCode.OP_CODE_NOT_SUPPORTED
        )

        # A slow report: a second request is refused, an abort stops it.
        await client.write_gatt_char(
            RECORD_ACCESS_CONTROL_POINT, encode_racp_request(report_all_records()), response=True
        )
        with pytest.raises(BleakGATTProtocolError) as busy:
            await client.write_gatt_char(
                RECORD_ACCESS_CONTROL_POINT,
                encode_racp_request(report_all_records()),
                response=True,
            )
        assert busy.value.code == 0x80  # Procedure Already In Progress
        sent, aborted = await racp.ask(abort_operation())
        assert aborted == RacpResponse(
            request_op_code=RacpOpCode.ABORT_OPERATION, response_code=RacpResponseCode.SUCCESS
        )
        assert len([m for _, m in sent if m.kind == "glucose"]) < 3
        assert not glucose.busy()

        _, deleted = await racp.ask(delete_all_records())
        assert deleted.response_code == RacpResponseCode.SUCCESS
        assert glucose.records == []
    finally:
        await client.disconnect()


async def test_racp_needs_indications_enabled(bluez: SimulatedBlueZ) -> None:
    bluez.add_peripheral(meter())
    client = await connect()
    try:
        with pytest.raises(BleakGATTProtocolError) as refused:
            await client.write_gatt_char(
                RECORD_ACCESS_CONTROL_POINT,
                encode_racp_request(report_all_records()),
                response=True,
            )
        assert refused.value.code == 0x81  # CCCD improperly configured
    finally:
        await client.disconnect()


async def test_meter_without_sequence_filter_refuses_it(bluez: SimulatedBlueZ) -> None:
    bluez.add_peripheral(meter(supports_sequence_filter=False))
    client = await connect()
    try:
        racp = Racp(client)
        await racp.start()
        _, refused = await racp.ask(report_records_from(2))
        values, done = await racp.ask(report_all_records())
    finally:
        await client.disconnect()
    assert refused.response_code == RacpResponseCode.OPERATOR_NOT_SUPPORTED
    assert done.response_code == RacpResponseCode.SUCCESS and len(values) == 5


async def test_random_meter_keeps_numbering_across_restarts(
    bluez: SimulatedBlueZ, tmp_path: Path
) -> None:
    state = tmp_path / "meter.json"
    first = SimulatedGlucoseMeter(ADDRESS, "Meter", None, 0, state_file=state, mode="cycle", seed=1)
    bluez.add_peripheral(first)
    first.measure()
    first.measure()
    await bluez.remove_peripheral(first)
    assert json.loads(state.read_text())["next_sequence"] == 3

    second = SimulatedGlucoseMeter(
        ADDRESS, "Meter", None, 0, state_file=state, mode="cycle", seed=1
    )
    bluez.add_peripheral(second)
    second.measure()
    assert [r.sequence for r in second.records] == [3]


async def test_connected_meter_notifies_a_new_record_at_once(bluez: SimulatedBlueZ) -> None:
    glucose = SimulatedGlucoseMeter(ADDRESS, "Meter", None, 0.01, seed=4)
    bluez.add_peripheral(glucose)
    client = await connect()
    try:
        inbox = Inbox()
        await inbox.subscribe(client, GLUCOSE_MEASUREMENT)
        first = decode(GLUCOSE_MEASUREMENT, (await inbox.next())[1])
        second = decode(GLUCOSE_MEASUREMENT, (await inbox.next())[1])
    finally:
        await client.disconnect()
    assert second.status["sequence_number"] == first.status["sequence_number"] + 1
    assert 72 <= first.values["glucose"].value <= 190


# -- scripts for every profile --------------------------------------------------------------------

SCRIPTS: dict[str, dict[str, Any]] = {
    "blood_pressure": {"systolic": 128, "diastolic": 82, "pulse_rate": 71},
    "weight": {"body_weight": 82.4, "bmi": 25.4, "height": 1.8, "user_index": 2},
    "body_composition": {
        "body_fat_percentage": 21.5,
        "body_weight": 82.4,
        "impedance": 512.3,
        "user_index": 1,
    },
    "glucose": {"glucose": 104, "meal": "fasting", "sample_type": "capillary_plasma"},
    "temperature": {"body_temperature": 38.2, "temperature_type": "mouth"},
    "heart_rate": {"heart_rate": 64, "energy_expended": 12},
    "spo2": {"spo2": 97, "pulse_rate": 66},
}


@pytest.mark.parametrize("profile", sorted(SIMULATORS))
def test_every_profile_plays_a_script_row(profile: str) -> None:
    row = {**SCRIPTS[profile], "measured_at": "2026-11-20T08:00:00"}
    (reading,) = script_to_measurements(profile, [row])
    device = SIMULATORS[profile](ADDRESS, "Device", [reading], 1.0)  # builds the bytes
    assert device.pending == 1
    for name, value in SCRIPTS[profile].items():
        if name == "user_index":
            assert reading.user_index == value
        elif isinstance(value, str):
            assert reading.status[name] == value
        else:
            assert reading.values[name].value == value
    assert reading.measured_at == datetime(2026, 11, 20, 8, 0)


def test_script_rows_name_bad_details() -> None:
    with pytest.raises(ValueError, match="'meal' must be one of"):
        script_to_measurements("glucose", [{"glucose": 100, "meal": "brunch"}])
    with pytest.raises(ValueError, match="unknown value 'meal'"):
        script_to_measurements("blood_pressure", [{"systolic": 120, "meal": "fasting"}])


def test_a_script_a_device_cannot_send_fails_at_construction() -> None:
    # BMI without height cannot be encoded by a weight scale.
    bad = script_to_measurements("weight", [{"body_weight": 80, "bmi": 24}])
    with pytest.raises(ValueError, match="height"):
        SimulatedWeightScale(ADDRESS, "Scale", bad, 1.0)


def test_clock_stamps_whole_seconds_with_its_offset() -> None:
    cuff = SimulatedBloodPressureCuff(ADDRESS, "Cuff", [], 1.0, clock_offset_s=90)
    stamp = cuff.clock.stamp()
    assert stamp.microsecond == 0
    assert abs((stamp - datetime.now()) - timedelta(seconds=90)) < timedelta(seconds=2)


def test_heart_rate_strap_plays_a_script_without_energy_values() -> None:
    rows = script_to_measurements("heart_rate", [{"heart_rate": 72}, {"heart_rate": 75}])
    strap = SimulatedHeartRateStrap(ADDRESS, "Strap", rows, 1.0)
    assert strap.pending == 2
