"""The ``mqtt`` destination's settings: the fleet uplink (docs/fleet.md)."""

from __future__ import annotations

import string
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from gateway.config_base import is_loopback_host
from gateway.exporters.config import EventStreamSettings

MQTT_TOPIC_PLACEHOLDERS = frozenset({"hub_id", "kind"})


class MqttDestination(EventStreamSettings):
    """The fleet uplink: one MQTT 5 message per event, QoS 1, delivered when the broker's PUBACK
    says so (docs/fleet.md). Same purpose, allow-list and pseudonym rules as analytics."""

    kind: Literal["mqtt"]
    topic: str = "hubs/{hub_id}/readings/{kind}"
    ca_file: Path | None = None  # default: the system's trust store
    client_cert_file: Path | None = None
    client_key_file: Path | None = None
    client_id: str | None = None  # default: the hub id
    message_expiry_s: int = Field(default=7 * 86_400, ge=1)
    session_expiry_s: int = Field(default=7 * 86_400, ge=0)
    batch_max_items: int = Field(default=100, ge=1, le=1000)
    linger_s: float = Field(default=0.2, ge=0)

    @field_validator("url")
    @classmethod
    def _url_is_safe(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("mqtts", "mqtt") or not parts.hostname:
            raise ValueError(f"{value!r} is not an MQTT URL; write it as mqtts://host:8883")
        if parts.scheme == "mqtt" and not is_loopback_host(parts.hostname):
            raise ValueError(
                "plain mqtt is only allowed to loopback addresses; "
                f"use mqtts:// for {parts.hostname}"
            )
        if parts.username or parts.password or parts.path not in ("", "/"):
            raise ValueError(
                "an MQTT URL is mqtts://host:port; the hub authenticates by certificate"
            )
        return value

    @field_validator("topic")
    @classmethod
    def _topic_template(cls, value: str) -> str:
        names = {name for _text, name, _spec, _conv in string.Formatter().parse(value) if name}
        unknown = sorted(names - MQTT_TOPIC_PLACEHOLDERS)
        if unknown:
            raise ValueError(
                f"unknown placeholder {{{unknown[0]}}}; a topic may use {{hub_id}} and {{kind}}"
            )
        if "+" in value or "#" in value or not value or value.startswith("/"):
            raise ValueError("a topic to publish to has no wildcards (+, #) and no leading /")
        return value

    @model_validator(mode="after")
    def _tls_files_together(self) -> MqttDestination:
        if (self.client_cert_file is None) != (self.client_key_file is None):
            raise ValueError("client_cert_file and client_key_file go together")
        if "{kind}" in self.topic and "kind" not in self.fields:
            raise ValueError("the topic names {kind}, so fields must include 'kind'")
        return self
