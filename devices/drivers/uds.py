"""Scales with the User Data Service (0x181C): Beurer BF 105/600, Sanitas SBF 72/77

Such a scale keeps several people apart by user index and sends a person's measurements only
after the central proves it may see them: it writes that person's consent code to the User
Control Point (0x2A9F). The steps, as the User Data Service specification (sections 4.x, User
Control Point procedures) and openScale's standard weight profile handler
(``BluetoothStandardWeightProfile.java``) do them:

1. Indications on the User Control Point on, measurements subscribed.
2. For each configured person: ``Consent`` (op code 0x02, user index uint8, consent code
   uint16). The scale answers with a Response (0x20, request op code, result): 0x01 Success,
   0x03 Invalid Parameter (no such user index), 0x05 User Not Authorized (wrong code).
3. A person the scale does not know yet is registered: ``Register New User`` (0x01, consent
   code uint16) is answered with the new user index, which is remembered (device memory) and
   mapped to the configured one, then consent is given for it, and (as openScale and Beurer's
   app do, in this order) their Date of Birth (0x2A85: year uint16, month, day), Gender
   (0x2A8C: 0 male, 1 female) and Height (0x2A8E: uint16, cm) are written, so the scale can
   estimate their body composition. What is not known is not written.

After consent the scale sends that person's stored measurements. It sends one person's at a
time, so with several people the next consent waits until the scale has been quiet for a
moment. A refused code is shown in ``DeviceStatus.consent_refused`` and logged with what to do;
the code itself is never logged.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from functools import partial

import structlog
from bleak import BleakClient
from bleak.backends.characteristic import BleakGATTCharacteristic

from devices.drivers.base import LINK_ERRORS, DeviceRecord, ProfileMismatch, SourceHooks, describe
from devices.drivers.standard import StandardDriver
from devices.models import Measurement
from devices.profiles import DATE_OF_BIRTH, GENDER, HEIGHT, USER_CONTROL_POINT
from devices.targets import UdsUser

log = structlog.get_logger(__name__)

OP_REGISTER_NEW_USER = 0x01
OP_CONSENT = 0x02
OP_RESPONSE = 0x20
RESULT_SUCCESS = 0x01
RESULT_OP_CODE_NOT_SUPPORTED = 0x02
RESULT_INVALID_PARAMETER = 0x03
RESULT_OPERATION_FAILED = 0x04
RESULT_USER_NOT_AUTHORIZED = 0x05
RESULT_NAMES = {
    RESULT_SUCCESS: "success",
    RESULT_OP_CODE_NOT_SUPPORTED: "op code not supported",
    RESULT_INVALID_PARAMETER: "invalid parameter",
    RESULT_OPERATION_FAILED: "operation failed",
    RESULT_USER_NOT_AUTHORIZED: "user not authorized",
}
# The scale's user index -> the configured one, for people this gateway registered.
_REGISTERED = "uds_registered"
# User Data Service Gender values.
_GENDER_CODES = {"male": 0, "female": 1}
# How long the scale must be quiet before the next person's consent (several people only).
QUIET_S = 1.0


def encode_consent(index: int, consent_code: int) -> bytes:
    return bytes((OP_CONSENT, index)) + consent_code.to_bytes(2, "little")


def encode_register_new_user(consent_code: int) -> bytes:
    return bytes((OP_REGISTER_NEW_USER,)) + consent_code.to_bytes(2, "little")


@dataclass(frozen=True, slots=True)
class UcpResponse:
    request: int
    result: int
    parameter: bytes  # Register New User: the new user index

    @classmethod
    def parse(cls, data: bytes) -> UcpResponse | None:
        if len(data) < 3 or data[0] != OP_RESPONSE:
            return None
        return cls(data[1], data[2], bytes(data[3:]))


class UdsScaleDriver(StandardDriver):
    """A weight or body-composition scale behind the User Data Service."""

    def __init__(
        self,
        hooks: SourceHooks,
        device: DeviceRecord,
        client: BleakClient,
        lost: asyncio.Event,
        advertised_name: str | None = None,
    ) -> None:
        super().__init__(hooks, device, client, lost, advertised_name)
        self._answer: asyncio.Future[UcpResponse] | None = None
        self._activity = asyncio.Event()

    async def set_up(self) -> None:
        await StandardDriver.set_up(self)  # battery, clock, measurements subscribed
        ucp = self.characteristic(USER_CONTROL_POINT)
        if ucp is None:
            raise ProfileMismatch("no User Control Point (2a9f) on a User Data Service scale")
        await self.gatt(partial(self.client.start_notify, ucp, self._on_ucp))
        users = self.device.target.uds_users
        if not users:
            log.warning(
                "ble.uds_no_users",
                device=self.ref,
                action="this scale sends nothing without a person's consent code: give each "
                "person in [devices.users] a consent_code_file",
            )
        refused = False
        for position, user in enumerate(users):
            if position:
                await self._until_quiet()
            refused = not await self._give_consent(ucp, user) or refused
        if self.device.consent_refused != refused:
            self.device.consent_refused = refused
            self.hooks.changed()

    async def _give_consent(self, ucp: BleakGATTCharacteristic, user: UdsUser) -> bool:
        """Whether the scale accepted this person's consent code."""
        index = self._scale_index(user)
        answer = await self._request(ucp, encode_consent(index, user.consent_code))
        if answer is not None and answer.result == RESULT_INVALID_PARAMETER:
            # The scale has no such user (reset, or never set up): register the person.
            registered = await self._register(ucp, user)
            if registered is None:
                return False
            index = registered
            answer = await self._request(ucp, encode_consent(index, user.consent_code))
            if answer is not None and answer.result == RESULT_SUCCESS:
                await self._write_user_data(user)
        if answer is None:
            return False
        if answer.result == RESULT_SUCCESS:
            log.info("ble.uds_consent_given", device=self.ref, user_index=user.index)
            return True
        log.error(
            "ble.uds_consent_refused",
            device=self.ref,
            user_index=user.index,
            result=RESULT_NAMES.get(answer.result, f"0x{answer.result:02x}"),
            action="check the person's consent code file against the code the scale shows "
            "or was set up with; the scale sends nothing for them until it matches",
        )
        return False

    async def _register(self, ucp: BleakGATTCharacteristic, user: UdsUser) -> int | None:
        answer = await self._request(ucp, encode_register_new_user(user.consent_code))
        if answer is None or answer.result != RESULT_SUCCESS or len(answer.parameter) < 1:
            result = None if answer is None else answer.result
            log.error(
                "ble.uds_register_failed", device=self.ref, user_index=user.index, result=result
            )
            return None
        scale_index = answer.parameter[0]
        mapping = dict(self._registered())
        mapping[str(scale_index)] = user.index
        self.device.memory.set(_REGISTERED, mapping)
        log.info(
            "ble.uds_registered",
            device=self.ref,
            user_index=user.index,
            scale_user_index=scale_index,
        )
        return scale_index

    async def _write_user_data(self, user: UdsUser) -> None:
        """What the scale needs to know of a person it just registered (see module doc)."""
        fields: list[tuple[str, bytes]] = []
        if user.birth_date is not None:
            born = user.birth_date
            fields.append(
                (DATE_OF_BIRTH, born.year.to_bytes(2, "little") + bytes((born.month, born.day)))
            )
        if user.sex in _GENDER_CODES:
            fields.append((GENDER, bytes((_GENDER_CODES[user.sex],))))
        if user.height_cm is not None:
            fields.append((HEIGHT, user.height_cm.to_bytes(2, "little")))
        for uuid, data in fields:
            char = self.characteristic(uuid)
            if char is None:
                continue
            try:
                await self.gatt(partial(self.client.write_gatt_char, char, data, response=True))
            except LINK_ERRORS as exc:
                if self.link_lost():
                    raise
                log.warning("ble.uds_user_data_refused", device=self.ref, error=describe(exc))
                return
        log.info("ble.uds_user_data_written", device=self.ref, user_index=user.index)

    def _registered(self) -> dict[str, int]:
        value = self.device.memory.get(_REGISTERED)
        if not isinstance(value, dict):
            return {}
        return {k: v for k, v in value.items() if isinstance(v, int) and k.isdigit()}

    def _scale_index(self, user: UdsUser) -> int:
        """The index the scale knows this person by (the registered one, if we registered)."""
        for scale_index, configured in self._registered().items():
            if configured == user.index:
                return int(scale_index)
        return user.index

    async def _request(self, ucp: BleakGATTCharacteristic, data: bytes) -> UcpResponse | None:
        """Write a User Control Point request; its response, or None (refused or silent)."""
        answer: asyncio.Future[UcpResponse] = asyncio.get_running_loop().create_future()
        self._answer = answer
        try:
            await self.gatt(lambda: self.client.write_gatt_char(ucp, data, response=True))
            async with asyncio.timeout(self.hooks.racp_timeout):
                return await answer
        except TimeoutError:
            if self.link_lost():
                raise
            log.warning("ble.uds_no_response", device=self.ref, op_code=data[0])
            return None
        except LINK_ERRORS as exc:
            if self.link_lost():
                raise
            log.warning("ble.uds_refused", device=self.ref, error=describe(exc))
            return None
        finally:
            self._answer = None

    def _on_ucp(self, _char: BleakGATTCharacteristic, data: bytearray) -> None:
        response = UcpResponse.parse(bytes(data))
        answer = self._answer
        if response is None:
            log.info("ble.uds_unexpected_indication", device=self.ref, length=len(data))
            return
        if answer is not None and not answer.done():
            answer.set_result(response)

    async def _until_quiet(self) -> None:
        """Wait until no value arrived for QUIET_S (bounded by the procedure timeout)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.hooks.racp_timeout):
                while True:
                    self._activity.clear()
                    try:
                        async with asyncio.timeout(QUIET_S):
                            await self._activity.wait()
                    except TimeoutError:
                        return

    def value_arrived(self) -> None:
        self._activity.set()

    def complete(self, char_uuid: str, measurement: Measurement) -> list[tuple[str, Measurement]]:
        index = measurement.user_index
        mapped = None if index is None else self._registered().get(str(index))
        if mapped is not None:
            measurement = measurement.model_copy(update={"user_index": mapped})
        return super().complete(char_uuid, measurement)
