"""The ``analytics`` destination's settings (an event stream in JSON batches)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from gateway.exporters.config import EventStreamSettings


class AnalyticsDestination(EventStreamSettings):
    """Product analytics: minimised, generalised events with keyed pseudonyms, in JSON batches."""

    kind: Literal["analytics"]
    token_file: Path | None = None
    token_env: str | None = None
    batch_max_items: int = Field(default=500, ge=1, le=10_000)
    batch_max_bytes: int = Field(default=512 * 1024, ge=1024)
    linger_s: float = Field(default=1.0, ge=0)
