"""The operator commands' side of the API: find the running gateway, ask it, print tables.

The URL comes from the config's ``gateway.api.listen`` (a wildcard address is reached on
loopback) and the token from its token file, so an operator on the hub needs nothing but the
config path.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from gateway.api.security import read_token, token_path
from gateway.settings import ConfigError, Settings, split_listen

DEFAULT_CONFIG = Path("/etc/health-gateway/config.toml")
CONFIG_ENV = "HEALTH_GATEWAY_CONFIG"


class OperatorError(Exception):
    """The command could not get its answer; the message says why in one line."""


def api_url(settings: Settings) -> str:
    host, port = split_listen(settings.gateway.api.listen)
    if host in ("0.0.0.0", ""):  # noqa: S104 (reaching a wildcard listener, not binding)
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


def operator_token(settings: Settings) -> str:
    path = token_path(settings)
    try:
        return read_token(path)
    except ConfigError as exc:
        if "does not exist" in str(exc) and settings.gateway.api.token_file is None:
            raise OperatorError(
                f"no API token at {path} yet: the gateway creates it at its first start;"
                " is it running?"
            ) from None
        if "Permission denied" in str(exc):
            raise OperatorError(
                f"cannot read the API token {path} (permission denied); run as root or as the"
                " service user: sudo -u health-gateway health-gateway ..."
            ) from None
        raise


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)


class OperatorClient:
    def __init__(self, base_url: str, token: str, timeout_s: float = 15.0) -> None:
        self.base_url = base_url
        self._token = token
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)

    async def call(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: dict[str, str] | None = None,
    ) -> Answer:
        headers = {"Authorization": f"Bearer {self._token}", "Accept": "application/json"}
        data = None
        if body is not None:
            headers["Content-Type"] = "application/json"
            data = orjson.dumps(body)
        url = self.base_url + path
        try:
            async with (
                aiohttp.ClientSession(timeout=self._timeout) as session,
                session.request(method, url, data=data, headers=headers, params=params) as reply,
            ):
                answer = Answer(reply.status, dict(reply.headers), await reply.read())
        except aiohttp.ClientConnectorError as exc:
            code = exc.os_error.errno if exc.os_error else None
            reason = os.strerror(code) if code else str(exc)
            raise OperatorError(
                f"cannot reach the gateway at {self.base_url} ({reason}); is it running?"
                " (systemctl status health-gateway)"
            ) from None
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise OperatorError(
                f"no answer from the gateway at {self.base_url} ({type(exc).__name__})"
            ) from None
        if answer.status == 401:
            raise OperatorError(
                "the gateway refused the API token; is the config the running gateway's?"
            )
        if answer.status >= 400:
            try:
                message = str(answer.json().get("error"))
            except (orjson.JSONDecodeError, AttributeError):
                message = answer.body[:200].decode(errors="replace")
            raise OperatorError(f"the gateway answered {answer.status}: {message}")
        return answer


def run_call(
    client: OperatorClient,
    method: str,
    path: str,
    *,
    body: Any = None,
    params: dict[str, str] | None = None,
) -> Answer:
    return asyncio.run(client.call(method, path, body=body, params=params))


# Printing -------------------------------------------------------------------------------------


def cell(value: Any, width: int = 48) -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    text = str(value)
    return text if len(text) <= width else text[: width - 1] + "…"


def table(
    headers: Sequence[str],
    rows: Sequence[Sequence[Any]],
    numeric: set[int] | None = None,
    last_width: int = 48,
) -> str:
    numeric = numeric or set()
    last = len(headers) - 1
    cells = [[cell(v, last_width if i == last else 48) for i, v in enumerate(row)] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]

    def line(values: Sequence[str]) -> str:
        parts = [
            v.rjust(widths[i]) if i in numeric else v.ljust(widths[i]) for i, v in enumerate(values)
        ]
        return "  ".join(parts).rstrip()

    return "\n".join([line(headers), *(line(r) for r in cells)])


def short_time(iso: str | None) -> str | None:
    """``2026-11-23T18:30:01.5+00:00`` -> ``2026-11-23 18:30:01`` in the hub's local time."""
    if not iso:
        return None
    moment = datetime.fromisoformat(iso)
    if moment.tzinfo is not None:
        moment = moment.astimezone()
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def offset(seconds: float | None) -> str | None:
    return None if seconds is None else f"{seconds:+.1f} s"


def devices_table(devices: list[dict[str, Any]]) -> str:
    if not devices:
        return "No devices configured."
    return table(
        [
            "DEVICE",
            "NAME",
            "PROFILE",
            "CONNECTED",
            "LAST SEEN",
            "BATTERY",
            "CLOCK",
            "ERRORS",
            "HELD",
        ],
        [
            [
                d["ref"],
                d.get("name"),
                d["profile"],
                d["connected"],
                short_time(d.get("last_seen")),
                None if d.get("battery_level") is None else f"{d['battery_level']}%",
                offset(d.get("clock_offset_s")),
                d.get("decode_errors", 0),
                d.get("held_ambiguous", 0),
            ]
            for d in devices
        ],
        numeric={7, 8},
    )


