"""A simulated cuff that keeps its clock in Date Time (0x2A08), as A&D's cuffs do.

A&D Medical's UA-651BLE (and its scales, e.g. UC-352BLE) have no Current Time Service: the
clock is a readable and writable Date Time characteristic (0x2A08) in the Blood Pressure Service
(HEADS-project/ThingML-BLE ``Documentation/AND_Medical_UA651BLE.md``, its service discovery),
which a central sets after connecting; readings are stamped with it. The cuff demands pairing,
sends only what it has not sent before, and hangs up after sending (obniz/obniz
``src/parts/Ble/UA651BLE/README-ja.md``). Roche Accu-Chek meters keep their clock the same way
(xDrip ``BluetoothGlucoseMeter.java``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from devices.drivers.date_time import decode_date_time, encode_date_time
from devices.gatt.errors import DecodeError
from devices.profiles import BLOOD_PRESSURE_SERVICE, DATE_TIME
from devices.sim.blood_pressure_cuff import SimulatedBloodPressureCuff
from devices.sim.peripheral import AttError, Characteristic, Service

_ATT_INVALID_LENGTH = 0x0D
_ATT_VALUE_NOT_ALLOWED = 0x13


class SimulatedDateTimeCuff(SimulatedBloodPressureCuff):
    """A blood pressure cuff whose clock is Date Time in its health service, no CTS."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["current_time_service"] = False
        super().__init__(*args, **kwargs)

    def profile_services(self) -> Sequence[Service]:
        services = []
        for service in super().profile_services():
            if service.uuid == BLOOD_PRESSURE_SERVICE:
                clock = Characteristic(DATE_TIME, ("read", "write"))
                service = Service(service.uuid, (*service.characteristics, clock))
            services.append(service)
        return services

    def on_read(self, char_uuid: str) -> bytes:
        if char_uuid == DATE_TIME:
            self._touch()
            return encode_date_time(self.clock.now())
        return super().on_read(char_uuid)

    def on_write(self, char_uuid: str, data: bytes) -> None:
        if char_uuid != DATE_TIME:
            super().on_write(char_uuid, data)
            return
        self._touch()
        if len(data) != 7:
            raise AttError(_ATT_INVALID_LENGTH, "Date Time is 7 octets")
        try:
            written = decode_date_time(data)
        except DecodeError as exc:
            raise AttError(_ATT_VALUE_NOT_ALLOWED, str(exc)) from exc
        if written is None:
            raise AttError(_ATT_VALUE_NOT_ALLOWED, "date unknown")
        self.clock.set(written)
        self.time_writes += 1
