"""Broadcast-only scales through bleak's real BlueZ backend: one reading per weighing.

The simulated scales (``devices.sim.broadcast_scale``) advertise each weighing the way the
captures in custom-components/ble_monitor (issues 366 and 1094, ``test_miscale_parser.py``)
show real Xiaomi scales doing it: unsettled frames, the stabilized frame repeated, the "load
removed" echo repeated, and a stale echo of the previous weighing first after waking.

A test knows every frame of a scale was processed when a second scale's weighing, advertised
after it, has arrived: the simulated BlueZ sends all signals in order and bleak handles them in
that order.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from pathlib import Path

import pytest

from devices.broadcast import encode
from devices.models import Measurement, Quantity
from devices.profiles import BODY_COMPOSITION_SERVICE, WEIGHT_SCALE_SERVICE
from devices.sim.bluez import SimulatedBlueZ
from devices.sim.broadcast_scale import SimulatedBroadcastScale, Weighing
from devices.source import BleSource, DeviceTarget
from devices.users import PeopleByWeight, PersonByWeight
from tests.conftest import STEP, Collector, SourceRunner

SCALE = "C8:47:8C:C0:95:89"
WITNESS = "DF:DE:44:82:14:EF"
FAST = {"scan_timeout": 2.0, "backoff_initial": 0.01, "backoff_max": 0.05}


def scale_target(
    profile: str = "xiaomi_scale", people: PeopleByWeight | None = None
) -> DeviceTarget:
    return DeviceTarget(ref="scale", address=SCALE, profile=profile, people=people)


def witness_target() -> DeviceTarget:
    return DeviceTarget(ref="witness", address=WITNESS, profile="xiaomi_scale")


class Household:
    """The scale under test and a witness scale whose readings mark "all before is processed"."""

    def __init__(self, bluez: SimulatedBlueZ, profile: str = "xiaomi_scale") -> None:
        self.scale = SimulatedBroadcastScale(SCALE, profile)
        self.witness = SimulatedBroadcastScale(WITNESS, "xiaomi_scale", name="MI SCALE2 (2)")
        bluez.add_peripheral(self.scale)
        bluez.add_peripheral(self.witness)
        self._witnessed = 0

    async def barrier(self, collected: Collector) -> None:
        """Return once every frame advertised so far has been processed by the source."""
        self._witnessed += 1
        async with asyncio.timeout(STEP):
            await self.witness.weigh(Weighing(weight=20.0 + self._witnessed))
        await collected.wait_until(lambda items: len(_of(items, "witness")) >= self._witnessed)


def _of(items: list, ref: str) -> list:
    return [r for r in items if r.target.ref == ref]


async def weigh(scale: SimulatedBroadcastScale, weighing: Weighing) -> None:
    async with asyncio.timeout(STEP):
        await scale.weigh(weighing)


@pytest.mark.parametrize(
    ("profile", "weighing", "service", "impedance"),
    [
        ("xiaomi_scale", Weighing(weight=72.35), WEIGHT_SCALE_SERVICE, None),
        (
            "xiaomi_body_composition",
            Weighing(weight=95.2, impedance=486),
            BODY_COMPOSITION_SERVICE,
            486.0,
        ),
    ],
)
async def test_a_weighing_with_repeats_and_removal_gives_exactly_one_reading(
    bluez: SimulatedBlueZ,
    sources: SourceRunner,
    profile: str,
    weighing: Weighing,
    service: str,
    impedance: float | None,
) -> None:
    home = Household(bluez, profile)
    collected = Collector()
    source = BleSource([scale_target(profile), witness_target()], collected, **FAST)
    sources.start(source)

    played = await asyncio.wait_for(home.scale.weigh(weighing), STEP)
    await home.barrier(collected)

    readings = collected.of("scale")
    assert len(readings) == 1
    reading = readings[0]
    assert reading.characteristic == service
    assert reading.measurement.values["body_weight"].value == pytest.approx(weighing.weight)
    assert reading.measurement.values["body_weight"].unit == "kg"
    assert reading.measurement.measured_at == played.measured_at
    assert reading.measurement.status["stabilized"] is True
    assert reading.measurement.status["load_removed"] is False
    if impedance is None:
        assert "impedance" not in reading.measurement.values
    else:
        assert reading.measurement.values["impedance"].value == impedance
    status = source.status()[0]
    assert (status.readings, status.connected, status.connects, status.decode_errors) == (
        1,
        False,
        0,
        0,
    )
    assert status.last_seen is not None


async def test_the_next_weighing_counts_but_the_stale_echo_after_waking_does_not(
    bluez: SimulatedBlueZ, sources: SourceRunner
) -> None:
    home = Household(bluez)
    collected = Collector()
    sources.start(BleSource([scale_target(), witness_target()], collected, **FAST))

    await weigh(home.scale, Weighing(weight=80.0))
    # The scale wakes with the previous weighing's "load removed" frame (ble_monitor #366).
    await weigh(home.scale, Weighing(weight=80.0))
    await home.barrier(collected)

    stamps = [r.measurement.measured_at for r in collected.of("scale")]
    assert len(stamps) == 2 and stamps[0] != stamps[1]


async def test_real_captured_frames_of_issue_1094_give_one_reading(
    bluez: SimulatedBlueZ, sources: SourceRunner
) -> None:
    # Service data of a Mi Body Composition Scale 2, custom-components/ble_monitor issue 1094
    # (test_miscale_parser.py): settling, stabilized with impedance, the same weighing removed.
    settling = bytes.fromhex("0204b2070103131a130000ac49")
    stabilized = bytes.fromhex("0226b2070103131a15e601604a")
    removed = bytes.fromhex("02a6b2070103131a15e601604a")
    home = Household(bluez, "xiaomi_body_composition")
    collected = Collector()
    sources.start(
        BleSource([scale_target("xiaomi_body_composition"), witness_target()], collected, **FAST)
    )

    async with asyncio.timeout(STEP):
        await home.scale.replay([(settling, 2), (stabilized, 3), (removed, 3)])
    await home.barrier(collected)

    [reading] = collected.of("scale")
    values = reading.measurement.values
    assert (values["body_weight"].value, values["impedance"].value) == (95.2, 486.0)
    assert reading.measurement.measured_at == datetime(1970, 1, 3, 19, 26, 21)


async def test_a_restart_while_the_scale_still_repeats_does_not_hand_over_again(
    bluez: SimulatedBlueZ, sources: SourceRunner, tmp_path: Path
) -> None:
    home = Household(bluez)
    collected = Collector()
    targets = [scale_target(), witness_target()]
    first = sources.start(BleSource(targets, collected, state_dir=tmp_path, **FAST))
    await weigh(home.scale, Weighing(weight=64.5))
    await home.barrier(collected)
    assert len(collected.of("scale")) == 1
    await sources.stop(first)

    # The gateway restarts while the person is still on the scale.
    sources.start(BleSource(targets, collected, state_dir=tmp_path, **FAST))
    async with asyncio.timeout(STEP):
        await home.scale.hold_stable(4)
    await home.barrier(collected)

    assert len(collected.of("scale")) == 1


async def test_a_two_person_household_is_split_by_weight_and_an_ambiguous_weighing_is_held(
    bluez: SimulatedBlueZ, sources: SourceRunner
) -> None:
    people = PeopleByWeight(
        rule="weight_range",
        people=(
            PersonByWeight(user_index=1, weight_range_kg=(75.0, 95.0)),
            PersonByWeight(user_index=2, weight_range_kg=(50.0, 76.0)),
        ),
    )
    home = Household(bluez)
    collected = Collector()
    source = BleSource([scale_target(people=people), witness_target()], collected, **FAST)
    sources.start(source)

    for weight in (82.4, 61.3, 75.5):  # him, her, and a weight both ranges hold
        await weigh(home.scale, Weighing(weight=weight))
    await home.barrier(collected)

    # The ambiguous one is handed over marked held, without a person: the gateway keeps it.
    assert [
        (r.measurement.user_index, r.measurement.values["body_weight"].value, r.held)
        for r in collected.of("scale")
    ] == [
        (1, 82.4, False),
        (2, 61.3, False),
        (None, 75.5, True),
    ]
    status = source.status()[0]
    assert status.held_ambiguous == 1 and status.held_at is not None
    assert status.readings == 2


async def test_nearest_recent_weight_follows_a_person_and_holds_a_weighing_between_two(
    bluez: SimulatedBlueZ, sources: SourceRunner, tmp_path: Path
) -> None:
    people = PeopleByWeight(
        rule="nearest_weight",
        people=(
            PersonByWeight(user_index=1, usual_weight_kg=80.0),
            PersonByWeight(user_index=2, usual_weight_kg=70.0),
        ),
        margin_kg=1.0,
        max_change_kg=4.0,
    )
    home = Household(bluez)
    collected = Collector()
    source = BleSource(
        [scale_target(people=people), witness_target()], collected, state_dir=tmp_path, **FAST
    )
    sources.start(source)

    # Person 2 gains weight step by step and each weighing becomes their recent weight: 76.0 is
    # theirs (1.5 from 74.5), though 6 kg from their usual 70 and only 4 from person 1's 80.
    # 78.0 is then exactly between 76.0 and 80.0: held. 80.3 is person 1's.
    for weight in (72.5, 74.5, 76.0, 78.0, 80.3):
        await weigh(home.scale, Weighing(weight=weight))
    await home.barrier(collected)

    assert [
        (r.measurement.user_index, r.measurement.values["body_weight"].value, r.held)
        for r in collected.of("scale")
    ] == [
        (2, 72.5, False),
        (2, 74.5, False),
        (2, 76.0, False),
        (None, 78.0, True),
        (1, 80.3, False),
    ]
    assert source.status()[0].held_ambiguous == 1


async def test_a_weighing_in_pounds_is_matched_in_kilograms(
    bluez: SimulatedBlueZ, sources: SourceRunner
) -> None:
    people = PeopleByWeight(
        rule="weight_range",
        people=(
            PersonByWeight(user_index=1, weight_range_kg=(75.0, 95.0)),
            PersonByWeight(user_index=2, weight_range_kg=(50.0, 70.0)),
        ),
    )
    home = Household(bluez)
    collected = Collector()
    sources.start(BleSource([scale_target(people=people), witness_target()], collected, **FAST))

    await weigh(home.scale, Weighing(weight=143.3, unit="[lb_av]"))  # 65.0 kg
    await home.barrier(collected)

    [reading] = collected.of("scale")
    assert reading.measurement.user_index == 2
    assert reading.measurement.values["body_weight"].unit == "[lb_av]"


def body_frame(weight: float, stamp: datetime, *, impedance: float | None, removed: bool) -> bytes:
    values = {"body_weight": Quantity(value=weight, unit="kg")}
    if impedance is not None:
        values["impedance"] = Quantity(value=impedance, unit="Ohm")
    reading = Measurement(
        kind="body_composition",
        values=values,
        measured_at=stamp,
        status={"stabilized": True, "load_removed": removed},
    )
    return encode("xiaomi_body_composition", reading)


@pytest.mark.parametrize(
    ("impedance_comes", "expected_impedance"),
    [(True, 502.0), (False, None)],
    ids=["the impedance frame follows", "stepped off before an impedance was measured"],
)
async def test_a_body_composition_weighing_waits_for_its_impedance(
    bluez: SimulatedBlueZ,
    sources: SourceRunner,
    impedance_comes: bool,
    expected_impedance: float | None,
) -> None:
    # ble_monitor publishes a "stabilized weight" before the "weight" with impedance: the
    # scale settles the weight first and measures the impedance after.
    home = Household(bluez, "xiaomi_body_composition")
    collected = Collector()
    sources.start(
        BleSource([scale_target("xiaomi_body_composition"), witness_target()], collected, **FAST)
    )
    stamp = datetime(2026, 11, 30, 7, 15, 0)
    frames = [(body_frame(77.3, stamp, impedance=None, removed=False), 3)]
    if impedance_comes:
        frames.append((body_frame(77.3, stamp, impedance=502, removed=False), 3))
    frames.append((body_frame(77.3, stamp, impedance=None, removed=True), 2))

    async with asyncio.timeout(STEP):
        await home.scale.replay(frames)
    await home.barrier(collected)

    [reading] = collected.of("scale")
    assert reading.measurement.values["body_weight"].value == 77.3
    impedance = reading.measurement.values.get("impedance")
    assert (impedance.value if impedance else None) == expected_impedance


async def test_a_weighing_in_object_mode_is_no_ones_body_weight(
    bluez: SimulatedBlueZ, sources: SourceRunner
) -> None:
    # theengs decoder and the Mi Scale's control byte: bit 6 set weighs an object (luggage, a pet).
    home = Household(bluez)
    collected = Collector()
    source = BleSource([scale_target(), witness_target()], collected, **FAST)
    sources.start(source)
    suitcase = Measurement(
        kind="weight",
        values={"body_weight": Quantity(value=18.4, unit="kg")},
        measured_at=datetime(2026, 11, 30, 9, 0, 0),
        status={"stabilized": True, "load_removed": False, "weighing_mode": "object"},
    )

    async with asyncio.timeout(STEP):
        await home.scale.replay([(encode("xiaomi_scale", suitcase), 3)])
    await home.barrier(collected)

    assert collected.of("scale") == []
    assert source.status()[0].dropped == 1
