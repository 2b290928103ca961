"""Who may use the API and the page: token, PINs, sessions, login rate limit, LAN lock, CSRF.

- Operators and scripts send ``Authorization: Bearer <token>``; the token is read from
  ``gateway.api.token_file``, or (when that is not set) from ``data_dir/api-token``, which the
  gateway creates with mode 0600 at its first start.
- The page signs a person in with their PIN (``gateway.api.pin_file``: one line
  ``SUBJECT_ID PIN`` per person) or with the API token plus the person's id, and then keeps a
  session cookie (HttpOnly, SameSite=Strict). A session is for one person and reaches only that
  person's ``/api/subjects/{id}/...`` routes.
- State-changing requests made with the cookie must carry the session's CSRF token in the
  ``X-CSRF-Token`` header and must not come from another origin (``Origin`` and
  ``Sec-Fetch-Site`` are checked).
- Wrong PINs are rate-limited for the whole hub: after 5 wrong tries in a row every sign-in is
  refused for 30 s, doubling with each further wrong try up to 15 minutes. A try counts from
  the moment it is admitted, before its body is read: tries in flight use up the free tries,
  so parallel requests cannot all be compared before the lock closes.
- Every connection must come from an address in ``gateway.api.allowed_networks`` (others are
  closed before anything is read: ``connections.py``) and every request must name the hub in
  its ``Host`` header (``hosts.py``).
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from gateway.secret_files import read_private_text
from gateway.settings import ApiSettings, ConfigError, Settings

TOKEN_FILE_NAME = "api-token"  # noqa: S105 (a file name, not a secret)
MIN_TOKEN_LENGTH = 16
PIN_PATTERN = re.compile(r"^[0-9]{4,12}$")
SESSION_COOKIE = "hgw_session"
MAX_SESSIONS = 64

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def token_path(settings: Settings) -> Path:
    """Where the API token lives: ``token_file``, or ``data_dir/api-token`` by default."""
    return settings.gateway.api.token_file or settings.gateway.data_dir / TOKEN_FILE_NAME


def create_token_file(path: Path) -> str:
    """Write a new random token with mode 0600 (never overwriting an existing file)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    token = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(token + "\n")
    return token


def read_token(path: Path, *, key: str = "gateway.api.token_file") -> str:
    try:
        token = read_private_text(path, key).strip()
    except FileNotFoundError:
        raise ConfigError(
            f"{key}: {path} does not exist; create it with "
            f"`(umask 077; python3 -c 'import secrets; print(secrets.token_urlsafe(32))' > {path})`"
        ) from None
    except OSError as exc:
        raise ConfigError(f"{key}: cannot read {path} ({exc.strerror})") from None
    if len(token) < MIN_TOKEN_LENGTH:
        raise ConfigError(
            f"{key}: the token in {path} is too short; use at least {MIN_TOKEN_LENGTH} random"
            " characters"
        )
    return token


def load_token(settings: Settings) -> tuple[str, bool]:
    """The API token, and whether it was just created (only for the default location)."""
    path = token_path(settings)
    if settings.gateway.api.token_file is None and not path.exists():
        return create_token_file(path), True
    return read_token(path), False


def load_pins(settings: Settings) -> dict[str, str]:
    """``pin_file`` -> {PIN: subject id}; every problem is a ``ConfigError`` naming the line."""
    path = settings.gateway.api.pin_file
    if path is None:
        return {}
    key = "gateway.api.pin_file"
    try:
        text = read_private_text(path, key)
    except FileNotFoundError:
        raise ConfigError(
            f"{key}: {path} does not exist; create it (mode 0600) with one line"
            " `SUBJECT_ID PIN` per person"
        ) from None
    except OSError as exc:
        raise ConfigError(f"{key}: cannot read {path} ({exc.strerror})") from None
    known = {subject.id for subject in settings.subjects}
    pins: dict[str, str] = {}
    people: set[str] = set()
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.replace("=", " ").split()
        if len(parts) != 2:
            raise ConfigError(f"{key}: {path} line {number}: write `SUBJECT_ID PIN`")
        subject_id, pin = parts
        if subject_id not in known:
            raise ConfigError(f"{key}: {path} line {number}: no [[subjects]] entry has this id")
        if not PIN_PATTERN.match(pin):
            raise ConfigError(f"{key}: {path} line {number}: a PIN is 4 to 12 digits")
        if subject_id in people:
            raise ConfigError(f"{key}: {path} line {number}: this person already has a PIN")
        if pin in pins:
            raise ConfigError(
                f"{key}: {path} line {number}: two people have the same PIN; a PIN says who"
                " signs in, so each person needs their own"
            )
        pins[pin] = subject_id
        people.add(subject_id)
    return pins


