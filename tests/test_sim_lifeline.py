"""Killed with SIGKILL, a gateway (or a test) leaves none of its simulation's processes behind.

Real processes throughout: ``health-gateway run`` with simulated devices (its private
dbus-daemon and its simulator process), and a bare parent running a program through
``devices.sim.lifeline``. A process's end is awaited on a pidfd (readable once it has exited),
opened while it still runs, so a reused pid cannot pass for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.configs import ADULT, base_config, webhook_secret, write_config
from tests.test_e2e import GatewayProcess, simulated_cuff

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="the parent-death signal is Linux's"
)

ENDS_WITHIN_S = 10.0


def descendants(pid: int) -> list[int]:
    """Every process below ``pid``, children of all its threads included."""
    found: list[int] = []
    pending = [pid]
    while pending:
        parent = pending.pop()
        with contextlib.suppress(FileNotFoundError):
            for task in os.listdir(f"/proc/{parent}/task"):
                with open(f"/proc/{parent}/task/{task}/children", encoding="ascii") as handle:
                    children = [int(child) for child in handle.read().split()]
                found += children
                pending += children
    return found


def command_name(pid: int) -> str:
    with open(f"/proc/{pid}/comm", encoding="ascii") as handle:
        return handle.read().strip()


@contextlib.asynccontextmanager
async def watching(pids: list[int]) -> AsyncIterator[dict[int, asyncio.Event]]:
    """An event per process, set when it has ended (pidfds opened now, while they run).

    On the way out, any of them still running is killed, so a failing test leaves no orphans.
    """
    loop = asyncio.get_running_loop()
    ended = {pid: asyncio.Event() for pid in pids}
    descriptors = {pid: os.pidfd_open(pid) for pid in pids}
    for pid, descriptor in descriptors.items():
        loop.add_reader(descriptor, ended[pid].set)
    try:
        yield ended
    finally:
        for pid, descriptor in descriptors.items():
            loop.remove_reader(descriptor)
            if not ended[pid].is_set():
                with contextlib.suppress(ProcessLookupError):
                    signal.pidfd_send_signal(descriptor, signal.SIGKILL)
            os.close(descriptor)


async def still_running_after(ended: dict[int, asyncio.Event], within_s: float) -> list[int]:
    """The processes that have not ended within ``within_s``."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(within_s):
            await asyncio.gather(*(event.wait() for event in ended.values()))
    return [pid for pid, event in ended.items() if not event.is_set()]


async def test_a_gateway_killed_with_sigkill_leaves_no_simulator_or_dbus_daemon_behind(
    tmp_path: Path,
) -> None:
    (tmp_path / "alerts.secret").write_text(webhook_secret())
    config = base_config(
        tmp_path / "data",
        tmp_path / "alerts.secret",
        "http://127.0.0.1:9/fhir",  # nothing listens: deliveries just wait
        "http://127.0.0.1:9/alerts",
    )
    config["devices"] = [simulated_cuff(ADULT, [{"systolic": 121, "diastolic": 79}])]
    gateway = GatewayProcess(write_config(tmp_path / "gateway.toml", config))
    await gateway.start()
    try:
        await gateway.wait_for_event(lambda event: event.get("event") == "ble.connected")
        assert gateway.process is not None
        below = descendants(gateway.process.pid)
        names = sorted(command_name(pid) for pid in below)
        # The processes this test is about are there to be killed: the private bus and the
        # simulator (a Python process).
        assert "dbus-daemon" in names
        assert any(name.startswith("python") for name in names), names

        async with watching(below) as ended:
            gateway.kill()  # SIGKILL: no shutdown code runs in the gateway
            assert await gateway.process.wait() == -signal.SIGKILL
            survivors = await still_running_after(ended, ENDS_WITHIN_S)
        assert survivors == [], [(pid, command_name(pid)) for pid in survivors]
    finally:
        gateway.kill()


# A bare parent: starts its arguments through the lifeline, says the child's pid, then waits.
PARENT = """
import subprocess, sys
from devices.sim.lifeline import argv_dying_with_parent
child = subprocess.Popen(argv_dying_with_parent(sys.argv[1:]))
sys.stdout.write(f"child {child.pid}\\n")  # one write: the child writes to this pipe too
sys.stdout.flush()
sys.stdin.read()  # until the test kills this process
"""


async def test_a_program_started_through_the_lifeline_dies_when_its_parent_is_killed() -> None:
    # The program says it started (so the lifeline ran it, not refused it), then becomes a
    # sleep that no longer holds the pipe (or a surviving sleep would keep the pipe open).
    program = ["/bin/sh", "-c", "echo started; exec sleep 600 >/dev/null"]
    parent = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        PARENT,
        *program,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert parent.stdout is not None
        said: dict[str, int] = {}
        async with asyncio.timeout(ENDS_WITHIN_S):
            while len(said) < 2:
                word, _, pid = (await parent.stdout.readline()).decode().strip().partition(" ")
                said[word] = int(pid or 0)
        assert set(said) == {"child", "started"}
        async with watching([said["child"]]) as ended:
            parent.kill()
            await parent.wait()
            survivors = await still_running_after(ended, ENDS_WITHIN_S)
        assert survivors == []
    finally:
        with contextlib.suppress(ProcessLookupError):
            parent.kill()
        await parent.wait()
