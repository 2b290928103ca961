"""A simulated blood-glucose meter (Glucose Service 0x1808) with a record store behind RACP.

Like a Roche or Ascensia meter it keeps every measurement as a numbered record (sequence
numbers count up and are never reused) and hands records over only when asked through the
Record Access Control Point (0x2A52, write + indicate; ``devices.gatt.racp``): each record is a
Glucose Measurement (0x2A18) notification, followed by its Glucose Measurement Context (0x2A34)
when it has one and the central listens for contexts, and the procedure ends with a Response
Code indication. Records stay on the meter after a transfer.

RACP as the Glucose Service specification (1.0, section 3.4) has it: report stored records
(all, first, last, and by sequence number or user facing time with <=, >= and within range),
report the number of stored records, delete stored records, abort. A request while another is
running is refused with the ATT error "Procedure Already In Progress" (0x80), one without
indications enabled with "Client Characteristic Configuration Descriptor Improperly Configured"
(0x81). Abort stops a running report; the report then gets no response of its own.

Knobs for tests: ``supports_sequence_filter`` False makes the meter answer a filtered request
with "Operator Not Supported" (some meters only do "all records"), ``record_interval_s`` paces
the records of a report (so a test can drop the link or abort mid-transfer).

In connected mode every scripted reading is on the meter from the start and a random-mode
meter records a new measurement every ``interval_s`` and also notifies it at once to a
listening central. In cycle mode the meter records a measurement, advertises and waits for the
central's request. With a state file the meter remembers how many records it made, so a
restarted simulator keeps its sequence numbers.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from devices.gatt import encode
from devices.gatt.racp import (
    RacpFilterType,
    RacpOpCode,
    RacpOperator,
    RacpRequest,
    RacpRequestError,
    RacpResponse,
    RacpResponseCode,
    decode_racp_request,
    encode_racp_response,
)
from devices.models import Measurement, Quantity
from devices.profiles import (
    GLUCOSE_FEATURE,
    GLUCOSE_MEASUREMENT,
    GLUCOSE_MEASUREMENT_CONTEXT,
    GLUCOSE_SERVICE,
    RECORD_ACCESS_CONTROL_POINT,
)
from devices.sim.health_device import SimulatedHealthDevice
from devices.sim.peripheral import AttError, Characteristic, Service
from devices.state import write_json_atomically

# Glucose Feature (uint16): low battery, sensor malfunction, sample size, strip insertion and
# strip type detection (bits 0-4), result high/low detection (5), multiple bond (10).
GLUCOSE_FEATURES = (0b11_1111 | 1 << 10).to_bytes(2, "little")
# Glucose Service application errors (GLS 1.0, section 2.2).
PROCEDURE_ALREADY_IN_PROGRESS = 0x80
CCCD_IMPROPERLY_CONFIGURED = 0x81

# Status keys of a scripted glucose row that belong in the context, not the measurement.
CONTEXT_KEYS = ("meal", "tester", "health")


@dataclass(frozen=True, slots=True)
class GlucoseRecord:
    """One stored record: the measurement (with its sequence number) and its context, if any."""

    sequence: int
    measurement: Measurement
    context: Measurement | None


class SimulatedGlucoseMeter(SimulatedHealthDevice):
    """A meter whose records are read through RACP; see the module docstring."""

    PROFILE = "glucose"
    MEASUREMENT = GLUCOSE_MEASUREMENT

    def __init__(
        self,
        *args: Any,
        supports_sequence_filter: bool = True,
        record_interval_s: float = 0.0,
        first_sequence: int = 1,
        **kwargs: Any,
    ) -> None:
        if not 0 <= first_sequence <= 0xFFFF:
            raise ValueError("first_sequence must be 0..65535")
        if record_interval_s < 0:
            raise ValueError("record_interval_s must not be negative")
        self.supports_sequence_filter = supports_sequence_filter
        self.record_interval_s = record_interval_s
        self.first_sequence = first_sequence
        self.records: list[GlucoseRecord] = []
        self.sent_sequences: list[int] = []  # every record sent, in order (repeats included)
        self.racp_requests: list[RacpRequest | None] = []  # None: one that did not parse
        self._next_sequence = first_sequence
        self._procedure: asyncio.Task[None] | None = None
        super().__init__(*args, **kwargs)
        self._next_sequence = self._load_next_sequence()
        if self._script is not None:
            # Records made before a restart are in the meter's memory still.
            recorded = self._delivered
            self._delivered = 0
            count = len(self._script) if self.mode == "connected" else recorded
            for reading in self._script[:count]:
                self._add_record(reading, scripted=True)

    # -- the model ---------------------------------------------------------------------------

    def profile_services(self) -> Sequence[Service]:
        return [
            Service(
                GLUCOSE_SERVICE,
                (
                    Characteristic(GLUCOSE_MEASUREMENT, ("notify",)),
                    Characteristic(GLUCOSE_MEASUREMENT_CONTEXT, ("notify",)),
                    Characteristic(GLUCOSE_FEATURE, ("read",), GLUCOSE_FEATURES),
                    Characteristic(RECORD_ACCESS_CONTROL_POINT, ("write", "indicate")),
                ),
            )
        ]

    def random_reading(self, rng: random.Random) -> Measurement:
        status: dict[str, Any] = {}
        if rng.random() < 0.5:
            status["meal"] = rng.choice(("preprandial", "postprandial", "fasting"))
            status["tester"] = "self"
            status["health"] = "no_health_issues"
        return Measurement(
            kind="glucose",
            values={"glucose": Quantity(value=rng.randint(72, 190), unit="mg/dL")},
            status=status,
        )

    def prepare(self, reading: Measurement) -> Measurement:
        status = dict(reading.status)
        if "glucose" in reading.values:
            status.setdefault("sample_type", "capillary_whole_blood")
            status.setdefault("sample_location", "finger")
        status.setdefault("sequence_number", 0)  # the real one is given when it is recorded
        return reading.model_copy(update={"status": status})

    def payloads(self, reading: Measurement) -> list[tuple[str, bytes]]:
        measurement, context = _split(reading)
        values = [(GLUCOSE_MEASUREMENT, encode(GLUCOSE_MEASUREMENT, measurement))]
        if context is not None:
            values.append(
                (GLUCOSE_MEASUREMENT_CONTEXT, encode(GLUCOSE_MEASUREMENT_CONTEXT, context))
            )
        return values

    def starts_transfer(self, char_uuid: str) -> bool:
        return False  # records go out when the central asks through RACP

    # -- what tests look at ------------------------------------------------------------------

    @property
    def delivered(self) -> int:
        """How many different records were sent at least once."""
        return len(set(self.sent_sequences))

    @property
    def pending(self) -> int | None:
        """Records never sent yet."""
        sent = set(self.sent_sequences)
        return sum(1 for record in self.records if record.sequence not in sent)

    def record(self, reading: Measurement) -> GlucoseRecord:
        """Store a (test's own) measurement as the next record, as if just measured."""
        record = self._add_record(self.prepare(reading), scripted=False)
        self._new_record(record)
        return record

    # -- measuring -----------------------------------------------------------------------------

    def on_attached(self) -> None:
        if self.mode == "connected" and self._script is None and self.interval_s > 0:
            self.spawn_background(self._measuring(), "measure")
        super().on_attached()

    def measure(self, reading: Measurement | None = None) -> Measurement | None:
        if reading is not None:
            return self.record(reading).measurement
        next_reading = self._next_reading(self._delivered)
        if next_reading is None:
            return None
        record = self._add_record(next_reading, scripted=self._script is not None)
        self._new_record(record)
        return record.measurement

    def has_unsent(self) -> bool:
        return bool(self.pending)

    def _add_record(self, reading: Measurement, *, scripted: bool) -> GlucoseRecord:
        sequence = self._next_sequence
        self._next_sequence = (sequence + 1) & 0xFFFF
        stamped = self._stamped(reading)
        status = {**stamped.status, "sequence_number": sequence}
        measurement, context = _split(stamped.model_copy(update={"status": status}))
        record = GlucoseRecord(sequence, measurement, context)
        self.records.append(record)
        if scripted:
            self._delivered += 1  # for a meter: scripted readings recorded
        self._save_state()
        return record

    def _new_record(self, record: GlucoseRecord) -> None:
        if self.connected:
            if self.is_notifying(GLUCOSE_MEASUREMENT) and not self.busy():
                # A meter that is connected when a measurement is taken sends it straight away.
                self._procedure = self.spawn(self._send_record(record), "new record")
            return
        if self.mode == "cycle":
            self._advertise_for(self.advertise_s)

    # -- RACP ------------------------------------------------------------------------------------

    def busy(self) -> bool:
        return super().busy() or (self._procedure is not None and not self._procedure.done())

    def on_write(self, char_uuid: str, data: bytes) -> None:
        if char_uuid != RECORD_ACCESS_CONTROL_POINT:
            super().on_write(char_uuid, data)
            return
        self._touch()
        if not self.is_notifying(RECORD_ACCESS_CONTROL_POINT):
            raise AttError(CCCD_IMPROPERLY_CONFIGURED, "RACP indications are not enabled")
        try:
            request = decode_racp_request(data)
        except RacpRequestError as exc:
            self.racp_requests.append(None)
            self._answer(exc.op_code or 0, exc.response_code)
            return
        self.racp_requests.append(request)
        running = self._procedure is not None and not self._procedure.done()
        if request.op_code == RacpOpCode.ABORT_OPERATION:
            if running and self._procedure is not None:
                self._procedure.cancel()
                self._procedure = None
            self._answer(RacpOpCode.ABORT_OPERATION, RacpResponseCode.SUCCESS)
            return
        if running:
            raise AttError(PROCEDURE_ALREADY_IN_PROGRESS, "Procedure Already In Progress")
        if request.op_code == RacpOpCode.REPORT_STORED_RECORDS and not self.is_notifying(
            GLUCOSE_MEASUREMENT
        ):
            raise AttError(CCCD_IMPROPERLY_CONFIGURED, "measurement notifications are not enabled")
        self._procedure = self.spawn(self._run(request), "RACP procedure")

    async def _run(self, request: RacpRequest) -> None:
        op_code = request.op_code
        if request.filter_type is not None and not self.supports_sequence_filter:
            await self._indicate(op_code, RacpResponseCode.OPERATOR_NOT_SUPPORTED)
            return
        selected = self._select(request)
        if op_code == RacpOpCode.REPORT_NUMBER_OF_STORED_RECORDS:
            await self._indicate_response(RacpResponse(number_of_records=len(selected)))
            return
        if not selected:
            await self._indicate(op_code, RacpResponseCode.NO_RECORDS_FOUND)
            return
        if op_code == RacpOpCode.DELETE_STORED_RECORDS:
            gone = {record.sequence for record in selected}
            self.records = [r for r in self.records if r.sequence not in gone]
            await self._indicate(op_code, RacpResponseCode.SUCCESS)
            return
        for index, record in enumerate(selected):
            if index and self.record_interval_s:
                await asyncio.sleep(self.record_interval_s)
            if not await self._send_record(record):
                return  # the central went away: no response
        await self._indicate(op_code, RacpResponseCode.SUCCESS)

    def _select(self, request: RacpRequest) -> list[GlucoseRecord]:
        records = sorted(self.records, key=lambda r: r.sequence)
        operator = request.operator
        if operator == RacpOperator.ALL_RECORDS:
            return records
        if operator == RacpOperator.FIRST_RECORD:
            return records[:1]
        if operator == RacpOperator.LAST_RECORD:
            return records[-1:]

        def key(record: GlucoseRecord) -> Any:
            if request.filter_type == RacpFilterType.SEQUENCE_NUMBER:
                return record.sequence
            return record.measurement.measured_at

        low, high = request.minimum, request.maximum
        chosen = []
        for record in records:
            value = key(record)
            if value is None:
                continue
            if low is not None and value < low:
                continue
            if high is not None and value > high:
                continue
            chosen.append(record)
        return chosen

    async def _send_record(self, record: GlucoseRecord) -> bool:
        with_context = record.context is not None and self.is_notifying(GLUCOSE_MEASUREMENT_CONTEXT)
        status = {**record.measurement.status, "context_follows": with_context}
        measurement = record.measurement.model_copy(update={"status": status})
        data = encode(GLUCOSE_MEASUREMENT, measurement)
        if not await self.send_value(GLUCOSE_MEASUREMENT, data):
            return False
        self.sent_sequences.append(record.sequence)
        self._wake_waiters()
        if with_context and record.context is not None:
            context = encode(GLUCOSE_MEASUREMENT_CONTEXT, record.context)
            return await self.send_value(GLUCOSE_MEASUREMENT_CONTEXT, context)
        return True

    def _answer(self, op_code: int, code: RacpResponseCode) -> None:
        """Indicate a response after the write that asked for it has been answered."""
        self.spawn(self._indicate(op_code, code), "RACP response")

    async def _indicate(self, op_code: int, code: RacpResponseCode) -> None:
        await self._indicate_response(RacpResponse(request_op_code=op_code, response_code=code))

    async def _indicate_response(self, response: RacpResponse) -> None:
        await self.notify(RECORD_ACCESS_CONTROL_POINT, encode_racp_response(response))

    # -- memory across restarts ------------------------------------------------------------------

    def _load_next_sequence(self) -> int:
        if self._state_file is None:
            return self.first_sequence
        try:
            state = json.loads(self._state_file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return self.first_sequence
        except (OSError, ValueError) as exc:
            raise ValueError(f"unreadable meter state file {self._state_file}: {exc}") from exc
        value = state.get("next_sequence") if isinstance(state, dict) else None
        if self._script is not None or not isinstance(value, int) or isinstance(value, bool):
            # Scripted records are recreated from the script, numbered from the start.
            return self.first_sequence
        return value & 0xFFFF

    def _save_state(self) -> None:
        if self._state_file is None:
            return
        write_json_atomically(
            self._state_file,
            {"delivered": self._delivered, "next_sequence": self._next_sequence},
        )


def _split(reading: Measurement) -> tuple[Measurement, Measurement | None]:
    """The glucose measurement and, when the reading names a meal or tester, its context."""
    status = dict(reading.status)
    details = {key: status.pop(key) for key in CONTEXT_KEYS if key in status}
    measurement = reading.model_copy(update={"status": status})
    if not details:
        return measurement, None
    if "tester" in details or "health" in details:
        details.setdefault("tester", "self")
        details.setdefault("health", "not_available")
    context = Measurement(
        kind="glucose_context",
        values={},
        status={"sequence_number": status.get("sequence_number", 0), **details},
    )
    return measurement, context
