"""A device counts a reading as delivered only once the gateway has it on disk (issue 14: 15).

An Omron cuff deletes nothing by itself, but marks its records read when the gateway resets
its unread counters, and never offers them again. The source does that only once the consumer
says every record handed over is stored; a consumer that could not store them (a full disk,
a shutdown) leaves them unread, and the next connection brings them again.
"""

from __future__ import annotations

import asyncio

from devices.sim.bluez import SimulatedBlueZ
from devices.sim.omron_cuff import SimulatedOmronCuff
from devices.source import BleSource
from devices.targets import Received
from tests.conftest import Collector, SourceRunner, watch_logs
from tests.test_omron_history import CUFF, FAST, bp, target

NOTHING_UNREAD = b"\x80\x00\x80\x00"


class StoringConsumer(Collector):
    """An ``on_reading`` that answers, as the pipeline does, with a "stored" future; the test
    decides whether the readings got to disk."""

    def __init__(self) -> None:
        super().__init__()
        self.stored: list[asyncio.Future[bool]] = []
        self.store_at_once = False

    def __call__(self, reading: Received) -> asyncio.Future[bool]:  # type: ignore[override]
        super().__call__(reading)
        stored: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        if self.store_at_once:
            stored.set_result(True)
        self.stored.append(stored)
        return stored


async def test_an_omron_cuff_keeps_its_records_unread_until_they_are_stored(
    bluez: SimulatedBlueZ, sources: SourceRunner
) -> None:
    cuff = SimulatedOmronCuff(CUFF, pairing_mode=True)
    cuff.measure(1, bp(121))
    cuff.measure(2, bp(141))
    bluez.add_peripheral(cuff)
    consumer = StoringConsumer()
    source = BleSource([target()], consumer, **FAST)

    with watch_logs() as logs:
        sources.start(source)
        await consumer.wait_for(2)
        for stored in consumer.stored:  # the disk was full: not stored
            stored.set_result(False)
        await logs.wait_for("ble.omron_records_kept")
        assert cuff.settings[4:8] != NOTHING_UNREAD  # still unread on the cuff

        consumer.store_at_once = True
        cuff.drop_link()
        again = await consumer.wait_for(4)
        await logs.wait_for("ble.omron_records_downloaded")
    assert [r.measurement.values["systolic"].value for r in again] == [121, 141, 121, 141]
    assert cuff.settings[4:8] == NOTHING_UNREAD  # stored, so now marked read
