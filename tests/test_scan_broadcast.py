"""``health-gateway scan`` lists broadcast scales with the profile to configure them as."""

from __future__ import annotations

import asyncio
import contextlib

from devices.sim.bluez import SimulatedBlueZ
from devices.sim.broadcast_scale import SimulatedBroadcastScale, Weighing
from devices.sim.weight_scale import SimulatedWeightScale
from gateway.scan import scan

MI_SCALE = "C8:47:8C:C0:95:89"
MI_BODY = "DF:DE:44:82:14:EF"
GATT_SCALE = "C4:7C:8D:6A:00:02"


async def test_scan_lists_broadcast_scales_by_their_service_data_beside_a_gatt_scale(
    bluez: SimulatedBlueZ,
) -> None:
    mi_scale = SimulatedBroadcastScale(MI_SCALE, "xiaomi_scale", rssi=-50)
    mi_body = SimulatedBroadcastScale(MI_BODY, "xiaomi_body_composition", rssi=-55)
    gatt_scale = SimulatedWeightScale(GATT_SCALE, "Scale", None, 1.0)
    gatt_scale.rssi = -70
    for peripheral in (mi_scale, mi_body, gatt_scale):
        bluez.add_peripheral(peripheral)
    # Someone stands on each broadcast scale for the whole scan: they advertise only then.
    standing = [
        asyncio.create_task(scale.weigh(Weighing(weight=70.0, stable_repeats=100_000)))
        for scale in (mi_scale, mi_body)
    ]
    try:
        found = await scan(0.4)
    finally:
        for task in standing:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    assert [(d.address, d.name, d.profile) for d in found] == [
        (MI_SCALE, "MI SCALE2", "xiaomi_scale"),
        (MI_BODY, "MIBFS", "xiaomi_body_composition"),
        (GATT_SCALE, "Scale", "weight"),
    ]
    assert found[0].profiles == ("xiaomi_scale", "weight")
    assert found[1].profiles == ("xiaomi_body_composition", "body_composition")
