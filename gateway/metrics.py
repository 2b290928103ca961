"""Prometheus metrics for ``GET /metrics``, read from the gateway's own counters at scrape time.

Nothing on the hot path knows about Prometheus: a custom collector turns the pipeline's, the
delivery workers' and the BLE source's existing stats into metric families when scraped, and a
subscriber to the activity feed counts readings per kind, deliveries per destination and the
alert latency (from the moment the hub took in a reading to the moment its alert was delivered),
from one entry per intake or delivery batch.
Queue depth and dead letters come from the database, fetched by ``refresh`` just before a scrape.

No label carries personal data: kinds, destination names, device references (``device-1``) and
profiles only.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import repeat
from typing import TYPE_CHECKING

from prometheus_client import CONTENT_TYPE_LATEST, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from gateway import __version__
from gateway.activity import ActivityEntry
from gateway.storage import quarantine
from gateway.storage.outbox import Outbox

if TYPE_CHECKING:
    from gateway.hub import Hub

CONTENT_TYPE = CONTENT_TYPE_LATEST
ALERT_LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)
_REMEMBERED_READINGS = 4096


@dataclass(slots=True)
class _Snapshot:
    """What only the database knows, fetched (asynchronously) right before a scrape."""

    depth: dict[str, tuple[int, float | None]] = field(default_factory=dict)
    dead: dict[str, int] = field(default_factory=dict)
    quarantined: dict[str, int] = field(default_factory=dict)
    now: float = 0.0


class GatewayMetrics(Collector):
    """One registry per gateway (so tests can run several in one process)."""

    def __init__(self, hub: Hub) -> None:
        self._hub = hub
        self._snapshot = _Snapshot()
        self.received: Counter[str] = Counter()  # kind
        self.filtered: Counter[tuple[str, str]] = Counter()  # destination, outcome
        self.delivered: Counter[tuple[str, str, str, str]] = Counter()
        # Each recent reading's kind and intake time, for the deliveries' labels and the alert
        # latency: two generations of at most _REMEMBERED_READINGS each, the older dropped whole
        # (no step per reading to forget one).
        self._recent: dict[str, tuple[str, float]] = {}
        self._older: dict[str, tuple[str, float]] = {}
        # The API's closed connections and refused requests by reason (its RefusalReport's
        # totals), set by the API server when it starts.
        self.api_refusals: dict[str, int] = {}
        self.registry = CollectorRegistry(auto_describe=False)
        self.alert_latency = Histogram(
            "health_gateway_alert_latency_seconds",
            "Time from the hub taking in a reading to the delivery of the alert it raised.",
            ["destination"],
            buckets=ALERT_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.registry.register(self)
        hub.activity.subscribe(self.observe)

    # The activity feed --------------------------------------------------------------------

    def observe(self, entry: ActivityEntry) -> None:
        fields = entry.fields
        kind = entry.kind
        if kind == "stored":  # one intake batch: counted per kind and destination
            readings = [record.reading for record in fields["records"]]
            kinds = [reading.measurement.kind for reading in readings]
            self.received.update(kinds)
            if len(self._recent) >= _REMEMBERED_READINGS:
                self._older, self._recent = self._recent, {}
            taken = zip(kinds, repeat(float(fields["taken_at"])))
            self._recent.update(
                zip([reading.reading_id for reading in readings], taken, strict=True)
            )
            filtered = self.filtered
            for destination, count in fields["passed"].items():
                filtered[(destination, "passed")] += count
            for destination, count in fields["blocked"].items():
                filtered[(destination, "blocked")] += count
        elif kind == "filtered":  # one decision of an alert destination
            outcome = "passed" if fields.get("passed") else "blocked"
            self.filtered[(str(fields.get("destination")), outcome)] += 1
        elif kind == "delivered":  # one sent batch of one category and legal basis
            destination = str(fields.get("destination"))
            category = str(fields.get("category"))
            basis = str(fields.get("legal_basis"))
            recent, older = self._recent, self._older
            known = [recent.get(i) or older.get(i) for i in fields["reading_ids"]]
            kinds = Counter([k[0] if k else "unknown" for k in known])
            for reading_kind, count in kinds.items():
                self.delivered[(destination, category, reading_kind, basis)] += count
            if category == "alert":
                latency = self.alert_latency.labels(destination)
                for k in known:
                    if k is not None:
                        latency.observe(max(0.0, entry.at - k[1]))

    # Scrapes ------------------------------------------------------------------------------

    async def refresh(self, now: float) -> None:
        self._snapshot = _Snapshot(
            depth=await self._hub.on_database(Outbox.depth),
            dead=await self._hub.on_database(Outbox.dead_letter_counts),
            quarantined=await self._hub.on_database(quarantine.counts),
            now=now,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)

    def collect(self) -> Iterator[Metric]:
        snapshot = self._snapshot
        info = GaugeMetricFamily(
            "health_gateway_info", "The gateway's version.", labels=["version"]
        )
        info.add_metric([__version__], 1)
        yield info
        ready = GaugeMetricFamily("health_gateway_ready", "1 once the gateway is running.")
        ready.add_metric([], 1 if self._hub.is_ready() else 0)
        yield ready

        received = CounterMetricFamily(
            "health_gateway_readings_received",
            "Readings taken in from devices and bound to a person, per kind.",
            labels=["kind"],
        )
        for kind, count in sorted(self.received.items()):
            received.add_metric([kind], count)
        yield received

        filtered = CounterMetricFamily(
            "health_gateway_filter_decisions",
            "Per destination: items its filter chain let through (passed) or stopped (blocked).",
            labels=["destination", "outcome"],
        )
        for (destination, outcome), count in sorted(self.filtered.items()):
            filtered.add_metric([destination, outcome], count)
        yield filtered

        delivered = CounterMetricFamily(
            "health_gateway_items_delivered",
            "Items delivered, per destination, category (reading/alert), reading kind and legal"
            " basis.",
            labels=["destination", "category", "kind", "legal_basis"],
        )
        for labels, count in sorted(self.delivered.items()):
            delivered.add_metric(list(labels), count)
        yield delivered

        refused = CounterMetricFamily(
            "health_gateway_api_refused",
            "Connections the API closed (outside allowed_networks, over max_connections, request"
            " head too slow) and requests it refused (foreign Host), per reason.",
            labels=["reason"],
        )
        for reason, count in sorted(self.api_refusals.items()):
            refused.add_metric([reason], count)
        yield refused

        yield from self._pipeline_metrics()
        yield from self._worker_metrics(snapshot)
        yield from self._device_metrics()

    def _pipeline_metrics(self) -> Iterator[Metric]:
        intake = self._hub.pipeline_stats()
        dropped = CounterMetricFamily(
            "health_gateway_readings_dropped",
            "Readings not processed, per reason (minor, unbound, duplicate, transient).",
            labels=["reason"],
        )
        alerts = CounterMetricFamily("health_gateway_alerts_raised", "Alert events raised.")
        replaced = CounterMetricFamily(
            "health_gateway_device_time_replaced",
            "Readings whose device time was out of range or in the future: stamped at receipt.",
        )
        pending = GaugeMetricFamily(
            "health_gateway_pipeline_pending", "Readings received but not yet stored."
        )
        if intake is not None:
            stats, waiting = intake
            for reason, count in (
                ("minor", stats.dropped_minor),
                ("unbound", stats.dropped_unbound),
                ("duplicate", stats.duplicates),
                ("transient", stats.transient),
            ):
                dropped.add_metric([reason], count)
            alerts.add_metric([], stats.alerts)
            replaced.add_metric([], stats.device_time_replaced)
            pending.add_metric([], waiting)
        yield dropped
        yield alerts
        yield replaced
        yield pending

    def _worker_metrics(self, snapshot: _Snapshot) -> Iterator[Metric]:
        depth = GaugeMetricFamily(
            "health_gateway_queue_depth", "Items waiting in the outbox.", labels=["destination"]
        )
        oldest = GaugeMetricFamily(
            "health_gateway_queue_oldest_age_seconds",
            "Age of the oldest item waiting in the outbox (0 when empty).",
            labels=["destination"],
        )
        dead = GaugeMetricFamily(
            "health_gateway_dead_letters",
            "Items in the dead-letter table (refused permanently; see /api/dead-letters).",
            labels=["destination"],
        )
        dead_total = CounterMetricFamily(
            "health_gateway_dead_lettered",
            "Items moved to the dead-letter table since start.",
            labels=["destination"],
        )
        retries = CounterMetricFamily(
            "health_gateway_delivery_retries",
            "Delivery attempts that will be retried (connection errors, 429, 5xx...).",
            labels=["destination"],
        )
        withheld = CounterMetricFamily(
            "health_gateway_items_withheld",
            "Queued items not sent because consent was withdrawn or processing restricted.",
            labels=["destination"],
        )
        quarantined = GaugeMetricFamily(
            "health_gateway_quarantined",
            "Queued items that could not be opened (altered, or another key), kept aside.",
            labels=["destination"],
        )
        paused = GaugeMetricFamily(
            "health_gateway_destination_paused",
            "1 while the destination refuses our credentials (items stay queued).",
            labels=["destination"],
        )
        for destination in self._hub.delivery_stats():
            name, stats = destination.name, destination.stats
            count, first = snapshot.depth.get(name, (0, None))
            depth.add_metric([name], count)
            oldest.add_metric([name], 0.0 if first is None else max(0.0, snapshot.now - first))
            dead.add_metric([name], snapshot.dead.get(name, 0))
            dead_total.add_metric([name], stats.dead_letters)
            retries.add_metric([name], stats.retries)
            withheld.add_metric([name], stats.withheld)
            quarantined.add_metric([name], snapshot.quarantined.get(name, 0))
            paused.add_metric([name], int(stats.paused_reason is not None))
        yield from (depth, oldest, dead, dead_total, retries, withheld, quarantined, paused)

    def _device_metrics(self) -> Iterator[Metric]:
        statuses = self._hub.device_status()
        labels = ["device", "profile"]
        connected = GaugeMetricFamily(
            "health_gateway_device_connected", "1 while the device is connected.", labels=labels
        )
        readings = CounterMetricFamily(
            "health_gateway_device_values", "Values decoded from the device.", labels=labels
        )
        errors = CounterMetricFamily(
            "health_gateway_decode_errors",
            "Values from the device that did not decode (malformed or truncated).",
            labels=labels,
        )
        connects = CounterMetricFamily(
            "health_gateway_device_connects", "Connections made to the device.", labels=labels
        )
        battery = GaugeMetricFamily(
            "health_gateway_device_battery_percent",
            "Battery level the device last reported.",
            labels=labels,
        )
        held = CounterMetricFamily(
            "health_gateway_weighings_held",
            "Weighings of a shared scale held since start: they fit nobody or more than one"
            " person.",
            labels=labels,
        )
        waiting = GaugeMetricFamily(
            "health_gateway_weighings_waiting",
            "Held weighings kept until an operator assigns or discards them.",
            labels=labels,
        )
        keeper = self._hub.held_weighings()
        expired = CounterMetricFamily(
            "health_gateway_held_weighings_expired",
            "Held weighings nobody decided on, deleted by retention since start.",
        )
        expired.add_metric([], keeper.expired if keeper is not None else 0)
        for status in statuses:
            key = [status.ref, status.profile]
            held.add_metric(key, status.held_ambiguous)
            waiting.add_metric(key, keeper.waiting_on(status.address) if keeper else 0)
            connected.add_metric(key, 1 if status.connected else 0)
            readings.add_metric(key, status.readings)
            errors.add_metric(key, status.decode_errors)
            connects.add_metric(key, status.connects)
            level = getattr(status, "battery_level", None)
            if level is not None:
                battery.add_metric(key, level)
        yield from (connected, readings, errors, connects, battery, held, waiting, expired)
