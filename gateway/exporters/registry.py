"""The one registry of destination kinds: each kind's factory, found by the config's ``kind``.

A new kind (MQTT, say) is a folder beside ``fhir/`` with its settings (``config.py``), sender and
factory, one line here and one in ``gateway.settings.Destination``; queueing, retries, consent at
send time and auditing come with the delivery worker, unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gateway.exporters.analytics import factory as analytics
from gateway.exporters.base import Built, ExportContext
from gateway.exporters.fhir import factory as fhir
from gateway.exporters.webhook import factory as webhook
from gateway.settings import Settings


def _mqtt_build(destination: Any, context: ExportContext) -> Built:
    # Imported when a hub has an MQTT uplink: paho-mqtt and its session cost a few MB of memory
    # that every other hub would carry for nothing.
    from gateway.exporters.mqtt import factory

    return factory.build(destination, context)


# Kinds that take readings or alerts from intake. ``aggregate`` takes neither: its reports are
# built per window from the stored readings (``gateway.exporters.aggregate``).
KINDS: dict[str, Callable[[Any, ExportContext], Built]] = {
    "fhir": fhir.build,
    "webhook": webhook.build,
    "analytics": analytics.build,
    "mqtt": _mqtt_build,
}


def build_destinations(settings: Settings, context: ExportContext) -> list[Built]:
    """Routes and sinks for the destinations that take readings or alerts, in config order."""
    return [
        KINDS[destination.kind](destination, context)
        for destination in settings.destinations
        if destination.kind in KINDS
    ]
