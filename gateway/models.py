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
