"""``[[devices]]`` for broadcast scales, people told apart by weight, UDS consent code files."""

from __future__ import annotations

import copy
import tomllib
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from devices.users import PeopleByWeight
from gateway.intake.device_targets import device_targets
from gateway.settings import ConfigError, parse_settings
from tests.configs import ADULT

PARTNER = "198002022345"
SCALE = "C8:47:8C:C0:95:89"


def config(device: dict[str, Any]) -> dict[str, Any]:
    return {
        "gateway": {"data_dir": "/var/lib/health-gateway"},
        "subjects": [
            {"id": ADULT, "birth_date": "1970-01-01"},
            {"id": PARTNER, "birth_date": "1980-02-02"},
        ],
        "devices": [{"address": SCALE, **device}],
    }


HOUSEHOLD = {
    "profile": "xiaomi_body_composition",
    "users_by": "weight_range",
    "users": {
        "1": {"subject": ADULT, "weight_range_kg": [75, 95]},
        "2": {"subject": PARTNER, "weight_range_kg": [50, 76]},
    },
}


def test_a_broadcast_scale_shared_by_weight_range_becomes_a_target_that_matches_by_weight() -> None:
    settings = parse_settings(config(copy.deepcopy(HOUSEHOLD)))

    [target] = device_targets(settings)

    assert target.profile == "xiaomi_body_composition"
    assert isinstance(target.people, PeopleByWeight) and target.people.rule == "weight_range"
    assert target.people.match(82.0, {}) == 1 and target.people.match(60.0, {}) == 2
    assert target.people.match(75.5, {}) is None  # in both ranges: never guessed
    assert settings.devices[0].user_subjects == {1: ADULT, 2: PARTNER}


def test_the_model_key_reaches_the_decoder_in_lower_case() -> None:
    settings = parse_settings(
        config({"profile": "blood_pressure", "subject": ADULT, "model": "Beurer-BM85"})
    )
    assert device_targets(settings)[0].model == "beurer-bm85"
    assert settings.devices[0].model == "Beurer-BM85"  # what analytics may receive, as written


@pytest.mark.parametrize(
    ("device", "expected"),
    [
        (
            {"profile": "xiaomi_scale", "users": {"1": ADULT, "2": PARTNER}},
            "devices[0]: users_by: a broadcast scale sends no user index",
        ),
        (
            {
                "profile": "xiaomi_scale",
                "users_by": "weight_range",
                "users": {"1": {"subject": ADULT, "weight_range_kg": [75, 95]}, "2": PARTNER},
            },
            "users: user 2: weight_range needs [low, high] in kg",
        ),
        (
            {
                "profile": "xiaomi_scale",
                "users_by": "nearest_weight",
                "users": {"1": {"subject": ADULT, "usual_weight_kg": 80}, "2": PARTNER},
            },
            "users: user 2: nearest_weight needs a usual weight in kg",
        ),
        (
            {
                "profile": "xiaomi_scale",
                "users_by": "weight_range",
                "users": {"1": {"subject": ADULT, "weight_range_kg": [95, 75]}},
            },
            "low below high",
        ),
        (
            {"profile": "xiaomi_scale", "users_by": "nearest_weight", "subject": ADULT},
            "users_by = 'nearest_weight' needs a [devices.users] table",
        ),
        (
            {
                "profile": "blood_pressure",
                "users": {"1": {"subject": ADULT, "consent_code_file": "/etc/code"}},
            },
            "consent_code_file is for User Data Service scales",
        ),
        (
            {"profile": "mi_scale", "subject": ADULT},
            "unknown profile 'mi_scale'; use one of blood_pressure, body_composition",
        ),
    ],
)
def test_a_shared_scale_config_that_cannot_work_names_the_key(
    device: dict[str, Any], expected: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_settings(config(device))
    assert expected in str(caught.value)


def uds_config(code_file: Path) -> dict[str, Any]:
    return config(
        {
            "profile": "weight",
            "users": {
                "1": {"subject": ADULT, "consent_code_file": str(code_file), "height_cm": 181},
                "2": PARTNER,
            },
        }
    )


def test_a_consent_code_comes_from_its_private_file_and_never_shows(tmp_path: Path) -> None:
    code = tmp_path / "bf600-user-1"
    code.write_text("0815\n")
    code.chmod(0o600)

    [target] = device_targets(parse_settings(uds_config(code)))

    [user] = target.uds_users
    assert (user.index, user.consent_code) == (1, 815)
    # Told to the scale when the gateway registers the person there.
    assert (user.birth_date, user.height_cm) == (date(1970, 1, 1), 181)
    assert "815" not in repr(target) and "1970" not in repr(target) and "181" not in repr(target)


@pytest.mark.parametrize(
    ("content", "mode", "expected"),
    [
        ("0815", 0o644, "is readable by other users; it holds a secret: chmod 600"),
        ("12345", 0o600, "must hold the consent code, a number 0..9999"),
        ("abcd", 0o600, "must hold the consent code, a number 0..9999"),
        (None, 0o600, "does not exist"),
    ],
)
def test_an_unusable_consent_code_file_fails_at_start_naming_the_key(
    tmp_path: Path, content: str | None, mode: int, expected: str
) -> None:
    code = tmp_path / "code"
    if content is not None:
        code.write_text(content)
        code.chmod(mode)

    with pytest.raises(ConfigError) as caught:
        device_targets(parse_settings(uds_config(code)))

    message = str(caught.value)
    assert message.startswith("devices[0].users.1.consent_code_file: ")
    assert expected in message
    assert content is None or content not in message


def test_the_commented_shared_scale_examples_in_the_example_config_are_valid() -> None:
    example = (Path(__file__).resolve().parent.parent / "config" / "example.toml").read_text()
    blocks = []
    for marker in ("# A broadcast-only scale", "# A scale with the User Data Service"):
        section = example[example.index(marker) :].split("\n\n", 1)[0].splitlines()
        start = section.index("# [[devices]]")
        blocks.append("\n".join(line.removeprefix("# ") for line in section[start:]))
    broadcast, uds = (tomllib.loads(block)["devices"][0] for block in blocks)
    subjects = {"id": "197202023456", "birth_date": "1972-02-02"}
    settings = parse_settings(
        {
            "gateway": {"data_dir": "/var/lib/health-gateway"},
            "subjects": [{"id": "197001011234", "birth_date": "1970-01-01"}, subjects],
            "devices": [broadcast, uds],
        }
    )
    assert settings.devices[0].people_by_weight() is not None
    [user] = [u for u in (settings.devices[1].users or {}).values() if not isinstance(u, str)]
    assert user.consent_code_file == Path("/etc/health-gateway/bf600-user-1.code")


def test_people_by_weight_is_only_for_scales() -> None:
    device = {
        "profile": "blood_pressure",
        "users_by": "weight_range",
        "users": {"1": {"subject": ADULT, "weight_range_kg": [75, 95]}},
    }
    with pytest.raises(ConfigError, match="users_by = 'weight_range' is for scales"):
        parse_settings(config(device))
