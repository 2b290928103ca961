"""BleSource reading every kind of simulated device the way real ones behave.

bleak's real BlueZ backend against the simulated BlueZ on a private dbus-daemon; device models
from devices.sim; no mocks. Each test waits on readings or status with a deadline.
"""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from devices.gatt.racp import RacpFilterType, RacpOpCode, RacpOperator
from devices.profiles import (
    BLOOD_PRESSURE_MEASUREMENT,
    GLUCOSE_MEASUREMENT,
    INTERMEDIATE_CUFF_PRESSURE,
    PLX_CONTINUOUS_MEASUREMENT,
    PLX_SPOT_CHECK_MEASUREMENT,
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
from devices.source import BleSource, DeviceStatus, DeviceTarget
from devices.users import PeopleByWeight, PersonByWeight
from gateway.models import Measurement
from tests.conftest import STEP, Collector, SourceRunner, watch_logs

FAST = {"scan_timeout": 2.0, "backoff_initial": 0.01, "backoff_max": 0.05}
ADDRESSES = {
    "blood_pressure": "C4:7C:8D:6A:00:01",
    "weight": "C4:7C:8D:6A:00:02",
    "body_composition": "C4:7C:8D:6A:00:03",
    "glucose": "C4:7C:8D:6A:00:04",
    "temperature": "C4:7C:8D:6A:00:05",
    "spo2": "C4:7C:8D:6A:00:06",
    "heart_rate": "C4:7C:8D:6A:00:07",
}


def target(profile: str, ref: str | None = None) -> DeviceTarget:
    return DeviceTarget(ref=ref or profile, address=ADDRESSES[profile], profile=profile)


def rows(profile: str, *values: dict) -> list[Measurement]:
    return script_to_measurements(profile, list(values))


def bp(*systolics: int) -> list[Measurement]:
    return rows(
        "blood_pressure", *({"systolic": s, "diastolic": 80, "pulse_rate": 70} for s in systolics)
    )


def glucose_rows(count: int) -> list[Measurement]:
    meals = ("preprandial", "postprandial")
    return rows(
        "glucose",
        *(
            {"glucose": 90 + i, **({"meal": meals[i % 2]} if i % 3 != 2 else {})}
            for i in range(count)
        ),
    )


async def status_when(source: BleSource, predicate, timeout: float = STEP) -> list[DeviceStatus]:
    async with asyncio.timeout(timeout):
        return await source.wait_until(predicate)


# -- how it must be shown ---------------------------------------------------------------------


async def test_bp_burst_after_reconnect_carries_the_clock_offset_of_its_stamps(
    bluez: SimulatedBlueZ, sources: SourceRunner
) -> None:
    # A cuff whose clock is an hour behind; it measures, advertises, bursts and hangs up.
    cuff = SimulatedBloodPressureCuff(
        ADDRESSES["blood_pressure"],
        "BP Cuff",
        bp(121, 122, 123, 124, 125),
        interval_s=0,
        clock_offset_s=-3600,
        mode="cycle",
        linger_s=0.1,
    )
    bluez.add_peripheral(cuff)
    measured_at_gateway: list[datetime] = []

    def measure() -> None:
        measured_at_gateway.append(datetime.now())
        assert cuff.measure() is not None

    measure()
    measure()  # two readings stored before the gateway ever saw the cuff
    collected = Collector()
    source = BleSource([target("blood_pressure")], collected, **FAST)
    sources.start(source)

    first = await collected.wait_for(2)
    # The cuff hangs up after its burst, then measures three more with its corrected clock.
    await status_when(source, lambda s: not s[0].connected and s[0].connects == 1)
    assert not cuff.advertising
    for _ in range(3):
        measure()
    items = await collected.wait_for(5)
    await status_when(source, lambda s: s[0].connects == 2)
    status = source.status()[0]

    assert collected.values("systolic") == [121, 122, 123, 124, 125]
    assert [r.clock_offset_s for r in first[:2]] == [-3600.0, -3600.0]
    assert [r.clock_offset_s for r in items[2:]] == [0.0, 0.0, 0.0]
    # Correcting each device stamp by its offset gives back when it was measured (to within
    # the burst's length: the simulated cuff never gives two readings the same whole-second
    # stamp, so readings it takes in the same instant are stamped a second apart).
    for reading, when in zip(items, measured_at_gateway, strict=True):
        stamp = reading.measurement.measured_at
        assert stamp is not None
        corrected = stamp - timedelta(seconds=reading.clock_offset_s or 0)
        assert abs((corrected - when).total_seconds()) <= 2 + len(items)
    assert cuff.time_writes == 2  # on each connection
    assert abs(cuff.clock.offset_s) < 2
    assert status.clock_offset_s == 0.0
    assert status.battery_level == 100
    assert (status.readings, status.decode_errors, status.last_error) == (5, 0, None)


async def test_a_clock_ahead_gives_stored_and_new_readings_their_own_offsets(
    bluez: SimulatedBlueZ, sources: SourceRunner
) -> None:
    # Connected mode: a stored reading with the wrong stamp, then readings measured (stamped)
    # after the sync while still connected: the ambiguous case when the clock is ahead.
    stored = rows(
        "blood_pressure",
        {
            "systolic": 131,
            "diastolic": 80,
            "measured_at": (datetime.now() + timedelta(seconds=595))
            .replace(microsecond=0)
            .isoformat(),
        },
    )
    cuff = SimulatedBloodPressureCuff(
        ADDRESSES["blood_pressure"],
        "BP Cuff",
        [*stored, *bp(132, 133)],
        interval_s=0.05,
        clock_offset_s=600,
    )
    bluez.add_peripheral(cuff)
    collected = Collector()
    sources.start(BleSource([target("blood_pressure")], collected, **FAST))

    items = await collected.wait_for(3)

    assert [r.clock_offset_s for r in items] == [600.0, 0.0, 0.0]


async def test_two_user_scale_delivers_each_users_index(
    bluez: SimulatedBlueZ, sources: SourceRunner
) -> None:
    scale = SimulatedWeightScale(
        ADDRESSES["weight"],
        "Shared scale",
        rows(
            "weight",
            {"body_weight": 82.4, "bmi": 25.4, "height": 1.80, "user_index": 1},
            {"body_weight": 63.1, "bmi": 22.9, "height": 1.66, "user_index": 2},
            {"body_weight": 82.2, "user_index": 1},
            {"body_weight": 63.3, "user_index": 2},
        ),
        interval_s=0,
        mode="cycle",
        linger_s=0.1,
    )
    composition = SimulatedBodyCompositionScale(
        ADDRESSES["body_composition"], "Body scale", None, interval_s=0, mode="cycle", seed=3
    )
    bluez.add_peripheral(scale)
    bluez.add_peripheral(composition)
    for _ in range(4):
        scale.measure()
    composition.measure()  # user 1
    composition.measure()  # user 2
    collected = Collector()
    source = BleSource([target("weight"), target("body_composition")], collected, **FAST)
    sources.start(source)

    await collected.wait_until(
        lambda items: (
            len([r for r in items if r.target.ref == "weight"]) == 4
            and len([r for r in items if r.target.ref == "body_composition"]) == 2
        )
    )

    weights = collected.of("weight")
    assert [
        (r.measurement.user_index, r.measurement.values["body_weight"].value) for r in weights
    ] == [
        (1, 82.4),
        (2, 63.1),
        (1, 82.2),
        (2, 63.3),
    ]
    assert weights[0].measurement.values["bmi"].value == 25.4
    bodies = collected.of("body_composition")
    assert [r.measurement.user_index for r in bodies] == [1, 2]
    for reading in bodies:
        # Split into two indications at the default MTU and joined again: all ten values.
        assert reading.measurement.status["packets"] == 2
        assert "incomplete" not in reading.measurement.status
        assert len(reading.measurement.values) == 10
    weight_1, weight_2 = (r.measurement.values["body_weight"].value for r in bodies)
    assert 81 < weight_1 < 84 and 61 < weight_2 < 65


async def test_racp_download_resumes_after_a_disconnect_without_loss_or_duplicates(
    bluez: SimulatedBlueZ, sources: SourceRunner, tmp_path: Path
) -> None:
    # Eight stored records (1, 2, 4, 5, 7, 8 with a context); the link drops after six values:
    # records 1 to 3, and the measurement of record 4 without its context.
    meter = SimulatedGlucoseMeter(
        ADDRESSES["glucose"],
        "Glucose meter",
        glucose_rows(8),
        interval_s=0,
        record_interval_s=0.01,
        faults=Faults(drop_link_after=6),
    )
    bluez.add_peripheral(meter)
    state_dir = tmp_path / "devices"
    collected = Collector()
    source = BleSource([target("glucose")], collected, state_dir=state_dir, **FAST)
    task = sources.start(source)

    items = await collected.wait_for(8)
    await status_when(source, lambda s: s[0].connects == 2)

    sequences = [r.measurement.status["sequence_number"] for r in items]
    assert sequences == [1, 2, 3, 4, 5, 6, 7, 8]
    assert all(r.measurement.kind == "glucose" for r in items)
    assert all(r.characteristic == GLUCOSE_MEASUREMENT for r in items)
    assert collected.values("glucose") == [90, 91, 92, 93, 94, 95, 96, 97]
    # Each record that had a context got it joined, including the one cut off at the drop.
    with_context = [
        r.measurement.status["sequence_number"] for r in items if "context" in r.measurement.status
    ]
    assert with_context == [1, 2, 4, 5, 7, 8]
    assert items[1].measurement.status["context"]["meal"] == "postprandial"
    assert not any(r.measurement.status.get("context_missing") for r in items)
    # The meter sent record 4 twice (its context was lost with the link); it arrived once.
    assert meter.sent_sequences.count(4) == 2
    second_request = meter.racp_requests[1]
    assert second_request is not None
    assert (second_request.operator, second_request.minimum) == (
        RacpOperator.GREATER_THAN_OR_EQUAL_TO,
        4,
    )
    state_file = state_dir / "C47C8D6A0004.json"
    assert json.loads(state_file.read_text()) == {"last_sequence": 8}

    # The gateway restarts: it asks only for what is newer, and gets nothing again.
    await sources.stop(task)
    again = Collector()
    restarted = BleSource([target("glucose")], again, state_dir=state_dir, **FAST)
    with watch_logs() as logs:
        sources.start(restarted)
        await logs.wait_for("ble.no_new_records")
    last = meter.racp_requests[-1]
    assert last is not None
    assert (last.op_code, last.filter_type, last.minimum) == (
        RacpOpCode.REPORT_STORED_RECORDS,
        RacpFilterType.SEQUENCE_NUMBER,
        9,
    )
    # A new measurement while connected comes straight through.
    meter.record(rows("glucose", {"glucose": 120, "meal": "fasting"})[0])
    fresh = await again.wait_for(1)
    assert [r.measurement.status["sequence_number"] for r in fresh] == [9]
    assert fresh[0].measurement.status["context"]["meal"] == "fasting"
    assert json.loads(state_file.read_text()) == {"last_sequence": 9}


async def test_link_drop_mid_burst_loses_nothing_already_received(
    bluez: SimulatedBlueZ, sources: SourceRunner
) -> None:
    cuff = SimulatedBloodPressureCuff(
        ADDRESSES["blood_pressure"],
        "BP Cuff",
        bp(141, 142, 143, 144, 145, 146),
        interval_s=0,
        mode="cycle",
        linger_s=0.1,
        faults=Faults(drop_link_after=3),
    )
    composition = SimulatedBodyCompositionScale(
        ADDRESSES["body_composition"],
        "Body scale",
        None,
        interval_s=0,
        mode="cycle",
        faults=Faults(drop_link_after=1),  # after the first of two packets
        seed=5,
    )
    bluez.add_peripheral(cuff)
    bluez.add_peripheral(composition)
    for _ in range(6):
        cuff.measure()
    composition.measure()
    collected = Collector()
    source = BleSource([target("blood_pressure"), target("body_composition")], collected, **FAST)
    sources.start(source)

    with watch_logs() as logs:
        await collected.wait_until(
            lambda items: (
                len([r for r in items if r.target.ref == "blood_pressure"]) == 6
                and len([r for r in items if r.target.ref == "body_composition"]) == 1
            )
        )
        statuses = await status_when(source, lambda s: all(d.connects == 2 for d in s))

    # The three readings before the drop were handed on at once; the rest came on reconnect.
    assert collected.values("systolic", "blood_pressure") == [141, 142, 143, 144, 145, 146]
    assert cuff.pending == 0 and cuff.stored == 0
    # The half-received body composition was held back; the scale sent it whole again.
    body = collected.of("body_composition")[0].measurement
    assert body.status["packets"] == 2 and "incomplete" not in body.status
    assert statuses[1].dropped == 1
    assert any(
        e["event"] == "ble.disconnected" and e["reason"] == "disconnected by device"
        for e in logs.entries
    )


async def test_one_device_of_every_kind_at_once(
    bluez: SimulatedBlueZ, sources: SourceRunner, tmp_path: Path
) -> None:
    slow = Faults(discovery_delay_s=0.05)  # so that connection procedures would overlap
    devices = [
        SimulatedBloodPressureCuff(
            ADDRESSES["blood_pressure"], "Cuff", bp(150, 151), 0.02, faults=slow
        ),
        SimulatedWeightScale(ADDRESSES["weight"], "Scale", None, 0.02, faults=slow, seed=1),
        SimulatedBodyCompositionScale(
            ADDRESSES["body_composition"], "Body", None, 0.02, faults=slow, seed=2
        ),
        SimulatedGlucoseMeter(ADDRESSES["glucose"], "Meter", glucose_rows(3), 0.02, faults=slow),
        SimulatedThermometer(
            ADDRESSES["temperature"],
            "Thermometer",
            rows("temperature", {"body_temperature": 38.6}),
            0.02,
            faults=slow,
        ),
        SimulatedPulseOximeter(
            ADDRESSES["spo2"],
            "Oximeter",
            rows("spo2", {"spo2": 97, "pulse_rate": 64}),
            0.02,
            faults=slow,
            continuous=True,
        ),
        SimulatedHeartRateStrap(ADDRESSES["heart_rate"], "Strap", None, 0.02, faults=slow, seed=4),
    ]
    for device in devices:
        bluez.add_peripheral(device)
    collected = Collector()
    targets = [target(profile) for profile in ADDRESSES]
    source = BleSource(targets, collected, state_dir=tmp_path, **FAST)
    sources.start(source)

    def enough(items) -> bool:
        by_ref = {ref: [r for r in items if r.target.ref == ref] for ref in ADDRESSES}
        spo2 = by_ref["spo2"]
        return (
            len(by_ref["blood_pressure"]) >= 2
            and len({r.measurement.user_index for r in by_ref["weight"]}) == 2
            and len({r.measurement.user_index for r in by_ref["body_composition"]}) == 2
            and len(by_ref["glucose"]) >= 3
            and len(by_ref["temperature"]) >= 1
            and any(r.characteristic == PLX_SPOT_CHECK_MEASUREMENT for r in spo2)
            and sum(r.characteristic == PLX_CONTINUOUS_MEASUREMENT for r in spo2) >= 3
            and len(by_ref["heart_rate"]) >= 10
        )

    await collected.wait_until(enough)
    statuses = {s.ref: s for s in source.status()}

    # BlueZ got one connection procedure at a time, as the source bounds them.
    assert bluez.connecting_peak == 1
    assert all(s.connected and s.connects == 1 and s.decode_errors == 0 for s in statuses.values())
    assert all(s.battery_level == 100 for s in statuses.values())
    assert statuses["heart_rate"].clock_offset_s is None  # a strap keeps no clock
    assert all(statuses[p].clock_offset_s == 0.0 for p in ADDRESSES if p != "heart_rate")
    assert collected.values("systolic", "blood_pressure") == [150, 151]
    thermometer = collected.of("temperature")[0].measurement
    assert thermometer.values["body_temperature"].value == pytest.approx(38.6)
    assert thermometer.status["temperature_type"] == "ear"  # from Temperature Type (0x2A1D)
    glucose = collected.of("glucose")
    assert [r.measurement.status["sequence_number"] for r in glucose[:3]] == [1, 2, 3]
    beats = collected.of("heart_rate")
    assert all(r.measurement.status["sensor_contact"] == "detected" for r in beats)
    assert all(r.measurement.status["rr_intervals"] for r in beats)
    assert any("energy_expended" in r.measurement.values for r in beats)
    assert not any(
        r.measurement.kind in ("cuff_pressure", "glucose_context") for r in collected.items
    )


# -- connecting ----------------------------------------------------------------------------------


async def test_concurrent_connection_attempts_are_bounded(
    bluez: SimulatedBlueZ, sources: SourceRunner
) -> None:
    slow = Faults(discovery_delay_s=0.1)
    profiles = ("blood_pressure", "weight", "temperature", "spo2")
    models = {
        "blood_pressure": SimulatedBloodPressureCuff,
        "weight": SimulatedWeightScale,
        "temperature": SimulatedThermometer,
        "spo2": SimulatedPulseOximeter,
    }
    for profile in profiles:
        bluez.add_peripheral(models[profile](ADDRESSES[profile], profile, None, 1.0, faults=slow))
    source = BleSource(
        [target(p) for p in profiles], Collector(), max_concurrent_connects=2, **FAST
    )
    sources.start(source)

    await status_when(source, lambda s: all(d.connected for d in s))

    assert bluez.connecting_peak == 2


async def test_slow_service_discovery_times_out_then_connects(
    bluez: SimulatedBlueZ, sources: SourceRunner
) -> None:
    cuff = SimulatedBloodPressureCuff(
        ADDRESSES["blood_pressure"], "BP Cuff", bp(161), 0.01, faults=Faults(discovery_delay_s=2.0)
    )
    bluez.add_peripheral(cuff)
    collected = Collector()
    source = BleSource(
        [target("blood_pressure")], collected, connect_timeout=0.3, connect_attempts=1, **FAST
    )
    sources.start(source)

    failed = await status_when(
        source, lambda s: s[0].last_error is not None and "Timeout" in s[0].last_error
    )
    assert failed[0].connects == 0
    assert not cuff.connected  # the abandoned attempt was torn down
    cuff.discovery_delay_s = 0.2  # slow, but within the timeout
    await collected.wait_for(1)

    assert collected.values("systolic") == [161]
    assert source.status()[0].connects == 1


async def test_pairing_on_demand_with_a_clear_log_line(
    bluez: SimulatedBlueZ, sources: SourceRunner
) -> None:
    cuff = SimulatedBloodPressureCuff(
        ADDRESSES["blood_pressure"], "BP Cuff", bp(171), 0.01, requires_pairing=True
    )
    cuff.accepts_pairing = False  # not in pairing mode yet
    bluez.add_peripheral(cuff)
    collected = Collector()
    source = BleSource([target("blood_pressure")], collected, **FAST)

    with watch_logs() as logs:
        sources.start(source)
        waiting = await status_when(
            source, lambda s: s[0].last_error is not None and "pairing failed" in s[0].last_error
        )
        assert waiting[0].pairing_required
        assert waiting[0].battery_level == 100  # readable without a bond
        cuff.accepts_pairing = True  # the user holds the Bluetooth button
        await collected.wait_for(1)

    assert cuff.bonded
    status = source.status()[0]
    assert not status.pairing_required
    assert collected.values("systolic") == [171]
    required = next(e for e in logs.entries if e["event"] == "ble.pairing_required")
    assert "pairing mode" in required["action"]
    failed = next(e for e in logs.entries if e["event"] == "ble.pairing_failed")
    assert "pairing mode" in failed["action"] and failed["log_level"] == "error"
    assert any(e["event"] == "ble.paired" for e in logs.entries)
    assert status.clock_offset_s == 0.0  # the time was set once the bond was there


async def test_a_bonded_device_is_not_paired_again(
    bluez: SimulatedBlueZ, sources: SourceRunner
) -> None:
    cuff = SimulatedBloodPressureCuff(
        ADDRESSES["blood_pressure"], "BP Cuff", bp(181, 182), 0.01, requires_pairing=True
    )
    bluez.add_peripheral(cuff)
    collected = Collector()
    source = BleSource([target("blood_pressure")], collected, **FAST)

    with watch_logs() as logs:
        sources.start(source)
        await collected.wait_for(1)
        cuff.drop_link()
        await collected.wait_for(2)
        await status_when(source, lambda s: s[0].connects == 2)

    assert logs.events().count("ble.pairing_required") == 1


# -- bad input -----------------------------------------------------------------------------------


def _every_profile(malformed_every: int) -> list[tuple[str, object, int]]:
    faults = Faults(malformed_every=malformed_every)
    return [
        (
            "blood_pressure",
            SimulatedBloodPressureCuff(
                ADDRESSES["blood_pressure"], "c", bp(121, 122, 123), 0.01, faults=faults
            ),
            3,
        ),
        (
            "weight",
            SimulatedWeightScale(ADDRESSES["weight"], "w", None, 0.01, faults=faults, seed=1),
            3,
        ),
        (
            "body_composition",
            SimulatedBodyCompositionScale(
                ADDRESSES["body_composition"], "b", None, 0.01, faults=faults, seed=1
            ),
            3,
        ),
        (
            "glucose",
            SimulatedGlucoseMeter(ADDRESSES["glucose"], "g", glucose_rows(4), 0.01, faults=faults),
            4,
        ),
        (
            "temperature",
            SimulatedThermometer(ADDRESSES["temperature"], "t", None, 0.01, faults=faults, seed=1),
            3,
        ),
        (
            "spo2",
            SimulatedPulseOximeter(ADDRESSES["spo2"], "o", None, 0.01, faults=faults, seed=1),
            3,
        ),
        (
            "heart_rate",
            SimulatedHeartRateStrap(
                ADDRESSES["heart_rate"], "h", None, 0.01, faults=faults, seed=1
            ),
            3,
        ),
    ]


@pytest.mark.parametrize(
    ("profile", "index"), [(p, i) for i, (p, _, _) in enumerate(_every_profile(2))]
)
async def test_malformed_values_are_counted_skipped_and_the_link_stays(
    bluez: SimulatedBlueZ, sources: SourceRunner, profile: str, index: int
) -> None:
    _, device, wanted = _every_profile(3)[index]
    bluez.add_peripheral(device)
    collected = Collector()
    source = BleSource([target(profile)], collected, **FAST)

    with watch_logs() as logs:
        sources.start(source)
        await collected.wait_for(wanted)
        status = source.status()[0]

    assert status.decode_errors >= 1
    assert status.connects == 1 and status.connected
    failures = [e for e in logs.entries if e["event"] == "ble.decode_failed"]
    assert failures
    for entry in failures:
        assert set(entry) == {
            "event",
            "log_level",
            "device",
            "characteristic",
            "payload_length",
            "error",
        }
        assert entry["device"] == profile
    if profile == "glucose":
        sequences = [r.measurement.status["sequence_number"] for r in collected.items]
        assert sequences == sorted(set(sequences))


async def test_intermediate_cuff_pressure_is_never_subscribed_or_passed_on(
    bluez: SimulatedBlueZ, sources: SourceRunner
) -> None:
    cuff = SimulatedBloodPressureCuff(ADDRESSES["blood_pressure"], "BP Cuff", bp(191, 192), 0.05)
    bluez.add_peripheral(cuff)
    collected = Collector()
    sources.start(BleSource([target("blood_pressure")], collected, **FAST))

    await collected.wait_for(2)

    assert cuff.is_notifying(BLOOD_PRESSURE_MEASUREMENT)
    assert not cuff.is_notifying(INTERMEDIATE_CUFF_PRESSURE)
    assert {r.measurement.kind for r in collected.items} == {"blood_pressure"}


# -- glucose records ---------------------------------------------------------------------------


async def test_meter_without_sequence_filter_is_asked_for_all_and_known_records_skipped(
    bluez: SimulatedBlueZ, sources: SourceRunner, tmp_path: Path
) -> None:
    (tmp_path / "C47C8D6A0004.json").write_text(json.dumps({"last_sequence": 3}))
    meter = SimulatedGlucoseMeter(
        ADDRESSES["glucose"], "Meter", glucose_rows(5), 0, supports_sequence_filter=False
    )
    bluez.add_peripheral(meter)
    collected = Collector()
    source = BleSource([target("glucose")], collected, state_dir=tmp_path, **FAST)

    with watch_logs() as logs:
        sources.start(source)
        items = await collected.wait_for(2)
        await logs.wait_for("ble.records_downloaded")

    assert [r.measurement.status["sequence_number"] for r in items] == [4, 5]
    operators = [r.operator for r in meter.racp_requests if r is not None]
    assert operators == [RacpOperator.GREATER_THAN_OR_EQUAL_TO, RacpOperator.ALL_RECORDS]
    assert any(e["event"] == "ble.racp_filter_unsupported" for e in logs.entries)
    assert any(e["event"] == "ble.records_downloaded" for e in logs.entries)


async def test_no_records_found_is_quiet_and_keeps_the_link(
    bluez: SimulatedBlueZ, sources: SourceRunner, tmp_path: Path
) -> None:
    (tmp_path / "C47C8D6A0004.json").write_text(json.dumps({"last_sequence": 2}))
    meter = SimulatedGlucoseMeter(ADDRESSES["glucose"], "Meter", glucose_rows(2), 0)
    bluez.add_peripheral(meter)
    source = BleSource([target("glucose")], Collector(), state_dir=tmp_path, **FAST)

    with watch_logs() as logs:
        sources.start(source)
        await logs.wait_for("ble.no_new_records")

    assert meter.sent_sequences == []
    assert not any(e["log_level"] in ("warning", "error") for e in logs.entries)
    assert source.status()[0].connected


async def test_a_silent_racp_procedure_is_aborted(
    bluez: SimulatedBlueZ, sources: SourceRunner
) -> None:
    # A meter that takes far too long between records.
    meter = SimulatedGlucoseMeter(
        ADDRESSES["glucose"], "Meter", glucose_rows(3), 0, record_interval_s=30.0
    )
    bluez.add_peripheral(meter)
    collected = Collector()
    source = BleSource([target("glucose")], collected, racp_timeout=0.2, **FAST)

    with watch_logs() as logs:
        sources.start(source)
        await collected.wait_for(1)  # the first record comes at once
        await logs.wait_for("ble.racp_aborted")

    assert any(e["event"] == "ble.racp_timeout" for e in logs.entries)
    assert [r.op_code for r in meter.racp_requests if r is not None] == [
        RacpOpCode.REPORT_STORED_RECORDS,
        RacpOpCode.ABORT_OPERATION,
    ]
    assert not meter.busy()
    assert source.status()[0].connected


async def test_orphan_context_and_cuff_pressure_are_dropped_not_passed_on(
    bluez: SimulatedBlueZ, sources: SourceRunner
) -> None:
    meter = SimulatedGlucoseMeter(ADDRESSES["glucose"], "Meter", glucose_rows(1), 0)
    bluez.add_peripheral(meter)
    collected = Collector()
    source = BleSource([target("glucose")], collected, **FAST)
    sources.start(source)
    await collected.wait_for(1)

    # A context whose measurement never came (a meter bug): counted, never passed on.
    from devices.gatt import encode
    from devices.profiles import GLUCOSE_MEASUREMENT_CONTEXT

    orphan = Measurement(
        kind="glucose_context", values={}, status={"sequence_number": 77, "meal": "bedtime"}
    )
    assert await meter.notify(
        GLUCOSE_MEASUREMENT_CONTEXT, encode(GLUCOSE_MEASUREMENT_CONTEXT, orphan)
    )
    await status_when(source, lambda s: s[0].dropped == 1)

    assert [r.measurement.kind for r in collected.items] == ["glucose"]


# -- logs -----------------------------------------------------------------------------------------


def _address_forms(address: str) -> list[str]:
    forms = []
    for sep in (":", "_", "-", ""):
        joined = address.replace(":", sep)
        forms += [joined.upper(), joined.lower()]
    return forms


async def test_no_log_line_of_any_step_carries_an_address(
    bluez: SimulatedBlueZ, sources: SourceRunner, tmp_path: Path
) -> None:
    # Pairing, time sync, RACP, a malformed value, a link drop, and an unconfigured neighbour.
    meter = SimulatedGlucoseMeter(
        ADDRESSES["glucose"],
        "Meter",
        glucose_rows(4),
        0,
        clock_offset_s=300,
        requires_pairing=True,
        faults=Faults(malformed_every=3, drop_link_after=4),
    )
    neighbour = SimulatedWeightScale(ADDRESSES["weight"], "Neighbour's scale", None, 1.0)
    bluez.add_peripheral(meter)
    bluez.add_peripheral(neighbour)
    collected = Collector()
    source = BleSource([target("glucose")], collected, state_dir=tmp_path, **FAST)

    with watch_logs() as logs:
        sources.start(source)
        await collected.wait_for(4)
        await logs.wait_for("ble.records_downloaded")
        unconfigured = await logs.wait_for("ble.unconfigured_device")

    assert unconfigured["profile"] == "weight"
    assert logs.events().count("ble.unconfigured_device") == 1
    seen = set(logs.events())
    assert {
        "ble.pairing_required",
        "ble.paired",
        "ble.time_synced",
        "ble.decode_failed",
        "ble.disconnected",
        "ble.records_downloaded",
    } <= seen
    forbidden = _address_forms(ADDRESSES["glucose"]) + _address_forms(ADDRESSES["weight"])
    for entry in logs.entries:
        text = " ".join(f"{key}={value!r}" for key, value in entry.items())
        assert not any(form in text for form in forbidden), entry


async def test_a_connected_scale_without_user_index_gives_each_weighing_to_its_person_by_weight(
    bluez: SimulatedBlueZ, sources: SourceRunner
) -> None:
    # A shared scale that sends no User ID (the flag is optional in the Weight Measurement):
    # the same weight rule as for broadcast scales, and the same holding back.
    people = PeopleByWeight(
        rule="weight_range",
        people=(
            PersonByWeight(user_index=1, weight_range_kg=(75.0, 95.0)),
            PersonByWeight(user_index=2, weight_range_kg=(50.0, 76.0)),
        ),
    )
    scale = SimulatedWeightScale(
        ADDRESSES["weight"],
        "Scale",
        rows("weight", {"body_weight": 82.4}, {"body_weight": 75.5}, {"body_weight": 61.0}),
        interval_s=0.01,
    )
    bluez.add_peripheral(scale)
    collected = Collector()
    target_by_weight = DeviceTarget(
        ref="weight", address=ADDRESSES["weight"], profile="weight", people=people
    )
    source = BleSource([target_by_weight], collected, **FAST)
    sources.start(source)

    items = await collected.wait_for(3)
    await status_when(source, lambda s: s[0].held_ambiguous == 1)

    # The weighing both ranges hold is handed over marked held, without a person: kept by the
    # gateway until an operator says whose it is.
    assert [
        (r.measurement.user_index, r.measurement.values["body_weight"].value, r.held) for r in items
    ] == [
        (1, 82.4, False),
        (None, 75.5, True),
        (2, 61.0, False),
    ]
