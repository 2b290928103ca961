"""Builds a ``fhir`` destination: its route (consent, allow-list, FHIR entries) and its sender."""

from __future__ import annotations

import orjson

from filters.chain import Item
from filters.consent import consent_gate
from filters.minimise import allow_fields
from gateway.exporters.base import Built, ExportContext, Route
from gateway.exporters.fhir.config import FhirDestination
from gateway.exporters.fhir.payload import hub_source, reading_entries_json
from gateway.exporters.fhir.sender import FhirSink
from gateway.secrets import read_secret
from gateway.storage.outbox import PRIORITY_CARE, PRIORITY_OTHER

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


def build(destination: FhirDestination, context: ExportContext) -> Built:
    session = context.session
    token = read_secret(
        f"destinations.{destination.name}.token",
        destination.token_file,
        destination.token_env,
        required=False,
    )
    system = destination.identifier_system
    source = hub_source(context.hub_id) if context.hub_id else None

    def to_fhir(item: Item) -> dict[str, object]:
        # Written as JSON at once (a fragment orjson copies as it is): the payload is only ever
        # serialised, into the queue's bytes, so its dicts would be built for nothing.
        return {"entries": orjson.Fragment(reading_entries_json(item.payload, system, source))}

    route = Route(
        name=destination.name,
        purpose=destination.purpose,
        category="reading",
        priority=PRIORITY_CARE if destination.purpose == "care" else PRIORITY_OTHER,
        steps=[consent_gate, allow_fields(FHIR_FIELDS)],
        allowed=FHIR_FIELDS,
        format=to_fhir,
    )
    sink = FhirSink(destination, session, token)
    return Built(route, sink, destination.retry_initial_s, destination.retry_max_s)
