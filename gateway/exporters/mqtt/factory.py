"""Builds an ``mqtt`` destination: the analytics route (consent, rounding, allow-list, keyed
pseudonyms) with one message per event on the fleet broker."""

from __future__ import annotations

from gateway.exporters.analytics.factory import event_route
from gateway.exporters.base import Built, ExportContext
from gateway.exporters.mqtt.config import MqttDestination
from gateway.exporters.mqtt.sender import MqttSink


def build(destination: MqttDestination, context: ExportContext) -> Built:
    route, people = event_route(destination, context.settings)
    return Built(
        route,
        MqttSink(destination, context.hub_id),
        destination.retry_initial_s,
        destination.retry_max_s,
        forget=people.forget,
    )
