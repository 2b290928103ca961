"""Glucose Measurement Context (0x2A34).

Layout (Glucose Service 1.0, section 3.2; GATT Specification Supplement, "Glucose Measurement
Context"): flags uint8 (bit 0 carbohydrate, 1 meal, 2 tester-health, 3 exercise, 4 medication,
5 medication in liters instead of kilograms, 6 HbA1c, 7 extended flags), sequence number uint16,
then in order the optional extended flags (uint8), carbohydrate ID (uint8) + carbohydrate (SFLOAT,
kg), meal (uint8), tester-health (uint8: tester low nibble, health high nibble), exercise duration
(uint16 s, 0xFFFF = overrun) + intensity (uint8 %), medication ID (uint8) + medication (SFLOAT, kg
or L) and HbA1c (SFLOAT, %).

Kind ``glucose_context``. Units are renamed exactly on the decimal exponent, as for glucose: the
carbohydrate's kg is reported in "g" (* 1e3), the medication's kg in "mg" (* 1e6) and its liters in
"mL" (* 1e3); the encoder inverts it.

Values: ``carbohydrate`` ("g"), ``exercise_duration`` ("s"), ``exercise_intensity`` ("%"),
``medication`` ("mg" | "mL"), ``hba1c`` ("%").

Status keys: ``sequence_number`` (int, always); ``carbohydrate_id`` ("breakfast", "lunch",
"dinner", "snack", "drink", "supper", "brunch"), ``meal`` ("preprandial", "postprandial",
"fasting", "casual", "bedtime"), ``tester`` ("self", "health_care_professional", "lab_test",
"not_available"), ``health`` ("minor_health_issues", "major_health_issues", "during_menses",
"under_stress", "no_health_issues", "not_available"), ``medication_id`` ("rapid_acting_insulin",
"short_acting_insulin", "intermediate_acting_insulin", "long_acting_insulin",
"pre_mixed_insulin"); each is "reserved" for values the specification leaves open and present with
its field. ``extended_flags`` (int): the raw extended flags octet when present (all its bits are
reserved). ``special_values``: SFLOAT specials, and ``{"exercise_duration": "overrun"}``.

Bytes after the last announced field are ignored, as the specifications require of a receiver
(``devices.gatt.decode`` records them in ``status["reserved_flags"]`` and
``status["ignored_bytes"]``).
"""

from __future__ import annotations

import math
from typing import Any

from devices.gatt._codec import Codec
from devices.gatt._fields import (
    Reader,
    ValueSink,
    ValueSource,
    Writer,
    enum_code,
    enum_name,
    pick_unit,
)
from devices.ieee11073 import SpecialValue
from devices.models import Measurement

GLUCOSE_MEASUREMENT_CONTEXT = 0x2A34

_CARBOHYDRATE = 0x01
_MEAL = 0x02
_TESTER_HEALTH = 0x04
_EXERCISE = 0x08
_MEDICATION = 0x10
_MEDICATION_LITERS = 0x20
_HBA1C = 0x40
_EXTENDED_FLAGS = 0x80

EXERCISE_OVERRUN = 0xFFFF
OVERRUN = "overrun"

CARBOHYDRATE_IDS = {
    1: "breakfast",
    2: "lunch",
    3: "dinner",
    4: "snack",
    5: "drink",
    6: "supper",
    7: "brunch",
}
MEALS = {1: "preprandial", 2: "postprandial", 3: "fasting", 4: "casual", 5: "bedtime"}
TESTERS = {1: "self", 2: "health_care_professional", 3: "lab_test", 15: "not_available"}
HEALTH = {
    1: "minor_health_issues",
    2: "major_health_issues",
    3: "during_menses",
    4: "under_stress",
    5: "no_health_issues",
    15: "not_available",
}
MEDICATION_IDS = {
    1: "rapid_acting_insulin",
    2: "short_acting_insulin",
    3: "intermediate_acting_insulin",
    4: "long_acting_insulin",
    5: "pre_mixed_insulin",
}
CARBOHYDRATE_UNIT = "g"
CARBOHYDRATE_SHIFT = 3
# Medication unit -> (flag bit 5, decimal shift from the wire unit).
MEDICATION_UNITS = {"mg": (0, 6), "mL": (_MEDICATION_LITERS, 3)}


