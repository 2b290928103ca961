"""``health-gateway init``: lay out a hub's config and data folders, ready for check-config.

What it makes, never overwriting anything that exists (so it can be run again after an
update, or after a half-finished install, and only fills the gaps):

- the config folder (default /etc/health-gateway), root-owned, group = the service user's
  group, 0750: the service reads it, cannot change it (docs/raspberry-pi.md step 4);
- in it, 0640 root:<group>: ``config.toml`` from the packaged annotated example (its paths
  pointed at these folders, the PIN file switched on);
- beside it, 0600 and owned by the service user (the service refuses a secret others can read):
  the API token, a PIN per person, and the alert webhook's signing secret (Standard Webhooks has
  the sender issue it: the gateway sends the alerts);
- the data folder (default /var/lib/health-gateway), owned by the service user, 0700, with
  the keys the service would otherwise make at its first start (storage, references,
  analytics pseudonyms; 0600);
- optionally the systemd unit, with the paths of this installation.

The care platform's and analytics' tokens come from the care provider: the next steps say
where to put them. Run as root to set owners; run as anyone else, everything is theirs.
"""

from __future__ import annotations

import base64
import grp
import os
import pwd
import re
import secrets
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from gateway.exporters.analytics.config import AnalyticsDestination
from gateway.privacy.keys import load_or_create_key
from gateway.privacy.pseudonym_keys import load_key_ring
from gateway.settings import ConfigError, Settings, load_settings

DEFAULT_CONFIG_DIR = Path("/etc/health-gateway")
DEFAULT_DATA_DIR = Path("/var/lib/health-gateway")
SERVICE_USER = "health-gateway"
# The unit's own paths for the layout docs/raspberry-pi.md describes; replaced by this install's.
UNIT_EXECUTABLE = "/opt/health-gateway/.venv/bin/health-gateway"
UNIT_CONFIG = "/etc/health-gateway/config.toml"
PIN_DIGITS = 6

CONFIG_DIR_MODE = 0o750
CONFIG_FILE_MODE = 0o640
SECRET_FILE_MODE = 0o600
DATA_DIR_MODE = 0o700


class InitError(Exception):
    """init cannot go on; the message says why and what to do."""


@dataclass(frozen=True, slots=True)
class Owner:
    uid: int
    gid: int
    user: str
    group: str
    as_root: bool  # whether owners are being set (only root can give files away)


@dataclass(slots=True)
class InitReport:
    made: list[str] = field(default_factory=list)  # "path (what, owner, mode)"
    kept: list[str] = field(default_factory=list)  # paths that existed and were left alone
    next_steps: list[str] = field(default_factory=list)

    def text(self) -> str:
        lines = ["health-gateway init: done."]
        lines += [f"  made  {entry}" for entry in self.made]
        lines += [f"  kept  {entry} (exists; not changed)" for entry in self.kept]
        lines += ["", "Next steps:"]
        lines += [f"  {n}. {step}" for n, step in enumerate(self.next_steps, start=1)]
        return "\n".join(lines)


def resolve_owner(user: str | None) -> Owner:
    """The service user as root sees it; anyone else owns what they make."""
    if os.geteuid() != 0:
        me = pwd.getpwuid(os.geteuid())
        if user is not None and user != me.pw_name:
            raise InitError(
                f"only root can give the files to {user}; run it with sudo, or leave out --user"
            )
        return Owner(me.pw_uid, me.pw_gid, me.pw_name, grp.getgrgid(me.pw_gid).gr_name, False)
    name = user or SERVICE_USER
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        raise InitError(
            f"there is no user {name}; create it first (docs/raspberry-pi.md step 2):"
            f" useradd --system --user-group --no-create-home --home-dir {DEFAULT_DATA_DIR}"
            f" --shell /usr/sbin/nologin {name}"
        ) from None
    return Owner(entry.pw_uid, entry.pw_gid, name, grp.getgrgid(entry.pw_gid).gr_name, True)


def example_config() -> str:
    """The annotated example shipped in the package (config/example.toml in the repository)."""
    return resources.files("gateway").joinpath("example.toml").read_text(encoding="utf-8")


def unit_template() -> str:
    return resources.files("gateway").joinpath("health-gateway.service").read_text("utf-8")


