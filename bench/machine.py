"""What the benchmarks ran on: CPU, cores, memory, OS, Python, library versions, commit."""

from __future__ import annotations

import os
import platform
import sqlite3
import subprocess
from importlib import metadata
from pathlib import Path

PACKAGES = ("aiohttp", "orjson", "cryptography", "pydantic", "structlog", "bleak")


def _cpuinfo(key: str) -> str | None:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                name, _, value = line.partition(":")
                if name.strip() == key:
                    return value.strip()
    except OSError:
        return None
    return None


def _memory_gib() -> float | None:
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) / 1024 / 1024
    except OSError:
        return None
    return None


def _os_name() -> str:
    try:
        with open("/etc/os-release", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("PRETTY_NAME="):
                    return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return platform.system()


def _filesystem(path: Path) -> str:
    """The mount (device and type) that holds ``path``: where SQLite's fsync goes."""
    best, best_len = "unknown", -1
    resolved = str(path.resolve())
    try:
        with open("/proc/mounts", encoding="utf-8") as handle:
            for line in handle:
                device, mount, kind, *_ = line.split()
                inside = resolved == mount or resolved.startswith(mount.rstrip("/") + "/")
                if inside and len(mount) > best_len:
                    best, best_len = f"{kind} on {device}", len(mount)
    except OSError:
        pass
    return best


def _commit(repo: Path) -> str:
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=repo,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            [
                "git",
                "status",
                "--porcelain",
                "--untracked-files=no",
                "--",
                "gateway",
                "devices",
                "filters",
            ],
            cwd=repo,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + (" (with uncommitted changes to the gateway)" if dirty else "")


def describe(workdir: Path, repo: Path) -> dict[str, str]:
    model = _cpuinfo("model name") or _cpuinfo("Model") or platform.processor() or "unknown"
    mhz = _cpuinfo("cpu MHz")
    cores = os.cpu_count() or 0
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else cores
    memory = _memory_gib()
    versions = ", ".join(f"{name} {_version(name)}" for name in PACKAGES)
    return {
        "CPU": f"{model}" + (f" ({float(mhz):.0f} MHz)" if mhz else ""),
        "cores": f"{cores} logical, {usable} usable by this process",
        "memory": f"{memory:.1f} GiB" if memory else "unknown",
        "OS": f"{_os_name()}, Linux {platform.release()} ({platform.machine()})",
        "Python": f"{platform.python_implementation()} {platform.python_version()}",
        "SQLite": sqlite3.sqlite_version,
        "libraries": versions,
        "data directory": _filesystem(workdir),
        "gateway commit": _commit(repo),
    }


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"
