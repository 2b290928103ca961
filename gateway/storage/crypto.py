"""Encryption at rest for stored readings and queued payloads (AES-256-GCM)."""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

NONCE_BYTES = 12


class SealError(Exception):
    """A stored blob failed authentication: it was altered, or the key is not the one used."""


class Sealer:
    """Seals bytes with a random nonce; the associated data binds a blob to its row."""

    __slots__ = ("_aead",)

    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)

    def seal(self, plaintext: bytes, associated: bytes) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, plaintext, associated)

    def try_open(self, blob: bytes, associated: bytes) -> bytes | None:
        """``open``, or None for a blob that fails authentication (for readers that go on with
        the other rows and report this one)."""
        try:
            return self.open(blob, associated)
        except SealError:
            return None

    def open(self, blob: bytes, associated: bytes) -> bytes:
        try:
            return self._aead.decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], associated)
        except InvalidTag:
            raise SealError(
                "stored data failed authentication (altered, or a different key)"
            ) from None
