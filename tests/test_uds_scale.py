"""User Data Service scales through bleak's real BlueZ backend: nothing without consent.

The simulated scale (``devices.sim.uds_scale``) follows the User Data Service specification's
User Control Point procedures as openScale's ``BluetoothStandardWeightProfile.java`` drives
them on Beurer BF 600 and Sanitas SBF 72 scales (Register New User 0x01, Consent 0x02,
Response 0x20 with 0x01 Success / 0x03 Invalid Parameter / 0x05 User Not Authorized).
"""

from __future__ import annotations

import asyncio
import json
from datetime import date, datetime
from pathlib import Path

from devices.models import Measurement, Quantity
from devices.profiles import DATE_OF_BIRTH, GENDER, HEIGHT, WEIGHT_MEASUREMENT
from devices.sim.bluez import SimulatedBlueZ
from devices.sim.uds_scale import SimulatedUdsScale
from devices.source import BleSource, DeviceTarget, UdsUser
from tests.conftest import STEP, Collector, SourceRunner, watch_logs

SCALE = "C4:7C:8D:6A:1C:01"
FAST = {"scan_timeout": 2.0, "backoff_initial": 0.01, "backoff_max": 0.05, "racp_timeout": 2.0}


def weighing(kg: float, minute: int) -> Measurement:
    return Measurement(
        kind="weight",
        values={"body_weight": Quantity(value=kg, unit="kg")},
        measured_at=datetime(2026, 11, 30, 7, minute),
    )


def target(*users: UdsUser) -> DeviceTarget:
    return DeviceTarget(ref="bf600", address=SCALE, profile="weight", uds_users=users)


async def test_a_uds_scale_sends_a_persons_weighings_once_their_consent_code_is_written(
    bluez: SimulatedBlueZ, sources: SourceRunner
) -> None:
    scale = SimulatedUdsScale(SCALE, people={1: 4711, 2: 1234})
    scale.measure(1, weighing(70.4, 1))
    scale.measure(2, weighing(58.2, 2))
    scale.measure(1, weighing(70.1, 3))
    bluez.add_peripheral(scale)
    collected = Collector()
    sources.start(BleSource([target(UdsUser(1, 4711))], collected, **FAST))

    items = await collected.wait_for(2)

    assert [
        (r.measurement.user_index, r.measurement.values["body_weight"].value) for r in items
    ] == [
        (1, 70.4),
        (1, 70.1),
    ]
    assert items[0].characteristic == WEIGHT_MEASUREMENT
    # The other person gave no consent: their weighing stays on the scale.
    assert [m.values["body_weight"].value for m in scale.people[2].stored] == [58.2]


async def test_a_wrong_consent_code_gets_nothing_and_is_shown_without_the_code(
    bluez: SimulatedBlueZ, sources: SourceRunner
) -> None:
    scale = SimulatedUdsScale(SCALE, people={1: 4711})
    scale.measure(1, weighing(70.4, 1))
    bluez.add_peripheral(scale)
    collected = Collector()
    source = BleSource([target(UdsUser(1, 4712))], collected, **FAST)

    with watch_logs() as logs:
        sources.start(source)
        async with asyncio.timeout(STEP):
            status = await source.wait_until(lambda s: s[0].consent_refused)
        refused = await logs.wait_for("ble.uds_consent_refused")

    # Subscribed and connected, yet nothing came: the scale sends only after consent.
    assert status[0].connected and status[0].readings == 0
    assert collected.items == [] and scale.sent == []
    assert refused["result"] == "user not authorized"
    assert "4712" not in repr(logs.entries) and "4712" not in repr(target(UdsUser(1, 4712)))


async def test_a_person_the_scale_does_not_know_is_registered_and_mapped_back(
    bluez: SimulatedBlueZ, sources: SourceRunner, tmp_path: Path
) -> None:
    scale = SimulatedUdsScale(SCALE, people={1: 1111})
    bluez.add_peripheral(scale)
    collected = Collector()
    person = UdsUser(3, 2222, birth_date=date(1970, 1, 31), sex="female", height_cm=168)
    source = BleSource([target(person)], collected, state_dir=tmp_path, **FAST)

    with watch_logs() as logs:
        sources.start(source)
        registered = await logs.wait_for("ble.uds_registered")
        await logs.wait_for("ble.uds_consent_given")
    # The scale chose index 2 for the person configured as 3; their weighings come as 3.
    assert (registered["user_index"], registered["scale_user_index"]) == (3, 2)
    assert scale.people[2].consent_code == 2222 and scale.consented == 2
    # What the scale needs to estimate her body composition, in the specification's formats.
    assert scale.people[2].user_data == {
        DATE_OF_BIRTH: bytes((0xB2, 0x07, 1, 31)),
        GENDER: b"\x01",
        HEIGHT: (168).to_bytes(2, "little"),
    }
    scale.measure(2, weighing(81.0, 5))

    [reading] = await collected.wait_for(1)
    assert reading.measurement.user_index == 3
    memory = json.loads((tmp_path / f"{SCALE.replace(':', '')}.json").read_text())
    assert memory["uds_registered"] == {"2": 3}


async def test_two_people_give_consent_in_turn_and_each_gets_their_own_weighings(
    bluez: SimulatedBlueZ, sources: SourceRunner
) -> None:
    scale = SimulatedUdsScale(SCALE, people={1: 4711, 2: 1234})
    scale.measure(1, weighing(70.4, 1))
    scale.measure(2, weighing(58.2, 2))
    bluez.add_peripheral(scale)
    collected = Collector()
    sources.start(BleSource([target(UdsUser(1, 4711), UdsUser(2, 1234))], collected, **FAST))

    items = await collected.wait_for(2)

    assert [
        (r.measurement.user_index, r.measurement.values["body_weight"].value) for r in items
    ] == [
        (1, 70.4),
        (2, 58.2),
    ]
