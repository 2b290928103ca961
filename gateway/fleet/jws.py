"""Compact JWS (RFC 7515) signed with Ed25519 (RFC 8037 ``EdDSA``): verify, and sign for tooling.

Only ``EdDSA`` is accepted: the algorithm comes from the care provider's key, never from the
message, so ``none`` or an HMAC header that names the public key as its secret cannot get in.
A ``crit`` header is refused because we understand no extension (RFC 7515 4.1.11).
"""

from __future__ import annotations

import base64
import binascii

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey


class JwsError(ValueError):
    """The message is not a compact JWS this hub accepts; the text says why."""


def _b64decode(part: str) -> bytes:
    if "=" in part:
        raise JwsError("base64url parts must not be padded")
    try:
        return base64.b64decode(part + "=" * (-len(part) % 4), altchars=b"-_", validate=True)
    except (binascii.Error, ValueError) as exc:
        raise JwsError("a part is not base64url") from exc


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def load_public_key(pem: bytes) -> Ed25519PublicKey:
    """The care provider's Ed25519 public key from PEM (SubjectPublicKeyInfo)."""
    try:
        key = serialization.load_pem_public_key(pem)
    except ValueError as exc:
        raise JwsError("the config public key is not a PEM public key") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise JwsError("the config public key is not an Ed25519 key")
    return key


def verify(token: str | bytes, key: Ed25519PublicKey) -> bytes:
    """The payload of ``token`` if its Ed25519 signature by ``key`` is valid; else JwsError."""
    text = token.decode("ascii", "replace") if isinstance(token, bytes) else token
    parts = text.strip().split(".")
    if len(parts) != 3:
        raise JwsError("not a compact JWS (three dot-separated parts)")
    header_part, payload_part, signature_part = parts
    try:
        header = orjson.loads(_b64decode(header_part))
    except orjson.JSONDecodeError as exc:
        raise JwsError("the JWS header is not JSON") from exc
    if not isinstance(header, dict):
        raise JwsError("the JWS header is not a JSON object")
    if header.get("alg") != "EdDSA":
        raise JwsError(f"unsupported JWS algorithm {header.get('alg')!r}: only EdDSA is accepted")
    if "crit" in header:
        raise JwsError("the JWS names critical extensions this hub does not understand")
    try:
        key.verify(_b64decode(signature_part), f"{header_part}.{payload_part}".encode("ascii"))
    except InvalidSignature as exc:
        raise JwsError("the signature does not match the care provider's key") from exc
    return _b64decode(payload_part)


def sign(payload: bytes, key: Ed25519PrivateKey, *, kid: str | None = None) -> str:
    """A compact JWS of ``payload`` (for the care provider's tooling and the tests)."""
    header: dict[str, str] = {"alg": "EdDSA", "typ": "JOSE"}
    if kid is not None:
        header["kid"] = kid
    signing_input = f"{_b64encode(orjson.dumps(header))}.{_b64encode(payload)}"
    signature = key.sign(signing_input.encode("ascii"))
    return f"{signing_input}.{_b64encode(signature)}"
