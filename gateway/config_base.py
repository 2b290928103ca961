"""What every table of the configuration file shares: strict sections and the URL rules.

The destination kinds' config models (``gateway/exporters/<kind>/config.py``) and
``gateway/settings.py`` both build on it, so a kind's settings live with the kind without an
import cycle.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict


class ConfigSection(BaseModel):
    """One table of the configuration file: unknown keys are errors, values never change."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def is_loopback_host(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_url(url: str) -> str:
    # Never repeat the URL in a message: it may carry a password or a person's id in its path,
    # and config errors go to the journal.
    try:
        parts = urlsplit(url)
        hostname = parts.hostname
    except ValueError:
        raise ValueError("not a valid URL; write it as https://host/path") from None
    if parts.scheme not in ("https", "http") or not hostname:
        raise ValueError("not an http(s) URL; write it as https://host/path")
    if parts.username is not None or parts.password is not None:
        raise ValueError(
            "the URL holds a user name or password; remove it and put the credential in"
            " token_file (or token_env)"
        )
    if parts.scheme == "http" and not is_loopback_host(hostname):
        raise ValueError(
            f"plain http is only allowed to loopback addresses; use https:// for {hostname}"
        )
    return url
