"""The gateway service: wires sources, pipeline, outbox and delivery workers, and owns their tasks.

Shutdown order is what makes "nothing in flight is lost" true: stop intake (BLE) first, ingest
what is already queued in memory into the durable outbox, then give the delivery workers a grace
period to send what is due, and leave the rest in the outbox for the next start.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import sqlite3
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import structlog

from devices.source import BleSource, DeviceStatus
from gateway import __version__
from gateway.activity import Activity
from gateway.api.server import ApiServer
from gateway.delivery.worker import DeliveryWorker
from gateway.errors import GatewayError
from gateway.exporters.aggregate import factory as aggregate
from gateway.exporters.aggregate.config import AggregateDestination
from gateway.exporters.aggregate.windows import AggregateWindows
from gateway.exporters.base import ExportContext
from gateway.exporters.registry import build_destinations
from gateway.fleet.identity import HubIdError, load_or_create_hub_id
from gateway.hub import DestinationStats
from gateway.intake.alerts import AlertEngine
from gateway.intake.device_targets import device_targets
from gateway.intake.events import age_on
from gateway.intake.held import HeldWeighings
from gateway.intake.pipeline import ADULT_AGE, Pipeline, PipelineStats
from gateway.logging import personal_strings
from gateway.privacy import audit, consent_guard
from gateway.privacy.audit_anchor import AuditAnchor, audit_is_keyed, last_anchor
from gateway.privacy.consent import ConsentRegistry, ConsentRule
from gateway.privacy.consent_sync import ConsentSync, build_consent_sync
from gateway.privacy.keys import load_or_create_key
from gateway.privacy.monitoring_notice import MonitoringNotices
from gateway.privacy.references import References
from gateway.privacy.restriction import Restrictions
from gateway.privacy.retention import Retention
from gateway.privacy.rights import Rights
from gateway.privacy.scrub import ErrorScrubber
from gateway.settings import Settings
from gateway.storage import meta, quarantine
from gateway.storage.alert_state import AlertStateStore
from gateway.storage.crypto import Sealer
from gateway.storage.database import (
    Database,
    Priority,
    Transaction,
    holds_sealed_data,
    secure_delete,
)
from gateway.storage.outbox import Outbox
from gateway.storage.space import DiskSpace, is_disk_full
from gateway.trouble import TroubleWatch

log = structlog.get_logger(__name__)
T = TypeVar("T")

# How often missing-readings rules look at the clock; their windows are days long.
MISSING_CHECK_S = 300.0


# In ``meta``: dead letters' error texts have been scrubbed (``gateway.privacy.scrub``).
DEAD_LETTERS_SCRUBBED = "dead_letters.scrubbed"


def _iso(epoch: float | None) -> str | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, UTC).isoformat()


# Young objects the cycle collector looks at before each pass (CPython's default is 700).
GC_YOUNG_THRESHOLD = 10_000
# How long a thread may hold the GIL while another waits for it (CPython's default is 5 ms).
GIL_SWITCH_INTERVAL_S = 0.0005


def tune_runtime() -> None:
    """Once started: keep the interpreter's own housekeeping off the hot path.

    Everything built at start (modules, settings, codecs, routes) lives as long as the process;
    ``gc.freeze`` takes it out of every later collection. A reading's own objects are freed by
    reference counting, so collecting the young generation after every 700 allocations (which,
    in a batch of parsed payloads, means every few readings) only re-walks live objects; a pass
    every 10,000 still bounds cyclic garbage to a few megabytes.

    The database thread gives up the GIL inside every SQLite call; with the default switch
    interval it then waits up to 5 ms for the event loop to hand it back, several times per
    job, and an alert's commit waits with it (alert p99 under load fell from 40-400 ms to about
    35 ms at 0.5 ms, with no measurable cost in throughput).
    """
    gc.collect()
    gc.freeze()
    _young, middle, old = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, middle, old)
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)


@dataclass(frozen=True, slots=True)
class Paths:
    data_dir: Path

    @property
    def database(self) -> Path:
        return self.data_dir / "gateway.db"

    @property
    def storage_key(self) -> Path:
        return self.data_dir / "keys" / "storage.key"

    @property
    def audit_key(self) -> Path:
        return self.data_dir / "keys" / "audit.key"

    @property
    def audit_anchor(self) -> Path:
        return self.data_dir / "audit.anchor"

    @property
    def reference_key(self) -> Path:
        return self.data_dir / "keys" / "reference.key"

    @property
    def simulation(self) -> Path:
        return self.data_dir / "simulation"


class Gateway:
    def __init__(self, settings: Settings, *, activity: Activity | None = None) -> None:
        self.settings = settings
        self.activity = activity or Activity()
        self.paths = Paths(settings.gateway.data_dir)
        self.consents = ConsentRegistry()
        self.restrictions = Restrictions()
        self.consent_rule = ConsentRule(self.consents, self.restrictions)
        self.scrubber = ErrorScrubber(personal_strings(settings))
        self.anchor = AuditAnchor(self.paths.audit_anchor)
        self.space = DiskSpace(self.paths.data_dir)
        self.rights: Rights | None = None
        self.database = Database(self.paths.database)
        self.workers: list[DeliveryWorker] = []
        self.pipeline: Pipeline | None = None
        self.consent_sync: ConsentSync | None = None
        self.source: BleSource | None = None
        self.ready = asyncio.Event()
        self.api: ApiServer | None = None
        self.trouble = TroubleWatch(settings)
        self._background: list[asyncio.Task[None]] = []
        self.hub_id = settings.gateway.hub_id or ""  # set at start when kept in data_dir

    async def run(self, stop: asyncio.Event) -> None:
        """Run until ``stop`` is set, then shut down without losing anything."""
        self.paths.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        if self.space.is_low() and self.space.release_reserve():
            # Room to open the database, deliver what waits and serve the page; intake waits.
            log.error(
                "disk_full",
                action="free space in gateway.data_dir; intake resumes by itself",
                at="start",
            )
        own_key = self.settings.gateway.outbox_key_file
        storage_key_path = own_key or self.paths.storage_key
        if not storage_key_path.exists() and holds_sealed_data(self.paths.database):
            # A new key could open none of it, and would hide that the old one was lost.
            raise GatewayError(
                f"{storage_key_path}: the storage key is missing but {self.paths.database}"
                " holds sealed readings; restore the key file from a backup (no new key is made)"
            )
        storage_key = load_or_create_key(
            storage_key_path,
            config_key="gateway.outbox_key_file" if own_key else "gateway.data_dir",
        )
        if not self.paths.audit_key.exists() and audit_is_keyed(self.paths.database):
            raise GatewayError(
                f"{self.paths.audit_key}: the audit key is missing but the audit log was kept"
                " with it; restore the key file from a backup (no new key is made)"
            )
        self.database.audit_key = load_or_create_key(self.paths.audit_key)
        self.database.audit_anchor = self.paths.audit_anchor
        reference_key = load_or_create_key(self.paths.reference_key)
        references = References(reference_key)
        sealer = Sealer(storage_key)
        outbox = Outbox(sealer)
        try:
            self.hub_id = self.settings.gateway.hub_id or load_or_create_hub_id(self.paths.data_dir)
        except HubIdError as exc:
            raise GatewayError(str(exc)) from None
        await self.database.open()
        try:
            try:
                await self.database.call(
                    lambda c: self._seed_consents(c, references, reference_key)
                )
            except sqlite3.OperationalError as exc:
                if not is_disk_full(exc):
                    raise
                raise GatewayError(
                    f"{self.paths.data_dir}: the disk is full, not even the consent registry"
                    " can be written; free space there and start again"
                ) from None
            self.rights = Rights(
                self.settings,
                self.database,
                references,
                sealer,
                self.consents,
                self.restrictions,
                outbox,
                anchor=self.anchor.record,
            )
            async with aiohttp.ClientSession() as session:
                await self._serve(stop, session, references, sealer, outbox)
        finally:
            await self.database.close()

    def _seed_consents(self, connection: Any, references: References, reference_key: bytes) -> None:
        """Load the registry; seed from the config only people the hub has never seen, and
        fail closed for anyone whose choices were lost (``consent_guard``)."""
        self.consents.load(connection)
        self.restrictions.load(connection)
        check = consent_guard.key_check(reference_key)
        anchor = last_anchor(self.paths.audit_anchor)
        why: str | None = None
        scrub_old = meta.get(connection, DEAD_LETTERS_SCRUBBED) is None
        if scrub_old:  # old texts are overwritten on disk, not only unlinked from the tree
            secure_delete(connection, on=True)
        with Transaction(connection):
            if scrub_old:
                # Dead letters kept before error texts were scrubbed: scrubbed once, now.
                Outbox.scrub_responses(connection, self.scrubber.scrub)
                meta.put(connection, DEAD_LETTERS_SCRUBBED, "1")
            audit.start_keying(connection)
            reason = consent_guard.lost_reason(connection, check, anchor)
            waiting = 0
            for subject in self.settings.subjects:
                ref = references.subject_ref(subject.id)
                if self.consents.has_record(ref):
                    continue
                if reason is not None or consent_guard.has_history(connection, ref):
                    self.consents.mark_lost(ref, consent_guard.care_only(subject.consent))
                    waiting += 1
                    continue
                self.consents.seed(connection, ref, subject.consent)
            if waiting:
                why = reason or "the consent records of people with history are gone"
                audit.append(
                    connection, "consent.registry_lost", {"reason": why, "people": waiting}
                )
            consent_guard.remember(connection, check, reason if waiting else None)
        if scrub_old:
            secure_delete(connection, on=False)  # deletes on the hot path stay cheap
        self.consents.lost_reason = why
        if why is not None:
            log.error(
                "consent_registry_lost",
                reason=why,
                people=waiting,
                action=consent_guard.OPERATOR_ACTION,
            )

    async def _serve(
        self,
        stop: asyncio.Event,
        session: aiohttp.ClientSession,
        references: References,
        sealer: Sealer,
        outbox: Outbox,
    ) -> None:
        built = build_destinations(
            self.settings, ExportContext(session, self.hub_id, self.settings)
        )
        assert self.rights is not None
        for destination in built:
            if destination.forget is not None:
                self.rights.on_erasure(destination.forget)
        for destination in built:
            worker = DeliveryWorker(
                destination.sink,
                self.database,
                outbox,
                self.activity,
                purpose=destination.route.purpose,
                may_send=self.consent_rule.may_send,
                retry_initial_s=destination.retry_initial_s,
                retry_max_s=destination.retry_max_s,
                priority=Priority.ALERT if destination.route.category == "alert" else Priority.BULK,
                scrub=self.scrubber.scrub,
                anchor=self.anchor.record,
            )
            destination.route.wake = worker.wake
            self.workers.append(worker)
        aggregators = self._aggregators(session, outbox, sealer)
        assert self.rights is not None  # made in run(), before _serve
        notices = MonitoringNotices(
            self.settings,
            self.database,
            outbox,
            [destination.route for destination in built],
            self.consents.purposes,
        )
        self.rights.listeners.append(notices.on_change)
        self.consent_sync = build_consent_sync(
            self.settings, self.rights, self.database, session, self.activity
        )
        alerts = self._alert_engine(references)
        alerts.restore(await self.database.call(AlertStateStore(sealer).load))
        self.rights.on_erased.append(alerts.forget)
        targets = device_targets(self.settings)
        self.pipeline = Pipeline(
            self.settings,
            self.database,
            outbox,
            self.consents,
            references,
            sealer,
            alerts,
            [destination.route for destination in built],
            self.activity,
            is_restricted=self.restrictions.is_restricted,
            space=self.space,
            targets=targets,
        )
        await self.pipeline.held.recount()
        for destination, worker in zip(built, self.workers, strict=False):
            if destination.route.category == "reading":
                worker.build = self.pipeline.builder(destination.route.name)
        self.source = BleSource(
            targets,
            self.pipeline.submit,
            state_dir=self.paths.data_dir / "devices",
        )
        if self.settings.gateway.api.enabled:
            self.api = ApiServer(self, references, sealer)
        async with self._radio():
            if self.api is not None:  # the local API and page, once the workers exist
                await self.api.start()
            pipeline_task = asyncio.create_task(self.pipeline.run(), name="pipeline")
            worker_tasks = [
                asyncio.create_task(worker.run(), name=f"deliver:{worker.sink.name}")
                for worker in self.workers
            ]
            source_task = asyncio.create_task(self.source.run(), name="ble-source")
            self._background = [
                asyncio.create_task(
                    Retention(
                        self.settings.gateway.retention_days,
                        self.database,
                        self.pipeline.held,
                    ).run(),
                    name="retention",
                ),
                *(
                    asyncio.create_task(a.run(), name=f"aggregate:{a.destination.name}")
                    for a in aggregators
                ),
                asyncio.create_task(self.trouble.run(), name="bluetooth-watch"),
                *(
                    [asyncio.create_task(self.consent_sync.run(stop), name="consent-sync")]
                    if self.consent_sync is not None
                    else []
                ),
            ]
            if alerts.windows.watched_kinds:
                self._background.append(
                    asyncio.create_task(self._watch_missing(), name="missing-readings")
                )
            log.info(
                "gateway_started",
                devices=len(self.settings.devices),
                destinations=len(self.workers),
                simulated=self.settings.uses_simulated_radio,
            )
            if not self.space.is_low():
                self.space.keep_reserve()  # room to start on, should the disk fill later
            tune_runtime()
            self.ready.set()
            stopped = asyncio.create_task(stop.wait(), name="stop-signal")
            await asyncio.wait(
                [stopped, pipeline_task, source_task, *worker_tasks],
                return_when=asyncio.FIRST_COMPLETED,
            )
            await self._shutdown(stopped, source_task, pipeline_task, worker_tasks)

    # The hub's interface for the local API and the metrics (gateway.hub.Hub) ---------------

    def is_ready(self) -> bool:
        return self.ready.is_set()

    def subject_rights(self) -> Rights:
        assert self.rights is not None, "the API starts after the gateway has its rights service"
        return self.rights

    def consent_purposes(self, subject_ref: str) -> dict[str, bool]:
        return self.consents.purposes(subject_ref)

    def is_restricted(self, subject_ref: str) -> bool:
        return self.restrictions.is_restricted(subject_ref)

    def device_status(self) -> list[DeviceStatus]:
        return self.source.status() if self.source is not None else []

    def held_weighings(self) -> HeldWeighings | None:
        return None if self.pipeline is None else self.pipeline.held

    def pipeline_stats(self) -> tuple[PipelineStats, int] | None:
        return None if self.pipeline is None else (self.pipeline.stats, self.pipeline.pending)

    def delivery_stats(self) -> list[DestinationStats]:
        return [DestinationStats(w.sink.name, w.purpose, w.stats) for w in self.workers]

    async def on_database(self, function: Callable[[sqlite3.Connection], T]) -> T:
        return await self.database.call(function, priority=Priority.INTAKE)

    def wake_delivery(self) -> None:
        for worker in self.workers:
            worker.wake()

    def _alert_engine(self, references: References) -> AlertEngine:
        # Missing readings are watched only for adults: a minor's data is never processed, and
        # "no reading from this child" would be.
        today = datetime.now(UTC).date()
        adults = {s.id for s in self.settings.subjects if age_on(s.birth_date, today) >= ADULT_AGE}
        watched: dict[str, set[str]] = {}
        for device in self.settings.devices:
            users = [device.subject] if device.subject else list(device.user_subjects.values())
            for subject_id in users:
                if subject_id in adults:
                    watched.setdefault(references.subject_ref(subject_id), set()).add(
                        device.profile  # a profile's readings are of the kind of its name
                    )
        return AlertEngine(
            self.settings.alert_rules,
            {references.subject_ref(s.id): s.alert_rules for s in self.settings.subjects},
            subjects={references.subject_ref(s.id): s.id for s in self.settings.subjects},
            watched_kinds=watched,
            history_limit_s=self.settings.gateway.retention_days * 86_400.0,
        )

    async def _watch_missing(self) -> None:
        """Missing-readings rules judged against the clock (nothing else would wake them)."""
        assert self.pipeline is not None
        while True:
            await asyncio.sleep(MISSING_CHECK_S)
            try:
                await self.pipeline.check_missing(datetime.now(UTC))
            except Exception as exc:  # a failed check is retried at the next one
                log.error("missing_readings_check_failed", error=type(exc).__name__)

    async def status(self) -> dict[str, Any]:
        """A snapshot for operators: devices, per-destination queue and health, pipeline counts."""
        depth = await self.database.call(Outbox.depth)
        dead = await self.database.call(Outbox.dead_letter_counts)
        quarantined = await self.database.call(quarantine.counts)
        destinations = []
        kinds = {d.name: d.kind for d in self.settings.destinations}
        for worker in self.workers:
            name = worker.sink.name
            queued, oldest = depth.get(name, (0, None))
            stats = worker.stats
            destinations.append(
                {
                    "name": name,
                    "kind": kinds[name],
                    "purpose": worker.purpose,
                    "queued": queued,
                    "oldest_queued_at": _iso(oldest),
                    "dead_letters": dead.get(name, 0),
                    "quarantined": quarantined.get(name, 0),
                    "state": stats.state,
                    "paused_reason": stats.paused_reason,
                    "delivered": stats.delivered,
                    "retries": stats.retries,
                    "withheld": stats.withheld,
                    "last_error": stats.last_error,
                    "last_error_at": _iso(stats.last_error_at),
                    "last_delivery_at": _iso(stats.last_delivery_at),
                    "last_success_at": _iso(stats.last_delivery_at),
                }
            )
        held = self.held_weighings()
        devices = [
            {
                **asdict(device),
                "last_seen": device.last_seen.isoformat() if device.last_seen else None,
                # Weighings waiting for an operator's decision (kept across restarts).
                "held_ambiguous": held.waiting_on(device.address) if held else 0,
            }
            for device in self.device_status()
        ]
        return {
            "version": __version__,
            "ready": self.ready.is_set(),
            "simulated_radio": self.settings.uses_simulated_radio,
            "devices": devices,
            "destinations": destinations,
            "pipeline": asdict(self.pipeline.stats) if self.pipeline else {},
            "consent": self._consent_status(),
            "consent_sync": self.consent_sync.status() if self.consent_sync else None,
            "intake": {
                "disk_full": bool(self.pipeline and self.pipeline.disk_full),
                "readings_held": self.pipeline.pending if self.pipeline else 0,
                "free_bytes": self.space.free_bytes(),
            },
        }

    def _consent_status(self) -> dict[str, Any]:
        waiting = self.consents.waiting
        return {
            "registry_lost": self.consents.lost_reason if waiting else None,
            "people_waiting": waiting,
            "action": consent_guard.OPERATOR_ACTION if waiting else None,
        }

    @contextlib.asynccontextmanager
    async def _radio(self) -> AsyncIterator[None]:
        if not self.settings.uses_simulated_radio:
            yield
            return
        # Imported here: a hub with real devices never starts the simulator.
        from gateway.simulated_radio import simulated_radio

        async with simulated_radio(self.settings, self.paths.simulation):
            yield

    def _aggregators(
        self, session: aiohttp.ClientSession, outbox: Outbox, sealer: Sealer
    ) -> list[AggregateWindows]:
        aggregators = []
        for destination in self.settings.destinations:
            if not isinstance(destination, AggregateDestination):
                continue
            worker = DeliveryWorker(
                aggregate.build_sink(destination, session),
                self.database,
                outbox,
                self.activity,
                purpose=destination.purpose,
                may_send=self.consent_rule.may_send,
                retry_initial_s=destination.retry_initial_s,
                retry_max_s=destination.retry_max_s,
                scrub=self.scrubber.scrub,
                anchor=self.anchor.record,
            )
            self.workers.append(worker)
            aggregators.append(
                AggregateWindows(
                    destination, self.database, outbox, sealer, self.consent_rule, worker.wake
                )
            )
        return aggregators

    async def _shutdown(
        self,
        stopped: asyncio.Task[Any],
        source_task: asyncio.Task[None],
        pipeline_task: asyncio.Task[None],
        worker_tasks: list[asyncio.Task[None]],
    ) -> None:
        log.info("gateway_stopping")
        if self.api is not None:  # no new requests (and no rights changes) while stopping
            await self.api.stop()
        for task in self._background:
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        stopped.cancel()
        source_task.cancel()
        await asyncio.gather(source_task, return_exceptions=True)
        assert self.pipeline is not None
        pipeline_task.cancel()
        await asyncio.gather(pipeline_task, return_exceptions=True)
        await self.pipeline.flush()
        for worker in self.workers:
            worker.drain()
        grace = self.settings.gateway.shutdown_grace_s
        if worker_tasks:
            _done, pending = await asyncio.wait(worker_tasks, timeout=grace)
            for task in pending:
                task.cancel()
            await asyncio.gather(*worker_tasks, return_exceptions=True)
        failed = [
            task
            for task in (source_task, pipeline_task, *worker_tasks)
            if task.done() and not task.cancelled() and task.exception() is not None
        ]
        for task in failed:
            log.error("task_failed", task=task.get_name(), error=repr(task.exception()))
        log.info("gateway_stopped", pid=os.getpid())
        if failed:
            raise GatewayError(f"{failed[0].get_name()} failed: {failed[0].exception()}")
