"""Builds a ``webhook`` destination: alerts only, signed with the destination's secret."""

from __future__ import annotations

from filters.chain import Item
from filters.consent import consent_gate
from gateway.exporters.base import Built, ExportContext, Route
from gateway.exporters.webhook.config import WebhookDestination
from gateway.exporters.webhook.sender import WebhookSink
from gateway.exporters.webhook.signing import SecretFormatError, parse_secret
from gateway.intake.alerts import AlertEvent
from gateway.intake.window_alert_event import WindowAlertEvent
from gateway.secrets import read_secret
from gateway.settings import ConfigError
from gateway.storage.outbox import PRIORITY_ALERT

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


def build(destination: WebhookDestination, context: ExportContext) -> Built:
    session = context.session
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
        steps=[consent_gate],
        allowed=ALERT_FIELDS,
        format=to_alert_body,
    )
    sink = WebhookSink(destination, session, key, context.hub_id)
    return Built(route, sink, destination.retry_initial_s, destination.retry_max_s)
