"""A private ``dbus-daemon`` for the simulated BlueZ: no root, no system bus, gone on exit.

Gone on exit includes an exit by SIGKILL: the daemon is started to die with this process
(``lifeline``), so a killed gateway or test leaves no daemon behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from types import TracebackType
from xml.sax.saxutils import escape

from devices.sim.lifeline import argv_dying_with_parent

# sockaddr_un.sun_path is 108 bytes on Linux, but libdbus refuses paths longer than 99 bytes
# ("Socket name too long", _DBUS_MAX_SUN_PATH_LENGTH) for portability.
MAX_SOCKET_PATH = 99
_START_TIMEOUT_S = 10.0
_STOP_TIMEOUT_S = 5.0

_CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <listen>unix:path={socket}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"""


class DbusDaemonError(RuntimeError):
    """The private dbus-daemon could not be started."""


class DbusDaemonMissing(DbusDaemonError):
    """``dbus-daemon`` is not installed (or not on PATH)."""

    def __init__(self) -> None:
        super().__init__(
            "dbus-daemon not found on PATH; install it with `sudo apt-get install dbus` "
            "(Debian, Ubuntu, Raspberry Pi OS)"
        )


class PrivateDbusDaemon:
    """Runs ``dbus-daemon`` on a unix socket of its own, as an async context manager.

    The daemon accepts only EXTERNAL authentication (so only the same user can connect, the
    daemon's default), lets every connection own any name and talk to anyone, and has no
    service directories, so nothing is ever activated. ``address`` is the bus address to hand
    to clients, e.g. through ``DBUS_SYSTEM_BUS_ADDRESS``.
    """

    def __init__(self, workdir: Path) -> None:
        self._workdir = Path(workdir)
        self._rundir: Path | None = None
        self._process: asyncio.subprocess.Process | None = None
        self._address: str | None = None

    @property
    def address(self) -> str:
        """The bus address (``unix:path=...,guid=...``); only valid while running."""
        if self._address is None:
            raise DbusDaemonError("the private dbus-daemon is not running")
        return self._address

    async def __aenter__(self) -> PrivateDbusDaemon:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        """Start the daemon and wait until it prints its address."""
        if self._process is not None:
            raise DbusDaemonError("the private dbus-daemon is already running")
        executable = shutil.which("dbus-daemon")
        if executable is None:
            raise DbusDaemonMissing()
        rundir = self._make_rundir()
        self._rundir = rundir
        try:
            socket_path = rundir / "bus.sock"
            config = rundir / "bus.conf"
            config.write_text(_CONFIG.format(socket=escape(str(socket_path))), encoding="utf-8")
            log_path = rundir / "dbus-daemon.log"
            with log_path.open("wb") as log:
                command = [
                    os.path.abspath(executable),
                    "--config-file",
                    str(config),
                    "--print-address",
                    "--nofork",
                    "--nopidfile",
                ]
                self._process = await asyncio.create_subprocess_exec(
                    *argv_dying_with_parent(command),
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=asyncio.subprocess.PIPE,
                    stderr=log,
                )
            assert self._process.stdout is not None
            try:
                async with asyncio.timeout(_START_TIMEOUT_S):
                    line = await self._process.stdout.readline()
            except TimeoutError:
                line = b""
            address = line.decode("utf-8", "replace").strip()
            if not address:
                detail = log_path.read_text(encoding="utf-8", errors="replace").strip()
                raise DbusDaemonError(
                    "dbus-daemon did not start: " + (detail.splitlines()[-1] if detail else "")
                )
            self._address = address
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        """Terminate the daemon (if running) and remove its files. Safe to call twice."""
        process, self._process = self._process, None
        self._address = None
        if process is not None:
            if process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    process.terminate()
                try:
                    async with asyncio.timeout(_STOP_TIMEOUT_S):
                        await process.wait()
                except TimeoutError:
                    with contextlib.suppress(ProcessLookupError):
                        process.kill()
                    await process.wait()
            if process.stdout is not None:
                # Drain and close our end of the pipe so the transport is released now.
                await process.stdout.read()
        rundir, self._rundir = self._rundir, None
        if rundir is not None:
            shutil.rmtree(rundir, ignore_errors=True)

    def _make_rundir(self) -> Path:
        """A fresh private (0700) folder for socket, config and log.

        It lives in the work dir unless the socket path would not fit in ``sun_path``, in
        which case it falls back to the system temp dir.
        """
        self._workdir.mkdir(parents=True, exist_ok=True)
        rundir = Path(tempfile.mkdtemp(prefix="dbus-", dir=self._workdir))
        if _fits(rundir):
            return rundir
        rundir.rmdir()
        rundir = Path(tempfile.mkdtemp(prefix="hgw-dbus-"))
        if _fits(rundir):
            return rundir
        rundir.rmdir()
        raise DbusDaemonError(
            f"no folder short enough for a unix socket (max {MAX_SOCKET_PATH} bytes); "
            "set TMPDIR to a short path"
        )


def _fits(rundir: Path) -> bool:
    return len(os.fsencode(rundir / "bus.sock")) <= MAX_SOCKET_PATH
