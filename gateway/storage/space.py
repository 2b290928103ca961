"""Disk space for the database: a full disk pauses intake instead of half-writing or crashing.

SQLite refuses a transaction it cannot write (``SQLITE_FULL``) and rolls it back, so nothing is
half-written; what the hub must add is that nothing it accepted is lost and that it keeps
running. Intake checks the free space before each transaction and holds readings in memory
while it is short (``is_low``); the delivery workers defer their bookkeeping (what was sent is
sent again later, under the same idempotency key).

A full disk can also stop the hub from starting: SQLite needs a little room just to open a
database in WAL mode (its shared-memory and log files). So the hub keeps a small reserve file
in ``data_dir`` and gives it up at a start on a full disk, which lets it open, deliver what
is queued and serve the page, while intake waits for space.
"""

from __future__ import annotations

import errno
import os
import sqlite3
from pathlib import Path

# Free bytes below which intake waits; also the size of the reserve file.
RESERVE_BYTES = 1024 * 1024
RESERVE_NAME = "space.reserve"


class DiskFull(Exception):
    """The data directory's file system has no room for the next transaction."""


def is_disk_full(exc: BaseException) -> bool:
    """Whether an error from SQLite or the OS means the disk is full."""
    if isinstance(exc, sqlite3.OperationalError):
        code = getattr(exc, "sqlite_errorcode", None)
        return code == sqlite3.SQLITE_FULL or "disk is full" in str(exc)
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)


class DiskSpace:
    def __init__(self, data_dir: Path, reserve_bytes: int = RESERVE_BYTES) -> None:
        self._data_dir = data_dir
        self._reserve = data_dir / RESERVE_NAME
        self._reserve_bytes = reserve_bytes

    def free_bytes(self) -> int:
        stats = os.statvfs(self._data_dir)
        return stats.f_bavail * stats.f_frsize

    def is_low(self) -> bool:
        return self.free_bytes() < self._reserve_bytes

    def release_reserve(self) -> bool:
        """Give the reserve back to the file system; True if there was one."""
        try:
            self._reserve.unlink()
        except FileNotFoundError:
            return False
        return True

    def keep_reserve(self) -> None:
        """Set the reserve aside again once there is room for it and intake's margin."""
        if self._reserve.exists() or self.free_bytes() < 3 * self._reserve_bytes:
            return
        fd = os.open(self._reserve, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.posix_fallocate(fd, 0, self._reserve_bytes)
            os.fsync(fd)
        except OSError:
            os.close(fd)
            self._reserve.unlink(missing_ok=True)
            return
        os.close(fd)
