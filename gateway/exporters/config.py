"""The settings every destination kind shares, and those of the event streams (analytics, MQTT).

Each kind's own model is in its folder (``fhir/config.py``, ...); ``gateway/settings.py`` joins
them into the ``destinations`` list, discriminated by ``kind``.
"""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import Field, field_validator

from gateway.config_base import ConfigSection, check_url

# The event schema (gateway/intake/events.py) fields an analytics destination may list. Direct
# identifiers are not among them: `subject` and `company` are always sent as keyed pseudonyms,
# and `birth_date` / `device_address` never leave for analytics (use `age_band`, `device_model`).
ANALYTICS_FIELDS = frozenset(
    {
        "kind",
        "values",
        "measured_at",
        "measured_day",
        "measured_hour",
        "received_at",
        "age_band",
        "sex",
        "subject",
        "company",
        "device_model",
        "profile",
        "status",
        "device_clock_offset_s",
    }
)
PSEUDONYMISED_FIELDS = ("subject", "company")
PSEUDONYMISED_FIELDS = ("subject", "company")


class DestinationSettings(ConfigSection):
    """What every destination has: a name, its purpose, where it is, how long to wait and retry."""

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    purpose: str = Field(min_length=1, pattern=r"^[a-z_]+$")
    url: str
    region: str | None = None  # ISO 3166 country code where the recipient processes the data
    timeout_s: float = Field(default=10.0, gt=0)
    retry_initial_s: float = Field(default=1.0, gt=0)
    retry_max_s: float = Field(default=300.0, gt=0)

    @field_validator("region")
    @classmethod
    def _region_code(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not re.fullmatch(r"[A-Za-z]{2}", value):
            raise ValueError(f"{value!r} is not a two-letter country code such as SE or DE")
        return value.upper()

    @field_validator("url")
    @classmethod
    def _url_is_safe(cls, value: str) -> str:
        return check_url(value)


class EventStreamSettings(DestinationSettings):
    """Minimised, generalised events with keyed pseudonyms: what analytics and MQTT share."""

    fields: list[str] = Field(min_length=1)
    # The service generates this key (0600) if it is missing, so by default it lives in
    # data_dir, the one place the service may write: data_dir/keys/<kind>-<name>.key.
    pseudonym_key_file: Path | None = None
    round: dict[str, float] = Field(default_factory=dict)  # value name -> step, e.g. systolic = 5

    @field_validator("fields")
    @classmethod
    def _known_fields(cls, value: list[str]) -> list[str]:
        for field in value:
            if field in ("birth_date", "device_address"):
                hint = "age_band" if field == "birth_date" else "device_model"
                raise ValueError(
                    f"{field!r} is a direct identifier and never goes to analytics; use {hint!r}"
                )
            if field not in ANALYTICS_FIELDS:
                raise ValueError(
                    f"unknown field {field!r}; use any of " + ", ".join(sorted(ANALYTICS_FIELDS))
                )
        return value

    @field_validator("round")
    @classmethod
    def _positive_steps(cls, value: dict[str, float]) -> dict[str, float]:
        for name, step in value.items():
            if step <= 0:
                raise ValueError(f"round.{name}: the rounding step must be positive")
        return value
