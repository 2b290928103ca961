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


def test_tries_in_flight_use_up_the_free_tries_and_after_a_lock_one_is_judged_at_a_time():
    clock = Clock()
    limiter = LoginLimiter(clock=clock)
    assert [limiter.admit() for _ in range(5)] == [0, 0, 0, 0, 0]
    assert limiter.admit() == 1.0  # all five free tries are being judged: wait
    limiter.failed()
    limiter.release()
    assert limiter.admit() == 1.0  # one wrong, four in flight: still nothing left
    for _ in range(4):
        limiter.failed()
        limiter.release()
    assert limiter.admit() == 30  # locked
    clock.now += 30
    assert limiter.admit() == 0  # the lock is open: one try...
    assert limiter.admit() == 1.0  # ...at a time
    limiter.release()  # abandoned (a bad request, a body that never came): not a wrong try
    assert limiter.failures == 5 and limiter.in_flight == 0
    assert limiter.admit() == 0
    limiter.succeeded()
    limiter.release()
    assert limiter.failures == 0 and limiter.in_flight == 0


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


@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        ("127.0.0.1:8080", True),
        ("192.168.1.20", True),
        ("[::1]:8080", True),
        ("[fe80::1%eth0]:8080", True),
        ("localhost:8080", True),
        ("hub.local", True),
        ("Hub.Local.:8080", True),
        ("hub.local.attacker.example", False),
        ("attacker.example", False),
        ("[attacker.example]:80", False),
        ("", False),
        (None, False),
    ],
)
def test_the_host_header_must_be_an_ip_address_or_a_configured_name(host, allowed):
    from gateway.api.hosts import host_allowed

    assert host_allowed(host, frozenset({"localhost", "hub.local"})) is allowed


def test_the_configured_host_names_include_localhost_and_the_machines_own_name():
    import socket

    from gateway.api.hosts import host_names

    names = host_names(ApiSettings(host_names=["Hub.Local"], listen="gateway.lan:8080"))
    machine = socket.gethostname().lower()
    assert {"localhost", "hub.local", "gateway.lan", machine} <= names
    assert machine.split(".")[0] + ".local" in names


def test_closed_connections_are_logged_at_most_once_per_interval_with_counts():
    from gateway.api.connections import RefusalReport
    from tests.conftest import watch_logs

    clock = Clock()
    report = RefusalReport(interval_s=60.0, clock=clock)
    with watch_logs() as logs:
        for _ in range(1000):
            report.count("outside_allowed_networks")
        clock.now += 30
        report.count("over_max_connections")
        clock.now += 30
        report.count("over_max_connections")
        report.flush()
    lines = [entry for entry in logs.entries if entry["event"] == "api_connections_closed"]
    assert [
        {k: v for k, v in line.items() if k.startswith(("outside", "over"))} for line in lines
    ] == [
        {"outside_allowed_networks": 1},
        {"outside_allowed_networks": 999, "over_max_connections": 2},
    ]
    assert report.totals == {"outside_allowed_networks": 1000, "over_max_connections": 2}
