"""Per-model quirks reach the decoder: from ``[[devices]] model`` or the advertised name.

The simulated cuff sends what a Beurer BM85 sends (``devices.sim.beurer_cuff``, bytes from the
quirk table's encoder, after derdilla/blood-pressure-monitor-fl PRs #735/#737).
"""

from __future__ import annotations

import pytest

from devices.gatt import DecodeError, decode
from devices.gatt import encode as gatt_encode
from devices.profiles import BLOOD_PRESSURE_MEASUREMENT
from devices.sim.beurer_cuff import SimulatedBeurerCuff
from devices.sim.bluez import SimulatedBlueZ
from devices.sim.script import script_to_measurements
from devices.source import BleSource, DeviceTarget
from tests.conftest import Collector, SourceRunner

CUFF = "C4:7C:8D:6A:B8:85"
FAST = {"scan_timeout": 2.0, "backoff_initial": 0.01, "backoff_max": 0.05}
ROWS = [{"systolic": 128, "diastolic": 84, "pulse_rate": 67, "user_index": 1}]


def cuff(name: str) -> SimulatedBeurerCuff:
    readings = script_to_measurements("blood_pressure", ROWS)
    return SimulatedBeurerCuff(CUFF, name, readings, interval_s=0.01, current_time_service=False)


def test_plain_specification_decoding_misreads_the_simulated_bm85_bytes() -> None:
    reading = script_to_measurements("blood_pressure", ROWS)[0]
    quirky = gatt_encode(BLOOD_PRESSURE_MEASUREMENT, reading, model="beurer-bm85")
    try:
        plain = decode(BLOOD_PRESSURE_MEASUREMENT, quirky)
    except DecodeError:
        return
    assert plain.values.get("pulse_rate") != reading.values["pulse_rate"]


@pytest.mark.parametrize(
    ("name", "model"),
    [("BM85", None), ("Blood pressure", "beurer-bm85")],
    ids=["model recognised from the advertised name", "model from the config"],
)
async def test_a_bm85_reading_decodes_with_its_quirks(
    bluez: SimulatedBlueZ, sources: SourceRunner, name: str, model: str | None
) -> None:
    bluez.add_peripheral(cuff(name))
    collected = Collector()
    target = DeviceTarget(ref="bm85", address=CUFF, profile="blood_pressure", model=model)
    source = BleSource([target], collected, **FAST)
    sources.start(source)

    [reading] = await collected.wait_for(1)

    values = {k: v.value for k, v in reading.measurement.values.items()}
    assert (values["systolic"], values["diastolic"], values["pulse_rate"]) == (128, 84, 67)
    assert reading.measurement.user_index == 1
    assert source.status()[0].decode_errors == 0
