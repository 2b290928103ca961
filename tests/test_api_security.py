"""The API's guards on their own: PIN file, login limit, sessions, networks, token file."""

from __future__ import annotations

import copy
import stat

import pytest

from gateway.api.security import (
    LoginLimiter,
    Sessions,
    address_allowed,
    check_api_settings,
    load_pins,
    load_token,
    match_pin,
    parse_networks,
)
from gateway.settings import ApiSettings, ConfigError, parse_settings
from tests.configs import ADULT, REFUSER

BASE = {
    "gateway": {"data_dir": "/tmp/unused"},
    "subjects": [
        {"id": ADULT, "birth_date": "1970-01-01"},
        {"id": REFUSER, "birth_date": "1980-02-02"},
    ],
}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def settings_with(tmp_path, **api):
    config = copy.deepcopy(BASE)
    config["gateway"]["data_dir"] = str(tmp_path / "data")
    config["gateway"]["api"] = {k: str(v) for k, v in api.items()}
    return parse_settings(config)


def test_pins_map_to_people(tmp_path):
    pins = tmp_path / "pins"
    pins.write_text(f"# the household\n{ADULT} 4711\n{REFUSER} = 080808  # Bertil\n\n")
    found = load_pins(settings_with(tmp_path, pin_file=pins))
    assert found == {"4711": ADULT, "080808": REFUSER}
    assert match_pin("4711", found) == ADULT
    assert match_pin("471", found) is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (f"{ADULT} 12", "line 1: a PIN is 4 to 12 digits"),
        (f"{ADULT} abcd", "line 1: a PIN is 4 to 12 digits"),
        ("000000000000 1234", "line 1: no [[subjects]] entry has this id"),
        (f"{ADULT} 1234\n{REFUSER} 1234", "line 2: two people have the same PIN"),
        (f"{ADULT} 1234\n{ADULT} 5678", "line 2: this person already has a PIN"),
        (f"{ADULT}", "line 1: write `SUBJECT_ID PIN`"),
    ],
)
def test_bad_pin_files_name_the_line(tmp_path, text, message):
    pins = tmp_path / "pins"
    pins.write_text(text)
    with pytest.raises(ConfigError, match=r"gateway\.api\.pin_file") as info:
        load_pins(settings_with(tmp_path, pin_file=pins))
    assert message in str(info.value)
    assert ADULT not in str(info.value)  # the message never repeats an identifier


def test_missing_files_say_how_to_create_them(tmp_path):
    with pytest.raises(ConfigError, match=r"gateway.api.token_file: .* does not exist; create"):
        check_api_settings(settings_with(tmp_path, token_file=tmp_path / "nope"))
    with pytest.raises(ConfigError, match=r"gateway.api.pin_file: .* does not exist; create"):
        check_api_settings(settings_with(tmp_path, pin_file=tmp_path / "nope"))
    short = tmp_path / "short"
    short.write_text("abc")
    with pytest.raises(ConfigError, match="too short"):
        check_api_settings(settings_with(tmp_path, token_file=short))


def test_default_token_is_created_once_with_mode_0600(tmp_path):
    settings = settings_with(tmp_path)
    token, created = load_token(settings)
    assert created and len(token) >= 32
    path = tmp_path / "data" / "api-token"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_token(settings) == (token, False)


def test_login_limiter_locks_after_five_and_doubles():
    clock = Clock()
    limiter = LoginLimiter(clock=clock)
    assert [limiter.failed() for _ in range(4)] == [0, 0, 0, 0]
    assert limiter.failed() == 30
    assert limiter.retry_after() == 30
    clock.now += 30
    assert limiter.retry_after() == 0
    assert limiter.failed() == 60
    for _ in range(10):
        limiter.failed()
    assert limiter.retry_after() == 900  # capped at 15 minutes
    limiter.succeeded()
    assert limiter.retry_after() == 0 and limiter.failures == 0


def test_sessions_expire_when_idle_and_are_bounded():
    clock = Clock()
    sessions = Sessions(idle_s=60, clock=clock)
    first = sessions.create(ADULT, "pin")
    clock.now += 59
    assert sessions.get(first.id) is first  # use keeps it alive
    clock.now += 59
    assert sessions.get(first.id) is first
    clock.now += 61
    assert sessions.get(first.id) is None
    many = [sessions.create(REFUSER, "pin") for _ in range(100)]
    assert sessions.get(many[0].id) is None and sessions.get(many[-1].id) is many[-1]
    sessions.end(many[-1].id)
    assert sessions.get(many[-1].id) is None
    assert sessions.get(None) is None and sessions.get("forged") is None


def test_networks():
    default = parse_networks(ApiSettings())
    for address in ("127.0.0.1", "::1", "192.168.1.20", "10.1.2.3", "172.20.0.5", "fd00::5"):
        assert address_allowed(address, default), address
    assert address_allowed("::ffff:192.168.1.20", default)
    assert address_allowed("fe80::1%eth0", default)
    for address in ("8.8.8.8", "172.32.0.1", "2001:db8::1", None, "", "not-an-ip"):
        assert not address_allowed(address, default), address
    with pytest.raises(ConfigError, match=r"allowed_networks.*is not a network"):
        parse_settings(
            {**BASE, "gateway": {"data_dir": "/x", "api": {"allowed_networks": ["lan"]}}}
        )
