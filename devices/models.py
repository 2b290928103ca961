"""The measurement model shared by every layer (devices, filters, gateway).

This module is deliberately tiny and imports nothing from the application layer, so that
``devices/`` and ``filters/`` can depend on it without pulling in sinks, the API or the CLI.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Quantity(BaseModel):
    """A numeric value with its UCUM unit, exactly as the device reported it."""

    model_config = ConfigDict(frozen=True)

    value: float
    unit: str


class Measurement(BaseModel):
    """One decoded GATT health measurement (DESIGN.md 2.1).

    ``measured_at`` is the device's own timestamp, timezone-naive as the device sent it,
    or None when the device sent none. Units are left as the device sent them.
    """

    kind: str
    values: dict[str, Quantity]
    measured_at: datetime | None = None
    user_index: int | None = None
    status: dict[str, Any] = Field(default_factory=dict)


# The codecs' fast path. ``model_construct`` would skip validation too, but in pydantic 2 it runs a
# Python loop over the fields and is about twice as slow as validating (measured by
# bench/decode_cost.py); filling the instance the way ``model_construct`` does, without the loop,
# is about twice as fast as validating. It relies on pydantic's instance layout (``__dict__`` and
# three slots), so ``_fast_path_works`` checks it once at import against validated instances and
# the codecs fall back to validation if a pydantic release ever changes that layout.
_new = object.__new__
_set = object.__setattr__


def _fast_quantity(value: float, unit: str) -> Quantity:
    quantity = _new(Quantity)
    _set(quantity, "__dict__", {"value": value, "unit": unit})
    # A fresh set each time: pydantic adds to it on model_copy and attribute assignment.
    _set(quantity, "__pydantic_fields_set__", {"value", "unit"})
    _set(quantity, "__pydantic_extra__", None)
    _set(quantity, "__pydantic_private__", None)
    return quantity


def _fast_measurement(
    kind: str,
    values: dict[str, Quantity],
    status: dict[str, Any],
    measured_at: datetime | None = None,
    user_index: int | None = None,
) -> Measurement:
    measurement = _new(Measurement)
    _set(
        measurement,
        "__dict__",
        {
            "kind": kind,
            "values": values,
            "measured_at": measured_at,
            "user_index": user_index,
            "status": status,
        },
    )
    _set(
        measurement,
        "__pydantic_fields_set__",
        {"kind", "values", "measured_at", "user_index", "status"},
    )
    _set(measurement, "__pydantic_extra__", None)
    _set(measurement, "__pydantic_private__", None)
    return measurement


def _validated_quantity(value: float, unit: str) -> Quantity:
    return Quantity(value=value, unit=unit)


def _validated_measurement(
    kind: str,
    values: dict[str, Quantity],
    status: dict[str, Any],
    measured_at: datetime | None = None,
    user_index: int | None = None,
) -> Measurement:
    return Measurement(
        kind=kind, values=values, measured_at=measured_at, user_index=user_index, status=status
    )


def _fast_path_works() -> bool:
    if set(Quantity.model_fields) != {"value", "unit"} or set(Measurement.model_fields) != {
        "kind",
        "values",
        "measured_at",
        "user_index",
        "status",
    }:
        return False
    stamp = datetime(2026, 1, 2, 3, 4, 5)
    fast = _fast_measurement("k", {"v": _fast_quantity(1.5, "u")}, {"s": 1}, stamp, 2)
    slow = _validated_measurement("k", {"v": _validated_quantity(1.5, "u")}, {"s": 1}, stamp, 2)
    try:
        return (
            fast == slow
            and fast.model_dump() == slow.model_dump()
            and fast.model_dump_json() == slow.model_dump_json()
            and fast.model_copy(update={"user_index": 3}).user_index == 3
            and hash(fast.values["v"]) == hash(slow.values["v"])
        )
    except Exception:  # any failure at all means: do not use the fast path
        return False


_FAST = _fast_path_works()


def trusted_quantity(value: float, unit: str) -> Quantity:
    """A Quantity from a codec that already produced a ``float`` and a UCUM string.

    No validation: decoding is the hot path (every notification), and re-checking what our own
    codec just built was most of a decode's cost. Callers must pass a real ``float``.
    """
    return _fast_quantity(value, unit) if _FAST else _validated_quantity(value, unit)


def trusted_measurement(
    kind: str,
    values: dict[str, Quantity],
    status: dict[str, Any],
    measured_at: datetime | None = None,
    user_index: int | None = None,
) -> Measurement:
    """A Measurement from a codec's own, already well-typed parts (see ``trusted_quantity``)."""
    if _FAST:
        return _fast_measurement(kind, values, status, measured_at, user_index)
    return _validated_measurement(kind, values, status, measured_at, user_index)