def check_api_settings(settings: Settings) -> None:
    """What ``check-config`` and the start can verify about the API without creating anything."""
    api = settings.gateway.api
    if not api.enabled:
        return
    if api.token_file is not None:
        read_token(api.token_file)
    load_pins(settings)


def parse_networks(api: ApiSettings) -> list[Network]:
    return [ipaddress.ip_network(network, strict=False) for network in api.allowed_networks]


def address_allowed(remote: str | None, networks: list[Network]) -> bool:
    if not remote:
        return False
    try:
        address = ipaddress.ip_address(remote.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address.version == network.version and address in network for network in networks)


def same_secret(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


def match_pin(given: str, pins: dict[str, str]) -> str | None:
    """The subject whose PIN this is; every PIN is compared (in constant time) every time."""
    found = None
    for pin, subject_id in pins.items():
        if hmac.compare_digest(given.encode(), pin.encode()):
            found = subject_id
    return found


@dataclass(slots=True)
class Session:
    id: str
    subject_id: str
    csrf: str
    via: str  # "pin" or "token"
    created: float
    last_used: float


@dataclass(slots=True)
class Sessions:
    """Page sessions, in memory only: a restart of the gateway signs everyone out."""

    idle_s: float
    clock: Callable[[], float] = time.monotonic
    _sessions: dict[str, Session] = field(default_factory=dict)

    def create(self, subject_id: str, via: str) -> Session:
        now = self.clock()
        self._expire(now)
        while len(self._sessions) >= MAX_SESSIONS:
            oldest = min(self._sessions.values(), key=lambda s: s.last_used)
            del self._sessions[oldest.id]
        session = Session(
            secrets.token_urlsafe(32), subject_id, secrets.token_urlsafe(32), via, now, now
        )
        self._sessions[session.id] = session
        return session

    def get(self, session_id: str | None) -> Session | None:
        if not session_id:
            return None
        now = self.clock()
        session = self._sessions.get(session_id)
        if session is None:
            return None
        if now - session.last_used > self.idle_s:
            del self._sessions[session_id]
            return None
        session.last_used = now
        return session

    def end(self, session_id: str) -> None:
        self._sessions.pop(session_id, None)

    def _expire(self, now: float) -> None:
        for session in [s for s in self._sessions.values() if now - s.last_used > self.idle_s]:
            del self._sessions[session.id]


BUSY_RETRY_S = 1.0


@dataclass(slots=True)
class LoginLimiter:
    """Hub-wide limit on wrong sign-ins: ``free`` tries, then a lock that doubles each time.

    ``admit`` reserves a try before the request's body is read and ``release`` returns it
    once judged; in between it is "in flight". Tries in flight count against what is left:
    with ``failures`` wrong tries so far, at most ``free - failures`` (and at least one) may be
    in flight. Admission and its count happen without an ``await`` between them, so two
    requests on the one event loop cannot both take the last try.
    """

    free: int = 5
    first_lock_s: float = 30.0
    max_lock_s: float = 900.0
    clock: Callable[[], float] = time.monotonic
    failures: int = 0
    locked_until: float = 0.0
    in_flight: int = 0

    def retry_after(self) -> float:
        """Seconds until a sign-in may be tried again (0: now)."""
        return max(0.0, self.locked_until - self.clock())

    def admit(self) -> float:
        """Reserve a try: 0 when admitted (call ``release`` later), else seconds to wait."""
        locked = self.retry_after()
        if locked > 0:
            return locked
        if self.in_flight >= max(1, self.free - self.failures):
            return BUSY_RETRY_S  # the tries left are being checked right now
        self.in_flight += 1
        return 0.0

    def release(self) -> None:
        """The admitted try is judged (``failed``/``succeeded`` first) or abandoned."""
        self.in_flight = max(0, self.in_flight - 1)

    def failed(self) -> float:
        """Record a wrong try; returns the lock now in force (0: none)."""
        self.failures += 1
        over = self.failures - self.free
        if over >= 0:
            lock = min(self.max_lock_s, self.first_lock_s * (2**over))
            self.locked_until = self.clock() + lock
            return lock
        return 0.0

    def succeeded(self) -> None:
        self.failures = 0
        self.locked_until = 0.0
