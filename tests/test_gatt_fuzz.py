"""Fuzzing every codec: random and mutated payloads give a Measurement or DecodeError, nothing else.

For each characteristic, 10,000 payloads from a seeded ``random.Random``: mutations (truncation,
bit flips, byte replacement, insertion, extension) of valid encodings plus entirely random bytes.
A payload that decodes must also survive the way back: encoding the Measurement gives bytes that
decode to the same Measurement (or an EncodeError for the few decoded forms that keep no wire
number, such as a "reserved" sample type), apart from what a tolerant receiver ignored (reserved
flag bits, trailing bytes), which a strict encoder does not send again.

The same holds for every broadcast profile (``devices.broadcast``) and every model quirk
(``devices.gatt.quirks``): 10,000 seeded payloads each, only DecodeError.
"""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from devices import broadcast
from devices.gatt import (
    IGNORED_BYTES,
    RESERVED_FLAGS,
    DecodeError,
    EncodeError,
    decode,
    decode_battery_level,
    decode_current_time,
    encode,
    encode_current_time,
)
from devices.gatt.current_time import AdjustReason
from devices.gatt.racp import (
    decode_racp_request,
    decode_racp_response,
    encode_racp_request,
    encode_racp_response,
)
from gateway.models import Measurement

ROUNDS = 10_000

SEEDS: dict[int, list[str]] = {
    0x2A35: [
        "1e 7800 5000 5a00 e4070c1f0a0b0c 4800 01 0500",
        "01 a0f0 6bf0 7df0",
        "04 ff07 5000 0008 fe07",
    ],
    0x2A36: ["04 9600 ff07 ff07 4600", "1f 2c01 ff07 ff07 e4070c1f0a0b0c 4600 ff 1800"],
    0x2A9D: ["0e 7c15 e4070c1f0a0b0c 02 f000 b406", "0f 483c e8070315 0e1e2d 00 f500 ad02"],
    0x2A9C: [
        "fe0f d200 e8070315 0e1e2d 01 2e1a 8501 7017 f02b d427 3c1e 9c12 d036 ca06",
        "210c d200 b80b 483c ad02",
        "0410 ffff 02",
    ],
    0x2A18: [
        "1b 0100 e30702 1b 0b0a1e fbff 1e00 12 0501",
        "06 0700 e8070315 0e1e2d 37c0 f1",
        "01 0100 0f270c1f173b3b ff7f",
    ],
    0x2A34: ["ff 0000 b3 03 64d0 04 12 3c00 32 04 d3f4 59f1", "18 0500 ffff 64 01 fbd0"],
    0x2A1C: ["06 6e0100ff e8070315 0e1e2d 09", "01 8a2600fe", "00 ffff7f00"],
    0x2A37: ["1f 2c01 e803 0004 0002", "164800040003", "110000ffff7f80"],
    0x2A5E: ["1f 6200 4800 e4070c1f0a0b0c a000 218000 37f0", "00 6100 4b00"],
    0x2A5F: ["1f 6200 4800 6100 4700 6000 4600 0001 000800 ff07", "02 ff07 0008 6000 fe07"],
}


def _mutate(rng: random.Random, seed: bytes) -> bytes:
    data = bytearray(seed)
    choice = rng.randrange(7)
    if choice == 0:
        return bytes(data[: rng.randrange(len(data) + 1)])
    if choice == 1:
        for _ in range(rng.randint(1, 3)):
            index = rng.randrange(len(data))
            data[index] ^= 1 << rng.randrange(8)
    elif choice == 2:
        data[rng.randrange(len(data))] = rng.randrange(256)
    elif choice == 3:
        data.insert(rng.randrange(len(data) + 1), rng.randrange(256))
    elif choice == 4:
        data += rng.randbytes(rng.randint(1, 8))
    elif choice == 5:
        data[0] = rng.randrange(256)  # any flag combination over a valid body
        if len(data) > 1 and rng.random() < 0.5:
            data[1] = rng.randrange(256)
    else:
        return rng.randbytes(rng.randrange(40))
    return bytes(data)


def _without_tolerated(m: Measurement) -> Measurement:
    status = {k: v for k, v in m.status.items() if k not in (RESERVED_FLAGS, IGNORED_BYTES)}
    return m.model_copy(update={"status": status})


def _check_decoded(characteristic: int, m: Measurement, model: str | None = None) -> None:
    try:
        again = encode(characteristic, m, model=model)
    except EncodeError:
        return
    assert _without_tolerated(decode(characteristic, again, model=model)) == _without_tolerated(m)


@pytest.mark.parametrize("characteristic", sorted(SEEDS), ids=lambda c: f"0x{c:04X}")
def test_mutated_payloads_decode_or_raise_decode_error(characteristic: int) -> None:
    rng = random.Random(characteristic)
    seeds = [bytes.fromhex(s) for s in SEEDS[characteristic]]
    decoded = failed = 0
    for _ in range(ROUNDS):
        data = _mutate(rng, rng.choice(seeds))
        try:
            m = decode(characteristic, data)
        except DecodeError:
            failed += 1
            continue
        decoded += 1
        _check_decoded(characteristic, m)
    # Both outcomes must be exercised, or the mutations are not reaching the decoder's logic.
    assert decoded > ROUNDS // 20
    assert failed > ROUNDS // 20


def _battery(data: bytes) -> None:
    assert 0 <= decode_battery_level(data) == data[0] <= 100


def _current_time(data: bytes) -> None:
    stamp = decode_current_time(data)
    assert len(data) >= 10  # bytes after the tenth are ignored
    if stamp is not None:
        assert (
            decode_current_time(encode_current_time(stamp, AdjustReason(data[9] & 0x0F))) == stamp
        )


