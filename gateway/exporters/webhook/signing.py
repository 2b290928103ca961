"""Standard Webhooks signatures (https://www.standardwebhooks.com)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

SECRET_PREFIX = "whsec_"  # noqa: S105 - the format prefix, not a secret


class SecretFormatError(ValueError):
    pass


def parse_secret(secret: str) -> bytes:
    """``whsec_`` + base64 of the key bytes, as Standard Webhooks defines it."""
    if not secret.startswith(SECRET_PREFIX):
        raise SecretFormatError("a webhook secret must start with 'whsec_' followed by base64")
    try:
        key = base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
    except binascii.Error:
        raise SecretFormatError("the part after 'whsec_' is not valid base64") from None
    if len(key) < 24:
        raise SecretFormatError("a webhook secret must hold at least 24 random bytes")
    return key


def sign(key: bytes, message_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header value: ``v1,`` + base64 HMAC-SHA-256(id.timestamp.body)."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()
