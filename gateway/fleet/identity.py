"""The hub's id: named in the config, or generated once and kept in ``data_dir``.

The id names the hub to the care provider's fleet: in MQTT topics (``hubs/{hub_id}/...``), as the
user name its client certificate carries, in FHIR ``meta.source`` and in webhook and analytics
metadata. It names a home's device, not a person, and is random: by itself it reveals nothing.
"""

from __future__ import annotations

import re
import secrets
from pathlib import Path

from devices.state import write_bytes_atomically

HUB_ID_FILE = "hub-id"
# Safe in an MQTT topic level (no '/', '+', '#'), a certificate common name and a URL.
HUB_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class HubIdError(ValueError):
    """The kept hub id is unreadable or malformed."""


def valid_hub_id(value: str) -> bool:
    return bool(HUB_ID_PATTERN.fullmatch(value))


def load_or_create_hub_id(data_dir: Path) -> str:
    """The id kept in ``data_dir/hub-id``, created (atomically, 0600) on first use."""
    path = data_dir / HUB_ID_FILE
    try:
        kept = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        kept = ""
    except (OSError, UnicodeDecodeError) as exc:
        raise HubIdError(f"{path}: cannot read the hub id ({exc.__class__.__name__})") from exc
    if kept:
        if not valid_hub_id(kept):
            raise HubIdError(
                f"{path}: the kept hub id is malformed; delete the file to make a new one"
            )
        return kept
    hub_id = f"hub-{secrets.token_hex(8)}"
    write_bytes_atomically(path, (hub_id + "\n").encode("ascii"))
    return hub_id
