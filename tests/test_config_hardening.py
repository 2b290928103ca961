"""Issue 14 (items 12, 13, 17): secret files only at 0600/0400, config errors that never repeat
personal data, and booleans that are booleans. Checked through the real loader and the CLI."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.cli import _load
from gateway.settings import ConfigError, parse_settings
from tests.configs import ADULT, to_toml, webhook_secret

BASE = {
    "gateway": {"data_dir": "/var/lib/health-gateway"},
    "subjects": [{"id": ADULT, "birth_date": "1970-01-01", "consent": {"care": True}}],
    "devices": [{"address": "C4:7C:8D:6A:12:34", "profile": "blood_pressure", "subject": ADULT}],
    "destinations": [
        {"name": "care", "kind": "fhir", "purpose": "care", "url": "https://care.example.eu/fhir"}
    ],
}


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args], capture_output=True, text=True, timeout=60
    )


def _with_secrets(tmp_path: Path) -> tuple[dict, dict[str, Path]]:
    """A config using every kind of secret file, each written 0600."""
    files = {
        "destinations.alerts.secret_file": tmp_path / "alerts.secret",
        "destinations.care.token_file": tmp_path / "care.token",
        "gateway.api.token_file": tmp_path / "api.token",
        "gateway.api.pin_file": tmp_path / "pins",
    }
    files["destinations.alerts.secret_file"].write_text(webhook_secret())
    files["destinations.care.token_file"].write_text("care-platform-token-0123456789\n")
    files["gateway.api.token_file"].write_text("operator-api-token-0123456789\n")
    files["gateway.api.pin_file"].write_text(f"{ADULT} 4711\n")
    for path in files.values():
        path.chmod(0o600)
    config = copy.deepcopy(BASE)
    config["gateway"]["data_dir"] = str(tmp_path / "data")
    config["gateway"]["api"] = {
        "token_file": str(files["gateway.api.token_file"]),
        "pin_file": str(files["gateway.api.pin_file"]),
    }
    config["destinations"][0]["token_file"] = str(files["destinations.care.token_file"])
    config["destinations"].append(
        {
            "name": "alerts",
            "kind": "webhook",
            "purpose": "alerting",
            "url": "https://care.example.eu/hooks",
            "secret_file": str(files["destinations.alerts.secret_file"]),
        }
    )
    return config, files


@pytest.mark.parametrize(
    "key",
    [
        "destinations.alerts.secret_file",
        "destinations.care.token_file",
        "gateway.api.token_file",
        "gateway.api.pin_file",
    ],
)
@pytest.mark.parametrize("mode", [0o644, 0o666, 0o640, 0o604])
def test_a_secret_file_others_can_read_is_refused_naming_the_key_and_the_fix(tmp_path, key, mode):
    config, files = _with_secrets(tmp_path)
    path = tmp_path / "config.toml"
    path.write_text(to_toml(config))
    _load(path)  # all at 0600: accepted
    files[key].chmod(mode)
    with pytest.raises(ConfigError) as info:
        _load(path)
    message = str(info.value)
    assert key in message
    assert f"mode {mode:04o}" in message and f"chmod 600 {files[key]}" in message
    assert "\n" not in message


def test_secret_files_at_0400_are_accepted_and_the_cli_refuses_0644_in_one_line(tmp_path):
    config, files = _with_secrets(tmp_path)
    path = tmp_path / "config.toml"
    path.write_text(to_toml(config))
    for secret in files.values():
        secret.chmod(0o400)
    result = _cli("check-config", str(path))
    assert result.returncode == 0, result.stderr
    files["destinations.alerts.secret_file"].chmod(0o644)
    result = _cli("check-config", str(path))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr
    assert "destinations.alerts.secret_file" in lines[0] and "chmod 600" in lines[0]


# A personnummer-shaped id and a password that must never reach stderr (and so the journal).
CANARY_ID = "191212121212"
CANARY_PASSWORD = "Hemligt-L0senord"


@pytest.mark.parametrize(
    ("mutate", "key", "canary"),
    [
        (lambda c: c["devices"][0].update(subject=CANARY_ID), "devices[0].subject", CANARY_ID),
        (
            lambda c: c["devices"][0].update(users={1: CANARY_ID}, subject=None),
            "devices[0]",
            CANARY_ID,
        ),
        (
            lambda c: c["destinations"][0].update(
                url=f"https://nurse:{CANARY_PASSWORD}@care.example.eu/fhir"
            ),
            "destinations[0].url",
            CANARY_PASSWORD,
        ),
        (
            lambda c: c["destinations"][0].update(url=f"ftp://{CANARY_PASSWORD}@care.example.eu/"),
            "destinations[0].url",
            CANARY_PASSWORD,
        ),
        (
            lambda c: c["destinations"][0].update(url=f"care.example.eu/fhir/Patient/{CANARY_ID}"),
            "destinations[0].url",
            CANARY_ID,
        ),
    ],
)
def test_config_errors_never_repeat_a_persons_id_or_a_url_password(tmp_path, mutate, key, canary):
    config = copy.deepcopy(BASE)
    mutate(config)
    if config["devices"][0].get("subject") is None:
        config["devices"][0].pop("subject", None)
    path = tmp_path / "config.toml"
    path.write_text(to_toml(config))
    result = _cli("check-config", str(path))
    assert result.returncode == 2
    assert key in result.stderr, result.stderr
    assert canary not in result.stderr and canary not in result.stdout


def test_an_unknown_subject_error_still_says_which_device_and_what_to_do():
    config = copy.deepcopy(BASE)
    config["devices"][0]["subject"] = CANARY_ID
    with pytest.raises(ConfigError) as info:
        parse_settings(config)
    assert str(info.value) == (
        "devices[0].subject: no [[subjects]] entry has this id; add the subject or fix the id"
    )


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("subjects", 0, "consent", "analytics"), "yes"),
        (("subjects", 0, "consent", "care"), "no"),
        (("subjects", 0, "consent", "care"), 1),
        (("devices", 0, "simulated"), "no"),
        (("gateway", "require_eea"), "no"),
        (("gateway", "api", "enabled"), "yes"),
        (("alert_rules", 0, "vital_interest"), "true"),
    ],
)
def test_booleans_in_the_config_must_be_true_or_false_not_yes_or_no(path, value):
    config = copy.deepcopy(BASE)
    config["gateway"]["api"] = {}
    config["alert_rules"] = [
        {"kind": "blood_pressure", "value": "systolic", "above": 180, "severity": "critical"}
    ]
    target = config
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value
    with pytest.raises(ConfigError) as info:
        parse_settings(config)
    dotted = ".".join(str(p) for p in path).replace(".0.", "[0].")
    assert str(info.value).startswith(dotted), str(info.value)
    assert "boolean" in str(info.value)


@pytest.mark.parametrize("own_key_file", [True, False])
def test_a_storage_key_file_others_can_read_stops_the_start_in_one_line(tmp_path, own_key_file):
    config = copy.deepcopy(BASE)
    config["devices"] = []
    config["gateway"] = {"data_dir": str(tmp_path / "data"), "api": {"enabled": False}}
    if own_key_file:
        key_file = tmp_path / "outbox.key"
        config["gateway"]["outbox_key_file"] = str(key_file)
        expected_key = "gateway.outbox_key_file"
    else:
        key_file = tmp_path / "data" / "keys" / "storage.key"
        expected_key = "gateway.data_dir"
    key_file.parent.mkdir(parents=True, exist_ok=True)
    key_file.write_bytes(os.urandom(32))
    key_file.chmod(0o644)
    path = tmp_path / "config.toml"
    path.write_text(to_toml(config))
    result = _cli("run", "--config", str(path))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert expected_key in lines[0] and f"chmod 600 {key_file}" in lines[0]
