"""The ``fhir`` destination's settings (README "Destinations")."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from gateway.exporters.config import DestinationSettings


class FhirDestination(DestinationSettings):
    kind: Literal["fhir"]
    token_file: Path | None = None
    token_env: str | None = None
    identifier_system: str = "http://electronichealth.se/identifier/personnummer"
    batch_max_items: int = Field(default=100, ge=1, le=1000)
    # The platform's cap on entries per transaction, when it has one (Medplum runs a transaction
    # with conditional creates serialisably and refuses one of more than 8 entries): readings
    # are then sent in as many Bundles as it takes, instead of learning it from a 400.
    bundle_max_entries: int | None = Field(default=None, ge=2)
    # How an Observation names the person: by identifier (the platform resolves it), or by the
    # platform's own "Patient/{id}", looked up by identifier before sending.
    patient_reference: Literal["identifier", "resolved"] = "identifier"
    linger_s: float = Field(default=0.05, ge=0)
