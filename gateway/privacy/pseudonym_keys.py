"""Per-destination pseudonym key files: several keys, one active, generated 0600 if missing.

File format (JSON): ``{"active": "k2", "keys": {"k1": "<base64>", "k2": "<base64>"}}``. To
rotate, add a new key and make it active: new pseudonyms use it, and the key id in each
pseudonym tells the recipient which key made it.
"""

from __future__ import annotations

import base64
import binascii
import os
import secrets
import stat
from pathlib import Path

import orjson

from filters.pseudonymise import KeyRing
from gateway.settings import ConfigError

MIN_KEY_BYTES = 32


def load_key_ring(path: Path, key: str) -> KeyRing:
    """Load (or on first start create) a key file; ``key`` names the config key in errors."""
    if not path.exists():
        _create(path)
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(f"{key}: {path} is readable by others; run: chmod 600 {path}")
    try:
        document = orjson.loads(path.read_bytes())
        active = document["active"]
        encoded = document["keys"][active]
        secret = base64.b64decode(encoded, validate=True)
    except (orjson.JSONDecodeError, KeyError, TypeError, binascii.Error):
        raise ConfigError(
            f"{key}: {path} must be JSON like "
            '{"active": "k1", "keys": {"k1": "<base64 of 32 random bytes>"}}'
        ) from None
    if len(secret) < MIN_KEY_BYTES:
        raise ConfigError(f"{key}: key {active!r} in {path} must hold at least 32 bytes")
    if not active.replace("-", "").replace("_", "").isalnum():
        raise ConfigError(f"{key}: key id {active!r} may only use letters, digits, - and _")
    return KeyRing(active, secret)


def _create(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    document = {"active": "k1", "keys": {"k1": base64.b64encode(secrets.token_bytes(32)).decode()}}
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(orjson.dumps(document, option=orjson.OPT_INDENT_2))
