"""`health-gateway init` lays out the Pi guide's folders, and `check-config` asks as the user
who runs it whether the service could write what it writes.

Owners only mean something between two real users, so the permission tests run the real
commands as root and as an unprivileged user (`nobody`): `init` and `check-config` as
subprocesses, and `check-config` as the service user in a forked child that drops to that
user's ids (the test's interpreter lives under /root, which `nobody` cannot execute).
"""

from __future__ import annotations

import os
import pwd
import shutil
import stat
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from gateway.cli import main
from gateway.initialise import config_from_example, example_config

ROOT = Path(__file__).resolve().parent.parent
AS_ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not AS_ROOT, reason="giving files to another user needs root")
SERVICE = "nobody"


def health_gateway(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=ROOT,
    )


@pytest.fixture
def base() -> Iterator[Path]:
    """A folder another user can pass through (pytest's tmp_path is root's alone)."""
    path = Path(tempfile.mkdtemp(prefix="hgw-layout-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path)


def as_user(name: str, action: Callable[[], int]) -> tuple[int, str]:
    """Run ``action`` in a child process with that user's uid and gid; its code and output."""
    entry = pwd.getpwnam(name)
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 99
        try:
            os.close(read_end)
            os.setgroups([])
            os.setgid(entry.pw_gid)
            os.setuid(entry.pw_uid)
            out = os.fdopen(write_end, "w")
            sys.stdout = sys.stderr = out
            code = action()
            out.flush()
        except BaseException as exc:  # report anything to the parent, then leave
            os.write(write_end, repr(exc).encode())
        finally:
            os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end) as reader:
        output = reader.read()
    _pid, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), output


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def owner(path: Path) -> tuple[str, str]:
    import grp

    info = path.stat()
    return pwd.getpwuid(info.st_uid).pw_name, grp.getgrgid(info.st_gid).gr_name


def add_provider_tokens(config_dir: Path) -> None:
    """What the installer does after init: the care provider's tokens, the service's own, 0600."""
    for name in ("care-token", "analytics-token"):
        path = config_dir / name
        path.write_text("token-from-the-care-provider-0123456789\n")
        shutil.chown(path, SERVICE, owner(config_dir)[1])
        path.chmod(0o600)


def test_the_written_config_is_the_packaged_example_with_this_hubs_folders():
    text = config_from_example(Path("/srv/hub/etc"), Path("/srv/hub/data"))
    config = tomllib.loads(text)
    assert config["gateway"]["data_dir"] == "/srv/hub/data"
    assert config["gateway"]["api"]["token_file"] == "/srv/hub/etc/api-token"
    assert config["gateway"]["api"]["pin_file"] == "/srv/hub/etc/pins"
    assert '"/etc/health-gateway' not in text  # no value left pointing at the default folders
    # the comments that explain every key come along
    assert text.count("\n#") == example_config().count("\n#") - 1  # pin_file is switched on
    analytics = next(d for d in config["destinations"] if d["kind"] == "analytics")
    assert "pseudonym_key_file" not in analytics  # generated in data_dir, never in /etc