def _racp_request(data: bytes) -> None:
    assert encode_racp_request(decode_racp_request(data)) == data


def _racp_response(data: bytes) -> None:
    response = decode_racp_response(data)
    if response.number_of_records is None:
        assert encode_racp_response(response) == data[:4]  # anything after it is ignored
    elif len(data) == 4:
        assert encode_racp_response(response) == data


HELPERS: dict[str, tuple[Callable[[bytes], None], list[str]]] = {
    "battery_level": (_battery, ["37", "64"]),
    "current_time": (_current_time, ["e8070315 0e1e2d 04 80 02", "00000000000000 00 00 00"]),
    "racp_request": (_racp_request, ["0103 01 3412", "0104 02 e8070315 0e1e2d e8070316 0e1e2d"]),
    "racp_response": (_racp_response, ["06000101", "05000201"]),
}


@pytest.mark.parametrize("name", sorted(HELPERS))
def test_helpers_decode_or_raise_decode_error(name: str) -> None:
    check, seeds = HELPERS[name]
    rng = random.Random(name)
    payloads = [bytes.fromhex(s) for s in seeds]
    decoded = failed = 0
    for _ in range(ROUNDS):
        data = _mutate(rng, rng.choice(payloads))
        try:
            check(data)
        except DecodeError:
            failed += 1
        else:
            decoded += 1
    assert decoded > ROUNDS // 50
    assert failed > ROUNDS // 50


# Captures from the public sources cited in tests/vectors/ (Xiaomi) and the BM85 captures of
# derdilla/blood-pressure-monitor-fl; the TaiDoc seeds are the glucose seeds above.
BROADCAST_SEEDS: dict[str, list[str]] = {
    "xiaomi_scale": ["229e43e507040b101301", "a22044b20701010a1a15", "821400e507040b101708"],
    "xiaomi_body_composition": [
        "0226b20705040f0201ac018642",
        "0204b207010112101a0000a852",
        "0282b20705040f020100000000",
    ],
}
QUIRK_SEEDS: dict[str, tuple[int, list[str]]] = {
    "beurer-bm85": (
        0x2A35,
        [
            "566a00470000 00ea07080b121f00 003f 00 0000",
            "567700460000 00ea07080b143900 0057 01 0040",
            "567600500000 00ea07080b141b00 003c 00 0004",
        ],
    ),
    "taidoc-dm30b": (0x2A18, SEEDS[0x2A18]),
}


@pytest.mark.parametrize("profile", sorted(BROADCAST_SEEDS))
def test_mutated_advertisements_decode_or_raise_decode_error(profile: str) -> None:
    rng = random.Random(profile)
    service = broadcast.service_uuid(profile)
    seeds = [bytes.fromhex(s) for s in BROADCAST_SEEDS[profile]]
    decoded = failed = 0
    for _ in range(ROUNDS):
        data = _mutate(rng, rng.choice(seeds))
        try:
            m = broadcast.decode(profile, service, data)
        except DecodeError:
            failed += 1
            continue
        decoded += 1
        try:
            again = broadcast.encode(profile, m)
        except EncodeError:
            continue
        assert broadcast.decode(profile, service, again) == m
    assert decoded > ROUNDS // 20
    assert failed > ROUNDS // 20


@pytest.mark.parametrize("model", sorted(QUIRK_SEEDS))
def test_mutated_payloads_of_each_quirky_model_decode_or_raise_decode_error(model: str) -> None:
    characteristic, seed_texts = QUIRK_SEEDS[model]
    rng = random.Random(model)
    seeds = [bytes.fromhex(s) for s in seed_texts]
    decoded = failed = 0
    for _ in range(ROUNDS):
        data = _mutate(rng, rng.choice(seeds))
        try:
            m = decode(characteristic, data, model=model)
        except DecodeError:
            failed += 1
            continue
        decoded += 1
        _check_decoded(characteristic, m, model)
    assert decoded > ROUNDS // 20
    assert failed > ROUNDS // 20


# The same property through hypothesis, seeded (derandomized), on its own byte strategy: any bytes
# of a plausible length, and captures with a few bytes replaced. 10,000 payloads per decoder.
def _broadcast_decoder(profile: str) -> Callable[[bytes], object]:
    service = broadcast.service_uuid(profile)
    return lambda data: broadcast.decode(profile, service, data)


def _quirk_decoder(model: str) -> Callable[[bytes], object]:
    characteristic = QUIRK_SEEDS[model][0]
    return lambda data: decode(characteristic, data, model=model)


NEW_DECODERS: dict[str, tuple[Callable[[bytes], object], list[str]]] = {
    **{f"broadcast {p}": (_broadcast_decoder(p), s) for p, s in BROADCAST_SEEDS.items()},
    **{f"quirk {m}": (_quirk_decoder(m), s) for m, (_, s) in QUIRK_SEEDS.items()},
}


@st.composite
def _payloads(draw: st.DrawFn, seeds: list[str]) -> bytes:
    if draw(st.booleans()):
        return draw(st.binary(max_size=24))
    data = bytearray(bytes.fromhex(draw(st.sampled_from(seeds))))
    for _ in range(draw(st.integers(1, 3))):
        data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    return bytes(data[: draw(st.integers(0, len(data) + 2))])


@pytest.mark.parametrize("name", sorted(NEW_DECODERS))
def test_hypothesis_payloads_for_each_new_decoder_raise_only_decode_error(name: str) -> None:
    decoder, seeds = NEW_DECODERS[name]

    @settings(max_examples=ROUNDS, derandomize=True, deadline=None, database=None)
    @given(_payloads(seeds))
    def check(data: bytes) -> None:
        try:
            decoder(data)
        except DecodeError:
            pass

    check()
