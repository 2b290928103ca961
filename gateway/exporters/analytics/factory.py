"""Builds an ``analytics`` destination: consent, rounding, allow-list, keyed pseudonyms."""

from __future__ import annotations

from filters.chain import Item
from filters.consent import consent_gate
from filters.generalise import round_values
from filters.minimise import allow_fields
from filters.pseudonymise import PseudonymCache, pseudonymise
from gateway.exporters.analytics.config import AnalyticsDestination
from gateway.exporters.analytics.sender import JsonBatchSink
from gateway.exporters.base import Built, ExportContext, Route
from gateway.exporters.config import PSEUDONYMISED_FIELDS
from gateway.exporters.mqtt.config import MqttDestination
from gateway.privacy.pseudonym_keys import load_key_ring
from gateway.secrets import read_secret
from gateway.settings import Settings
from gateway.storage.outbox import PRIORITY_OTHER


def event_route(
    destination: AnalyticsDestination | MqttDestination, settings: Settings
) -> tuple[Route, PseudonymCache]:
    """The route of a pseudonymous event stream (analytics, and the MQTT fleet uplink): consent,
    rounding, the allow-list, keyed pseudonyms, and a per-destination event id."""
    prefix = f"destinations.{destination.name}"
    keys = load_key_ring(settings.pseudonym_key_path(destination), f"{prefix}.pseudonym_key_file")
    people = PseudonymCache(keys)  # people's identifiers: one HMAC each, not one per reading
    fields = tuple(destination.fields)
    identifiers = [field for field in PSEUDONYMISED_FIELDS if field in fields]
    name = destination.name

    def to_event(item: Item) -> dict[str, object]:
        # A per-destination id for de-duplication; unlinkable to other destinations' ids.
        return {"event_id": keys.pseudonym(name, "event", item.reading_id), **item.payload}

    route = Route(
        name=name,
        purpose=destination.purpose,
        category="reading",
        priority=PRIORITY_OTHER,
        steps=[
            consent_gate,
            round_values(destination.round),
            allow_fields(fields),
            pseudonymise(people, identifiers),
        ],
        allowed=frozenset(fields) | {"event_id"},
        format=to_event,
        forbid_identifiers=True,
        payload_is_event=True,
    )
    return route, people


def build(destination: AnalyticsDestination, context: ExportContext) -> Built:
    session = context.session
    token = read_secret(
        f"destinations.{destination.name}.token",
        destination.token_file,
        destination.token_env,
        required=False,
    )
    route, people = event_route(destination, context.settings)
    sink = JsonBatchSink(
        destination,
        session,
        token,
        key="events",
        max_batch=destination.batch_max_items,
        max_bytes=destination.batch_max_bytes,
        linger_s=destination.linger_s,
        hub_id=context.hub_id,
    )
    return Built(
        route, sink, destination.retry_initial_s, destination.retry_max_s, forget=people.forget
    )
