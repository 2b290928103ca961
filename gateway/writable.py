"""Can the user running ``check-config`` write everything the service writes?

A config can be valid and the service still die at start with "permission denied": the
database, the keys and the default API token are created at the first start, and a file the
config places in a root-owned /etc cannot be. ``check-config`` is run as the service user
(docs/raspberry-pi.md), so asking the kernel what *this* user may do (``os.access``) answers
for the service. Paths that exist must be usable; paths that do not must be creatable in the
nearest folder that exists.
"""

from __future__ import annotations

import os
import pwd
from pathlib import Path

from gateway.exporters.analytics.config import AnalyticsDestination
from gateway.settings import ConfigError, Settings

# What the service keeps in data_dir (app.Paths, store, api.security, devices.source).
DATA_FILES = ("gateway.db", "gateway.db-wal", "gateway.db-shm")
DATA_FOLDERS = ("keys", "devices", "simulation")


def this_user() -> str:
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return f"uid {os.geteuid()}"


def _blocking_folder(path: Path) -> Path | None:
    """The nearest existing folder above ``path`` if this user cannot create entries in it."""
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if folder.is_dir() and os.access(folder, os.W_OK | os.X_OK):
        return None
    return folder


def _check_data_dir(data_dir: Path, user: str) -> None:
    key = "gateway.data_dir"
    init_hint = "run `health-gateway init` as root, or give it to the service user"
    if not data_dir.exists():
        blocker = _blocking_folder(data_dir)
        if blocker is not None:
            raise ConfigError(
                f"{key}: {data_dir} does not exist and {user} cannot create it in {blocker};"
                f" {init_hint}"
            )
        return
    if not data_dir.is_dir():
        raise ConfigError(f"{key}: {data_dir} is not a folder")
    if not os.access(data_dir, os.W_OK | os.X_OK):
        raise ConfigError(f"{key}: {user} cannot write {data_dir}; {init_hint}")
    for name in DATA_FOLDERS:
        folder = data_dir / name
        if folder.is_dir() and not os.access(folder, os.W_OK | os.X_OK):
            raise ConfigError(f"{key}: {user} cannot write {folder}; {init_hint}")
    for name in DATA_FILES:
        file = data_dir / name
        if file.exists() and not os.access(file, os.R_OK | os.W_OK):
            raise ConfigError(f"{key}: {user} cannot read and write {file}; {init_hint}")


def _generated_files(settings: Settings) -> list[tuple[str, Path]]:
    """Files the service creates when they are missing, with the config key that places them."""
    data_dir = settings.gateway.data_dir
    files = [
        (
            "gateway.outbox_key_file",
            settings.gateway.outbox_key_file or data_dir / "keys" / "storage.key",
        )
    ]
    files += [
        (f"destinations.{d.name}.pseudonym_key_file", settings.pseudonym_key_path(d))
        for d in settings.destinations
        if isinstance(d, AnalyticsDestination)
    ]
    if settings.gateway.api.enabled and settings.gateway.api.token_file is None:
        files.append(("gateway.api.token_file", data_dir / "api-token"))
    return files


def check_service_can_write(settings: Settings) -> None:
    """Raise ``ConfigError`` naming the key for the first thing this user could not write."""
    user = this_user()
    _check_data_dir(settings.gateway.data_dir, user)
    for key, path in _generated_files(settings):
        if path.exists():
            if not os.access(path, os.R_OK):
                raise ConfigError(f"{key}: {user} cannot read {path}")
            continue
        blocker = _blocking_folder(path)
        if blocker is not None:
            raise ConfigError(
                f"{key}: the service creates {path} at its first start, but {user} cannot"
                f" write in {blocker}; leave the key unset (it then lives in gateway.data_dir)"
                " or point it there"
            )
