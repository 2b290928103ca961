"""The configuration file (TOML, DESIGN.md 2.3), validated by pydantic at start.

A bad file fails with one line that names the key and says what to do, never a traceback:
``load_settings`` turns every problem into a ``ConfigError``. Secrets never live in the file:
they are read from ``*_file`` paths or ``*_env`` environment variables (see ``secrets.py``).
"""

from __future__ import annotations

import ipaddress
import re
import tomllib
from datetime import UTC, date, datetime, tzinfo
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BeforeValidator,
    Field,
    StrictBool,
    ValidationError,
    field_validator,
    model_validator,
)

from devices.profiles import BROADCAST_PROFILES, PROFILES, profile_names
from devices.users import RULES, PeopleByWeight, PersonByWeight
from gateway.config_base import ConfigSection as _Section
from gateway.exporters.aggregate.config import AggregateDestination
from gateway.exporters.analytics.config import AnalyticsDestination
from gateway.exporters.fhir.config import FhirDestination
from gateway.exporters.mqtt.config import MqttDestination
from gateway.exporters.webhook.config import WebhookDestination
from gateway.intake.alert_rule_kinds import check_rule, default_cooldown, rule_type
from gateway.intake.alert_windows import parse_duration, parse_time_ranges

PURPOSES = ("care", "alerting", "analytics", "research", "employer_statistics")
MAC_ADDRESS = re.compile(r"^[0-9A-F]{2}(:[0-9A-F]{2}){5}$")
# The EU member states plus Iceland, Liechtenstein and Norway (ISO 3166-1 alpha-2), and "EU".
EEA_REGIONS = frozenset(
    "AT BE BG HR CY CZ DK EE FI FR DE GR HU IE IT LV LT LU MT NL PL PT RO SK SI ES SE "
    "IS LI NO EU".split()
)


# A duration in the config: a string with its unit ("3d", "12h"), held as seconds.
Duration = Annotated[float, BeforeValidator(parse_duration)]


class ConfigError(Exception):
    """A configuration problem, with a message that names the key and the fix."""


# Who may reach the local API and the hub page: loopback and the private (home LAN) ranges.
DEFAULT_ALLOWED_NETWORKS = (
    "127.0.0.0/8",
    "::1/128",
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "fc00::/7",
    "fe80::/10",
)


def split_listen(value: str) -> tuple[str, int]:
    """``host:port`` (IPv6 hosts may be bracketed: ``[::]:8080``) -> (host, port)."""
    host, _sep, port = value.rpartition(":")
    return host.removeprefix("[").removesuffix("]"), int(port)


class ApiSettings(_Section):
    """The local HTTP API and the hub page (README "Operator API and CLI", "The hub page")."""

    enabled: StrictBool = True
    listen: str = "127.0.0.1:8080"  # port 0: any free port (tests); 0.0.0.0:8080 for the home LAN
    token_file: Path | None = None  # default: data_dir/api-token, created (0600) at first start
    pin_file: Path | None = None  # lines "SUBJECT_ID PIN": each person's PIN for the hub page
    allowed_networks: list[str] = Field(default_factory=lambda: list(DEFAULT_ALLOWED_NETWORKS))
    session_idle_s: float = Field(default=12 * 3600.0, gt=0)
    # Names a browser may use for the hub besides IP addresses, "localhost" and this machine's
    # host name (+ ".local"): any other Host header is refused (DNS rebinding).
    host_names: list[str] = Field(default_factory=list)
    # Connection guards (README "Security and failure behaviour"): a connection must send its
    # request head within header_timeout_s and a body within body_timeout_s; an idle keep-alive
    # connection is closed after idle_timeout_s; beyond max_connections new ones are closed.
    max_connections: int = Field(default=128, ge=1, le=4096)
    header_timeout_s: float = Field(default=10.0, gt=0)
    body_timeout_s: float = Field(default=10.0, gt=0)
    idle_timeout_s: float = Field(default=30.0, gt=0)

    @field_validator("listen")
    @classmethod
    def _listen_has_port(cls, value: str) -> str:
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 <= int(port) < 65536:
            raise ValueError(f"{value!r} must be host:port, for example 127.0.0.1:8080")
        return value

    @field_validator("host_names")
    @classmethod
    def _host_names(cls, value: list[str]) -> list[str]:
        for name in value:
            if not re.fullmatch(r"[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?", name):
                raise ValueError(f"{name!r} is not a host name; write it as hub.local")
        return [name.lower() for name in value]

    @field_validator("allowed_networks")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for network in value:
            try:
                ipaddress.ip_network(network, strict=False)
            except ValueError:
                raise ValueError(
                    f"{network!r} is not a network; write it as 192.168.1.0/24 or fd00::/8"
                ) from None
        return value


