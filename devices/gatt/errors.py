"""The exceptions of the GATT codec layer."""

from __future__ import annotations


class DecodeError(ValueError):
    """A characteristic value that cannot be decoded: unknown, truncated, malformed or reserved."""


class EncodeError(ValueError):
    """A Measurement that cannot be expressed in the characteristic's wire format."""
