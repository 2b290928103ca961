"""The configuration file (TOML, DESIGN.md 2.3), validated by pydantic at start.

A bad file fails with one line that names the key and says what to do, never a traceback:
``load_settings`` turns every problem into a ``ConfigError``. Secrets never live in the file:
they are read from ``*_file`` paths or ``*_env`` environment variables (see ``secrets.py``).
"""

from __future__ import annotations

import ipaddress
import re
import tomllib
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from devices.profiles import PROFILES

PURPOSES = ("care", "alerting", "analytics", "research", "employer_statistics")
MAC_ADDRESS = re.compile(r"^[0-9A-F]{2}(:[0-9A-F]{2}){5}$")


class ConfigError(Exception):
    """A configuration problem, with a message that names the key and the fix."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def is_loopback_host(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValueError(f"{url!r} is not an http(s) URL; write it as https://host/path")
    if parts.scheme == "http" and not is_loopback_host(parts.hostname):
        raise ValueError(
            f"plain http is only allowed to loopback addresses; use https:// for {parts.hostname}"
        )
    return url


class ApiSettings(_Section):
    listen: str = "127.0.0.1:8080"
    token_file: Path | None = None

    @field_validator("listen")
    @classmethod
    def _listen_has_port(cls, value: str) -> str:
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"{value!r} must be host:port, for example 127.0.0.1:8080")
        return value


class GatewaySettings(_Section):
    data_dir: Path
    api: ApiSettings = ApiSettings()
    log_format: Literal["auto", "json", "console"] = "auto"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    outbox_key_file: Path | None = None
    shutdown_grace_s: float = Field(default=5.0, ge=0)


class SimulationSettings(_Section):
    interval_s: float = Field(default=0.5, gt=0)
    readings: list[dict[str, float | int | str]] | None = None
    clock_offset_s: float = 0.0


class DeviceSettings(_Section):
    address: str
    profile: str
    subject: str | None = None
    users: dict[int, str] | None = None  # multi-user devices: user index -> subject id
    name: str | None = None
    simulated: bool = False
    simulation: SimulationSettings | None = None

    @field_validator("address")
    @classmethod
    def _mac(cls, value: str) -> str:
        normalised = value.strip().upper().replace("-", ":")
        if not MAC_ADDRESS.match(normalised):
            raise ValueError(f"{value!r} is not a BLE address; write it as AA:BB:CC:DD:EE:FF")
        return normalised

    @field_validator("profile")
    @classmethod
    def _known_profile(cls, value: str) -> str:
        if value not in PROFILES:
            raise ValueError(f"unknown profile {value!r}; use one of {', '.join(sorted(PROFILES))}")
        return value

    @model_validator(mode="after")
    def _subject_and_simulation(self) -> DeviceSettings:
        if (self.subject is None) == (self.users is None):
            raise ValueError(
                "a device needs either `subject` (the person who uses it) or a [devices.users]"
                " table (user index -> subject id) for a multi-user device, not both"
            )
        if self.simulation is not None and not self.simulated:
            raise ValueError("[devices.simulation] is only allowed with simulated = true")
        return self


class SubjectSettings(_Section):
    id: str = Field(min_length=1)
    company_id: str | None = None
    birth_date: date
    consent: dict[str, bool] = Field(default_factory=dict)


class _Destination(_Section):
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    purpose: str = Field(min_length=1, pattern=r"^[a-z_]+$")
    url: str
    timeout_s: float = Field(default=10.0, gt=0)
    retry_initial_s: float = Field(default=1.0, gt=0)
    retry_max_s: float = Field(default=300.0, gt=0)

    @field_validator("url")
    @classmethod
    def _url_is_safe(cls, value: str) -> str:
        return _check_url(value)


class FhirDestination(_Destination):
    kind: Literal["fhir"]
    token_file: Path | None = None
    token_env: str | None = None
    identifier_system: str = "http://electronichealth.se/identifier/personnummer"
    batch_max_items: int = Field(default=100, ge=1, le=1000)
    linger_s: float = Field(default=0.05, ge=0)


class WebhookDestination(_Destination):
    kind: Literal["webhook"]
    secret_file: Path | None = None
    secret_env: str | None = None
    identifier_system: str = "http://electronichealth.se/identifier/personnummer"

    @model_validator(mode="after")
    def _has_secret(self) -> WebhookDestination:
        if self.secret_file is None and self.secret_env is None:
            raise ValueError(
                "a webhook needs its signing secret: set secret_file (a file holding whsec_...) "
                "or secret_env (an environment variable holding it)"
            )
        return self


Destination = Annotated[FhirDestination | WebhookDestination, Field(discriminator="kind")]


class AlertRuleSettings(_Section):
    kind: str
    value: str
    above: float | None = None
    below: float | None = None
    unit: str | None = None
    severity: Literal["info", "warning", "critical"] = "warning"
    cooldown_s: float = Field(default=3600.0, ge=0)
    vital_interest: bool = False

    @model_validator(mode="after")
    def _has_limit(self) -> AlertRuleSettings:
        if self.above is None and self.below is None:
            raise ValueError("an alert rule needs `above`, `below` or both")
        if self.vital_interest and self.severity != "critical":
            raise ValueError("vital_interest is only allowed on severity = 'critical' rules")
        return self


class Settings(_Section):
    gateway: GatewaySettings
    subjects: list[SubjectSettings] = Field(default_factory=list)
    devices: list[DeviceSettings] = Field(default_factory=list)
    destinations: list[Destination] = Field(default_factory=list)
    alert_rules: list[AlertRuleSettings] = Field(default_factory=list)

    @model_validator(mode="after")
    def _cross_references(self) -> Settings:
        subject_ids = [subject.id for subject in self.subjects]
        if len(set(subject_ids)) != len(subject_ids):
            raise ValueError("subjects: two subjects share an id; every id must be unique")
        names = [destination.name for destination in self.destinations]
        if len(set(names)) != len(names):
            raise ValueError("destinations: two destinations share a name; names must be unique")
        addresses = [device.address for device in self.devices]
        if len(set(addresses)) != len(addresses):
            raise ValueError("devices: the same address is configured twice")
        known = set(subject_ids)
        for index, device in enumerate(self.devices):
            if device.subject is not None and device.subject not in known:
                raise ValueError(
                    f"devices[{index}].subject: no [[subjects]] entry has id {device.subject!r}; "
                    "add the subject or fix the id"
                )
            for user, subject_id in (device.users or {}).items():
                if subject_id not in known:
                    raise ValueError(
                        f"devices[{index}].users.{user}: no [[subjects]] entry has id "
                        f"{subject_id!r}; add the subject or fix the id"
                    )
        simulated = {device.simulated for device in self.devices}
        if len(simulated) > 1:
            raise ValueError(
                "devices: simulated and real devices cannot be mixed in one gateway "
                "(both use the system bus); set simulated the same on every device"
            )
        return self

    @property
    def uses_simulated_radio(self) -> bool:
        return any(device.simulated for device in self.devices)

    def subject(self, subject_id: str) -> SubjectSettings:
        for subject in self.subjects:
            if subject.id == subject_id:
                return subject
        raise KeyError(subject_id)


def _location(loc: tuple[int | str, ...]) -> str:
    parts: list[str] = []
    for element in loc:
        if isinstance(element, int):
            parts.append(f"[{element}]")
        elif element in ("fhir", "webhook") and parts and parts[-1].endswith("]"):
            continue  # the discriminator tag pydantic inserts into the path
        else:
            parts.append(("." if parts else "") + element)
    return "".join(parts) or "(top level)"


def _describe(error: Any) -> str:
    kind = error["type"]
    if kind == "extra_forbidden":
        return "unknown key; check its spelling against config/example.toml"
    if kind == "missing":
        return "required key is missing"
    if kind == "union_tag_invalid" or kind == "union_tag_not_found":
        return "unknown destination kind; use kind = 'fhir' or 'webhook'"
    message = str(error["msg"])
    return message.removeprefix("Value error, ")


def format_validation_error(exc: ValidationError) -> str:
    first = exc.errors()[0]
    location = _location(tuple(first["loc"]))
    message = _describe(first)
    if not first["loc"] or message.startswith(location + ":"):
        return message  # cross-field checks name their own keys
    return f"{location}: {message}"


def parse_settings(data: dict[str, Any]) -> Settings:
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc)) from None


def load_settings(path: Path) -> Settings:
    """Read and validate a config file; every failure is a one-line ``ConfigError``."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found; pass the path of your config file") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror})") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    try:
        return parse_settings(data)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
