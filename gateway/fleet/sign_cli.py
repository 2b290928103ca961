"""``health-gateway fleet sign-config``: the care provider's side of remote configuration.

Reads a TOML file holding the remotely changeable sections (``subjects``, ``devices``,
``destinations``, ``alert_rules``), checks them as this tool can without the hub (the sections'
own validation happens again on the hub, against its local config), and prints the compact JWS
to publish, retained, on ``hubs/{hub_id}/config``.
"""

from __future__ import annotations

import argparse
import sys
import tomllib
from pathlib import Path

import orjson

from gateway.fleet.identity import valid_hub_id
from gateway.settings import ConfigError


def _json_ready(value: object) -> object:
    """TOML dates become ISO strings, as the hub's config parser reads them."""
    if isinstance(value, dict):
        return {k: _json_ready(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_ready(v) for v in value]
    if hasattr(value, "isoformat"):
        return value.isoformat()  # type: ignore[union-attr]
    return value


def signed_config(sections_file: Path, key_file: Path, hub_id: str, version: int) -> str:
    # Imported here: every command builds the parser (add_commands), `run` included, and the
    # running hub has no use for the signing side and its key formats.
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from gateway.fleet.jws import sign
    from gateway.fleet.remote_config import REMOTE_SECTIONS

    if not valid_hub_id(hub_id):
        raise ConfigError(f"--hub: {hub_id!r} is not a hub id")
    if version < 1:
        raise ConfigError("--version: must be 1 or more, and above the version the hub runs")
    try:
        sections = tomllib.loads(sections_file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{sections_file}: cannot read it as TOML ({exc})") from None
    foreign = sorted(set(sections) - REMOTE_SECTIONS)
    if foreign:
        raise ConfigError(
            f"{sections_file}: only {', '.join(sorted(REMOTE_SECTIONS))} may change remotely;"
            f" remove {', '.join(foreign)}"
        )
    try:
        key = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise ConfigError(f"--key: cannot read an unencrypted PEM private key ({exc})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError("--key: the signing key must be Ed25519")
    payload = {"hub_id": hub_id, "version": version, "config": _json_ready(sections)}
    return sign(orjson.dumps(payload), key)


def cmd_sign_config(args: argparse.Namespace) -> int:
    sys.stdout.write(signed_config(args.sections, args.key, args.hub, args.version) + "\n")
    return 0


def add_commands(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    fleet = commands.add_parser("fleet", help="the care provider's fleet tools")
    actions = fleet.add_subparsers(dest="fleet_command", required=True, metavar="ACTION")
    sign_config = actions.add_parser(
        "sign-config", help="sign remote config sections for one hub (prints the JWS)"
    )
    sign_config.add_argument("sections", type=Path, help="TOML with the sections to change")
    sign_config.add_argument("--key", type=Path, required=True, help="Ed25519 private key (PEM)")
    sign_config.add_argument("--hub", required=True, help="the hub id it is for")
    sign_config.add_argument("--version", type=int, required=True, help="above the running one")
    sign_config.set_defaults(handler=cmd_sign_config)
