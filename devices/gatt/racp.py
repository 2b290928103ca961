"""Record Access Control Point (0x2A52): requests the gateway writes, responses a device indicates.

Layout (Glucose Service 1.0, section 3.4; Pulse Oximeter Service 1.0, section 3.4): op code
uint8, operator uint8, operand. Filtered operators (<=, >=, within range) take a filter type
(0x01 sequence number as uint16, 0x02 user facing time as Date Time) and one or two bounds. The
device answers a record request with the records, then a Response Code (op code 0x06, operator
Null, operand: request op code and response code value), and a count request with Number of
Stored Records Response (op code 0x05, operator Null, operand uint16; like Nordic's
Android-BLE-Common-Library the decoder also accepts a uint8 or uint32 count).

Decoding a request (what a simulated meter does) raises ``RacpRequestError``, a DecodeError that
carries the response code the device should answer with and the request op code, if readable.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import IntEnum

from devices.gatt._fields import Reader, Writer
from devices.gatt.errors import DecodeError, EncodeError

RECORD_ACCESS_CONTROL_POINT = 0x2A52
_LABEL = "Record Access Control Point (0x2A52)"


class RacpOpCode(IntEnum):
    REPORT_STORED_RECORDS = 0x01
    DELETE_STORED_RECORDS = 0x02
    ABORT_OPERATION = 0x03
    REPORT_NUMBER_OF_STORED_RECORDS = 0x04
    NUMBER_OF_STORED_RECORDS_RESPONSE = 0x05
    RESPONSE_CODE = 0x06


class RacpOperator(IntEnum):
    NULL = 0x00
    ALL_RECORDS = 0x01
    LESS_THAN_OR_EQUAL_TO = 0x02
    GREATER_THAN_OR_EQUAL_TO = 0x03
    WITHIN_RANGE_OF = 0x04
    FIRST_RECORD = 0x05
    LAST_RECORD = 0x06


class RacpFilterType(IntEnum):
    SEQUENCE_NUMBER = 0x01
    USER_FACING_TIME = 0x02


class RacpResponseCode(IntEnum):
    SUCCESS = 0x01
    OP_CODE_NOT_SUPPORTED = 0x02
    INVALID_OPERATOR = 0x03
    OPERATOR_NOT_SUPPORTED = 0x04
    INVALID_OPERAND = 0x05
    NO_RECORDS_FOUND = 0x06
    ABORT_UNSUCCESSFUL = 0x07
    PROCEDURE_NOT_COMPLETED = 0x08
    OPERAND_NOT_SUPPORTED = 0x09


Bound = int | datetime

_RECORD_OPS = (
    RacpOpCode.REPORT_STORED_RECORDS,
    RacpOpCode.DELETE_STORED_RECORDS,
    RacpOpCode.REPORT_NUMBER_OF_STORED_RECORDS,
)
_UNFILTERED = (RacpOperator.ALL_RECORDS, RacpOperator.FIRST_RECORD, RacpOperator.LAST_RECORD)


class RacpRequestError(DecodeError):
    """A request the device must refuse; ``response_code`` is the answer it sends."""

    def __init__(self, message: str, response_code: RacpResponseCode, op_code: int | None) -> None:
        super().__init__(f"{_LABEL}: {message}")
        self.response_code = response_code
        self.op_code = op_code


@dataclass(frozen=True, slots=True)
class RacpRequest:
    """One request. ``minimum``/``maximum`` are the bounds of the filtered operators."""

    op_code: RacpOpCode
    operator: RacpOperator
    filter_type: RacpFilterType | None = None
    minimum: Bound | None = None
    maximum: Bound | None = None


@dataclass(frozen=True, slots=True)
class RacpResponse:
    """A device's answer: a response code to ``request_op_code``, or a number of records.

    ``response_code`` is a RacpResponseCode, or the plain int of a code this module does not know
    (a newer specification's), which a caller treats as a failure.
    """

    request_op_code: int | None = None
    response_code: RacpResponseCode | int | None = None
    number_of_records: int | None = None


def report_all_records() -> RacpRequest:
    return RacpRequest(RacpOpCode.REPORT_STORED_RECORDS, RacpOperator.ALL_RECORDS)


def report_records_from(sequence_number: int) -> RacpRequest:
    """Report stored records with a sequence number greater than or equal to ``sequence_number``."""
    return RacpRequest(
        RacpOpCode.REPORT_STORED_RECORDS,
        RacpOperator.GREATER_THAN_OR_EQUAL_TO,
        RacpFilterType.SEQUENCE_NUMBER,
        minimum=sequence_number,
    )


def report_number_of_records(from_sequence_number: int | None = None) -> RacpRequest:
    if from_sequence_number is None:
        return RacpRequest(RacpOpCode.REPORT_NUMBER_OF_STORED_RECORDS, RacpOperator.ALL_RECORDS)
    return RacpRequest(
        RacpOpCode.REPORT_NUMBER_OF_STORED_RECORDS,
        RacpOperator.GREATER_THAN_OR_EQUAL_TO,
        RacpFilterType.SEQUENCE_NUMBER,
        minimum=from_sequence_number,
    )


def delete_all_records() -> RacpRequest:
    return RacpRequest(RacpOpCode.DELETE_STORED_RECORDS, RacpOperator.ALL_RECORDS)


def abort_operation() -> RacpRequest:
    return RacpRequest(RacpOpCode.ABORT_OPERATION, RacpOperator.NULL)


def _bounds(operator: RacpOperator) -> tuple[str, ...]:
    return {
        RacpOperator.LESS_THAN_OR_EQUAL_TO: ("maximum",),
        RacpOperator.GREATER_THAN_OR_EQUAL_TO: ("minimum",),
        RacpOperator.WITHIN_RANGE_OF: ("minimum", "maximum"),
    }.get(operator, ())


def encode_racp_request(request: RacpRequest) -> bytes:
    writer = Writer(_LABEL)
    op_code, operator = request.op_code, request.operator
    if op_code == RacpOpCode.ABORT_OPERATION:
        if operator != RacpOperator.NULL:
            writer.fail("abort operation takes the Null operator")
    elif op_code not in _RECORD_OPS:
        writer.fail(f"op code {op_code!r} is not a request")
    elif operator == RacpOperator.NULL:
        writer.fail(f"{op_code.name} needs an operator other than Null")
    writer.u8(op_code, "op_code")
    writer.u8(operator, "operator")
    bounds = _bounds(operator)
    if not bounds:
        return writer.getvalue()
    if request.filter_type is None:
        writer.fail(f"operator {operator.name} needs a filter type")
    writer.u8(request.filter_type, "filter_type")
    for name in bounds:
        bound = getattr(request, name)
        if request.filter_type == RacpFilterType.SEQUENCE_NUMBER:
            if isinstance(bound, bool) or not isinstance(bound, int):
                writer.fail(f"{name} must be a sequence number (int), got {bound!r}")
            writer.u16(bound, name)
        else:
            if not isinstance(bound, datetime):
                writer.fail(f"{name} must be a user facing time (datetime), got {bound!r}")
            writer.date_time(bound, name)
    return writer.getvalue()


def decode_racp_request(data: bytes) -> RacpRequest:
    """Parse a request; RacpRequestError says which response code to send when it is not valid."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise RacpRequestError(
            f"expected bytes, got {type(data).__name__}", RacpResponseCode.INVALID_OPERAND, None
        )
    data = bytes(data)
    if len(data) < 2:
        raise RacpRequestError(
            f"a request has at least an op code and an operator, got {len(data)} byte(s)",
            RacpResponseCode.INVALID_OPERAND,
            data[0] if data else None,
        )
    raw_op, raw_operator = data[0], data[1]
    try:
        op_code = RacpOpCode(raw_op)
    except ValueError:
        op_code = None
    if op_code is None or op_code not in (*_RECORD_OPS, RacpOpCode.ABORT_OPERATION):
        raise RacpRequestError(
            f"op code {raw_op:#04x} is not a request",
            RacpResponseCode.OP_CODE_NOT_SUPPORTED,
            raw_op,
        )
    try:
        operator = RacpOperator(raw_operator)
    except ValueError:
        raise RacpRequestError(
            f"operator {raw_operator:#04x} is reserved",
            RacpResponseCode.OPERATOR_NOT_SUPPORTED,
            raw_op,
        ) from None
    if (op_code == RacpOpCode.ABORT_OPERATION) != (operator == RacpOperator.NULL):
        raise RacpRequestError(
            f"operator {operator.name} is not valid for {op_code.name}",
            RacpResponseCode.INVALID_OPERATOR,
            raw_op,
        )
    bounds = _bounds(operator)
    if not bounds:
        if len(data) != 2:
            raise RacpRequestError(
                f"{operator.name} takes no operand, got {len(data) - 2} byte(s)",
                RacpResponseCode.INVALID_OPERAND,
                raw_op,
            )
        return RacpRequest(op_code, operator)
    return _filtered(data, op_code, operator, bounds)


