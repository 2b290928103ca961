"""``health-gateway``: the service, the demo, and operator commands.

Every expected failure (bad config, missing secret, missing dbus-daemon, a gateway that is not
running) ends with one line on stderr and a non-zero exit code, never a traceback.

The operator commands (``status``, ``devices``, ``consent``, ``export``, ``erase``,
``restrict``, ``dead-letters``, ``audit show``) talk to the running gateway's local API: the
URL from the config's ``gateway.api.listen``, the token from its token file. They print
readable tables, or the API's JSON with ``--json``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

import orjson

from gateway import __version__
from gateway.client import OperatorError
from gateway.settings import ConfigError, Settings, load_settings

EXIT_CONFIG = 2
EXIT_USAGE = 2  # as argparse exits for its own usage errors
EXIT_RUNTIME = 1
# What a shell reports for a program ended by SIGPIPE (128 + 13): the reader went away.
EXIT_CLOSED_PIPE = 141


class UsageError(Exception):
    """The command line is wrong (not the config); the message says how to write it."""


def _fail(message: str, code: int) -> int:
    print(f"health-gateway: {message}", file=sys.stderr)
    return code


def _load(path: Path) -> Settings:
    from gateway.api.security import check_api_settings
    from gateway.preflight import preflight
    from gateway.writable import check_service_can_write

    settings = load_settings(path)
    try:
        check_service_can_write(settings)
        preflight(settings)
        check_api_settings(settings)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    return settings


async def _serve(settings: Settings) -> None:
    from gateway.service import Service

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await Service(settings).run(stop)


def cmd_run(args: argparse.Namespace) -> int:
    from gateway.logging import configure_logging, personal_strings

    settings = _load(args.config)
    configure_logging(
        format=settings.gateway.log_format,
        level=settings.gateway.log_level,
        secrets=personal_strings(settings),
    )
    asyncio.run(_serve(settings))
    return 0


def cmd_check_config(args: argparse.Namespace) -> int:
    settings = _load(args.config)
    print(
        f"{args.config}: OK ({len(settings.subjects)} subjects, {len(settings.devices)} devices,"
        f" {len(settings.destinations)} destinations, {len(settings.alert_rules)} alert rules)"
    )
    return 0


def cmd_init(args: argparse.Namespace) -> int:
    from gateway.initialise import InitError, initialise

    try:
        report = initialise(
            args.config_dir, args.data_dir, user=args.user, systemd_dir=args.systemd_dir
        )
    except InitError as exc:
        return _fail(f"init: {exc}", EXIT_RUNTIME)
    print(report.text())
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from gateway.demo import run_demo

    return asyncio.run(run_demo(duration_s=args.duration, data_dir=args.data_dir, port=args.port))


def cmd_scan(args: argparse.Namespace) -> int:
    from devices.sim.system_bus import SYSTEM_BUS_ENV
    from gateway.scan import scan

    try:
        devices = asyncio.run(scan(args.timeout))
    except (FileNotFoundError, ConnectionRefusedError) as exc:
        # dbus-fast connecting to a system bus socket that is not there (or not listening).
        bus = os.environ.get(SYSTEM_BUS_ENV) or "/run/dbus/system_bus_socket"
        return _fail(
            f"Bluetooth: cannot reach the D-Bus system bus at {bus} ({exc.strerror});"
            " install and start dbus and bluez (sudo systemctl start dbus bluetooth)",
            EXIT_RUNTIME,
        )
    if args.json:
        print(orjson.dumps([d.as_dict() for d in devices]).decode())
        return 0
    if not devices:
        print("No health devices found. Wake the device (take a measurement) and scan again.")
        return 0
    print(f"{'ADDRESS':<18} {'PROFILE':<17} {'RSSI':>5}  NAME")
    for device in devices:
        rssi = "" if device.rssi is None else str(device.rssi)
        print(f"{device.address:<18} {device.profile:<17} {rssi:>5}  {device.name or ''}")
    return 0


def cmd_audit_verify(args: argparse.Namespace) -> int:
    from gateway.audit_cli import verify_audit

    return verify_audit(load_settings(_operator_config(args)), as_json=args.json)


# Operator commands: they ask the running gateway ------------------------------------------


def _operator_config(args: argparse.Namespace) -> Path:
    from gateway.client import CONFIG_ENV, DEFAULT_CONFIG

    if args.config is not None:
        return Path(args.config)
    return Path(os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG)


def _client(args: argparse.Namespace) -> Any:
    from gateway.client import OperatorClient, api_url, operator_token

    settings = load_settings(_operator_config(args))
    return OperatorClient(api_url(settings), operator_token(settings))


def _ask(
    args: argparse.Namespace,
    method: str,
    path: str,
    *,
    body: Any = None,
    params: dict[str, str] | None = None,
) -> Any:
    from gateway.client import run_call

    return run_call(_client(args), method, path, body=body, params=params)


def _print_json(data: Any) -> None:
    print(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode())


def _subject_path(subject: str, suffix: str = "") -> str:
    return f"/api/subjects/{quote(subject, safe='')}{suffix}"


def cmd_status(args: argparse.Namespace) -> int:
    from gateway.client import status_text

    status = _ask(args, "GET", "/api/status").json()
    if args.json:
        _print_json(status)
    else:
        print(status_text(status))
    return 0


def cmd_devices(args: argparse.Namespace) -> int:
    from gateway.client import devices_table

    devices = _ask(args, "GET", "/api/devices").json()
    if args.json:
        _print_json(devices)
    else:
        print(devices_table(devices["devices"]))
    return 0


YES = {"yes": True, "y": True, "true": True, "on": True, "no": False, "n": False}
YES |= {"false": False, "off": False}


def _consent_changes(items: list[str]) -> dict[str, bool]:
    changes: dict[str, bool] = {}
    for item in items:
        purpose, sep, answer = item.partition("=")
        granted = YES.get(answer.strip().lower())
        if not sep or not purpose or granted is None:
            raise UsageError(f"consent: write {item!r} as purpose=yes or purpose=no")
        changes[purpose.strip()] = granted
    return changes


def cmd_consent(args: argparse.Namespace) -> int:
    from gateway.client import short_time, table

    changes = _consent_changes(args.changes)
    if not changes:
        held = _ask(args, "GET", _subject_path(args.subject)).json()
        if args.json:
            _print_json(held["consents"])
            return 0
        rows = [
            [purpose, c["granted"], short_time(c["changed_at"]), c["source"]]
            for purpose, c in held["consents"].items()
        ]
        print(table(["PURPOSE", "GRANTED", "CHANGED", "BY"], rows) if rows else "No consents.")
        return 0
    result = _ask(args, "PUT", _subject_path(args.subject, "/consent"), body=changes).json()
    if args.json:
        _print_json(result)
        return 0
    for purpose, granted in changes.items():
        if purpose not in result["changed"]:
            print(f"{purpose}: unchanged (already {'granted' if granted else 'withdrawn'})")
        elif granted:
            print(f"{purpose}: granted")
        else:
            purged = result["purged"].get(purpose, 0)
            print(f"{purpose}: withdrawn; {purged} queued item(s) purged")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    answer = _ask(
        args, "GET", _subject_path(args.subject, "/export"), params={"format": args.format}
    )
    if args.output is None:
        sys.stdout.buffer.write(answer.body + b"\n")
        return 0
    descriptor = os.open(args.output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(answer.body)
    print(f"wrote {args.output} ({len(answer.body)} bytes, {args.format})", file=sys.stderr)
    return 0


def cmd_erase(args: argparse.Namespace) -> int:
    if not args.yes:
        return _fail(
            "erase deletes the person's readings, queued items and consents on this hub and"
            " cannot be undone; add --yes to confirm",
            EXIT_CONFIG,
        )
    result = _ask(args, "DELETE", _subject_path(args.subject, "/data")).json()
    if args.json:
        _print_json(result)
        return 0
    counts = result["erased"]
    print(
        "erased: "
        + ", ".join(f"{count} {name.replace('_', ' ')}" for name, count in counts.items())
        + "; every consent is now withdrawn"
    )
    return 0


def cmd_restrict(args: argparse.Namespace) -> int:
    restricted = args.state == "on"
    path = _subject_path(args.subject, "/restriction")
    result = _ask(args, "PUT", path, body={"restricted": restricted}).json()
    if args.json:
        _print_json(result)
    elif restricted:
        print("restricted: readings are stored but nothing is sent for this person")
    else:
        print("restriction lifted: readings are sent again as consented")
    return 0


def _requeue_body(args: argparse.Namespace) -> dict[str, Any]:
    if args.all:
        if args.ids:
            raise UsageError("dead-letters requeue: name ids or --all, not both")
        return {"all": True} | ({"destination": args.destination} if args.destination else {})
    if args.destination:
        raise UsageError("dead-letters requeue: --destination goes with --all")
    try:
        ids = [int(i) for i in args.ids]
    except ValueError:
        raise UsageError("dead-letters requeue: ids are numbers (see the ID column)") from None
    if not ids:
        raise UsageError("dead-letters requeue: name at least one id, or --all")
    return {"ids": ids}


def cmd_dead_letters(args: argparse.Namespace) -> int:
    from gateway.client import dead_letters_text

    if args.action == "requeue":
        result = _ask(args, "POST", "/api/dead-letters/requeue", body=_requeue_body(args)).json()
        if args.json:
            _print_json(result)
            return 0
        print(f"requeued: {', '.join(map(str, result['requeued'])) or 'none'}")
        if result["not_found"]:
            print(f"not found: {', '.join(map(str, result['not_found']))}")
        return 0 if not result["not_found"] else EXIT_RUNTIME
    if args.ids or args.all:
        raise UsageError("dead-letters: to re-queue, write dead-letters requeue ID... or --all")
    rows = _ask(args, "GET", "/api/dead-letters").json()
    if args.json:
        _print_json(rows)
    else:
        print(dead_letters_text(rows["dead_letters"]))
    return 0


def cmd_quarantine(args: argparse.Namespace) -> int:
    result = _ask(args, "POST", "/api/quarantine/requeue").json()
    if args.json:
        _print_json(result)
    else:
        print(f"requeued: {result['requeued']}")
    return 0


def cmd_held(args: argparse.Namespace) -> int:
    from gateway.client import held_text

    if args.action == "list":
        if args.id is not None or args.user is not None:
            raise UsageError("held: to decide, write held assign ID --user N or held discard ID")
        rows = _ask(args, "GET", "/api/held-weighings").json()
        if args.json:
            _print_json(rows)
        else:
            print(held_text(rows["held_weighings"]))
        return 0
    if args.id is None:
        raise UsageError(f"held {args.action}: name the weighing's id (see held list)")
    if args.action == "assign":
        if args.user is None:
            raise UsageError("held assign: --user N, the user index of a person of that scale")
        body: dict[str, Any] | None = {"user": args.user}
    elif args.user is not None:
        raise UsageError("held discard: --user goes with assign")
    else:
        body = None
    result = _ask(args, "POST", f"/api/held-weighings/{args.id}/{args.action}", body=body).json()
    if args.json:
        _print_json(result)
    elif args.action == "assign":
        print(f"held weighing {args.id} assigned to user {args.user}: stored and sent as usual")
    else:
        print(f"held weighing {args.id} discarded")
    return 0


def cmd_audit_show(args: argparse.Namespace) -> int:
    from gateway.client import audit_text

    params = {"limit": str(args.limit)}
    if args.subject:
        params["subject"] = args.subject
    if args.event:
        params["event"] = args.event
    answer = _ask(args, "GET", "/api/audit", params=params).json()
    if args.json:
        _print_json(answer)
    else:
        print(audit_text(answer, person=args.subject))
    return 0 if answer["chain"]["ok"] else EXIT_RUNTIME


def _operator(commands: Any, name: str, help_text: str, handler: Any) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = commands.add_parser(name, help=help_text)
    parser.add_argument(
        "--config",
        type=Path,
        default=None,
        help="the running gateway's config (default: $HEALTH_GATEWAY_CONFIG or"
        " /etc/health-gateway/config.toml)",
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.set_defaults(handler=handler)
    return parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="health-gateway",
        description="Health-data gateway: reads BLE medical devices, applies consent and privacy "
        "rules, and delivers readings durably.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="run the gateway service")
    run.add_argument("--config", type=Path, required=True, help="path of the TOML config file")
    run.set_defaults(handler=cmd_run)

    check = commands.add_parser("check-config", help="validate a config file and its secrets")
    check.add_argument("config", type=Path)
    check.set_defaults(handler=cmd_check_config)

    init = commands.add_parser(
        "init",
        help="create the config and data folders, secrets, PINs and keys (run as root)",
        description="Lay out a hub: the config folder (root-owned, the service's group, 0750)"
        " with a commented config from the example, the API token, PINs and the alert signing"
        " secret; the data folder (the service user's, 0700) with its keys; optionally the"
        " systemd unit. Existing files are never changed. Prints the next steps.",
    )
    init.add_argument("--config-dir", type=Path, default=Path("/etc/health-gateway"))
    init.add_argument("--data-dir", type=Path, default=Path("/var/lib/health-gateway"))
    init.add_argument(
        "--user", default=None, help="the service user (default: health-gateway as root)"
    )
    init.add_argument(
        "--systemd-dir",
        type=Path,
        default=None,
        help="also write the unit here (e.g. /etc/systemd/system)",
    )
    init.set_defaults(handler=cmd_init)

    demo = commands.add_parser(
        "demo", help="simulated devices, local care platform and alert receiver; no hardware"
    )
    demo.add_argument("--duration", type=float, default=15.0, help="seconds to run (default 15)")
    demo.add_argument("--data-dir", type=Path, default=None, help="keep state here (default: temp)")
    demo.add_argument(
        "--port", type=int, default=8080, help="the hub page's port (default 8080; 0: any free)"
    )
    demo.set_defaults(handler=cmd_demo)

    scan = commands.add_parser("scan", help="list nearby BLE health devices (real radio)")
    scan.add_argument("--timeout", type=float, default=10.0)
    scan.add_argument("--json", action="store_true", help="machine-readable output")
    scan.set_defaults(handler=cmd_scan)

    from gateway.fleet.sign_cli import add_commands as add_fleet_commands

    add_fleet_commands(commands)

    audit = commands.add_parser("audit", help="the audit log")
    audit_commands = audit.add_subparsers(dest="audit_command", required=True, metavar="ACTION")
    _operator(
        audit_commands,
        "verify",
        "check the hash chain for tampering (reads the database; run as the service user)",
        cmd_audit_verify,
    )
    show = _operator(
        audit_commands, "show", "recent audit entries (from the running gateway)", cmd_audit_show
    )
    show.add_argument("--subject", help="only this person's entries (their id)")
    show.add_argument("--event", help="only this event, e.g. disclosure")
    show.add_argument("--limit", type=int, default=50)

    _operator(commands, "status", "the running gateway: queues, devices, errors", cmd_status)
    _operator(commands, "devices", "devices: connected, last seen, battery, clock", cmd_devices)
    consent = _operator(
        commands, "consent", "show or change a person's consents (purpose=yes|no ...)", cmd_consent
    )
    consent.add_argument("subject", help="the person's id")
    consent.add_argument("changes", nargs="*", metavar="PURPOSE=yes|no")
    export = _operator(commands, "export", "a person's data as JSON or FHIR", cmd_export)
    export.add_argument("subject", help="the person's id")
    export.add_argument("--format", choices=["json", "fhir"], default="json")
    export.add_argument("-o", "--output", type=Path, help="write to this file (mode 0600)")
    erase = _operator(commands, "erase", "delete a person's data on this hub", cmd_erase)
    erase.add_argument("subject", help="the person's id")
    erase.add_argument("--yes", action="store_true", help="confirm: this cannot be undone")
    restrict = _operator(
        commands, "restrict", "restrict processing for a person (on) or lift it (off)", cmd_restrict
    )
    restrict.add_argument("subject", help="the person's id")
    restrict.add_argument("state", choices=["on", "off"])
    dead = _operator(
        commands, "dead-letters", "list dead letters, or re-queue them by id", cmd_dead_letters
    )
    dead.add_argument("action", nargs="?", choices=["list", "requeue"], default="list")
    dead.add_argument("ids", nargs="*", metavar="ID")
    dead.add_argument("--all", action="store_true", help="requeue: every dead letter")
    dead.add_argument("--destination", help="requeue --all: only this destination's")
    quarantined = _operator(
        commands,
        "quarantine",
        "re-queue items that could not be opened, once the storage key is restored",
        cmd_quarantine,
    )
    quarantined.add_argument("action", choices=["requeue"])
    held = _operator(
        commands,
        "held",
        "a shared scale's weighings that fit no one person: list, assign or discard them",
        cmd_held,
    )
    held.add_argument("action", nargs="?", choices=["list", "assign", "discard"], default="list")
    held.add_argument("id", nargs="?", type=int, metavar="ID")
    held.add_argument("--user", type=int, help="assign: the person's user index on that scale")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        code = int(args.handler(args))
        sys.stdout.flush()  # inside the try: a reader that went away is seen here, not at exit
        return code
    except BrokenPipeError:
        return _reader_gone()
    except UsageError as exc:
        return _fail(f"usage: {exc}", EXIT_USAGE)
    except ConfigError as exc:
        return _fail(f"config error: {exc}", EXIT_CONFIG)
    except OperatorError as exc:
        return _fail(str(exc), EXIT_RUNTIME)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        from gateway.errors import describe

        message = describe(exc)
        if message is None:
            raise
        return _fail(message, EXIT_RUNTIME)


def _reader_gone() -> int:
    """``health-gateway ... | head``: the reader closed the pipe; stop quietly, as cat does.

    stdout is pointed at /dev/null so that the interpreter's last flush at exit does not
    report the same broken pipe again.
    """
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return EXIT_CLOSED_PIPE


if __name__ == "__main__":
    sys.exit(main())
