"""The database's writer thread: priorities, cancellation, errors, and the checkpointer."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from gateway.storage.database import Database, Priority, StoreError, Transaction


async def opened(tmp_path: Path) -> Database:
    database = Database(tmp_path / "gateway.db")
    await database.open()
    return database


async def test_waiting_work_runs_by_priority_then_arrival(tmp_path: Path) -> None:
    database = await opened(tmp_path)
    started, release = threading.Event(), threading.Event()
    order: list[str] = []

    def blocker(_c: sqlite3.Connection) -> None:
        started.set()
        release.wait(10)

    def job(name: str) -> Callable[[sqlite3.Connection], None]:
        return lambda _c: order.append(name)

    running = asyncio.create_task(database.call(blocker))
    await asyncio.to_thread(started.wait, 10)
    waiting = [
        asyncio.create_task(database.call(job("bulk-1"))),
        asyncio.create_task(database.call(job("intake"), priority=Priority.INTAKE)),
        asyncio.create_task(database.call(job("bulk-2"))),
        asyncio.create_task(database.call(job("alert"), priority=Priority.ALERT)),
    ]
    await asyncio.sleep(0)  # every call has put its job in the queue
    release.set()
    await asyncio.gather(running, *waiting)
    assert order == ["alert", "intake", "bulk-1", "bulk-2"]
    await database.close()


async def test_a_job_whose_caller_gave_up_before_it_started_never_runs(tmp_path: Path) -> None:
    database = await opened(tmp_path)
    started, release = threading.Event(), threading.Event()
    ran: list[str] = []
    running = asyncio.create_task(database.call(lambda _c: (started.set(), release.wait(10))))
    await asyncio.to_thread(started.wait, 10)
    abandoned = asyncio.create_task(database.call(lambda _c: ran.append("abandoned")))
    await asyncio.sleep(0)
    abandoned.cancel()
    release.set()
    await running
    await database.call(lambda _c: ran.append("after"))
    assert ran == ["after"]
    await database.close()


async def test_errors_reach_the_caller_and_the_writer_goes_on(tmp_path: Path) -> None:
    database = await opened(tmp_path)
    with pytest.raises(sqlite3.OperationalError, match="no such table"):
        await database.call(lambda c: c.execute("SELECT * FROM nowhere"))
    assert await database.call(lambda c: c.execute("SELECT 1").fetchone()[0]) == 1
    await database.close()
    with pytest.raises(StoreError, match="not open"):
        await database.call(lambda c: c.execute("SELECT 1"))


async def test_the_checkpointer_copies_the_log_after_writes(tmp_path: Path) -> None:
    database = await opened(tmp_path)
    checkpointer = database.checkpointer
    assert checkpointer is not None
    pragma = "PRAGMA wal_autocheckpoint"
    autocheckpoint = await database.call(lambda c: c.execute(pragma).fetchone()[0])
    assert autocheckpoint > 1000  # the writer no longer checkpoints every 1,000
    before = checkpointer.passes

    def write(connection: sqlite3.Connection) -> None:
        with Transaction(connection):
            connection.executemany(
                "INSERT INTO meta (key, value) VALUES (?, ?)",
                [(f"k{i}", "x" * 2000) for i in range(500)],
            )

    await database.call(write)
    assert await asyncio.to_thread(checkpointer.wait_for_pass, before, 10)
    busy, logged, copied = checkpointer.last_pass or (1, 0, -1)
    assert busy == 0 and logged > 200 and copied == logged  # every frame is in the file now
    await database.close()
    assert not (tmp_path / "gateway.db-wal").exists()  # the last connection out removed it
