"""Reading a secret file only when no other local user can read or change it.

Every secret the gateway reads from a file (the API token, the page PINs, destination tokens,
webhook signing secrets) must be mode 0600 or 0400: a file that group or others may read
hands the secret to every account on the hub, and one they may write lets them replace it.
The mode is taken from the opened file (``fstat``), so the file checked is the file read.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from gateway.settings import ConfigError

# Any permission for group or others.
_SHARED_BITS = stat.S_IRWXG | stat.S_IRWXO


def refuse_shared_mode(mode: int, path: Path, key: str) -> None:
    """Raise a one-line ``ConfigError`` naming ``key`` when ``mode`` lets others in."""
    permissions = stat.S_IMODE(mode)
    if permissions & _SHARED_BITS:
        raise ConfigError(
            f"{key}: {path} has mode {permissions:04o}, so other users on this machine can"
            f" read or change the secret; a secret file must be 0600 (or 0400): run"
            f" chmod 600 {path}"
        )


def read_private_text(path: Path, key: str) -> str:
    """The file's text, once its mode is checked; ``OSError`` (missing, unreadable) propagates."""
    with path.open("rb") as handle:
        refuse_shared_mode(os.fstat(handle.fileno()).st_mode, path, key)
        raw = handle.read()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{key}: {path} is not UTF-8 text") from None
