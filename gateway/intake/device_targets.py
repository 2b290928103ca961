"""``[[devices]]`` -> the ``DeviceTarget``s the BLE source reads, secrets read from their files.

A User Data Service scale's consent codes are secrets: each lives in its own file
(``consent_code_file``), readable by the gateway's user only (0600), and never in the config
text, a log line or an error message.
"""

from __future__ import annotations

import stat
from pathlib import Path

from devices.source import DeviceTarget, UdsUser
from gateway.settings import ConfigError, DeviceUserSettings, Settings


def device_targets(settings: Settings) -> list[DeviceTarget]:
    """One target per configured device; ConfigError naming the key for an unusable secret."""
    targets = []
    for index, device in enumerate(settings.devices, start=1):
        uds_users = tuple(
            UdsUser(
                user_index,
                read_consent_code(user.consent_code_file, _key(index, user_index)),
                birth_date=settings.subject(user.subject).birth_date,
                sex=settings.subject(user.subject).sex,
                height_cm=user.height_cm,
            )
            for user_index, user in sorted((device.users or {}).items())
            if isinstance(user, DeviceUserSettings) and user.consent_code_file is not None
        )
        targets.append(
            DeviceTarget(
                ref=f"device-{index}",
                address=device.address,
                profile=device.profile,
                model=device.decoder_model,
                people=device.people_by_weight(),
                uds_users=uds_users,
            )
        )
    return targets


def _key(device_number: int, user_index: int) -> str:
    return f"devices[{device_number - 1}].users.{user_index}.consent_code_file"


def read_consent_code(path: Path, key: str) -> int:
    """The 4-digit consent code in ``path`` (0..9999); the file must be private (0600)."""
    try:
        mode = path.stat().st_mode
        text = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        raise ConfigError(
            f"{key}: {path} does not exist; put the scale's consent code in it"
        ) from None
    except OSError as exc:
        raise ConfigError(f"{key}: cannot read {path} ({exc.strerror})") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(
            f"{key}: {path} is readable by other users; it holds a secret: chmod 600 {path}"
        )
    if not text.isdigit() or not 0 <= int(text) <= 9999:
        raise ConfigError(f"{key}: {path} must hold the consent code, a number 0..9999")
    return int(text)
