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


def trusted_quantity(value: float, unit: str) -> Quantity:
    """A Quantity from a codec that already produced a float and a UCUM string.

    Skips pydantic's validation: decoding is the hot path (every notification), and re-checking
    what our own codec just built cost most of a decode. Callers must pass a real ``float``.
    """
    return Quantity.model_construct(value=value, unit=unit)


def trusted_measurement(
    kind: str,
    values: dict[str, Quantity],
    status: dict[str, Any],
    measured_at: datetime | None = None,
    user_index: int | None = None,
) -> Measurement:
    """A Measurement from a codec's own, already well-typed parts (see ``trusted_quantity``)."""
    return Measurement.model_construct(
        kind=kind, values=values, measured_at=measured_at, user_index=user_index, status=status
    )
