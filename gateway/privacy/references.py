"""Keyed local references: stable ids for readings and subjects that reveal nothing.

A plain hash of an identifier can be reversed by hashing every personal number, so every
reference here is an HMAC under the hub's own secret key (kept in ``data_dir``).
"""

from __future__ import annotations

import hmac
from datetime import datetime

from gateway.models import Measurement


class References:
    __slots__ = ("_key", "_subject_refs")

    def __init__(self, key: bytes) -> None:
        self._key = key
        # A person's reference is asked for with every reading: made once, kept until their
        # data is erased (``forget``). Bounded by the configured people.
        self._subject_refs: dict[str, str] = {}

    def _mac(self, *parts: str) -> str:
        message = "\x1f".join(parts).encode()
        return hmac.digest(self._key, message, "sha256").hex()

    def subject_ref(self, subject_id: str) -> str:
        """The local pseudonymous reference of a person (database keys, logs, audit)."""
        found = self._subject_refs.get(subject_id)
        if found is None:
            found = self._subject_refs[subject_id] = "s-" + self._mac("subject", subject_id)[:20]
        return found

    def forget(self, subject_id: str) -> None:
        """Drop what is kept in memory about a person (their data was erased)."""
        self._subject_refs.pop(subject_id, None)

    def reading_id(
        self, address: str, kind: str, measurement: Measurement, received_at: datetime
    ) -> str:
        """An id derived from the reading itself, so a resend by the device maps to the same id.

        Device identity + profile + the device's own timestamp or sequence number; only a
        reading with neither falls back to the time the gateway received it.
        """
        sequence = measurement.status.get("sequence_number")
        if sequence is not None:
            discriminator = f"seq:{sequence}"
        elif measurement.measured_at is not None:
            discriminator = f"at:{measurement.measured_at.isoformat()}"
        else:
            discriminator = f"rx:{received_at.isoformat()}"
        user = "" if measurement.user_index is None else str(measurement.user_index)
        return "r-" + self._mac("reading", address, kind, user, discriminator)[:32]
