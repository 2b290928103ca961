"""The ``webhook`` destination's settings: where alerts go and the secret that signs them."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import model_validator

from gateway.exporters.config import DestinationSettings


class WebhookDestination(DestinationSettings):
    kind: Literal["webhook"]
    secret_file: Path | None = None
    secret_env: str | None = None
    identifier_system: str = "http://electronichealth.se/identifier/personnummer"

    @model_validator(mode="after")
    def _has_secret(self) -> WebhookDestination:
        if self.secret_file is None and self.secret_env is None:
            raise ValueError(
                "a webhook needs its signing secret: set secret_file (a file holding whsec_...) "
                "or secret_env (an environment variable holding it)"
            )
        return self
