"""Secrets come from files or the environment, never from the config file or code."""

from __future__ import annotations

import os
from pathlib import Path

from gateway.secret_files import read_private_text
from gateway.settings import ConfigError


def read_secret(
    key: str, file: Path | None, env: str | None, *, required: bool = True
) -> str | None:
    """The secret named by ``<key>_file`` or ``<key>_env``; a ConfigError names what is wrong.

    Trailing whitespace (a newline left by an editor) is stripped. The value is never logged.
    A file that group or others may read is refused (``secret_files``).
    """
    if file is not None:
        try:
            value = read_private_text(file, f"{key}_file").strip()
        except FileNotFoundError:
            raise ConfigError(
                f"{key}_file: {file} does not exist; create it with the secret"
            ) from None
        except OSError as exc:
            raise ConfigError(f"{key}_file: cannot read {file} ({exc.strerror})") from None
        if not value:
            raise ConfigError(f"{key}_file: {file} is empty; put the secret in it")
        return value
    if env is not None:
        value = os.environ.get(env, "").strip()
        if not value:
            raise ConfigError(f"{key}_env: environment variable {env} is not set or empty")
        return value
    if required:
        raise ConfigError(f"{key}: set {key}_file or {key}_env")
    return None