class GatewaySettings(_Section):
    data_dir: Path
    # Names the hub to the care provider's fleet (MQTT topics, FHIR meta.source, webhook and
    # analytics metadata). Default: generated once and kept in data_dir/hub-id.
    hub_id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
    api: ApiSettings = ApiSettings()
    log_format: Literal["auto", "json", "console"] = "auto"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    # The hub page (README "The hub page"): Swedish, or English unless the browser asks for
    # Swedish; times in this zone (default: the hub's own).
    locale: Literal["sv", "en"] = "sv"
    time_zone: str | None = None

    @field_validator("time_zone")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                ZoneInfo(value)
            except (ZoneInfoNotFoundError, ValueError):
                raise ValueError(
                    f"{value!r} is not a time zone; write it as Europe/Stockholm"
                ) from None
        return value

    @property
    def zone(self) -> tzinfo:
        if self.time_zone is not None:
            return ZoneInfo(self.time_zone)
        local = datetime.now().astimezone().tzinfo
        return local if local is not None else UTC

    outbox_key_file: Path | None = None
    shutdown_grace_s: float = Field(default=5.0, ge=0)
    retention_days: int = Field(default=365, ge=1)
    require_eea: StrictBool = True
    max_queued_items: int = Field(default=1_000_000, ge=100)
    # When a device needs attention (status, /api/status, the page): battery at or below this
    # percentage, or nothing heard from it for this many days.
    low_battery_percent: int = Field(default=20, ge=0, le=100)
    device_unseen_days: float = Field(default=3.0, gt=0)


class SimulationSettings(_Section):
    """How a simulated device behaves (``devices.sim``; README "Supported devices")."""

    interval_s: float = Field(default=0.5, gt=0)
    readings: list[dict[str, float | int | str]] | None = None
    clock_offset_s: float = 0.0
    # "connected": stays connected and streams; "cycle": measure, advertise, burst, hang up.
    mode: Literal["connected", "cycle"] = "connected"
    advertise_s: float = Field(default=10.0, gt=0)  # cycle: advertising after a measurement
    linger_s: float = Field(default=1.0, gt=0)  # cycle: stays connected after the last exchange
    battery_level: int | None = Field(default=100, ge=0, le=100)  # None: no Battery Service
    current_time: StrictBool = True  # has the Current Time Service (devices that keep a clock)
    requires_pairing: StrictBool = False  # refuses reads, writes and subscriptions until bonded
    users: list[int] = Field(default_factory=lambda: [1, 2])  # scales: the User IDs it serves
    continuous: StrictBool = False  # pulse oximeter: also stream PLX Continuous Measurement
    # Fault injection.
    drop_link_after: int | None = Field(default=None, ge=1)  # drop the link after N values, once
    malformed_every: int = Field(default=0, ge=0)  # a truncated copy before every N-th value
    discovery_delay_s: float = Field(default=0.0, ge=0)  # slow service discovery


class DeviceUserSettings(_Section):
    """One person of a shared device, when more than the subject id is needed (README
    "Supported devices"): how a scale without user index recognises them, or the consent code
    a User Data Service scale wants before it sends their data."""

    subject: str
    weight_range_kg: tuple[float, float] | None = None  # users_by = "weight_range"
    usual_weight_kg: float | None = Field(default=None, gt=0)  # users_by = "nearest_weight"
    consent_code_file: Path | None = None  # UDS scales: a file (0600) holding the 4-digit code
    height_cm: int | None = Field(default=None, ge=50, le=250)  # UDS scales: told at registration