def _filtered(
    data: bytes, op_code: RacpOpCode, operator: RacpOperator, bounds: tuple[str, ...]
) -> RacpRequest:
    if len(data) < 3:
        raise RacpRequestError(
            f"{operator.name} needs a filter type", RacpResponseCode.INVALID_OPERAND, op_code
        )
    try:
        filter_type = RacpFilterType(data[2])
    except ValueError:
        raise RacpRequestError(
            f"filter type {data[2]:#04x} is not supported",
            RacpResponseCode.OPERAND_NOT_SUPPORTED,
            op_code,
        ) from None
    reader = Reader(data[3:], _LABEL)
    found: dict[str, Bound | None] = {}
    try:
        for name in bounds:
            if filter_type == RacpFilterType.SEQUENCE_NUMBER:
                found[name] = reader.u16(name)
            else:
                found[name] = reader.date_time(name)
        reader.end()
    except DecodeError as exc:
        raise RacpRequestError(
            str(exc).removeprefix(f"{_LABEL}: "), RacpResponseCode.INVALID_OPERAND, op_code
        ) from None
    low, high = found.get("minimum"), found.get("maximum")
    unknown_time = None in found.values()
    if (
        unknown_time
        or (isinstance(low, int) and isinstance(high, int) and low > high)
        or (isinstance(low, datetime) and isinstance(high, datetime) and low > high)
    ):
        raise RacpRequestError(
            f"operand {found} is not a valid range", RacpResponseCode.INVALID_OPERAND, op_code
        )
    return RacpRequest(op_code, operator, filter_type, low, high)


