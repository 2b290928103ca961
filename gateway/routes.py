"""Builds each configured destination: its filter chain, payload format, and sink."""

from __future__ import annotations

from dataclasses import dataclass

import aiohttp

from filters.chain import Item
from filters.consent import not_restricted, require_consent
from filters.generalise import round_values
from filters.minimise import allow_fields
from filters.pseudonymise import pseudonymise
from gateway.alerts import AlertEvent
from gateway.fhir import reading_entries
from gateway.outbox import PRIORITY_ALERT, PRIORITY_CARE, PRIORITY_OTHER
from gateway.pipeline import Route
from gateway.pseudonym_keys import load_key_ring
from gateway.secrets import read_secret
from gateway.settings import (
    PSEUDONYMISED_FIELDS,
    AnalyticsDestination,
    ConfigError,
    FhirDestination,
    Settings,
    WebhookDestination,
)
from gateway.sinks import Sink
from gateway.sinks.analytics import JsonBatchSink
from gateway.sinks.fhir import FhirSink
from gateway.sinks.webhook import WebhookSink
from gateway.webhooks import SecretFormatError, parse_secret
from gateway.window_alert_event import WindowAlertEvent

# What the care platform needs to file an Observation, and nothing else from the event.
FHIR_FIELDS = frozenset(
    {
        "reading_id",
        "kind",
        "values",
        "measured_at",
        "received_at",
        "subject",
        "device_address",
        "device_clock_offset_s",
    }
)
ALERT_FIELDS = frozenset(
    {
        "alert_id",
        "rule",
        "severity",
        "subject",
        "kind",
        "value",
        "threshold",
        "exceeded_by",
        "measured_at",
        "received_at",
        "reading_id",
        # window and missing-readings rules: what was seen, over which window, from which readings
        "observed",
        "window",
        "readings",
    }
)


@dataclass(slots=True)
class Built:
    route: Route
    sink: Sink
    retry_initial_s: float
    retry_max_s: float


def _fhir(destination: FhirDestination, session: aiohttp.ClientSession) -> Built:
    token = read_secret(
        f"destinations.{destination.name}.token",
        destination.token_file,
        destination.token_env,
        required=False,
    )
    system = destination.identifier_system

    def to_fhir(item: Item) -> dict[str, object]:
        return {"entries": reading_entries(item.payload, system)}

    route = Route(
        name=destination.name,
        purpose=destination.purpose,
        category="reading",
        priority=PRIORITY_CARE if destination.purpose == "care" else PRIORITY_OTHER,
        steps=[require_consent, not_restricted, allow_fields(FHIR_FIELDS)],
        allowed=FHIR_FIELDS,
        format=to_fhir,
    )
    sink = FhirSink(destination, session, token)
    return Built(route, sink, destination.retry_initial_s, destination.retry_max_s)


def _webhook(destination: WebhookDestination, session: aiohttp.ClientSession) -> Built:
    key_name = f"destinations.{destination.name}.secret"
    secret = read_secret(key_name, destination.secret_file, destination.secret_env)
    assert secret is not None
    try:
        key = parse_secret(secret)
    except SecretFormatError as exc:
        raise ConfigError(f"{key_name}: {exc}") from None
    system = destination.identifier_system

    def to_alert_body(item: Item) -> dict[str, object]:
        alert: AlertEvent | WindowAlertEvent = item.payload["alert"]
        body = alert.body({"system": system, "value": item.payload["subject_id"]})
        item.fields = tuple(sorted(body["data"]))
        return body

    route = Route(
        name=destination.name,
        purpose=destination.purpose,
        category="alert",
        priority=PRIORITY_ALERT,
        steps=[require_consent, not_restricted],
        allowed=ALERT_FIELDS,
        format=to_alert_body,
    )
    sink = WebhookSink(destination, session, key)
    return Built(route, sink, destination.retry_initial_s, destination.retry_max_s)


def _analytics(destination: AnalyticsDestination, session: aiohttp.ClientSession) -> Built:
    prefix = f"destinations.{destination.name}"
    token = read_secret(
        f"{prefix}.token", destination.token_file, destination.token_env, required=False
    )
    keys = load_key_ring(destination.pseudonym_key_file, f"{prefix}.pseudonym_key_file")
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
            require_consent,
            not_restricted,
            round_values(destination.round),
            allow_fields(fields),
            pseudonymise(keys, identifiers),
        ],
        allowed=frozenset(fields) | {"event_id"},
        format=to_event,
        forbid_identifiers=True,
        payload_is_event=True,
    )
    sink = JsonBatchSink(
        destination,
        session,
        token,
        key="events",
        max_batch=destination.batch_max_items,
        max_bytes=destination.batch_max_bytes,
        linger_s=destination.linger_s,
    )
    return Built(route, sink, destination.retry_initial_s, destination.retry_max_s)


def build_destinations(settings: Settings, session: aiohttp.ClientSession) -> list[Built]:
    """Routes and sinks for the destinations that take readings or alerts.

    Aggregate destinations take neither: their windows are built by ``gateway.aggregates``.
    """
    built = []
    for destination in settings.destinations:
        if isinstance(destination, FhirDestination):
            built.append(_fhir(destination, session))
        elif isinstance(destination, WebhookDestination):
            built.append(_webhook(destination, session))
        elif isinstance(destination, AnalyticsDestination):
            built.append(_analytics(destination, session))
    return built