class DeviceSettings(_Section):
    address: str
    profile: str
    subject: str | None = None
    # Multi-user devices: user index -> subject id, or a [devices.users.N] table.
    users: dict[int, str | DeviceUserSettings] | None = None
    # How a reading finds its person: the user index the device sends, or (scales that send
    # none, such as broadcast scales) its weight.
    users_by: Literal["index", "weight_range", "nearest_weight"] = "index"
    weight_margin_kg: float = Field(default=1.0, ge=0)  # nearest_weight: clearly nearer by
    weight_max_change_kg: float = Field(default=5.0, gt=0)  # nearest_weight: at most this far
    name: str | None = None
    # e.g. "A&D UA-651BLE" or "beurer-bm85": the device_model analytics may receive, and (lower
    # case) the key of the decoder's per-model quirk table (devices.gatt).
    model: str | None = None
    simulated: StrictBool = False
    simulation: SimulationSettings | None = None

    @property
    def user_subjects(self) -> dict[int, str]:
        """User index -> subject id, whichever way ``users`` was written."""
        return {
            index: user if isinstance(user, str) else user.subject
            for index, user in (self.users or {}).items()
        }

    @property
    def decoder_model(self) -> str | None:
        return None if self.model is None else self.model.strip().lower()

    def people_by_weight(self) -> PeopleByWeight | None:
        """How a shared scale without user index tells its people apart (validated)."""
        if self.users_by == "index" or not self.users:
            return None
        people = tuple(
            PersonByWeight(
                user_index=index,
                weight_range_kg=None if isinstance(user, str) else user.weight_range_kg,
                usual_weight_kg=None if isinstance(user, str) else user.usual_weight_kg,
            )
            for index, user in sorted(self.users.items())
        )
        return PeopleByWeight(
            rule=self.users_by,
            people=people,
            margin_kg=self.weight_margin_kg,
            max_change_kg=self.weight_max_change_kg,
        )

    @field_validator("address")
    @classmethod
    def _mac(cls, value: str) -> str:
        normalised = value.strip().upper().replace("-", ":")
        if not MAC_ADDRESS.match(normalised):
            # The address is not repeated: it identifies a person's device.
            raise ValueError("not a BLE address; write it as AA:BB:CC:DD:EE:FF")
        return normalised

    @field_validator("profile")
    @classmethod
    def _known_profile(cls, value: str) -> str:
        if value not in PROFILES and value not in BROADCAST_PROFILES:
            raise ValueError(f"unknown profile {value!r}; use one of {', '.join(profile_names())}")
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
        self._check_users()
        return self

    def _check_users(self) -> None:
        broadcast = self.profile in BROADCAST_PROFILES
        if broadcast and self.users and self.users_by == "index":
            raise ValueError(
                "users_by: a broadcast scale sends no user index; tell its people apart with "
                f"users_by = {RULES[0]!r} or {RULES[1]!r}"
            )
        codes = [u for u in (self.users or {}).values() if not isinstance(u, str)]
        if any(u.consent_code_file is not None for u in codes):
            if self.profile not in ("weight", "body_composition"):
                raise ValueError(
                    "users: consent_code_file is for User Data Service scales "
                    "(profile weight or body_composition)"
                )
        if self.users_by != "index":
            if not broadcast and self.profile not in ("weight", "body_composition"):
                raise ValueError(
                    f"users_by = {self.users_by!r} is for scales; a {self.profile} device's "
                    "people are told apart by the user index it sends (users_by = 'index')"
                )
            if not self.users:
                raise ValueError(f"users_by = {self.users_by!r} needs a [devices.users] table")
            try:
                self.people_by_weight()
            except ValueError as exc:
                raise ValueError(f"users: {exc}") from None


