"""A simulated User Data Service scale (Beurer BF 600, Sanitas SBF 72 style).

It keeps several people apart by user index and, as the User Data Service specification
requires and openScale's ``BluetoothStandardWeightProfile.java`` relies on, sends a person's
stored weighings only after that person's consent code was written to the User Control Point
(0x2A9F); subscribing to Weight Measurement alone brings nothing. The control point:

* Register New User (0x01, consent code uint16): answered (0x20, 0x01, 0x01, new user index);
* Consent (0x02, user index, consent code uint16): answered (0x20, 0x02, result) with 0x01
  Success, 0x03 Invalid Parameter (no such user) or 0x05 User Not Authorized (wrong code);
  after Success the scale indicates that person's stored Weight Measurements (with their user
  index), one after another;
* any other op code: (0x20, op, 0x02 Op Code Not Supported);
* Date of Birth (0x2A85), Gender (0x2A8C) and Height (0x2A8E) are the consented person's, kept
  per person; without consent they answer ATT error 0x80 "User Data Access Not Permitted";
* a write while indications on the control point are off fails with ATT error 0xFD ("Client
  Characteristic Configuration Descriptor Improperly Configured"), as the specification says.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from devices.gatt import encode
from devices.models import Measurement
from devices.profiles import (
    DATABASE_CHANGE_INCREMENT,
    DATE_OF_BIRTH,
    GENDER,
    HEIGHT,
    USER_CONTROL_POINT,
    USER_DATA_SERVICE,
    USER_INDEX,
    WEIGHT_MEASUREMENT,
    WEIGHT_SCALE_FEATURE,
    WEIGHT_SCALE_SERVICE,
)
from devices.sim.peripheral import AttError, Characteristic, Peripheral, Service
from devices.sim.weight_scale import WEIGHT_SCALE_FEATURES

_CCCD_IMPROPERLY_CONFIGURED = 0xFD
# User Data Service: a user data characteristic outside a consented user's session.
_USER_DATA_ACCESS_NOT_PERMITTED = 0x80
_USER_DATA = frozenset({DATE_OF_BIRTH, GENDER, HEIGHT})
_UNKNOWN_USER = 0xFF


@dataclass
class _Person:
    consent_code: int
    stored: list[Measurement] = field(default_factory=list)
    user_data: dict[str, bytes] = field(default_factory=dict)  # characteristic -> value written


class SimulatedUdsScale(Peripheral):
    """A scale behind the User Data Service; ``people`` maps user index -> consent code."""

    def __init__(
        self, address: str, name: str = "BF600", people: dict[int, int] | None = None
    ) -> None:
        super().__init__(
            address,
            name,
            [
                Service(
                    WEIGHT_SCALE_SERVICE,
                    (
                        Characteristic(WEIGHT_MEASUREMENT, ("indicate",)),
                        Characteristic(WEIGHT_SCALE_FEATURE, ("read",), WEIGHT_SCALE_FEATURES),
                    ),
                ),
                Service(
                    USER_DATA_SERVICE,
                    (
                        Characteristic(DATABASE_CHANGE_INCREMENT, ("read", "write", "notify")),
                        Characteristic(USER_INDEX, ("read",)),
                        Characteristic(USER_CONTROL_POINT, ("write", "indicate")),
                        Characteristic(DATE_OF_BIRTH, ("read", "write")),
                        Characteristic(GENDER, ("read", "write")),
                        Characteristic(HEIGHT, ("read", "write")),
                    ),
                ),
            ],
            advertised_uuids=[WEIGHT_SCALE_SERVICE, USER_DATA_SERVICE],
        )
        self.people = {index: _Person(code) for index, code in (people or {}).items()}
        self.consented: int | None = None
        self.sent: list[Measurement] = []  # every weighing indicated, in order

    def measure(self, user_index: int, reading: Measurement) -> None:
        """Someone the scale recognised as ``user_index`` weighed: stored until consent."""
        self.people[user_index].stored.append(reading.model_copy(update={"user_index": user_index}))
        if self.connected and self.consented == user_index:
            self.spawn(self._send_stored(user_index), "send weighing")

    def on_connected(self) -> None:
        self.consented = None  # consent lasts one connection

    def on_read(self, char_uuid: str) -> bytes:
        if char_uuid == USER_INDEX:
            return bytes((_UNKNOWN_USER if self.consented is None else self.consented,))
        if char_uuid == DATABASE_CHANGE_INCREMENT:
            return bytes(4)
        return super().on_read(char_uuid)

    def on_write(self, char_uuid: str, data: bytes) -> None:
        if char_uuid in _USER_DATA:
            if self.consented is None:
                raise AttError(_USER_DATA_ACCESS_NOT_PERMITTED, "no user has given consent")
            self.people[self.consented].user_data[char_uuid] = bytes(data)
            return
        if char_uuid != USER_CONTROL_POINT:
            return
        if not self.is_notifying(USER_CONTROL_POINT):
            raise AttError(_CCCD_IMPROPERLY_CONFIGURED, "indications are off")
        if not data:
            raise AttError(0x0D, "empty control point write")
        op = data[0]
        if op == 0x01 and len(data) == 3:
            index = next(i for i in range(1, 0xFF) if i not in self.people)
            self.people[index] = _Person(int.from_bytes(data[1:3], "little"))
            self._respond(bytes((0x20, 0x01, 0x01, index)))
        elif op == 0x02 and len(data) == 4:
            person = self.people.get(data[1])
            if person is None:
                self._respond(bytes((0x20, 0x02, 0x03)))
            elif person.consent_code != int.from_bytes(data[2:4], "little"):
                self._respond(bytes((0x20, 0x02, 0x05)))
            else:
                self.consented = data[1]
                self._respond(bytes((0x20, 0x02, 0x01)), then_send=data[1])
        else:
            self._respond(bytes((0x20, op, 0x02)))

    def _respond(self, response: bytes, then_send: int | None = None) -> None:
        self.spawn(self._indicate(response, then_send), "user control point response")

    async def _indicate(self, response: bytes, then_send: int | None) -> None:
        await self.notify(USER_CONTROL_POINT, response)
        if then_send is not None:
            await self._send_stored(then_send)

    async def _send_stored(self, user_index: int) -> None:
        person = self.people[user_index]
        while person.stored and self.consented == user_index:
            reading = person.stored[0]
            if not await self.notify(WEIGHT_MEASUREMENT, encode(WEIGHT_MEASUREMENT, reading)):
                return
            person.stored.pop(0)
            self.sent.append(reading)
