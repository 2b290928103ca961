"""Omron history: the stored-record transfer of the HEM-7322T family through bleak.

The simulated cuff (``devices.sim.omron_cuff``) serves its EEPROM the way omblepy
(userx14/omblepy ``omblepy.py``, ``sharedDriver.py``, ``deviceSpecific/hem-7322t.py``) and
hass-omron (eigger/hass-omron ``omron_ble/memory_protocol.py``) read real cuffs; the record
layout is checked against a real record from hass-omron's ``tests/test_record_parsers.py``.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from devices.models import Measurement, Quantity
from devices.omron import (
    MEMORY_MAPS,
    Reassembler,
    Unread,
    encode_record,
    end_command,
    parse_record,
    read_command,
    read_plan,
    split,
    start_command,
)
from devices.sim.bluez import SimulatedBlueZ
from devices.sim.omron_cuff import SimulatedOmronCuff
from devices.source import BleSource, DeviceTarget
from tests.conftest import STEP, Collector, SourceRunner, watch_logs

CUFF = "C4:7C:8D:6A:07:32"
FAST = {"scan_timeout": 2.0, "backoff_initial": 0.01, "backoff_max": 0.05, "racp_timeout": 2.0}
HEM_7322T = MEMORY_MAPS["omron-hem-7322t"]


def test_a_real_hem_7600t_record_decodes_as_hass_omron_states() -> None:
    # hass-omron tests/test_record_parsers.py, HEM-7600T-E slot 23 (confirmed against an EEPROM
    # dump there): sys 145, dia 91, pulse 72.
    record = parse_record(
        MEMORY_MAPS["omron-hem-7600t"], bytes.fromhex("5b781a4819d71b42000014006996"), 1
    )
    assert record is not None
    values = {name: q.value for name, q in record.values.items()}
    assert values == {"systolic": 145, "diastolic": 91, "pulse_rate": 72}
    assert record.measured_at == datetime(2026, 6, 14, 23, 45, 2)
    assert parse_record(HEM_7322T, b"\xff" * 14, 1) is None  # an empty slot


def test_the_frames_are_the_bytes_omblepy_sends() -> None:
    assert start_command() == bytes.fromhex("0800000000100018")
    assert end_command() == bytes.fromhex("080f000000000007")
    assert read_command(0x02AC, 0x38) == bytes.fromhex("08010002ac38009f")
    long = bytes(range(40))
    pieces = split(long)
    assert [len(p) for p in pieces] == [16, 16, 8]
    joined = Reassembler()
    framed = bytes((40,)) + long[1:]
    assert [joined.feed(i, p) for i, p in enumerate(split(framed))][-1] == framed


def test_the_ring_buffer_is_read_oldest_first_also_across_its_end() -> None:
    start = HEM_7322T.user_starts[1]
    assert read_plan(HEM_7322T, 1, Unread(last_slot=10, unread=3)) == [(start + 7 * 14, 3 * 14)]
    assert read_plan(HEM_7322T, 1, Unread(last_slot=2, unread=5)) == [
        (start + 97 * 14, 3 * 14),
        (start, 2 * 14),
    ]


def bp(systolic: int, pulse: int = 70) -> Measurement:
    return Measurement(
        kind="blood_pressure",
        values={
            "systolic": Quantity(value=systolic, unit="mm[Hg]"),
            "diastolic": Quantity(value=80, unit="mm[Hg]"),
            "pulse_rate": Quantity(value=pulse, unit="/min"),
        },
    )


def target() -> DeviceTarget:
    return DeviceTarget(ref="m700", address=CUFF, profile="blood_pressure", model="omron-hem-7322t")


async def test_an_omron_cuff_hands_over_each_users_new_records_once_and_gets_its_clock_set(
    bluez: SimulatedBlueZ, sources: SourceRunner, tmp_path: Path
) -> None:
    cuff = SimulatedOmronCuff(CUFF, clock_offset_s=-3600, pairing_mode=True)
    for systolic in (121, 122, 123):
        cuff.measure(1, bp(systolic))
    cuff.measure(2, bp(141))
    bluez.add_peripheral(cuff)
    collected = Collector()
    source = BleSource([target()], collected, state_dir=tmp_path, **FAST)

    with watch_logs() as logs:
        sources.start(source)
        first = await collected.wait_for(4)
        await logs.wait_for("ble.omron_records_downloaded")
    assert [(r.measurement.user_index, r.measurement.values["systolic"].value) for r in first] == [
        (1, 121),
        (1, 122),
        (1, 123),
        (2, 141),
    ]
    assert {r.clock_offset_s for r in first} <= {-3600.0, -3601.0}
    assert cuff.key is not None and cuff.transfers == 1
    # The gateway set the cuff's clock and marked the records read.
    assert abs(cuff.clock.offset_s) < 2
    stamp = first[0].measurement.measured_at
    assert stamp is not None and abs(stamp - (datetime.now() - timedelta(hours=1))) < timedelta(
        seconds=30
    )

    # Out of pairing mode now; the next measurement comes with the next connection, alone.
    cuff.pairing_mode = False
    cuff.measure(2, bp(139))
    cuff.drop_link()
    items = await collected.wait_for(5)
    async with asyncio.timeout(STEP):
        await source.wait_until(lambda s: s[0].connects == 2 and not s[0].pairing_required)

    assert [
        (r.measurement.user_index, r.measurement.values["systolic"].value) for r in items[4:]
    ] == [(2, 139)]
    assert items[4].clock_offset_s in (0.0, -1.0)


async def test_an_omron_cuff_not_in_pairing_mode_is_shown_as_needing_pairing(
    bluez: SimulatedBlueZ, sources: SourceRunner
) -> None:
    cuff = SimulatedOmronCuff(CUFF, pairing_mode=False)
    cuff.measure(1, bp(150))
    bluez.add_peripheral(cuff)
    collected = Collector()
    source = BleSource([target()], collected, **FAST)

    with watch_logs() as logs:
        sources.start(source)
        entry = await logs.wait_for("ble.omron_pairing_required")
        assert source.status()[0].pairing_required

    assert "-P-" in entry["action"]
    assert collected.items == [] and cuff.transfers == 0


@pytest.mark.parametrize("slot", [0, 99])
def test_a_record_round_trips_through_the_family_layout(slot: int) -> None:
    reading = bp(133, 61).model_copy(
        update={
            "measured_at": datetime(2026, 11, 30, 7, slot % 60, 9),
            "status": {"irregular_pulse": True},
        }
    )
    decoded = parse_record(HEM_7322T, encode_record(HEM_7322T, reading), 2)
    assert decoded is not None
    assert decoded.values == reading.values and decoded.measured_at == reading.measured_at
    assert decoded.status == {"body_movement": False, "irregular_pulse": True}