class SubjectSettings(_Section):
    id: str = Field(min_length=1)
    company_id: str | None = None
    birth_date: date
    sex: Literal["female", "male", "other", "unknown"] = "unknown"
    consent: dict[str, StrictBool] = Field(default_factory=dict)
    # A care provider's personal limits; they replace the general rules for the same value.
    alert_rules: list[AlertRuleSettings] = Field(default_factory=list)


# Each kind's settings live with the kind (gateway/exporters/<kind>/config.py); here they are
# joined into the one `destinations` list, told apart by `kind`.
Destination = Annotated[
    FhirDestination
    | WebhookDestination
    | AnalyticsDestination
    | AggregateDestination
    | MqttDestination,
    Field(discriminator="kind"),
]


class AlertRuleSettings(_Section):
    """One alert rule: a limit (``above``/``below``), or a window rule (README "Alert rules").

    Which kind of rule it is follows from its keys (``gateway.intake.alert_rule_kinds``): ``rise`` /
    ``fall`` with ``within``, ``mean_above`` / ``mean_below`` with ``over``, ``count`` with
    ``above`` / ``below`` and ``within``, or ``missing_for`` alone.
    """

    kind: str
    value: str | None = None  # every rule but missing_for names the value it judges
    above: float | None = None
    below: float | None = None
    unit: str | None = None
    severity: Literal["info", "warning", "critical"] = "warning"
    # Default: an hour for a limit, the window's length for a window rule, never for missing_for.
    cooldown_s: float | None = Field(default=None, ge=0)
    vital_interest: StrictBool = False
    rise: float | None = Field(default=None, gt=0)
    fall: float | None = Field(default=None, gt=0)
    within: Duration | None = None
    mean_above: float | None = None
    mean_below: float | None = None
    over: Duration | None = None
    times: list[str] | None = None  # mean rules: only readings taken at these times of day
    min_readings: int = Field(default=1, ge=1)
    count: int | None = Field(default=None, ge=1)
    missing_for: Duration | None = None
    instructions: str | None = Field(default=None, max_length=500)  # shown to the person

    @field_validator("times")
    @classmethod
    def _time_ranges(cls, value: list[str] | None) -> list[str] | None:
        if value is not None:
            parse_time_ranges(value)
        return value

    @model_validator(mode="after")
    def _has_limit(self) -> AlertRuleSettings:
        check_rule(self)
        if self.vital_interest and self.severity != "critical":
            raise ValueError("vital_interest is only allowed on severity = 'critical' rules")
        return self

    @property
    def rule_type(self) -> str:
        """ "limit", "change", "mean", "count" or "missing"."""
        return rule_type(self)

    @property
    def cooldown(self) -> float:
        return default_cooldown(self) if self.cooldown_s is None else self.cooldown_s


SubjectSettings.model_rebuild()


class FleetSettings(_Section):
    """The care provider's fleet broker (docs/fleet.md): the hub's status and signed config."""

    url: str
    ca_file: Path | None = None  # default: the system's trust store
    client_cert_file: Path | None = None
    client_key_file: Path | None = None
    status_interval_s: float = Field(default=300.0, ge=1)
    # The care provider's Ed25519 public key (PEM). Without it no remote config is accepted.
    config_public_key_file: Path | None = None

    @field_validator("url")
    @classmethod
    def _url_is_safe(cls, value: str) -> str:
        return MqttDestination._url_is_safe(value)

    @model_validator(mode="after")
    def _tls_files_together(self) -> FleetSettings:
        if (self.client_cert_file is None) != (self.client_key_file is None):
            raise ValueError("client_cert_file and client_key_file go together")
        return self


V3_ACT_REASON = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
# Hub purpose -> the purpose of use a FHIR Consent names (README "Consent from the care
# platform" gives the reasoning for each).
DEFAULT_CONSENT_PURPOSES = {
    "care": f"{V3_ACT_REASON}|TREAT",
    "alerting": f"{V3_ACT_REASON}|ETREAT",
    "analytics": f"{V3_ACT_REASON}|SYSDEV",
    "research": f"{V3_ACT_REASON}|HRESCH",
    "employer_statistics": f"{V3_ACT_REASON}|POPHLTH",
}


