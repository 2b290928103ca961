import copy
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from gateway.settings import ConfigError, load_settings, parse_settings
from tests.configs import ADULT, to_toml, webhook_secret

BASE = {
    "gateway": {"data_dir": "/var/lib/health-gateway"},
    "subjects": [{"id": ADULT, "birth_date": "1970-01-01", "consent": {"care": True}}],
    "devices": [{"address": "c4:7c:8d:6a:12:34", "profile": "blood_pressure", "subject": ADULT}],
    "destinations": [
        {"name": "care", "kind": "fhir", "purpose": "care", "url": "https://care.example.eu/fhir"}
    ],
    "alert_rules": [
        {"kind": "blood_pressure", "value": "systolic", "above": 180, "unit": "mm[Hg]"}
    ],
}


def test_valid_config_is_normalised():
    settings = parse_settings(copy.deepcopy(BASE))
    assert settings.devices[0].address == "C4:7C:8D:6A:12:34"
    assert settings.subject(ADULT).consent == {"care": True}
    assert settings.gateway.api.listen == "127.0.0.1:8080"
    assert not settings.uses_simulated_radio


def _set(path, value):
    def mutate(config):
        target = config
        for key in path[:-1]:
            target = target[key]
        if value is DELETE:
            del target[path[-1]]
        else:
            target[path[-1]] = value

    return mutate


DELETE = object()


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (
            _set(("destinations", 0, "url"), "http://care.example.eu/fhir"),
            "destinations[0].url: plain http is only allowed to loopback addresses",
        ),
        (_set(("devices", 0, "adress"), "x"), "devices[0].adress: unknown key"),
        (
            _set(("devices", 0, "address"), "C4:7C:8D"),
            "devices[0].address: not a BLE address",
        ),
        (
            _set(("devices", 0, "subject"), "000"),
            "devices[0].subject: no [[subjects]] entry has this id",
        ),
        (
            _set(("subjects", 0, "birth_date"), DELETE),
            "subjects[0].birth_date: required key is missing",
        ),
        (_set(("destinations", 0, "kind"), "ftp"), "destinations[0]: unknown destination kind"),
        (
            _set(("devices", 0, "profile"), "toaster"),
            "devices[0].profile: unknown profile 'toaster'",
        ),
        (
            _set(("alert_rules", 0, "above"), DELETE),
            "alert_rules[0]: an alert rule needs `above`, `below` or both",
        ),
        (
            _set(("gateway", "api"), {"listen": "8080"}),
            "gateway.api.listen: '8080' must be host:port",
        ),
    ],
)
def test_bad_config_names_the_key(mutate, expected):
    config = copy.deepcopy(BASE)
    mutate(config)
    with pytest.raises(ConfigError) as info:
        parse_settings(config)
    assert str(info.value).startswith(expected)
    assert "\n" not in str(info.value)


def test_webhook_without_secret_is_refused():
    config = copy.deepcopy(BASE)
    config["destinations"].append(
        {"name": "alerts", "kind": "webhook", "purpose": "alerting", "url": "https://x.eu/h"}
    )
    with pytest.raises(ConfigError, match=r"destinations\[1\]: a webhook needs its signing secret"):
        parse_settings(config)


def test_mixing_real_and_simulated_devices_is_refused():
    config = copy.deepcopy(BASE)
    config["devices"].append(
        {
            "address": "C4:7C:8D:6A:12:35",
            "profile": "blood_pressure",
            "subject": ADULT,
            "simulated": True,
        }
    )
    with pytest.raises(ConfigError, match="cannot be mixed"):
        parse_settings(config)


def test_load_settings_reports_file_and_toml_errors(tmp_path):
    with pytest.raises(ConfigError, match="file not found"):
        load_settings(tmp_path / "missing.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("[gateway\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(broken)


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args], capture_output=True, text=True, timeout=60
    )


def test_check_config_cli_one_line_and_exit_code(tmp_path: Path):
    config = copy.deepcopy(BASE)
    config["destinations"][0]["url"] = "http://care.example.eu/fhir"
    path = tmp_path / "bad.toml"
    path.write_text(to_toml(config))
    result = _cli("check-config", str(path))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "destinations[0].url" in lines[0] and "https://" in lines[0]


def test_check_config_cli_missing_secret_file(tmp_path: Path):
    config = copy.deepcopy(BASE)
    config["destinations"].append(
        {
            "name": "alerts",
            "kind": "webhook",
            "purpose": "alerting",
            "url": "https://x.eu/h",
            "secret_file": str(tmp_path / "nope"),
        }
    )
    path = tmp_path / "c.toml"
    path.write_text(to_toml(config))
    result = _cli("check-config", str(path))
    assert result.returncode == 2
    assert "destinations.alerts.secret_file" in result.stderr and "does not exist" in result.stderr


def test_check_config_cli_bad_secret_format_and_ok(tmp_path: Path):
    secret = tmp_path / "alerts.secret"
    secret.write_text("not-a-whsec-secret")
    config = copy.deepcopy(BASE)
    config["destinations"].append(
        {
            "name": "alerts",
            "kind": "webhook",
            "purpose": "alerting",
            "url": "https://x.eu/h",
            "secret_file": str(secret),
        }
    )
    path = tmp_path / "c.toml"
    path.write_text(to_toml(config))
    result = _cli("check-config", str(path))
    assert result.returncode == 2 and "must start with 'whsec_'" in result.stderr
    secret.write_text(webhook_secret())
    result = _cli("check-config", str(path))
    assert result.returncode == 0, result.stderr
    assert "OK (1 subjects, 1 devices, 2 destinations, 1 alert rules)" in result.stdout