def encode_racp_response(response: RacpResponse) -> bytes:
    writer = Writer(_LABEL)
    if response.number_of_records is not None:
        writer.u8(RacpOpCode.NUMBER_OF_STORED_RECORDS_RESPONSE, "op_code")
        writer.u8(RacpOperator.NULL, "operator")
        writer.u16(response.number_of_records, "number_of_records")
        return writer.getvalue()
    if response.request_op_code is None or response.response_code is None:
        raise EncodeError(f"{_LABEL}: a response needs a count or a request op code and code")
    writer.u8(RacpOpCode.RESPONSE_CODE, "op_code")
    writer.u8(RacpOperator.NULL, "operator")
    writer.u8(response.request_op_code, "request_op_code")
    writer.u8(response.response_code, "response_code")
    return writer.getvalue()


def decode_racp_response(data: bytes) -> RacpResponse:
    """Parse a device's indication on the RACP; DecodeError for anything but the two responses."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise DecodeError(f"{_LABEL}: expected bytes, got {type(data).__name__}")
    reader = Reader(bytes(data), _LABEL)
    op_code = reader.u8("op_code")
    operator = reader.u8("operator")
    if op_code not in (RacpOpCode.RESPONSE_CODE, RacpOpCode.NUMBER_OF_STORED_RECORDS_RESPONSE):
        reader.fail(f"field 'op_code' at offset 0: {op_code:#04x} is not a response op code")
    if operator != RacpOperator.NULL:
        reader.fail(
            f"field 'operator' at offset 1: expected Null (0x00) in a response, got {operator:#04x}"
        )
    if op_code == RacpOpCode.NUMBER_OF_STORED_RECORDS_RESPONSE:
        size = reader.remaining()
        if size not in (1, 2, 4):
            reader.fail(
                f"field 'number_of_records' at offset 2: {size} byte(s), expected a uint16 "
                "(uint8 and uint32 are accepted too)"
            )
        return RacpResponse(number_of_records=reader.uint(size, "number_of_records"))
    request_op_code = reader.u8("request_op_code")
    raw_code = reader.u8("response_code")  # anything after it is ignored, as a receiver must
    code: RacpResponseCode | int
    try:
        code = RacpResponseCode(raw_code)
    except ValueError:
        code = raw_code
    return RacpResponse(request_op_code=request_op_code, response_code=code)
