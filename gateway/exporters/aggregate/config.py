"""The ``aggregate`` destination's settings: windows, groups and the k of k-suppression."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from gateway.exporters.config import DestinationSettings

AGGREGATE_GROUPS = frozenset({"company", "kind", "age_band", "sex", "profile", "device_model"})


class AggregateDestination(DestinationSettings):
    """Anonymous aggregates for employers and researchers: per window, per group, k-suppressed."""

    kind: Literal["aggregate"]
    group_by: list[str] = Field(default_factory=lambda: ["company", "kind"])
    window_s: int = Field(default=86_400, ge=1)
    k: int = Field(default=5, ge=2)
    company_labels: dict[str, str] = Field(default_factory=dict)  # company id -> label to send
    token_file: Path | None = None
    token_env: str | None = None

    @field_validator("group_by")
    @classmethod
    def _known_groups(cls, value: list[str]) -> list[str]:
        unknown = sorted(set(value) - AGGREGATE_GROUPS)
        if unknown:
            raise ValueError(
                f"cannot group by {unknown}; use any of " + ", ".join(sorted(AGGREGATE_GROUPS))
            )
        return value
