"""Log redaction: a structlog processor that keeps personal data out of every log line.

It masks each configured identifier (personID, companyID), birth date and device address
wherever it appears in a log event, masks anything shaped like a Bluetooth address, and drops
the values of health readings entirely. Logs say what happened and to which pseudonymous
reference, never to whom or what was measured.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, MutableMapping
from typing import Any

MASK = "[redacted]"
# No word boundaries: BlueZ object paths embed addresses as "dev_C4_7C_8D_6A_12_34".
MAC_LIKE = re.compile(r"(?<![0-9A-Fa-f])[0-9A-Fa-f]{2}(?:[:_-][0-9A-Fa-f]{2}){5}(?![0-9A-Fa-f])")
HEALTH_VALUE_KEYS = frozenset(
    {
        "values",
        "value",
        "measured",
        "payload",
        "body",
        "systolic",
        "diastolic",
        "mean_arterial_pressure",
        "pulse_rate",
        "body_weight",
        "bmi",
        "height",
        "glucose",
        "body_temperature",
        "heart_rate",
        "spo2",
        "data",
    }
)


class Redactor:
    """``Redactor(secrets)`` is a structlog processor; ``secrets`` are strings to mask anywhere."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        variants: set[str] = set()
        for secret in secrets:
            if secret:
                variants.update({secret, secret.upper(), secret.lower()})
                if MAC_LIKE.fullmatch(secret):
                    variants.update({secret.replace(":", "-"), secret.replace(":", "_")})
        ordered = sorted(variants, key=len, reverse=True)
        self._pattern = re.compile("|".join(map(re.escape, ordered))) if ordered else None

    def __call__(
        self, logger: object, method: str, event: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        for key in list(event):
            event[key] = MASK if key in HEALTH_VALUE_KEYS else self._clean(event[key])
        return event

    def _clean(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.mask_text(value)
        if isinstance(value, dict):
            return {k: MASK if k in HEALTH_VALUE_KEYS else self._clean(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self._clean(v) for v in value]
        if isinstance(value, BaseException):
            return self.mask_text(f"{type(value).__name__}: {value}")
        return value

    def mask_text(self, text: str) -> str:
        if self._pattern is not None:
            text = self._pattern.sub(MASK, text)
        return MAC_LIKE.sub(MASK, text)