def status_text(status: dict[str, Any]) -> str:
    bluetooth = status.get("bluetooth") or {"ok": True}
    if not status.get("ready"):
        state = "starting"
    elif not bluetooth.get("ok"):
        state = f"running, but Bluetooth is not working: {bluetooth.get('reason')}"
    else:
        state = "running and ready"
    lines = [
        f"health-gateway {status.get('version')}: {state}",
        f"hub time {short_time(status.get('hub_time'))}"
        + (" (simulated radio)" if status.get("simulated_radio") else ""),
        "",
    ]
    lines += _warnings(status)
    destinations = status.get("destinations", [])
    if destinations:
        lines.append(
            table(
                [
                    "DESTINATION",
                    "PURPOSE",
                    "QUEUED",
                    "OLDEST QUEUED",
                    "DEAD",
                    "QUARANTINED",
                    "SENT",
                    "RETRIES",
                    "STATE",
                    "LAST SUCCESS",
                    "LAST ERROR",
                ],
                [
                    [
                        d["name"],
                        d["purpose"],
                        d["queued"],
                        short_time(d.get("oldest_queued_at")),
                        d["dead_letters"],
                        d.get("quarantined", 0),
                        d["delivered"],
                        d["retries"],
                        d.get("state", ""),
                        short_time(d.get("last_success_at")),
                        _last_error(d),
                    ]
                    for d in destinations
                ],
                numeric={2, 4, 5, 6, 7},
            )
        )
    else:
        lines.append("No destinations configured.")
    lines += ["", devices_table(status.get("devices", []))]
    attention = [w["message"] for w in status.get("warnings", []) if w["kind"] != "bluetooth"]
    if attention:
        lines += ["", "NEEDS ATTENTION", *(f"- {message}" for message in attention)]
    pipeline = status.get("pipeline") or {}
    if pipeline:
        lines += [
            "",
            f"readings {pipeline.get('readings', 0)}, duplicates {pipeline.get('duplicates', 0)},"
            f" minors dropped {pipeline.get('dropped_minor', 0)},"
            f" unbound dropped {pipeline.get('dropped_unbound', 0)},"
            f" alerts {pipeline.get('alerts', 0)}",
        ]
    return "\n".join(lines)


def _warnings(status: dict[str, Any]) -> list[str]:
    """One line each for what an operator must act on, above the tables."""
    found = []
    consent = status.get("consent") or {}
    if consent.get("registry_lost"):
        found.append(
            f"CONSENT REGISTRY LOST ({consent['registry_lost']}):"
            f" {consent['people_waiting']} people; {consent['action']}"
        )
    intake = status.get("intake") or {}
    if intake.get("disk_full"):
        found.append(
            f"DISK FULL: {intake['readings_held']} readings held in memory;"
            " free space in gateway.data_dir (intake resumes by itself)"
        )
    return [*found, ""] if found else []


def _last_error(destination: dict[str, Any]) -> str | None:
    """The last error with when it happened (a later success does not erase it, the state
    column says whether it still holds)."""
    error = destination.get("paused_reason") or destination.get("last_error")
    if error is None:
        return None
    return f"{short_time(destination.get('last_error_at'))} {error}"


def dead_letters_text(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "No dead letters."
    return table(
        ["ID", "DESTINATION", "CATEGORY", "FAILED", "STATUS", "ATTEMPTS", "RESPONSE"],
        [
            [
                r["id"],
                r["destination"],
                r["category"],
                short_time(r.get("failed_at")),
                r.get("status"),
                r.get("attempts"),
                r.get("response"),
            ]
            for r in rows
        ],
        numeric={0, 4, 5},
    )


def held_text(rows: list[dict[str, Any]]) -> str:
    """The weighings waiting for a decision: whose is each (``held assign ID --user N``)."""
    if not rows:
        return "No weighings wait for a decision."
    return table(
        ["ID", "DEVICE", "MEASURED", "RECEIVED", "VALUES", "USERS"],
        [
            [
                r["id"],
                r["device"],
                r.get("measured_at"),
                short_time(r.get("received_at")),
                ", ".join(f"{name} {q['value']:g} {q['unit']}" for name, q in r["values"].items()),
                ", ".join(map(str, r.get("users", []))),
            ]
            for r in rows
        ],
        numeric={0},
    )


def audit_text(answer: dict[str, Any], person: str | None = None) -> str:
    """The entries as a table; ``person`` is the id the operator asked about, shown as is."""
    from gateway.audit_wording import describe_entry

    chain = answer["chain"]
    head = (
        f"audit chain intact ({chain['entries']} entries)"
        if chain["ok"]
        else f"audit chain BROKEN: {chain['problem']}"
    )
    rows = [
        [
            e["seq"],
            short_time(e["at"]),
            e["event"],
            _for_whom(e, person),
            describe_entry(e["event"], e["data"]),
        ]
        for e in answer["entries"]
    ]
    if not rows:
        return head + "\nNo entries."
    # The log keeps only pseudonymous references (erasure must leave no identifier in it);
    # when the operator asked about a person, every row is theirs, so show the id they typed.
    whom = "PERSON" if person is not None else "SUBJECT REF"
    return head + "\n" + table(["SEQ", "AT", "EVENT", whom, "WHAT"], rows, {0}, 160)


def _for_whom(entry: dict[str, Any], person: str | None) -> str | None:
    if entry.get("subject_ref") is None:
        return None
    return person if person is not None else entry["subject_ref"]
