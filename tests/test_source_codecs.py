"""The source's own small codecs and the layering rule of ``devices/``.

Date Time (0x2A08, the clock of A&D and Roche devices), the User Control Point responses of
User Data Service scales and Omron's memory frames and records: 10,000 seeded random and
mutated payloads each give a value or DecodeError (a parsed response or None for the control
point), nothing else.
"""

from __future__ import annotations

import ast
import random
from datetime import datetime
from pathlib import Path

import pytest

from devices.drivers.date_time import decode_date_time, encode_date_time
from devices.drivers.uds import UcpResponse, encode_consent, encode_register_new_user
from devices.gatt import DecodeError
from devices.omron import MEMORY_MAPS, READ, REPLY, parse_frame, parse_record, reply

PAYLOADS = 10_000
DEVICES = Path(__file__).resolve().parent.parent / "devices"


def mutations(rng: random.Random, valid: bytes) -> list[bytes]:
    out = []
    for _ in range(PAYLOADS):
        choice = rng.randrange(4)
        data = bytearray(valid)
        if choice == 0:
            data = bytearray(rng.randbytes(rng.randrange(0, 12)))
        elif choice == 1 and data:
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        elif choice == 2:
            data = data[: rng.randrange(len(data) + 1)]
        else:
            data += rng.randbytes(rng.randrange(1, 4))
        out.append(bytes(data))
    return out


def test_date_time_round_trips_whole_seconds() -> None:
    moment = datetime(2026, 11, 30, 21, 5, 9, 987654)
    assert encode_date_time(moment) == bytes.fromhex("ea070b1e150509")
    assert decode_date_time(encode_date_time(moment)) == moment.replace(microsecond=0)
    assert decode_date_time(bytes(7)) is None  # "unknown": a clock never set


def test_fuzzed_date_time_payloads_decode_or_raise_decode_error_only() -> None:
    rng = random.Random(0x2A08)
    decoded = 0
    for payload in mutations(rng, encode_date_time(datetime(2026, 11, 30, 8, 0, 0))):
        try:
            value = decode_date_time(payload)
        except DecodeError:
            continue
        decoded += 1
        assert value is None or isinstance(value, datetime)
    assert decoded > 0


def test_fuzzed_user_control_point_responses_parse_or_are_ignored() -> None:
    rng = random.Random(0x2A9F)
    for payload in mutations(rng, bytes((0x20, 0x01, 0x01, 0x02))):
        response = UcpResponse.parse(payload)
        assert response is None or (payload[0] == 0x20 and len(payload) >= 3)


def test_fuzzed_omron_frames_and_records_decode_or_raise_decode_error_only() -> None:
    rng = random.Random(0x7322)
    memory = MEMORY_MAPS["omron-hem-7322t"]
    record = bytes.fromhex("5b781a4819d71b42000014006996")
    frame = reply(READ | REPLY, 0x02AC, record)
    for payload in mutations(rng, frame):
        try:
            parsed = parse_frame(payload)
        except DecodeError:
            continue
        assert parsed.kind == int.from_bytes(payload[1:3], "big")
    parsed_records = 0
    for payload in mutations(rng, record):
        try:
            measurement = parse_record(memory, payload, 1)
        except DecodeError:
            continue
        parsed_records += measurement is not None
    assert parsed_records > 0


def test_user_control_point_requests_are_the_specified_bytes() -> None:
    assert encode_consent(1, 4711) == bytes((0x02, 0x01, 0x67, 0x12))
    assert encode_register_new_user(815) == bytes((0x01, 0x2F, 0x03))


def imported_modules(tree: ast.AST) -> list[str]:
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.append(node.module)
    return names


@pytest.mark.parametrize("path", sorted(DEVICES.rglob("*.py")), ids=lambda p: p.name)
def test_no_module_in_devices_imports_the_gateway(path: Path) -> None:
    imported = imported_modules(ast.parse(path.read_text(encoding="utf-8")))
    assert [m for m in imported if m == "gateway" or m.startswith("gateway.")] == []
