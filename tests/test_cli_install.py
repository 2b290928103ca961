"""The Raspberry Pi install: the systemd unit keeps its promises, install.sh brings the browser."""

from __future__ import annotations

import configparser
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def unit() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # keys are case-sensitive in systemd
    parser.read(ROOT / "config" / "health-gateway.service")
    return parser


def test_the_service_runs_as_its_own_user_in_the_bluetooth_group_hardened():
    service = unit()["Service"]
    assert service["User"] == "health-gateway"
    assert service["SupplementaryGroups"] == "bluetooth"
    assert service["StateDirectory"] == "health-gateway"
    assert service["StateDirectoryMode"] == "0700"
    for key, value in {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "CapabilityBoundingSet": "",
        "UMask": "0077",
    }.items():
        assert service[key] == value, key
    assert "--config /etc/health-gateway/config.toml" in service["ExecStart"]
    assert "check-config" in service["ExecStartPre"]
    assert service["KillSignal"] == "SIGTERM"
    assert "bluetooth.target" in unit()["Unit"]["After"]


def test_the_docs_and_scripts_the_readme_points_to_exist():
    guide = (ROOT / "docs" / "raspberry-pi.md").read_text()
    for needle in (
        "bluetoothctl",
        "journalctl -u health-gateway",
        "/opt/health-gateway",
        "./install.sh",
        "0600",
        "scripts/check-aarch64-wheels.sh",
    ):
        assert needle in guide, needle
    script = ROOT / "scripts" / "check-aarch64-wheels.sh"
    assert script.stat().st_mode & 0o111
    assert "--only-binary=:all:" in script.read_text()
    readme = (ROOT / "README.md").read_text()
    assert "docs/raspberry-pi.md" in readme and "docs/hub-page.png" in readme
    assert (ROOT / "docs" / "hub-page.png").read_bytes().startswith(b"\x89PNG")


def test_install_for_tests_brings_debians_chromium():
    script = (ROOT / "install.sh").read_text()
    assert "missing+=(chromium)" in script
