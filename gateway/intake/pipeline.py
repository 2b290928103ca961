"""The pipeline: a decoded reading is bound to its person, stored, and fanned out per destination.

Readings arrive from the BLE callback into a queue; the pipeline takes whatever has arrived
(up to a batch) and handles it in one database transaction, so a burst costs one commit. A
reading is acknowledged (stored and queued for every destination whose chain lets it through)
before anything is sent; delivery workers take it from there.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, NamedTuple

import orjson
import structlog

from devices.source import DeviceTarget, Received
from filters.chain import ChainContext, Item
from filters.minimise import FieldLeak, enforce_allow_list
from gateway.activity import Activity, Blocked, IntakeRecord
from gateway.exporters.base import Route
from gateway.intake.acknowledgements import Acknowledgements
from gateway.intake.alerts import AlertEngine, AlertEvent
from gateway.intake.device_time import stamped_at_receipt, unusable_device_time
from gateway.intake.events import BoundReading, age_on, reading_event
from gateway.intake.held import HeldWeighings
from gateway.intake.window_alert_event import WindowAlertEvent
from gateway.privacy import audit
from gateway.privacy.consent import ConsentRegistry
from gateway.privacy.references import References
from gateway.settings import Settings, SubjectSettings
from gateway.storage import readings
from gateway.storage.alert_state import AlertStateStore
from gateway.storage.crypto import Sealer
from gateway.storage.database import Database, Priority, Transaction, reading_aad
from gateway.storage.outbox import PRIORITY_CARE, NewItem, Outbox, QueuedItem
from gateway.storage.space import DiskFull, DiskSpace, is_disk_full

log = structlog.get_logger(__name__)

ADULT_AGE = 18
# Values a device sends along the way, not measurements: the cuff pressure during inflation,
# and glucose context records (joined to their measurement by the source).
TRANSIENT_KINDS = frozenset({"cuff_pressure", "glucose_context"})
# Readings taken from the queue per transaction: large enough that a burst costs few commits,
# small enough that an alert never waits behind more than a few ms of other readings' work.
MAX_BATCH = 32
# Readings held in memory while the disk is full; beyond this intake refuses (unconfirmed).
MAX_HELD_WHILE_FULL = 10_000
# How often intake looks for space again while the disk is full.
DISK_RETRY_S = 1.0


# A route compiled (``Pipeline._compile``): (reading_id, subject_ref, kind, category, payload,
# vital interest, where to note a refusal with its key, or None) -> (the item as the chain left
# it, payload), or None when it may not go.
Decide = Callable[
    [str, str, str, str, dict[str, Any], bool, "tuple[list[Blocked], str] | None"],
    "tuple[Item, dict[str, Any]] | None",
]


@dataclass(slots=True)
class PipelineStats:
    readings: int = 0
    duplicates: int = 0
    dropped_minor: int = 0
    dropped_unbound: int = 0
    transient: int = 0
    identifier_blocked: int = 0
    refused_full: dict[str, int] = field(default_factory=dict)
    fanout_failures: int = 0
    device_time_replaced: int = 0  # device stamps out of range or in the future: receipt time
    alerts: int = 0
    urgent: int = 0  # readings taken ahead of the queue because they may cross an alert limit
    refused_disk_full: int = 0  # not taken in: the disk was full and held readings at the cap
    queued: dict[str, int] = field(default_factory=dict)


AnyAlert = AlertEvent | WindowAlertEvent


class _Origin(NamedTuple):
    """What a queued item is about: a reading, or an alert raised without one (missing readings)."""

    reading_id: str
    subject_ref: str
    kind: str


class Pipeline:
    def __init__(
        self,
        settings: Settings,
        database: Database,
        outbox: Outbox,
        consents: ConsentRegistry,
        references: References,
        sealer: Sealer,
        alerts: AlertEngine,
        routes: list[Route],
        activity: Activity,
        is_restricted: Callable[[str], bool] = lambda _ref: False,
        space: DiskSpace | None = None,
        targets: list[DeviceTarget] | None = None,
    ) -> None:
        self.stats = PipelineStats()
        self._space = space
        self._acks = Acknowledgements()
        self.disk_full = False
        self._space_check = asyncio.Event()  # set to look for space again at once
        self._database = database
        self._outbox = outbox
        self._consents = consents
        self._references = references
        self._sealer = sealer
        self._alerts = alerts
        self._alert_state = AlertStateStore(sealer)
        self._routes = routes
        self._activity = activity
        self._is_restricted = is_restricted
        # Readings that may cross an alert limit wait in their own lane and are taken first,
        # so an alert does not queue behind a backlog of ordinary readings.
        self._urgent: deque[Received] = deque()
        self._ordinary: deque[Received] = deque()
        self._arrived = asyncio.Event()
        self._in_flight: list[Received] = []
        self._subjects = {subject.id: subject for subject in settings.subjects}
        self._devices = {device.address: device for device in settings.devices}
        self._identifier_guard = identifier_pattern(settings)
        self._capacity = OutboxCapacity(settings.gateway.max_queued_items)
        self._contexts = {
            route.name: ChainContext(route.name, route.purpose, consents.is_granted, is_restricted)
            for route in routes
        }
        self._decide = {route.name: self._compile(route) for route in routes}
        # A shared scale's weighing that fits no one person is kept aside, not bound to anyone;
        # an operator's assignment comes back through ``submit`` with the person's user index.
        self.held = HeldWeighings(
            database, sealer, references, targets or [], self._devices, self.submit, activity
        )

    def submit(self, received: Received) -> asyncio.Future[bool]:
        """Called from the BLE notification callback; never blocks. The future is set True
        once the reading is on disk (``acknowledgements``), False if it never will be."""
        stored = self._acks.expect(received)
        if self.disk_full and self.pending >= MAX_HELD_WHILE_FULL:
            # Memory is not a disk: beyond this the device keeps its readings (unconfirmed).
            self.stats.refused_disk_full += 1
            self._acks.refuse(received)
            return stored
        if self._alerts.may_breach(received.measurement):
            self.stats.urgent += 1
            self._urgent.append(received)
        else:
            self._ordinary.append(received)
        self._arrived.set()
        return stored

    @property
    def pending(self) -> int:
        return len(self._urgent) + len(self._ordinary)

    def _next_batch(self) -> list[Received]:
        """Up to ``MAX_BATCH`` readings, all urgent ones before any ordinary one."""
        lane = self._urgent or self._ordinary
        return [lane.popleft() for _ in range(min(MAX_BATCH, len(lane)))]

    async def run(self) -> None:
        while True:
            if not self.pending:
                self._arrived.clear()
                await self._arrived.wait()
                continue
            batch = self._next_batch()
            self._in_flight = batch
            try:
                await self.ingest(batch)
            except DiskFull:
                self._in_flight = []
                self._hold(batch)
                await self._wait_for_space()
                continue
            self._in_flight = []
            self._acks.stored(list(batch))

    async def flush(self) -> None:
        """Ingest everything still queued (at shutdown, after intake and ``run`` have stopped).

        A batch that ``run`` was handling when it was cancelled is ingested again; readings it had
        already stored are recognised by their id and not queued twice.
        """
        try:
            if self._in_flight:
                batch, self._in_flight = self._in_flight, []
                await self.ingest(batch)
                self._acks.stored(list(batch))
            while self.pending:
                batch = self._next_batch()
                await self.ingest(batch)
                self._acks.stored(list(batch))
        except DiskFull:
            # Not stored, so never confirmed: the devices send these again after the restart.
            log.error("readings_not_stored", readings=self.pending, reason="disk full")
        finally:
            self._acks.abandon()

    async def ingest(self, batch: list[Received]) -> None:
        if self._space is not None and self._space.is_low():
            # Refused before anything is bound, counted or written, rather than half-written.
            raise DiskFull
        if any(received.held for received in batch):
            await self._keep_held([received for received in batch if received.held])
            batch = [received for received in batch if not received.held]
        bound = [reading for reading in map(self._bind, batch) if reading is not None]
        if not bound:
            return
        taken_at = time.time()
        ids = [reading.reading_id for reading in bound]
        known = await self._database.call(
            lambda c: readings.existing(c, ids), priority=Priority.INTAKE
        )
        prepared: list[IntakeRecord] = []
        for reading in bound:
            if reading.reading_id in known:
                self.stats.duplicates += 1
                continue
            known.add(reading.reading_id)
            try:
                prepared.append(self._prepare(reading))
            except Exception as exc:  # one bad reading must not stop the hub
                # Keep the reading itself (it is stored below); only its fan-out is skipped.
                self.stats.fanout_failures += 1
                log.error(
                    "reading_fanout_failed", reading=reading.reading_id, error=type(exc).__name__
                )
                prepared.append(IntakeRecord(reading, reading_event(reading), []))
        if not prepared:
            return
        now = time.time()
        state = self._alert_state.seal(self._alerts.take_changes())
        try:
            refused = await self._database.call(
                lambda c: self._store(c, prepared, now, state), priority=Priority.INTAKE
            )
        except sqlite3.OperationalError as exc:
            if is_disk_full(exc):  # rolled back: nothing of the batch is on disk
                raise DiskFull from None
            raise
        if self.disk_full:
            self._space_returned()
        log.debug("readings_stored", count=len(prepared))
        if refused:
            self._report_full(refused)
        queued = self.stats.queued
        passed: dict[str, int] = {}
        blocked: dict[str, int] = {}
        woken: set[str] = set()
        for record in prepared:
            for item in record.items:
                destination = item.destination
                if item.category == "reading":
                    passed[destination] = passed.get(destination, 0) + 1
                if refused and item in refused:
                    continue
                queued[destination] = queued.get(destination, 0) + 1
                woken.add(destination)
            for refusal in record.blocked:
                if refusal.category == "reading":
                    blocked[refusal.destination] = blocked.get(refusal.destination, 0) + 1
        # One entry for the whole batch: the feed's readers count, they do not replay steps.
        self._activity.emit_batch(
            "stored",
            items=len(prepared),
            taken_at=taken_at,
            subject_refs=frozenset([record.reading.subject_ref for record in prepared]),
            passed=passed,
            blocked=blocked,
            records=prepared,
        )
        for record in prepared:
            for alert in record.alerts:
                self._announce_alert(alert, record.items, record.blocked)
        for route in self._routes:
            if route.name in woken:
                route.wake()

    async def _keep_held(self, held: list[Received]) -> None:
        """Keep weighings no one person fits (``gateway.intake.held``); a resend of one already
        kept or decided is recognised by its key and not kept twice."""
        rows = self.held.rows(held)

        def store(connection: sqlite3.Connection) -> None:
            with Transaction(connection):
                self.held.keep(connection, rows)

        try:
            await self._database.call(store, priority=Priority.INTAKE)
        except sqlite3.OperationalError as exc:
            if is_disk_full(exc):  # rolled back: the batch is held in memory and tried again
                raise DiskFull from None
            raise
        await self.held.kept(held)

    # A full disk ---------------------------------------------------------------------------

    def _hold(self, batch: list[Received]) -> None:
        """Put a batch that could not be stored back at the front of its lanes, in order."""
        for received in reversed(batch):
            lane = self._urgent if self._alerts.may_breach(received.measurement) else self._ordinary
            lane.appendleft(received)
        if not self.disk_full:
            self.disk_full = True
            log.error(
                "disk_full",
                readings_held=self.pending,
                action="free space in gateway.data_dir; intake resumes by itself",
            )
            self._activity.emit("disk_full", readings_held=self.pending)

    async def _wait_for_space(self) -> None:
        self._space_check.clear()
        try:
            await asyncio.wait_for(self._space_check.wait(), DISK_RETRY_S)
        except TimeoutError:
            pass

    def look_for_space(self) -> None:
        """Try the held readings again now (an operator freed space)."""
        self._space_check.set()

    def _space_returned(self) -> None:
        self.disk_full = False
        log.info("disk_space_back", readings_held=self.pending)
        self._activity.emit("disk_space_back", readings_held=self.pending)
        if self._space is not None:
            self._space.keep_reserve()

    def _bind(self, received: Received) -> BoundReading | None:
        measurement = received.measurement
        target = received.target
        if measurement.kind in TRANSIENT_KINDS:
            self.stats.transient += 1
            return None
        subject_id = self._subject_of(received)
        if subject_id is None:
            self.stats.dropped_unbound += 1
            log.warning(
                "reading_dropped",
                reason="no subject for this device user",
                device=target.ref,
                user_index=measurement.user_index,
            )
            self._activity.emit(
                "dropped",
                device=target.ref,
                kind=measurement.kind,
                reason="unknown user of a shared device",
            )
            return None
        subject = self._subjects[subject_id]
        # The id comes from the reading as the device sent it, so a resend stays a duplicate.
        reading_id = self._references.reading_id(
            target.address, measurement.kind, measurement, received.received_at
        )
        clock_offset_s = received.clock_offset_s
        unusable = unusable_device_time(measurement, clock_offset_s, received.received_at)
        if unusable is not None:
            self.stats.device_time_replaced += 1
            log.warning("reading_device_time_replaced", device=target.ref, reason=unusable)
            measurement, clock_offset_s = stamped_at_receipt(measurement, unusable), None
        when = (measurement.measured_at or received.received_at.replace(tzinfo=None)).date()
        if _is_minor(subject, when):
            self.stats.dropped_minor += 1
            log.info("reading_dropped", reason="minor", device=target.ref, kind=measurement.kind)
            self._activity.emit("dropped", device=target.ref, kind=measurement.kind, reason="minor")
            return None
        self.stats.readings += 1
        return BoundReading(
            reading_id=reading_id,
            subject_id=subject.id,
            subject_ref=self._references.subject_ref(subject.id),
            company_id=subject.company_id,
            birth_date=subject.birth_date,
            device_address=target.address,
            device_ref=target.ref,
            profile=target.profile,
            measurement=measurement,
            received_at=received.received_at.astimezone(UTC),
            clock_offset_s=clock_offset_s,
            sex=subject.sex,
            device_model=self._devices[target.address].model,
        )

    def _subject_of(self, received: Received) -> str | None:
        """The person a reading belongs to; a shared device's unmapped user is never guessed."""
        device = self._devices.get(received.target.address)
        if device is None:
            return None
        if device.users is None:
            return device.subject
        index = received.measurement.user_index
        return None if index is None else device.user_subjects.get(index)

    def _prepare(self, reading: BoundReading) -> IntakeRecord:
        event = reading_event(reading)
        origin = _Origin(reading.reading_id, reading.subject_ref, reading.measurement.kind)
        refusals: list[Blocked] = []
        items = [
            item
            for route in self._routes
            if route.category == "reading"
            for item in [
                self._through(route, origin, "reading", dict(event), refusals, vital=False)
            ]
            if item is not None
        ]
        alerts = self._alerts.evaluate(reading)
        for alert in alerts:
            items += self._alert_items(alert, refusals)
        return IntakeRecord(reading, event, items, alerts, refusals)

    def _alert_items(self, alert: AnyAlert, refusals: list[Blocked]) -> list[NewItem]:
        self.stats.alerts += 1
        origin = _Origin(alert.reading_id, alert.subject_ref, alert.kind)
        payload = {"alert": alert, "subject_id": alert.subject_id}
        return [
            item
            for route in self._routes
            if route.category == "alert"
            for item in [
                self._through(
                    route,
                    origin,
                    "alert",
                    payload,
                    refusals,
                    vital=alert.vital_interest,
                    key=alert.alert_id,
                )
            ]
            if item is not None
        ]

    def _announce_alert(
        self, alert: AnyAlert, items: list[NewItem], refusals: list[Blocked]
    ) -> None:
        """Report one alert and its destinations' decisions, once it is stored (alerts are
        rare, so each is its own entry: the page's alert view and the demo show them one by
        one)."""
        self._activity.emit(
            alert.type,
            subject_ref=alert.subject_ref,
            kind=alert.kind,
            value=alert.rule.settings.value,
            measured=round(alert.value, 1),
            unit=alert.unit,
            limit=alert.limit,
            direction=alert.direction,
            severity=alert.severity,
            reading_id=alert.reading_id,
            rule_type=alert.rule.settings.rule_type,
            phrase=alert.phrase(),
        )
        key = alert.alert_id
        for item in items:
            if item.category == "alert" and item.idempotency_key == key:
                self._activity.emit(
                    "filtered",
                    destination=item.destination,
                    purpose=item.purpose,
                    category="alert",
                    reading_id=alert.reading_id,
                    passed=True,
                    legal_basis=item.legal_basis,
                )
        for refusal in refusals:
            if refusal.category == "alert" and refusal.key == key:
                self._activity.emit(
                    "filtered",
                    destination=refusal.destination,
                    purpose=refusal.purpose,
                    category="alert",
                    reading_id=alert.reading_id,
                    passed=False,
                    reason=refusal.reason,
                )

    async def check_missing(self, now: datetime) -> int:
        """Raise the missing-readings alerts due at ``now`` and queue them; returns how many.

        Runs beside ``ingest`` on the event loop: the alert state each takes is its own, and
        both write on the one database thread in the order they were taken.
        """
        alerts = self._alerts.check_missing(now)
        changes = self._alerts.take_changes()
        if not alerts and not changes:
            return 0
        refusals: list[Blocked] = []
        items = [item for alert in alerts for item in self._alert_items(alert, refusals)]
        state = self._alert_state.seal(changes)
        entries = [(alert.type, alert_audit_record(alert), alert.subject_ref) for alert in alerts]

        def store(connection: sqlite3.Connection) -> None:
            with Transaction(connection):
                AlertStateStore.write(connection, state)
                self._capacity.added(self._outbox.enqueue(connection, items, time.time()))
                if entries:
                    audit.append_many(connection, entries)

        await self._database.call(store, priority=Priority.INTAKE)
        for alert in alerts:
            self._announce_alert(alert, items, refusals)
        woken = {item.destination for item in items}
        for item in items:
            self.stats.queued[item.destination] = self.stats.queued.get(item.destination, 0) + 1
        for route in self._routes:
            if route.name in woken:
                route.wake()
        return len(alerts)

    def _through(
        self,
        route: Route,
        origin: _Origin,
        category: str,
        payload: dict[str, Any],
        refusals: list[Blocked],
        *,
        vital: bool,
        key: str | None = None,
    ) -> NewItem | None:
        key = key or origin.reading_id
        passed = self._decide[route.name](
            origin.reading_id,
            origin.subject_ref,
            origin.kind,
            category,
            payload,
            vital,
            (refusals, key),
        )
        if passed is None:
            return None
        result, body = passed
        return NewItem(
            destination=route.name,
            purpose=route.purpose,
            category=category,
            priority=route.priority,
            subject_ref=origin.subject_ref,
            reading_id=origin.reading_id,
            idempotency_key=key,
            legal_basis=result.legal_basis or "consent",
            fields=result.fields,
            payload=body,
            from_reading=category == "reading",
        )

    def _compile(self, route: Route) -> Decide:
        """The route as one plain function, built once at start: its chain, payload format,
        allow-list check and (outside care) the identifier guard, with everything it needs
        bound in advance. Used at intake and again when a queued reading is rebuilt to be sent.

        The steps list is the route's own, so a step added to ``route.steps`` later runs too.
        A refusal is noted (for the activity feed) only at intake, where ``refusals`` is given.
        """
        name, purpose, steps = route.name, route.purpose, route.steps
        context = self._contexts[name]
        make_payload, allowed = route.format, route.allowed
        checks_payload = route.payload_is_event
        guard = self._identifier_guard.search if route.forbid_identifiers else None
        stats = self.stats

        def decide(
            reading_id: str,
            subject_ref: str,
            kind: str,
            category: str,
            payload: dict[str, Any],
            vital: bool,
            refusals: tuple[list[Blocked], str] | None,
        ) -> tuple[Item, dict[str, Any]] | None:
            def refuse(reason: str) -> None:
                if refusals is not None:
                    refusals[0].append(Blocked(name, purpose, category, refusals[1], reason))

            result = Item(reading_id, subject_ref, category, payload, vital_interest=vital)
            for step in steps:
                stepped = step(result, context)
                if stepped is None:
                    refuse("no consent for this purpose, or processing restricted")
                    return None
                result = stepped
            try:
                body = make_payload(result)
            except ValueError as exc:  # e.g. a kind this destination's format cannot express
                log.warning("destination_cannot_take", destination=name, kind=kind, reason=str(exc))
                refuse("this destination cannot take this kind of reading")
                return None
            try:
                # Event-shaped payloads are checked on the keys actually about to leave, so a
                # field added after minimisation by any later step (or a bug) is still caught.
                enforce_allow_list(body if checks_payload else result.fields, allowed)
            except FieldLeak as exc:
                stats.identifier_blocked += 1
                log.error("field_blocked", destination=name, reason=str(exc))
                refuse("a field outside the allow-list would have left; blocked")
                return None
            if guard is not None and guard(orjson.dumps(body).lower()):
                stats.identifier_blocked += 1
                log.error("identifier_blocked", destination=name, kind=kind)
                refuse("an identifier would have left; blocked")
                return None
            return result, body

        return decide

    def builder(self, destination: str) -> Callable[[QueuedItem], bytes | None]:
        """How a destination's queued reading is built again from the stored reading at send
        time (after a restart, or when its payload was not kept in memory): the same route,
        chain and format as at intake, so the bytes are the same (consent is checked again).
        None: the reading is no longer stored, or may not go now."""
        decide = self._decide[destination]

        def build(item: QueuedItem) -> bytes | None:
            if item.event is None:
                return None
            event = orjson.loads(item.event)
            kind = str(event.get("kind"))
            passed = decide(
                item.reading_id, item.subject_ref, kind, item.category, event, False, None
            )
            return None if passed is None else orjson.dumps(passed[1])

        return build

    def _report_full(self, refused: list[NewItem]) -> None:
        for item in refused:
            self.stats.refused_full[item.destination] = (
                self.stats.refused_full.get(item.destination, 0) + 1
            )
        log.error(
            "outbox_full",
            limit=self._capacity.limit,
            refused=len(refused),
            destinations=sorted({item.destination for item in refused}),
            hint="destinations are not taking data; care and alert data are still queued",
        )
        self._activity.emit("outbox_full", items=len(refused), limit=self._capacity.limit)

    def _store(
        self,
        connection: sqlite3.Connection,
        prepared: list[IntakeRecord],
        now: float,
        alert_state: list[tuple[str, str, bytes | None]],
    ) -> list[NewItem]:
        """Store readings and queue their items in one transaction; returns what was refused."""
        items = [item for entry in prepared for item in entry.items]
        refused: list[NewItem] = []
        if self._capacity.is_full(connection, now):
            refused = [item for item in items if item.priority > PRIORITY_CARE]
            items = [item for item in items if item.priority <= PRIORITY_CARE]
        rows = [
            (
                entry.reading.reading_id,
                entry.reading.subject_ref,
                entry.reading.measurement.kind,
                entry.event["measured_at"],
                entry.event["received_at"],
                self._sealer.seal(orjson.dumps(entry.event), reading_aad(entry.reading.reading_id)),
            )
            for entry in prepared
        ]
        with Transaction(connection):
            readings.insert(connection, rows)
            self._capacity.added(self._outbox.enqueue(connection, items, now))
            AlertStateStore.write(connection, alert_state)
            alert_entries = [
                (alert.type, alert_audit_record(alert), entry.reading.subject_ref)
                for entry in prepared
                for alert in entry.alerts
            ]
            if alert_entries:
                audit.append_many(connection, alert_entries)
        return refused