def config_from_example(config_dir: Path, data_dir: Path) -> str:
    """The example with its folders replaced by these and the PIN file switched on."""
    text = example_config().replace(f"{DEFAULT_CONFIG_DIR}/", f"{config_dir}/")
    text = text.replace(f'data_dir = "{DEFAULT_DATA_DIR}"', f'data_dir = "{data_dir}"')
    return re.sub(r"^# (pin_file = )", r"\1", text, count=1, flags=re.MULTILINE)


def unit_for(executable: Path, config: Path, data_dir: Path) -> str:
    text = unit_template().replace(UNIT_EXECUTABLE, str(executable))
    text = text.replace(UNIT_CONFIG, str(config))
    if data_dir != DEFAULT_DATA_DIR:
        # The unit's file system is read-only outside its StateDirectory (ProtectSystem=strict).
        text = text.replace(
            "StateDirectoryMode=0700\n", f"StateDirectoryMode=0700\nReadWritePaths={data_dir}\n"
        )
    return text


class _Layout:
    def __init__(self, owner: Owner, report: InitReport) -> None:
        self._owner = owner
        self._report = report

    def folder(self, path: Path, *, service_owned: bool, mode: int) -> None:
        existed = path.exists()
        # Missing parents as `install -d` makes them (0755, whatever the umask), so the service
        # user can pass through to a folder it may read.
        for parent in reversed(path.parents):
            if not parent.exists():
                parent.mkdir(mode=0o755)
                parent.chmod(0o755)
        path.mkdir(exist_ok=True, mode=mode)
        self._own(path, service_owned=service_owned, mode=mode)
        if not existed:
            self._report.made.append(self._describe(path, "folder", service_owned, mode))

    def file(
        self, path: Path, content: str, what: str, *, public: bool = False, secret: bool = False
    ) -> bool:
        """Write a new file: root:<group> 0640, root:root 0644 if ``public``, or the service
        user's 0600 if ``secret``; False if it existed."""
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            self._report.kept.append(str(path))
            return False
        except OSError as exc:
            raise InitError(f"cannot create {path} ({exc.strerror})") from None
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(content)
        if secret:
            self._own(path, service_owned=True, mode=SECRET_FILE_MODE)
            self._report.made.append(self._describe(path, what, True, SECRET_FILE_MODE))
        elif public:
            if self._owner.as_root:
                os.chown(path, 0, 0)
            os.chmod(path, 0o644)
            owner = "root:root" if self._owner.as_root else self._owner.user
            self._report.made.append(f"{path} ({what}, {owner}, 0644)")
        else:
            self._own(path, service_owned=False, mode=CONFIG_FILE_MODE)
            self._report.made.append(self._describe(path, what, False, CONFIG_FILE_MODE))
        return True

    def service_key(self, path: Path, what: str, make: Callable[[Path], object]) -> None:
        """A key the service would make at its first start, made now and given to it."""
        if path.exists():
            self._report.kept.append(str(path))
            return
        make(path)
        self._own(path, service_owned=True, mode=0o600)
        self._report.made.append(self._describe(path, what, True, 0o600))

    def _own(self, path: Path, *, service_owned: bool, mode: int) -> None:
        if self._owner.as_root:
            os.chown(path, self._owner.uid if service_owned else 0, self._owner.gid)
        os.chmod(path, mode)

    def _describe(self, path: Path, what: str, service_owned: bool, mode: int) -> str:
        if self._owner.as_root:
            owner = f"{self._owner.user if service_owned else 'root'}:{self._owner.group}"
        else:
            owner = f"{self._owner.user}:{self._owner.group}"
        return f"{path} ({what}, {owner}, {mode:04o})"


def _pins(settings: Settings) -> str:
    chosen: set[str] = set()
    lines = [
        "# One line per person: SUBJECT_ID PIN (4 to 12 digits, a different PIN for each:",
        "# the PIN says whose page opens). Tell each person theirs.",
    ]
    for subject in settings.subjects:
        pin = "".join(secrets.choice("0123456789") for _ in range(PIN_DIGITS))
        while pin in chosen:
            pin = "".join(secrets.choice("0123456789") for _ in range(PIN_DIGITS))
        chosen.add(pin)
        lines.append(f"{subject.id} {pin}")
    return "\n".join(lines) + "\n"


