"""Issue 14, item 10: a damaged database page at start, ``audit verify`` on an empty or damaged
database, and ``scan`` without a system D-Bus each end with one line on stderr and exit 1,
never a traceback. The real CLI as a subprocess, on real files."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.configs import to_toml
from tests.test_e2e import GatewayProcess

PAGE = 4096


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in result.stderr + result.stdout, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("health-gateway: ")
    return lines[0]


def config_file(tmp_path: Path, data_dir: Path) -> Path:
    path = tmp_path / "gateway.toml"
    path.write_text(
        to_toml(
            {
                "gateway": {
                    "data_dir": str(data_dir),
                    "log_format": "json",
                    "api": {"listen": "127.0.0.1:0"},
                }
            }
        )
    )
    return path


async def damaged_database(tmp_path: Path) -> Path:
    """A database the real gateway created and closed cleanly, then every page after the first
    overwritten (the schema page stays readable, so the damage shows at the first query)."""
    config = config_file(tmp_path, tmp_path / "data")
    gateway = GatewayProcess(config)
    await gateway.start()
    try:
        await gateway.wait_for_event(lambda e: e.get("event") == "gateway_started")
    finally:
        assert await gateway.stop() == 0
    database = tmp_path / "data" / "gateway.db"
    for leftover in ("gateway.db-wal", "gateway.db-shm"):
        (tmp_path / "data" / leftover).unlink(missing_ok=True)
    pages = database.stat().st_size // PAGE
    assert pages > 2
    with database.open("r+b") as handle:
        for page in range(1, pages):
            handle.seek(page * PAGE)
            handle.write(b"\xa5" * PAGE)
    return config


async def test_a_damaged_database_page_at_start_is_one_line_and_exit_1(tmp_path):
    config = await damaged_database(tmp_path)
    result = cli("run", "--config", str(config))
    assert result.returncode == 1
    line = one_line(result)
    assert "database disk image is malformed" in line
    assert "restore it from a backup" in line


async def test_audit_verify_on_a_damaged_database_is_one_line_and_exit_1(tmp_path):
    config = await damaged_database(tmp_path)
    result = cli("audit", "verify", "--config", str(config))
    assert result.returncode == 1
    line = one_line(result)
    assert "gateway.db: the database is damaged" in line and "malformed" in line


def test_audit_verify_on_an_empty_database_is_one_line_and_exit_1(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "gateway.db").touch()  # e.g. left by a failed copy
    result = cli("audit", "verify", "--config", str(config_file(tmp_path, data)))
    assert result.returncode == 1
    assert "holds no audit log" in one_line(result)


def test_scan_without_a_system_dbus_is_one_line_and_exit_1(tmp_path):
    missing = tmp_path / "no-system-bus"
    result = cli("scan", "--timeout", "1", env={"DBUS_SYSTEM_BUS_ADDRESS": f"unix:path={missing}"})
    assert result.returncode == 1
    line = one_line(result)
    assert "D-Bus is not running" in line and "start dbus" in line
