"""What one GATT decode costs, beside the floor of a hand-written ``struct`` decoder.

Run: ``python -m bench.decode_cost``. Not a test and not part of the suite: it prints per-call
microseconds (best of several repeats of ``timeit``) for

* ``devices.gatt.decode`` of the benchmark's Blood Pressure Measurement (flags, three SFLOATs, a
  Date Time, pulse rate) and of a Weight Measurement and a Mi Scale advertisement
  (``devices.broadcast.decode``), the public API returning pydantic ``Measurement`` objects;
* the floor: the same blood pressure bytes unpacked by one ``struct.Struct`` into ``__slots__``
  objects with no checks at all, the least any decoder in Python can do.

The ratio (decode / floor) is the number to compare across changes; both run in this process.

Before/after the codecs stopped re-validating their own output (issue 13), same machine, three runs
each, the pre-change tree (a3f31bc) run with this script beside the current one:

=====================================  ==========================  ==========================
                                       before (validated models)   after
=====================================  ==========================  ==========================
floor (struct into slotted objects)    1.10-1.16 us                1.13-1.16 us
gatt.decode blood pressure (0x2A35)    8.48-8.70 us (7.5-7.7x)     6.47-7.00 us (5.6-6.2x)
gatt.decode weight (0x2A9D)            6.56-6.69 us (5.7-6.1x)     5.58-6.57 us (4.8-5.7x)
broadcast.decode xiaomi_scale          (did not exist)             2.92-2.94 us (2.5x)
=====================================  ==========================  ==========================

Where it came from: pydantic's ``model_construct`` turned out *slower* than validating (a Python
loop over the fields: 8.4 us against 3.8 us for a Measurement with four Quantities), so
``devices.models`` fills the instances directly (2.1 us) after checking once at import that the
result equals a validated one; and ``Reader.sfloat`` remembers decoded SFLOATs. What remains is
the per-field bookkeeping of a general, flag-driven, bounds-checked reader.
"""

from __future__ import annotations

import struct
import timeit
from collections.abc import Callable
from datetime import datetime

from bench.workload import reading_bytes
from devices import broadcast, gatt

REPEATS = 7
CALLS = 20_000

_BP = struct.Struct("<BHHHHBBBBBH")  # flags 0x06: time stamp and pulse rate


class _Quantity:
    __slots__ = ("unit", "value")

    def __init__(self, value: float, unit: str) -> None:
        self.value = value
        self.unit = unit


class _Reading:
    __slots__ = ("kind", "measured_at", "status", "user_index", "values")

    def __init__(self, kind: str, values: dict[str, _Quantity], measured_at: datetime) -> None:
        self.kind = kind
        self.values = values
        self.measured_at = measured_at
        self.user_index: int | None = None
        self.status: dict[str, object] = {}


def _sfloat(raw: int) -> float:
    mantissa = raw & 0x0FFF
    if mantissa >= 0x0800:
        mantissa -= 0x1000
    exponent = raw >> 12
    if exponent >= 8:
        exponent -= 16
    return mantissa * 10.0**exponent


def _floor_decode(data: bytes) -> _Reading:
    (_, sys_, dia, mean, year, month, day, hour, minute, second, pulse) = _BP.unpack_from(data)
    reading = _Reading(
        "blood_pressure",
        {
            "systolic": _Quantity(_sfloat(sys_), "mm[Hg]"),
            "diastolic": _Quantity(_sfloat(dia), "mm[Hg]"),
            "mean_arterial_pressure": _Quantity(_sfloat(mean), "mm[Hg]"),
            "pulse_rate": _Quantity(_sfloat(pulse), "/min"),
        },
        datetime(year, month, day, hour, minute, second),
    )
    return reading


def _per_call_us(call: Callable[[], object]) -> float:
    best = min(timeit.repeat(call, number=CALLS, repeat=REPEATS))
    return best / CALLS * 1e6


def main() -> None:
    bp = reading_bytes(1)
    if _BP.size != len(bp):
        raise SystemExit(f"benchmark payload is {len(bp)} bytes, the floor expects {_BP.size}")
    weight = bytes.fromhex("0e7c15e4070c1f0a0b0c02f000b406")
    mi_scale = bytes.fromhex("229e43e507040b101301")
    floor = _per_call_us(lambda: _floor_decode(bp))
    rows = [
        ("gatt.decode blood pressure (0x2A35)", _per_call_us(lambda: gatt.decode(0x2A35, bp))),
        ("gatt.decode weight (0x2A9D)", _per_call_us(lambda: gatt.decode(0x2A9D, weight))),
        (
            "broadcast.decode xiaomi_scale",
            _per_call_us(lambda: broadcast.decode("xiaomi_scale", "181d", mi_scale)),
        ),
    ]
    print(f"floor: struct into slotted objects, blood pressure  {floor:7.2f} us")
    for name, cost in rows:
        print(f"{name:<50} {cost:7.2f} us  ({cost / floor:4.1f}x floor)")


if __name__ == "__main__":
    main()
