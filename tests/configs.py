"""Config builders for tests: a valid base config as a dict, and TOML writing."""

from __future__ import annotations

import base64
import os
import socket
from pathlib import Path
from typing import Any

ADULT = "197001011234"
REFUSER = "198002022345"
CHILD = "201501013456"


def webhook_secret() -> str:
    return "whsec_" + base64.b64encode(os.urandom(32)).decode()


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(type(value))


def to_toml(config: dict[str, Any]) -> str:
    """Enough TOML for our config shape: tables, arrays of tables, one level of sub-tables."""
    lines: list[str] = []

    def table(name: str, body: dict[str, Any], array: bool) -> None:
        header = f"[[{name}]]" if array else f"[{name}]"
        lines.append(header)
        subtables = {k: v for k, v in body.items() if isinstance(v, dict) and k != "readings"}
        for key, value in body.items():
            if key not in subtables:
                lines.append(f"{key} = {toml_value(value)}")
        for key, value in subtables.items():
            table(f"{name}.{key}", value, False)

    for key, value in config.items():
        if isinstance(value, list):
            for entry in value:
                table(key, entry, True)
        else:
            table(key, value, False)
    return "\n".join(lines) + "\n"


def write_config(path: Path, config: dict[str, Any]) -> Path:
    path.write_text(to_toml(config))
    return path


def free_port() -> int:
    """A loopback port that was free a moment ago (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def base_config(
    data_dir: Path, secret_file: Path, care_url: str, alerts_url: str
) -> dict[str, Any]:
    return {
        "gateway": {
            "data_dir": str(data_dir),
            "log_format": "json",
            "shutdown_grace_s": 3.0,
            "api": {"listen": f"127.0.0.1:{free_port()}"},
        },
        "subjects": [
            {
                "id": ADULT,
                "company_id": "5591464838",
                "birth_date": "1970-01-01",
                "consent": {"care": True, "alerting": True},
            },
        ],
        "devices": [],
        "destinations": [
            {
                "name": "care-platform",
                "kind": "fhir",
                "purpose": "care",
                "url": care_url,
                "retry_initial_s": 0.05,
                "retry_max_s": 0.2,
                "linger_s": 0.01,
            },
            {
                "name": "nurse-alerts",
                "kind": "webhook",
                "purpose": "alerting",
                "url": alerts_url,
                "secret_file": str(secret_file),
                "retry_initial_s": 0.05,
                "retry_max_s": 0.2,
            },
        ],
        "alert_rules": [
            {
                "kind": "blood_pressure",
                "value": "systolic",
                "above": 180,
                "unit": "mm[Hg]",
                "severity": "critical",
            },
        ],
    }