def test_alert_rule_unit_must_be_comparable(tmp_path: Path):
    config = copy.deepcopy(BASE)
    config["alert_rules"][0]["unit"] = "kg"
    path = tmp_path / "c.toml"
    path.write_text(to_toml(config))
    result = _cli("check-config", str(path))
    assert result.returncode == 2
    assert "alert_rules[0].unit: cannot compare kg with mm[Hg]" in result.stderr


def test_annotated_example_config_stays_valid():
    example = Path(__file__).resolve().parent.parent / "config" / "example.toml"
    settings = load_settings(example)
    kinds = sorted(d.kind for d in settings.destinations)
    assert kinds == ["aggregate", "analytics", "fhir", "webhook"]
    assert settings.gateway.require_eea and settings.gateway.retention_days == 365


def test_consent_sync_needs_a_fhir_destination_and_distinct_purpose_codes():
    config = copy.deepcopy(BASE)
    config["consent_sync"] = {"destination": "care", "purposes": {"research": "urn:x|R"}}
    sync = parse_settings(config).consent_sync
    assert sync is not None
    assert sync.purposes["research"] == "urn:x|R"
    assert sync.purposes["care"].endswith("v3-ActReason|TREAT")  # the defaults stay
    config["consent_sync"] = {"destination": "nowhere"}
    with pytest.raises(ConfigError, match=r"consent_sync.destination: 'nowhere' is not"):
        parse_settings(config)
    config["consent_sync"] = {"destination": "care", "purposes": {"research": "TREAT"}}
    with pytest.raises(ConfigError, match=r"system\|code"):
        parse_settings(config)
    taken = "http://terminology.hl7.org/CodeSystem/v3-ActReason|TREAT"
    config["consent_sync"] = {"destination": "care", "purposes": {"research": taken}}
    with pytest.raises(ConfigError, match="same code"):
        parse_settings(config)


def test_the_clinical_example_rules_in_the_example_config_are_valid_when_enabled():
    example = (Path(__file__).resolve().parent.parent / "config" / "example.toml").read_text()
    start = example.index("EXAMPLES (begin)")
    first = example.index("# [[alert_rules]]", start)  # after the prose that introduces them
    block = example[first : example.index("# ---- Window rules", start + 1)]
    enabled = "\n".join(
        line.removeprefix("# ") for line in block.splitlines() if line.startswith("# ")
    )
    rules = tomllib.loads(enabled)["alert_rules"]
    settings = parse_settings({"gateway": {"data_dir": "/tmp/x"}, "alert_rules": rules})
    assert [rule.rule_type for rule in settings.alert_rules] == [
        "change",
        "mean",
        "mean",
        "count",
        "missing",
    ]
    rise, systolic, _diastolic, glucose, missing = settings.alert_rules
    assert (rise.rise, rise.within) == (2.0, 3 * 86400)
    assert (systolic.mean_above, systolic.over, systolic.min_readings) == (135, 7 * 86400, 12)
    assert (glucose.below, glucose.unit, glucose.count, glucose.within) == (
        3.0,
        "mmol/L",
        3,
        7 * 86400,
    )
    assert missing.missing_for == 2 * 86400


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        (
            {"kind": "weight", "value": "body_weight", "rise": 2, "within": "3 days"},
            "alert_rules[0].within: '3 days' is not a duration",
        ),
        (
            {"kind": "weight", "value": "body_weight", "rise": 2, "within": 3},
            "alert_rules[0].within: 3 is not a duration; write a number with its unit",
        ),
        (
            {"kind": "weight", "value": "body_weight", "rise": 2},
            "alert_rules[0]: `within` is missing",
        ),
        (
            {"kind": "weight", "value": "body_weight", "rise": 2, "fall": 1, "within": "3d"},
            "alert_rules[0]: `rise` and `fall`: use one per rule",
        ),
        (
            {"kind": "weight", "value": "body_weight", "rise": 2, "within": "3d", "over": "7d"},
            "alert_rules[0]: `over` does not belong in a change rule",
        ),
        (
            {"kind": "blood_pressure", "value": "systolic", "mean_above": 135},
            "alert_rules[0]: `over` is missing",
        ),
        (
            {
                "kind": "blood_pressure",
                "value": "systolic",
                "mean_above": 135,
                "over": "7d",
                "times": ["7-10"],
            },
            "alert_rules[0].times: '7-10' is not a time range",
        ),
        (
            {"kind": "glucose", "value": "glucose", "count": 3, "within": "7d"},
            "alert_rules[0]: `above` or `below` is missing",
        ),
        (
            {"kind": "weight", "value": "body_weight", "missing_for": "2d"},
            "alert_rules[0]: `value` does not belong in a missing_for rule",
        ),
        (
            {"kind": "weigh", "missing_for": "2d"},
            "alert_rules[0]: `kind` 'weigh' is not a kind of reading",
        ),
        (
            {"kind": "blood_pressure", "value": "systolic", "above": 180, "within": "1d"},
            "alert_rules[0]: `within` does not belong in a limit rule",
        ),
    ],
)
def test_a_window_rule_with_a_wrong_key_fails_naming_the_key(rule, message):
    with pytest.raises(ConfigError) as failure:
        parse_settings({"gateway": {"data_dir": "/tmp/x"}, "alert_rules": [rule]})
    assert str(failure.value).startswith(message), str(failure.value)
