"""The codecs' unvalidated constructors give the same public pydantic objects as validation."""

from __future__ import annotations

from datetime import datetime

import orjson

from devices import models
from devices.gatt import decode
from devices.models import Measurement, Quantity, trusted_measurement, trusted_quantity


def test_the_fast_path_is_in_use_with_this_pydantic() -> None:
    assert models._FAST  # if a pydantic release changes its layout, this says the codecs fell back


def test_a_trusted_measurement_behaves_like_a_validated_one() -> None:
    stamp = datetime(2026, 3, 4, 5, 6, 7)
    fast = trusted_measurement(
        "blood_pressure", {"systolic": trusted_quantity(120.0, "mm[Hg]")}, {"x": 1}, stamp, 1
    )
    slow = Measurement(
        kind="blood_pressure",
        values={"systolic": Quantity(value=120.0, unit="mm[Hg]")},
        measured_at=stamp,
        user_index=1,
        status={"x": 1},
    )
    assert type(fast) is Measurement and type(fast.values["systolic"]) is Quantity
    assert fast == slow
    assert fast.model_dump() == slow.model_dump()
    assert orjson.loads(fast.model_dump_json()) == orjson.loads(slow.model_dump_json())
    assert Measurement.model_validate(fast.model_dump()) == fast
    copied = fast.model_copy(update={"user_index": 2})
    assert copied.user_index == 2 and fast.user_index == 1
    assert hash(fast.values["systolic"]) == hash(slow.values["systolic"])


def test_decoded_values_are_floats_as_validation_would_make_them() -> None:
    m = decode("2a37", bytes.fromhex("0048"))  # uint8 heart rate
    assert type(m.values["heart_rate"].value) is float
