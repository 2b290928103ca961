"""Local secret keys kept in ``data_dir`` with 0600 permissions, generated on first start."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from gateway.secret_files import refuse_shared_mode
from gateway.settings import ConfigError

KEY_BYTES = 32


def load_or_create_key(
    path: Path, *, nbytes: int = KEY_BYTES, config_key: str = "gateway.data_dir"
) -> bytes:
    """Read a raw key file, creating it (0600, atomically) if it does not exist yet.

    A key file readable by group or others is refused: it would let another local user
    read the hub's stored health data. ``config_key`` is the key the error names.
    """
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return _create(path, nbytes, config_key)
    refuse_shared_mode(mode, path, config_key)
    key = path.read_bytes()
    if len(key) != nbytes:
        raise ConfigError(f"{path}: key file must hold exactly {nbytes} bytes, found {len(key)}")
    return key


def read_key(path: Path, *, nbytes: int = KEY_BYTES) -> bytes:
    """Read a key file that must exist (for tools that check, never create)."""
    return load_or_create_key(path, nbytes=nbytes) if path.exists() else _missing(path)


def _missing(path: Path) -> bytes:
    raise ConfigError(f"{path}: key file is missing; restore it from a backup")


def _create(path: Path, nbytes: int, config_key: str) -> bytes:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = secrets.token_bytes(nbytes)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, key)
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(temporary, path)  # fails if another process created the key meanwhile
    except FileExistsError:
        return load_or_create_key(path, nbytes=nbytes, config_key=config_key)
    finally:
        temporary.unlink()
    return key