def initialise(
    config_dir: Path,
    data_dir: Path,
    *,
    user: str | None = None,
    systemd_dir: Path | None = None,
) -> InitReport:
    """Create what is missing of the layout; a report of what was made and what to do next."""
    config_dir, data_dir = config_dir.absolute(), data_dir.absolute()
    owner = resolve_owner(user)
    report = InitReport()
    layout = _Layout(owner, report)
    config_path = config_dir / "config.toml"

    layout.folder(config_dir, service_owned=False, mode=CONFIG_DIR_MODE)
    layout.file(config_path, config_from_example(config_dir, data_dir), "config, from the example")
    try:
        settings = load_settings(config_path)
    except ConfigError as exc:
        raise InitError(f"{exc}; fix it, then run init again") from None
    api = settings.gateway.api
    if api.token_file is not None:
        layout.file(api.token_file, secrets.token_urlsafe(32) + "\n", "API token", secret=True)
    if api.pin_file is not None:
        layout.file(api.pin_file, _pins(settings), "a PIN per person", secret=True)
    for destination in settings.destinations:
        secret_file = getattr(destination, "secret_file", None)
        if secret_file is not None:
            secret = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
            layout.file(
                secret_file, secret + "\n", f"{destination.name} signing secret", secret=True
            )

    layout.folder(settings.gateway.data_dir, service_owned=True, mode=DATA_DIR_MODE)
    keys = settings.gateway.data_dir / "keys"
    layout.folder(keys, service_owned=True, mode=DATA_DIR_MODE)
    storage_key = settings.gateway.outbox_key_file or keys / "storage.key"
    layout.service_key(storage_key, "storage key", load_or_create_key)
    layout.service_key(keys / "reference.key", "reference key", load_or_create_key)
    for destination in settings.destinations:
        if isinstance(destination, AnalyticsDestination):
            path = settings.pseudonym_key_path(destination)
            layout.service_key(
                path, f"{destination.name} pseudonym key", lambda p: load_key_ring(p, "key")
            )

    unit_path = None
    if systemd_dir is not None:
        unit_path = systemd_dir / "health-gateway.service"
        executable = Path(sys.argv[0]).absolute()
        if executable.name != "health-gateway":  # run as python -m gateway
            executable = Path(sys.executable).parent / "health-gateway"
        unit = unit_for(executable, config_path, settings.gateway.data_dir)
        layout.file(unit_path, unit, "systemd unit", public=True)
    report.next_steps = _next_steps(settings, config_path, owner, unit_path)
    return report


def _next_steps(
    settings: Settings, config_path: Path, owner: Owner, unit_path: Path | None
) -> list[str]:
    as_user = f"sudo -u {owner.user} " if owner.as_root else ""
    steps = [
        f"Edit {config_path}: the people ([[subjects]]), their devices ([[devices]], addresses"
        " from `health-gateway scan`), the care provider's [[destinations]] and"
        " [[alert_rules]]. Then run init again: it adds PINs and secrets only for what is"
        " missing (delete the PIN file first to make PINs for the new people).",
    ]
    tokens = [
        str(getattr(d, "token_file", None))
        for d in settings.destinations
        if getattr(d, "token_file", None) is not None
    ]
    if tokens:
        steps.append(
            "Put each token the care provider gave you in its file, readable by the service"
            f" (install -m 0600 -o {owner.user}): " + ", ".join(tokens)
        )
    secrets_ = [
        f"{d.name}: {d.secret_file}"
        for d in settings.destinations
        if getattr(d, "secret_file", None) is not None
    ]
    if secrets_:
        steps.append(
            "Give the alert receiver its signing secret (or replace it with the one they"
            " issued): " + ", ".join(secrets_)
        )
    if settings.gateway.api.pin_file is not None:
        steps.append(
            f"Tell each person their PIN for the hub page: {settings.gateway.api.pin_file}"
        )
    steps.append(
        f"Check it as the service user: {as_user}health-gateway check-config {config_path}"
    )
    if unit_path is not None:
        steps.append(
            "Start the service: sudo systemctl daemon-reload &&"
            " sudo systemctl enable --now health-gateway"
        )
    else:
        steps.append(
            "Install the service: run init again with --systemd-dir /etc/systemd/system, then"
            " sudo systemctl daemon-reload && sudo systemctl enable --now health-gateway"
        )
    return steps