def alert_audit_record(alert: AnyAlert) -> dict[str, Any]:
    """What the audit log keeps of an alert: the rule and its outcome, never the measured value
    (the audit log is append-only, and erasure must leave no health values behind)."""
    rule = alert.rule.settings
    return {
        "reading_id": alert.reading_id,
        "kind": rule.kind,
        "value": rule.value,
        "rule_type": rule.rule_type,
        "rule": alert.rule.key,
        "personal_rule": alert.rule.key.startswith("p"),
        "severity": rule.severity,
        "direction": alert.direction,
        "limit": alert.limit,
        "unit": alert.unit,
        "vital_interest": alert.vital_interest,
    }


class OutboxCapacity:
    """A soft cap on queued items, counted cheaply.

    Counting a million-row outbox on every batch would cost more than the batch, so the exact
    count is refreshed at most every few seconds and kept up to date in between by adding what
    is inserted (deliveries only make it smaller, so the estimate errs on the full side).
    Runs on the database thread only.
    """

    RECOUNT_S = 5.0

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._count = 0
        self._counted_at = float("-inf")

    def is_full(self, connection: sqlite3.Connection, now: float) -> bool:
        if now - self._counted_at >= self.RECOUNT_S:
            self._count = Outbox.count(connection)
            self._counted_at = now
        return self._count >= self.limit

    def added(self, count: int) -> None:
        self._count += count


def identifier_pattern(settings: Settings) -> re.Pattern[bytes]:
    """Every direct identifier the config knows, as one pattern over serialised payloads.

    The pattern is lowercase: search ``payload.lower()``. That is the ASCII case folding that
    ``re.IGNORECASE`` does on bytes, at a tenth of its cost with this many alternatives.
    """
    identifiers: set[str] = set()
    for subject in settings.subjects:
        identifiers.update({subject.id, subject.birth_date.isoformat()})
        if subject.company_id:
            identifiers.add(subject.company_id)
    for device in settings.devices:
        identifiers.update(
            {device.address, device.address.replace(":", "-"), device.address.replace(":", "")}
        )
    folded = {i.encode().lower() for i in identifiers}
    alternatives = sorted((re.escape(i) for i in folded), key=len, reverse=True)
    return re.compile(b"|".join(alternatives) or b"(?!)")


def _is_minor(subject: SubjectSettings, on: date) -> bool:
    return age_on(subject.birth_date, on) < ADULT_AGE