class ConsentSyncSettings(_Section):
    """Consent read from (and written back to) the care platform's FHIR ``Consent`` resources."""

    destination: str = Field(min_length=1)  # a kind = "fhir" destination: URL, token, system
    interval_s: float = Field(default=60.0, gt=0)
    # Merged over the defaults: a config names only the purposes it maps differently.
    purposes: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_CONSENT_PURPOSES))
    write_back: bool = True

    @field_validator("purposes")
    @classmethod
    def _purpose_codes(cls, value: dict[str, str]) -> dict[str, str]:
        merged = {**DEFAULT_CONSENT_PURPOSES, **value}
        for purpose, coding in merged.items():
            system, _, code = coding.partition("|")
            if not system or not code:
                raise ValueError(f'{purpose}: write the purpose of use as "system|code"')
        codes = list(merged.values())
        if len(set(codes)) != len(codes):
            raise ValueError("two hub purposes map to the same code; each needs its own")
        return merged


class Settings(_Section):
    gateway: GatewaySettings
    subjects: list[SubjectSettings] = Field(default_factory=list)
    devices: list[DeviceSettings] = Field(default_factory=list)
    destinations: list[Destination] = Field(default_factory=list)
    alert_rules: list[AlertRuleSettings] = Field(default_factory=list)
    # What the person should do, shown on the page with an alert of that severity: one text,
    # or one per language ({ sv = "...", en = "..." }).
    alert_instructions: dict[
        Literal["info", "warning", "critical"], str | dict[Literal["sv", "en"], str]
    ] = Field(default_factory=dict)
    consent_sync: ConsentSyncSettings | None = None
    fleet: FleetSettings | None = None

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
                # The id is not repeated: it is a personal identifier (a personnummer).
                raise ValueError(
                    f"devices[{index}].subject: no [[subjects]] entry has this id; "
                    "add the subject or fix the id"
                )
            for user, subject_id in device.user_subjects.items():
                if subject_id not in known:
                    raise ValueError(
                        f"devices[{index}].users.{user}: no [[subjects]] entry has this id; "
                        "add the subject or fix the id"
                    )
        if self.gateway.require_eea:
            for index, destination in enumerate(self.destinations):
                if destination.region is not None and destination.region not in EEA_REGIONS:
                    raise ValueError(
                        f"destinations[{index}].region: {destination.name!r} processes data in "
                        f"{destination.region}, outside the EU/EEA; data stays in the EU/EEA "
                        "unless gateway.require_eea = false (only with a legal transfer basis)"
                    )
        if self.consent_sync is not None:
            fhir = [d.name for d in self.destinations if isinstance(d, FhirDestination)]
            if self.consent_sync.destination not in fhir:
                raise ValueError(
                    f"consent_sync.destination: {self.consent_sync.destination!r} is not a "
                    'kind = "fhir" destination; name one of ' + (", ".join(fhir) or "(none)")
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

    def pseudonym_key_path(self, destination: AnalyticsDestination | MqttDestination) -> Path:
        """Where an event stream's pseudonym key is (or will be generated)."""
        return destination.pseudonym_key_file or (
            self.gateway.data_dir / "keys" / f"{destination.kind}-{destination.name}.key"
        )

    def subject(self, subject_id: str) -> SubjectSettings:
        for subject in self.subjects:
            if subject.id == subject_id:
                return subject
        raise KeyError(subject_id)


DESTINATION_KINDS = ("fhir", "webhook", "analytics", "aggregate")


def _location(loc: tuple[int | str, ...]) -> str:
    parts: list[str] = []
    for element in loc:
        if isinstance(element, int):
            parts.append(f"[{element}]")
        elif element in DESTINATION_KINDS and parts and parts[-1].endswith("]"):
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
        return "unknown destination kind; use kind = " + " or ".join(
            repr(kind) for kind in DESTINATION_KINDS
        )
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
