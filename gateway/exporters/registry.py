"""The one registry of destination kinds: each kind's factory, found by the config's ``kind``.

A new kind (MQTT, say) is a folder beside ``fhir/`` with its sender and factory, one line here,
and its config model; queueing, retries, consent at send time and auditing come with the
delivery worker, unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import aiohttp

from gateway.exporters.analytics import factory as analytics
from gateway.exporters.base import Built
from gateway.exporters.fhir import factory as fhir
from gateway.exporters.webhook import factory as webhook
from gateway.settings import Settings

# Kinds that take readings or alerts from intake. ``aggregate`` takes neither: its reports are
# built per window from the stored readings (``gateway.exporters.aggregate``).
# A factory gets its destination's config, the shared HTTP session, and the whole config (for
# paths it derives from it, such as a pseudonym key file under ``data_dir``).
KINDS: dict[str, Callable[[Any, aiohttp.ClientSession, Settings], Built]] = {
    "fhir": fhir.build,
    "webhook": webhook.build,
    "analytics": analytics.build,
}


def build_destinations(settings: Settings, session: aiohttp.ClientSession) -> list[Built]:
    """Routes and sinks for the destinations that take readings or alerts, in config order."""
    return [
        KINDS[destination.kind](destination, session, settings)
        for destination in settings.destinations
        if destination.kind in KINDS
    ]
