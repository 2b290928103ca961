"""``health-gateway``: the service, the demo, and operator commands.

Every expected failure (bad config, missing secret, missing dbus-daemon) ends with one line on
stderr and a non-zero exit code, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

import orjson

from gateway import __version__
from gateway.settings import ConfigError, Settings, load_settings

EXIT_CONFIG = 2
EXIT_RUNTIME = 1


def _fail(message: str, code: int) -> int:
    print(f"health-gateway: {message}", file=sys.stderr)
    return code


def _load(path: Path) -> Settings:
    from gateway.preflight import preflight

    settings = load_settings(path)
    try:
        preflight(settings)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    return settings


def personal_strings(settings: Settings) -> list[str]:
    """Everything the log redactor must mask: identifiers, birth dates, device addresses."""
    strings: list[str] = []
    for subject in settings.subjects:
        strings += [subject.id, subject.birth_date.isoformat()]
        if subject.company_id:
            strings.append(subject.company_id)
    strings += [device.address for device in settings.devices]
    return strings


async def _serve(settings: Settings) -> None:
    from gateway.app import Gateway

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await Gateway(settings).run(stop)


def cmd_run(args: argparse.Namespace) -> int:
    from gateway.logging import configure_logging

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


def cmd_demo(args: argparse.Namespace) -> int:
    from gateway.demo import run_demo

    return asyncio.run(run_demo(duration_s=args.duration, data_dir=args.data_dir))


def cmd_scan(args: argparse.Namespace) -> int:
    from gateway.scan import scan

    devices = asyncio.run(scan(args.timeout))
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

    return verify_audit(load_settings(args.config), as_json=args.json)


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

    demo = commands.add_parser(
        "demo", help="simulated devices, local care platform and alert receiver; no hardware"
    )
    demo.add_argument("--duration", type=float, default=15.0, help="seconds to run (default 15)")
    demo.add_argument("--data-dir", type=Path, default=None, help="keep state here (default: temp)")
    demo.set_defaults(handler=cmd_demo)

    scan = commands.add_parser("scan", help="list nearby BLE health devices (real radio)")
    scan.add_argument("--timeout", type=float, default=10.0)
    scan.add_argument("--json", action="store_true", help="machine-readable output")
    scan.set_defaults(handler=cmd_scan)

    audit = commands.add_parser("audit", help="the audit log")
    audit_commands = audit.add_subparsers(dest="audit_command", required=True, metavar="ACTION")
    verify = audit_commands.add_parser("verify", help="check the hash chain for tampering")
    verify.add_argument("--config", type=Path, required=True)
    verify.add_argument("--json", action="store_true")
    verify.set_defaults(handler=cmd_audit_verify)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args))
    except ConfigError as exc:
        return _fail(f"config error: {exc}", EXIT_CONFIG)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        from gateway.errors import describe

        message = describe(exc)
        if message is None:
            raise
        return _fail(message, EXIT_RUNTIME)


if __name__ == "__main__":
    sys.exit(main())
