"""Small JSON state files: what a device's reader must remember across restarts.

``DeviceMemory`` is one file per device (the last glucose record handed over, the weighings of
a broadcast scale already handed over, the recent weight of each person on a shared scale).
``write_json_atomically`` also keeps a simulated device's memory.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import structlog

log = structlog.get_logger(__name__)


def write_bytes_atomically(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` (mode 0600): a sibling is written and synced, then renamed
    over it, so a crash leaves either the old file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            Path(tmp).unlink()
        raise


def write_json_atomically(path: Path, data: object) -> None:
    """Replace ``path`` with ``data`` as JSON, atomically (``write_bytes_atomically``)."""
    write_bytes_atomically(path, json.dumps(data).encode("utf-8"))


class DeviceMemory:
    """A device's state file as a dict of JSON values; ``path`` None keeps it in memory only.

    An unreadable file is logged (by device ref) and started afresh: what it protected against
    is a duplicate, which the pipeline recognises by the reading's own time stamp or sequence
    number, never a loss.
    """

    def __init__(self, path: Path | None, ref: str) -> None:
        self._path = path
        self._data: dict[str, Any] = {}
        if path is None:
            return
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return
        except (OSError, ValueError) as exc:
            log.warning("ble.state_unreadable", device=ref, error=type(exc).__name__)
            return
        if isinstance(data, dict):
            self._data = data

    def get(self, key: str) -> Any:
        return self._data.get(key)

    def set(self, key: str, value: Any) -> None:
        """Keep ``value`` under ``key`` and write the file before returning."""
        self._data[key] = value
        if self._path is not None:
            write_json_atomically(self._path, self._data)
