"""A device that keeps its clock in Date Time (0x2A08) and has no Current Time Service.

The simulated cuff follows A&D's UA-651BLE: Date Time (0x2A08, read and write) in the Blood
Pressure Service and no Current Time Service (HEADS-project/ThingML-BLE
``Documentation/AND_Medical_UA651BLE.md``); pairing demanded, only unsent readings sent, then it
hangs up (obniz/obniz ``src/parts/Ble/UA651BLE/README-ja.md``).
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

from devices.profiles import CURRENT_TIME, DATE_TIME
from devices.sim.bluez import SimulatedBlueZ
from devices.sim.date_time_cuff import SimulatedDateTimeCuff
from devices.sim.script import script_to_measurements
from devices.source import BleSource, DeviceTarget
from tests.conftest import STEP, Collector, SourceRunner, watch_logs

CUFF = "C4:7C:8D:6A:AD:01"
FAST = {"scan_timeout": 2.0, "backoff_initial": 0.01, "backoff_max": 0.05}


async def test_an_and_style_cuff_gets_its_time_through_date_time_and_readings_their_offsets(
    bluez: SimulatedBlueZ, sources: SourceRunner
) -> None:
    readings = script_to_measurements(
        "blood_pressure", [{"systolic": s, "diastolic": 80, "pulse_rate": 70} for s in (131, 132)]
    )
    cuff = SimulatedDateTimeCuff(
        CUFF,
        "A&D_UA-651BLE_0D1E",
        readings,
        interval_s=0,
        clock_offset_s=-7200,  # two hours behind
        mode="cycle",
        linger_s=0.1,
        requires_pairing=True,
    )
    assert cuff.characteristic(DATE_TIME) and CURRENT_TIME not in {
        c.uuid for c in cuff.characteristics()
    }
    bluez.add_peripheral(cuff)
    cuff.measure()  # stamped by the clock that is two hours behind
    collected = Collector()
    source = BleSource(
        [DeviceTarget(ref="cuff", address=CUFF, profile="blood_pressure")], collected, **FAST
    )

    with watch_logs() as logs:
        sources.start(source)
        [stored] = await collected.wait_for(1)
        synced = await logs.wait_for("ble.time_synced")
        async with asyncio.timeout(STEP):
            await source.wait_until(lambda s: not s[0].connected and s[0].connects == 1)
        cuff.measure()  # stamped by the clock the gateway set
        items = await collected.wait_for(2)

    # Date Time carries whole seconds, so a clock read is up to a second behind the truth.
    assert synced["method"] == "date_time" and synced["offset_before_s"] in (-7200.0, -7201.0)
    assert "ble.paired" in logs.events() and cuff.bonded
    assert cuff.time_writes >= 1 and abs(cuff.clock.offset_s) < 2
    assert stored.clock_offset_s == synced["offset_before_s"]
    # Likewise the clock written is up to a second behind the gateway's.
    assert items[1].clock_offset_s in (0.0, -1.0)
    for reading in items:
        stamp = reading.measurement.measured_at
        assert stamp is not None
        corrected = stamp - timedelta(seconds=reading.clock_offset_s or 0)
        assert abs((corrected - datetime.now()).total_seconds()) < 30
    assert source.status()[0].clock_offset_s in (0.0, -1.0)
    assert [r.measurement.values["systolic"].value for r in items] == [131, 132]