def decode_glucose_context(reader: Reader) -> Measurement:
    flags = reader.u8("flags")
    status: dict[str, Any] = {"sequence_number": reader.u16("sequence_number")}
    sink = ValueSink()
    if flags & _EXTENDED_FLAGS:
        status["extended_flags"] = reader.u8("extended_flags")
    if flags & _CARBOHYDRATE:
        status["carbohydrate_id"] = enum_name(CARBOHYDRATE_IDS, reader.u8("carbohydrate_id"))
        carbohydrate = reader.sfloat("carbohydrate", CARBOHYDRATE_SHIFT)
        sink.put("carbohydrate", carbohydrate, CARBOHYDRATE_UNIT)
    if flags & _MEAL:
        status["meal"] = enum_name(MEALS, reader.u8("meal"))
    if flags & _TESTER_HEALTH:
        tester_health = reader.u8("tester_health")
        status["tester"] = enum_name(TESTERS, tester_health & 0x0F)
        status["health"] = enum_name(HEALTH, tester_health >> 4)
    if flags & _EXERCISE:
        duration = reader.u16("exercise_duration")
        if duration == EXERCISE_OVERRUN:
            sink.specials["exercise_duration"] = OVERRUN
        else:
            sink.put("exercise_duration", duration, "s")
        sink.put("exercise_intensity", reader.u8("exercise_intensity"), "%")
    if flags & _MEDICATION:
        status["medication_id"] = enum_name(MEDICATION_IDS, reader.u8("medication_id"))
        unit = "mL" if flags & _MEDICATION_LITERS else "mg"
        sink.put("medication", reader.sfloat("medication", MEDICATION_UNITS[unit][1]), unit)
    if flags & _HBA1C:
        sink.put("hba1c", reader.sfloat("hba1c"), "%")
    return sink.measurement("glucose_context", status)


def _whole(writer: Writer, source: ValueSource, name: str, unit: str, limit: int) -> int:
    value = source.number(name, unit)
    if isinstance(value, SpecialValue):
        writer.fail(f"value {name!r} is an unsigned integer field; it cannot be {value.value!r}")
    if not math.isfinite(value) or value != int(value) or not 0 <= value <= limit:
        writer.fail(f"value {name!r} = {value} must be a whole number in 0..{limit} {unit}")
    return int(value)


def encode_glucose_context(writer: Writer, measurement: Measurement) -> None:
    source = ValueSource(measurement, writer)
    status = measurement.status
    med_unit = pick_unit(writer, source, ("medication",), MEDICATION_UNITS, "mg")
    flags = _EXTENDED_FLAGS if "extended_flags" in status else 0
    if source.has("carbohydrate") or "carbohydrate_id" in status:
        flags |= _CARBOHYDRATE
    flags |= _MEAL if "meal" in status else 0
    flags |= _TESTER_HEALTH if "tester" in status or "health" in status else 0
    if source.has("exercise_duration") or source.has("exercise_intensity"):
        flags |= _EXERCISE
    if source.has("medication") or "medication_id" in status:
        flags |= _MEDICATION | MEDICATION_UNITS[med_unit][0]
    flags |= _HBA1C if source.has("hba1c") else 0
    writer.u8(flags, "flags")
    sequence = status.get("sequence_number")
    if isinstance(sequence, bool) or not isinstance(sequence, int):
        writer.fail(f"status['sequence_number'] must be an int, got {sequence!r}")
    writer.u16(sequence, "sequence_number")
    if flags & _EXTENDED_FLAGS:
        extended = status["extended_flags"]
        if isinstance(extended, bool) or not isinstance(extended, int):
            writer.fail(f"status['extended_flags'] must be an int, got {extended!r}")
        writer.u8(extended, "extended_flags")
    if flags & _CARBOHYDRATE:
        carb_id = enum_code(
            writer, CARBOHYDRATE_IDS, status.get("carbohydrate_id"), "carbohydrate_id"
        )
        writer.u8(carb_id, "carbohydrate_id")
        carbohydrate = source.number("carbohydrate", CARBOHYDRATE_UNIT)
        writer.sfloat(carbohydrate, "carbohydrate", CARBOHYDRATE_SHIFT)
    if flags & _MEAL:
        writer.u8(enum_code(writer, MEALS, status.get("meal"), "meal"), "meal")
    if flags & _TESTER_HEALTH:
        tester = enum_code(writer, TESTERS, status.get("tester"), "tester")
        health = enum_code(writer, HEALTH, status.get("health"), "health")
        writer.u8(health << 4 | tester, "tester_health")
    if flags & _EXERCISE:
        if source.special_code("exercise_duration") == OVERRUN:
            writer.u16(EXERCISE_OVERRUN, "exercise_duration")
        else:
            duration = _whole(writer, source, "exercise_duration", "s", EXERCISE_OVERRUN - 1)
            writer.u16(duration, "exercise_duration")
        writer.u8(_whole(writer, source, "exercise_intensity", "%", 0xFF), "exercise_intensity")
    if flags & _MEDICATION:
        med_id = enum_code(writer, MEDICATION_IDS, status.get("medication_id"), "medication_id")
        writer.u8(med_id, "medication_id")
        medication = source.number("medication", med_unit)
        writer.sfloat(medication, "medication", MEDICATION_UNITS[med_unit][1])
    if flags & _HBA1C:
        writer.sfloat(source.number("hba1c", "%"), "hba1c")


CODECS = (
    Codec(
        GLUCOSE_MEASUREMENT_CONTEXT,
        "Glucose Measurement Context",
        "glucose_context",
        decode_glucose_context,
        encode_glucose_context,
    ),
)
