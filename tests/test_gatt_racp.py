"""Record Access Control Point (0x2A52), Glucose Service 1.0 section 3.4.

Response frames are those of NordicSemiconductor/Android-BLE-Common-Library's
RecordAccessControlPointDataCallbackTest (e.g. ``06 00 01 01`` success to "report stored records",
``05 00 02 01`` 258 records, ``06 00 01 0a`` an unknown response code).
"""

from __future__ import annotations

from datetime import datetime

import pytest

from devices.gatt import DecodeError, EncodeError
from devices.gatt.racp import (
    RacpFilterType,
    RacpOpCode,
    RacpOperator,
    RacpRequest,
    RacpRequestError,
    RacpResponse,
    RacpResponseCode,
    abort_operation,
    decode_racp_request,
    decode_racp_response,
    delete_all_records,
    encode_racp_request,
    encode_racp_response,
    report_all_records,
    report_number_of_records,
    report_records_from,
)


@pytest.mark.parametrize(
    ("request_", "hex_data"),
    [
        (report_all_records(), "0101"),
        (report_records_from(0x1234), "0103 01 3412"),
        (report_number_of_records(), "0401"),
        (report_number_of_records(from_sequence_number=7), "0403 01 0700"),
        (abort_operation(), "0300"),
        (delete_all_records(), "0201"),
        (RacpRequest(RacpOpCode.REPORT_STORED_RECORDS, RacpOperator.LAST_RECORD), "0106"),
        (
            RacpRequest(
                RacpOpCode.REPORT_STORED_RECORDS,
                RacpOperator.WITHIN_RANGE_OF,
                RacpFilterType.SEQUENCE_NUMBER,
                minimum=5,
                maximum=9,
            ),
            "0104 01 0500 0900",
        ),
        (
            RacpRequest(
                RacpOpCode.REPORT_STORED_RECORDS,
                RacpOperator.LESS_THAN_OR_EQUAL_TO,
                RacpFilterType.USER_FACING_TIME,
                maximum=datetime(2024, 3, 21, 14, 30, 45),
            ),
            "0102 02 e8070315 0e1e2d",
        ),
    ],
)
def test_requests(request_: RacpRequest, hex_data: str) -> None:
    data = bytes.fromhex(hex_data)
    assert encode_racp_request(request_) == data
    assert decode_racp_request(data) == request_


@pytest.mark.parametrize(
    ("hex_data", "code"),
    [
        ("", RacpResponseCode.INVALID_OPERAND),
        ("0c01", RacpResponseCode.OP_CODE_NOT_SUPPORTED),
        ("0600", RacpResponseCode.OP_CODE_NOT_SUPPORTED),  # a response is not a request
        ("0109", RacpResponseCode.OPERATOR_NOT_SUPPORTED),
        ("0100", RacpResponseCode.INVALID_OPERATOR),  # report with Null
        ("0301", RacpResponseCode.INVALID_OPERATOR),  # abort with All records
        ("010101", RacpResponseCode.INVALID_OPERAND),  # All records takes no operand
        ("0103", RacpResponseCode.INVALID_OPERAND),  # filter type missing
        ("0103 03 0100", RacpResponseCode.OPERAND_NOT_SUPPORTED),  # filter type 3
        ("0103 01 01", RacpResponseCode.INVALID_OPERAND),  # half a sequence number
        ("0104 01 0900 0500", RacpResponseCode.INVALID_OPERAND),  # min > max
        ("0102 02 00000000000000", RacpResponseCode.INVALID_OPERAND),  # unknown time
    ],
)
def test_invalid_requests_say_what_to_answer(hex_data: str, code: RacpResponseCode) -> None:
    with pytest.raises(RacpRequestError) as info:
        decode_racp_request(bytes.fromhex(hex_data))
    assert info.value.response_code is code
    assert isinstance(info.value, DecodeError)
    if hex_data:
        assert info.value.op_code == bytes.fromhex(hex_data)[0]


@pytest.mark.parametrize(
    ("hex_data", "expected"),
    [
        ("06000101", RacpResponse(request_op_code=1, response_code=RacpResponseCode.SUCCESS)),
        ("06000c02", RacpResponse(12, RacpResponseCode.OP_CODE_NOT_SUPPORTED)),
        ("06000106", RacpResponse(1, RacpResponseCode.NO_RECORDS_FOUND)),
        ("06000307", RacpResponse(3, RacpResponseCode.ABORT_UNSUCCESSFUL)),
        ("06000208", RacpResponse(2, RacpResponseCode.PROCEDURE_NOT_COMPLETED)),
        ("06000209", RacpResponse(2, RacpResponseCode.OPERAND_NOT_SUPPORTED)),
        ("0600010a", RacpResponse(1, 10)),
        ("050001", RacpResponse(number_of_records=1)),
        ("05000201", RacpResponse(number_of_records=258)),
        ("050004030201", RacpResponse(number_of_records=16909060)),
    ],
)
def test_responses(hex_data: str, expected: RacpResponse) -> None:
    assert decode_racp_response(bytes.fromhex(hex_data)) == expected


def test_encode_responses() -> None:
    assert encode_racp_response(
        RacpResponse(RacpOpCode.REPORT_STORED_RECORDS, RacpResponseCode.SUCCESS)
    ) == bytes.fromhex("06000101")
    assert encode_racp_response(RacpResponse(number_of_records=258)) == bytes.fromhex("05000201")
    with pytest.raises(EncodeError, match="needs a count"):
        encode_racp_response(RacpResponse())


@pytest.mark.parametrize(
    ("hex_data", "message"),
    [
        ("05000302 01", "3 byte"),  # Nordic: unsupported length
        ("0101", "not a response op code"),  # Nordic: too short / a request
        ("0103010200", "not a response op code"),  # Nordic: wrong op code
        ("060101", "expected Null"),  # Nordic: invalid operator
        ("060001", r"field 'response_code' at offset 3: expected 1"),
    ],
)
def test_invalid_responses(hex_data: str, message: str) -> None:
    with pytest.raises(DecodeError, match=message):
        decode_racp_response(bytes.fromhex(hex_data))


def test_bytes_after_a_response_code_are_ignored() -> None:
    assert decode_racp_response(bytes.fromhex("0600010100")) == decode_racp_response(
        bytes.fromhex("06000101")
    )


def test_encode_request_errors() -> None:
    with pytest.raises(EncodeError, match="needs a filter type"):
        encode_racp_request(
            RacpRequest(RacpOpCode.REPORT_STORED_RECORDS, RacpOperator.GREATER_THAN_OR_EQUAL_TO)
        )
    with pytest.raises(EncodeError, match="Null operator"):
        encode_racp_request(RacpRequest(RacpOpCode.ABORT_OPERATION, RacpOperator.ALL_RECORDS))
    with pytest.raises(EncodeError, match="16-bit"):
        encode_racp_request(report_records_from(70000))