@needs_root
def test_init_lays_out_the_pi_guides_folders_with_owners_and_modes(base):
    config_dir, data_dir = base / "etc" / "health-gateway", base / "var" / "health-gateway"
    result = health_gateway(
        "init", "--config-dir", str(config_dir), "--data-dir", str(data_dir), "--user", SERVICE
    )
    assert result.returncode == 0, result.stderr
    group = owner(data_dir)[1]
    assert (owner(config_dir), mode(config_dir)) == (("root", group), 0o750)
    assert (owner(config_dir / "config.toml"), mode(config_dir / "config.toml")) == (
        ("root", group),
        0o640,
    )
    for name in ("api-token", "pins", "alerts.secret"):  # secrets: the service's alone
        assert (owner(config_dir / name), mode(config_dir / name)) == ((SERVICE, group), 0o600)
    assert (owner(data_dir), mode(data_dir)) == ((SERVICE, group), 0o700)
    keys = data_dir / "keys"
    for name in ("storage.key", "reference.key", "analytics-product-analytics.key"):
        assert (owner(keys / name), mode(keys / name)) == ((SERVICE, group), 0o600)
    assert (keys / "storage.key").stat().st_size == 32
    assert (config_dir / "alerts.secret").read_text().startswith("whsec_")
    pins = [
        line.split()
        for line in (config_dir / "pins").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    assert [subject for subject, _pin in pins] == ["197001011234"]
    assert all(pin.isdigit() and len(pin) == 6 for _subject, pin in pins)
    # next steps: the tokens only the care provider has, and the check as the service user
    assert "Next steps:" in result.stdout
    assert str(config_dir / "care-token") in result.stdout
    assert f"sudo -u {SERVICE} health-gateway check-config {config_dir}/config.toml" in (
        result.stdout
    )
    assert "PIN" in result.stdout and pins[0][1] not in result.stdout  # PINs stay in the file

    # check-config names what is still missing, then passes once the installer added it
    missing = health_gateway("check-config", str(config_dir / "config.toml"))
    assert missing.returncode == 2 and "care-platform.token_file" in missing.stderr
    add_provider_tokens(config_dir)
    code, output = as_user(SERVICE, lambda: main(["check-config", str(config_dir / "config.toml")]))
    assert code == 0, output
    assert "OK (1 subjects, 1 devices, 4 destinations" in output


@needs_root
def test_init_again_fills_gaps_and_changes_nothing_that_exists(base):
    config_dir, data_dir = base / "etc", base / "data"
    args = ("init", "--config-dir", str(config_dir), "--data-dir", str(data_dir), "--user", SERVICE)
    assert health_gateway(*args).returncode == 0
    before = {p: p.read_bytes() for p in [*config_dir.iterdir(), *(data_dir / "keys").iterdir()]}
    (config_dir / "pins").unlink()
    again = health_gateway(*args)
    assert again.returncode == 0, again.stderr
    assert f"kept  {config_dir / 'config.toml'}" in again.stdout
    assert f"made  {config_dir / 'pins'}" in again.stdout
    for path, content in before.items():
        if path.name != "pins":
            assert path.read_bytes() == content, path


@needs_root
def test_init_names_the_user_to_create_when_it_does_not_exist(base):
    if any(user.pw_name == "health-gateway" for user in pwd.getpwall()):
        pytest.skip("this machine has a health-gateway user")
    result = health_gateway(
        "init", "--config-dir", str(base / "etc"), "--data-dir", str(base / "data")
    )
    assert result.returncode == 1
    assert result.stderr.startswith("health-gateway: init: there is no user health-gateway")
    assert "useradd --system" in result.stderr
    assert not (base / "etc").exists()


@needs_root
def test_only_root_may_give_the_files_to_another_user(base):
    code, output = as_user(
        SERVICE,
        lambda: main(["init", "--config-dir", str(base / "etc"), "--user", "root"]),
    )
    assert code == 1
    assert "only root can give the files to root" in output


@needs_root
def test_check_config_says_when_the_service_user_cannot_write_its_data_dir(base):
    config_dir, data_dir = base / "etc", base / "data"
    init = health_gateway(
        "init", "--config-dir", str(config_dir), "--data-dir", str(data_dir), "--user", SERVICE
    )
    assert init.returncode == 0, init.stderr
    add_provider_tokens(config_dir)
    shutil.chown(data_dir, "root", "root")  # as if made by hand with sudo mkdir
    data_dir.chmod(0o755)
    config = str(config_dir / "config.toml")
    code, output = as_user(SERVICE, lambda: main(["check-config", config]))
    assert code == 2
    assert output.strip() == (
        f"health-gateway: config error: {config}: gateway.data_dir: {SERVICE} cannot write"
        f" {data_dir}; run `health-gateway init` as root, or give it to the service user"
    )
    # root can write anywhere, so the same check as root passes: it asks for this user only
    assert health_gateway("check-config", config).returncode == 0


@needs_root
def test_check_config_refuses_a_generated_key_the_service_would_have_to_create_in_etc(base):
    """The issue's case: the old example put the analytics key in root's /etc."""
    config_dir, data_dir = base / "etc", base / "data"
    init = health_gateway(
        "init", "--config-dir", str(config_dir), "--data-dir", str(data_dir), "--user", SERVICE
    )
    assert init.returncode == 0, init.stderr
    add_provider_tokens(config_dir)
    config_path = config_dir / "config.toml"
    text = config_path.read_text().replace(  # the analytics destination's, the first one
        "# pseudonym_key_file = ", f'pseudonym_key_file = "{config_dir}/analytics.key" # ', 1
    )
    config_path.write_text(text)
    code, output = as_user(SERVICE, lambda: main(["check-config", str(config_path)]))
    assert code == 2
    assert "destinations.product-analytics.pseudonym_key_file: the service creates" in output
    assert f"{config_dir}/analytics.key at its first start, but {SERVICE} cannot write" in output
    assert not (config_dir / "analytics.key").exists()


def test_a_data_dir_that_cannot_be_created_is_named_before_the_start(tmp_path):
    config = tmp_path / "hub.toml"
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where a folder should be")
    text = config_from_example(tmp_path, blocked / "data")
    config.write_text(text.replace('token_file = "', '# token_file = "', 1))
    result = health_gateway("check-config", str(config))
    assert result.returncode == 2
    assert "gateway.data_dir" in result.stderr
