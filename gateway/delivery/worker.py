"""One delivery worker per destination: outbox -> sink, at least once, never dropping an item.

The worker sleeps until it is woken (something was queued) or the earliest retry is due; there is
no polling loop. Failures that may pass (connection errors, timeouts, 408, 425, 429, 5xx) are
retried forever with exponential backoff and full jitter, honouring ``Retry-After``; other 4xx
answers move the item to the dead-letter table, where an operator can see and re-queue it.
A delivered batch leaves the outbox in the same transaction that audits its disclosure: one
audit entry per batch, naming its readings and their people (``audit.batch_entry``). With a
backlog, a bulk destination batched by count works in rounds (``ROUND_ITEMS``): several of its
batches read at once, sent one request at a time, and recorded in one transaction.

Readings are queued as small rows naming the stored reading; a batch's payloads are those built
at intake when still in memory, otherwise built here from the stored readings by the
destination's route (``build``), after consent and restriction are checked again.
"""

from __future__ import annotations

import asyncio
import random
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import structlog

from gateway.activity import Activity
from gateway.exporters.base import Outcome, Sink
from gateway.privacy import audit
from gateway.storage import quarantine
from gateway.storage.database import Database, Priority, Transaction
from gateway.storage.outbox import Outbox, QueuedItem
from gateway.storage.space import is_disk_full

log = structlog.get_logger(__name__)


@dataclass(slots=True)
class WorkerStats:
    delivered: int = 0
    retries: int = 0
    dead_letters: int = 0
    withheld: int = 0
    quarantined: int = 0
    last_error: str | None = None
    last_error_at: float | None = None
    last_delivery_at: float | None = None
    # Set while the destination refuses our credentials (401/403): nothing is sent and nothing
    # is given up until it accepts them again.
    paused_reason: str | None = None

    @property
    def state(self) -> str:
        """``paused`` (credentials refused), ``failing`` (the latest attempt failed) or ``ok``."""
        if self.paused_reason is not None:
            return "paused"
        if self.last_error_at is not None and (
            self.last_delivery_at is None or self.last_error_at > self.last_delivery_at
        ):
            return "failing"
        return "ok"


# With a backlog, a bulk destination's items are taken this many at a time (a "round"): read and
# opened in one database job, sent in the sink's own batches one request at a time (the next
# batch built while the one before it is on the wire), and settled in one transaction with one
# audit entry per batch sent. A commit, an anchor fsync and the thread hand-overs per 100
# readings were most of a drain's fixed cost; a round bounds what a kill -9 resends (same
# identifiers) and how long an alert's database job can wait behind a round's read (a few ms).
ROUND_ITEMS = 500
# A batch being built while the one before it is on the wire yields to the event loop after
# this many items, so the request in flight is written and its answer read meanwhile.
BUILD_SLICE = 25


@dataclass(slots=True)
class _Sent:
    """One batch of a round: what was sent, withheld or found unreadable, and the outcome."""

    sendable: list[QueuedItem]
    withheld: list[tuple[QueuedItem, str]]
    unreadable: list[QueuedItem]
    outcome: Outcome = field(default_factory=Outcome)


# Why a queued item was not sent (the audit log's ``withheld`` entries say it).
WITHDRAWN = "consent withdrawn or restricted"
GONE = "the reading is no longer stored"


def disclosure_entries(
    delivered: list[QueuedItem],
) -> list[tuple[str, dict[str, Any], str | None]]:
    """One audit entry per delivered batch naming its readings (one per group of items that
    went on the same terms: a batch of readings is one group; aggregates name no one)."""
    groups: dict[tuple[str, str, str, tuple[str, ...]], list[QueuedItem]] = {}
    for item in delivered:
        terms = (item.purpose, item.legal_basis, item.category, item.fields)
        groups.setdefault(terms, []).append(item)
    entries: list[tuple[str, dict[str, Any], str | None]] = []
    for (purpose, legal_basis, category, fields), items in groups.items():
        common = {
            "destination": items[0].destination,
            "purpose": purpose,
            "legal_basis": legal_basis,
            "category": category,
            "fields": list(fields),
        }
        if category == "aggregate":  # anonymous: one entry per report, about no one
            entries += [("disclosure", {**common, "reading_id": i.reading_id}, None) for i in items]
            continue
        readings = [(item.subject_ref, item.reading_id) for item in items]
        entries.append(("disclosure", audit.batch_entry(common, readings), None))
    return entries


def backoff_delay(attempts: int, initial_s: float, max_s: float, rng: random.Random) -> float:
    """Full jitter: uniform over [0, min(max, initial * 2^attempts)]."""
    ceiling = min(max_s, initial_s * (2 ** min(attempts, 32)))
    return rng.uniform(0, ceiling)


class DeliveryWorker:
    def __init__(
        self,
        sink: Sink,
        database: Database,
        outbox: Outbox,
        activity: Activity,
        *,
        purpose: str,
        may_send: Callable[[QueuedItem], bool],
        retry_initial_s: float,
        retry_max_s: float,
        rng: random.Random | None = None,
        priority: Priority = Priority.BULK,
        build: Callable[[QueuedItem], bytes | None] | None = None,
        scrub: Callable[[str], str] = lambda text: text,
        anchor: Callable[[sqlite3.Connection], None] | None = None,
    ) -> None:
        self.sink = sink
        self.purpose = purpose
        self.stats = WorkerStats()
        self._database = database
        self._outbox = outbox
        self._activity = activity
        self._may_send = may_send
        # Builds a queued reading's payload from the stored reading (None: it may not go now).
        self.build = build
        # Masks identifiers in a destination's error texts before they are kept (dead letters).
        self._scrub = scrub
        # Writes the audit log's head outside the database after each batch is committed.
        self._anchor = anchor
        self._retry_initial_s = retry_initial_s
        self._retry_max_s = retry_max_s
        self._rng = rng or random.Random()
        self._priority = priority  # of this worker's database work (alerts go first)
        self._wake = asyncio.Event()
        self._draining = False
        self._drain_requested = asyncio.Event()
        self._failures = 0  # consecutive batches the destination failed entirely
        self._settling: asyncio.Future[None] | None = None  # the last round's bookkeeping
        self._held_until = 0.0
        # Items taken per round (``ROUND_ITEMS``): whole batches of the sink. Alerts are sent
        # and settled one batch at a time, and so is a sink whose batches are cut by size.
        self._round = sink.max_batch
        if priority is Priority.BULK and sink.max_bytes is None and sink.max_batch > 1:
            self._round = max(sink.max_batch, ROUND_ITEMS // sink.max_batch * sink.max_batch)
        # The next round's first batch, built while this round's last was on the wire:
        # (its items' ids, the batch as ``_prepare`` left it).
        self._carried: tuple[list[int], _Sent] | None = None

    def wake(self) -> None:
        self._wake.set()

    async def queued(self) -> list[QueuedItem]:
        """Everything queued for this destination, oldest first, with the payloads it would
        send (an item that may not go now has an empty ``body``)."""
        name = self.sink.name
        items = await self._database.call(
            lambda c: self._outbox.due(c, name, 10**9, float("inf")), priority=self._priority
        )
        items = [item for item in items if item.unreadable is None]
        for item in items:
            if item.needs_build and self.build is not None:
                item.body = self.build(item) or b""
        return items

    def drain(self) -> None:
        """Deliver what is due now, then return from ``run`` instead of waiting for more."""
        self._draining = True
        self._drain_requested.set()
        self._wake.set()

    async def run(self) -> None:
        try:
            await self._run()
        finally:
            await self._settled()  # the last round's bookkeeping is done before we return

    async def _run(self) -> None:
        name = self.sink.name
        ahead: list[QueuedItem] = []
        while True:
            if self._held_until > time.time():
                if self._draining:
                    return  # the destination is down: what is queued stays for the next start
                ahead = []  # read before the failure; it stays queued for after the pause
                await self._hold()
                continue
            self._wake.clear()  # before looking, so an enqueue after the look still wakes us
            # A full round read ahead during the previous send is used as it is; anything less
            # is read again, so lingering and waking behave as if nothing had been read ahead.
            if len(ahead) >= self._round:
                batch = ahead
            else:
                self._carried = None  # built for a round read ahead, which is read again
                batch = await self._due()
            ahead = []
            if batch and len(batch) < self.sink.max_batch and self.sink.linger_s > 0:
                await self._linger()
                batch = await self._due()
            if batch:
                ahead = await self._deliver(batch)
                continue
            if self._draining:
                return
            await self._settled()
            next_due = await self._database.call(
                lambda c: self._outbox.next_due(c, name), priority=self._priority
            )
            timeout = None if next_due is None else max(0.0, next_due - time.time())
            try:
                await asyncio.wait_for(self._wake.wait(), timeout)
            except TimeoutError:
                pass

    async def _hold(self) -> None:
        """The destination is failing: wait before the next batch (shutdown cuts this short).

        Without this, a worker with a backlog would try batch after batch of not-yet-tried items
        against a destination that is down, one failing request each, walking the whole outbox.
        """
        try:
            await asyncio.wait_for(
                self._drain_requested.wait(), max(0.0, self._held_until - time.time())
            )
        except TimeoutError:
            pass

    def _note_outcome(self, outcome: Outcome) -> None:
        if outcome.paused:
            # Credentials refused: every item would be refused alike. Hold the whole
            # destination at the longest back-off, keep its items queued, and try again.
            self.stats.paused_reason = outcome.reason
            self._held_until = time.time() + self._retry_max_s
            if outcome.retry_after_s is not None:
                self._held_until = max(self._held_until, time.time() + outcome.retry_after_s)
            return
        if outcome.delivered:
            self.stats.paused_reason = None
        if outcome.delivered or not outcome.retry:
            self._failures = 0
            self._held_until = 0.0
            return
        self._failures += 1
        ceiling = min(self._retry_max_s, self._retry_initial_s * 2 ** min(self._failures - 1, 32))
        pause = self._rng.uniform(ceiling / 2, ceiling)  # equal jitter: never hammer at once
        if outcome.retry_after_s is not None:
            pause = max(pause, outcome.retry_after_s)
        self._held_until = time.time() + pause

    async def _linger(self) -> None:
        """Let a burst fill the batch; cut short when the gateway is shutting down."""
        if self._draining:
            return
        try:
            await asyncio.wait_for(self._drain_requested.wait(), self.sink.linger_s)
        except TimeoutError:
            pass

    async def _due(self, exclude: list[int] | None = None) -> list[QueuedItem]:
        now = time.time()
        return await self._database.call(
            lambda c: self._outbox.due(
                c, self.sink.name, self._round, now, self.sink.max_bytes, exclude
            ),
            priority=self._priority,
        )

    def _batches(self, items: list[QueuedItem]) -> list[list[QueuedItem]]:
        """A round cut into the sink's own batches, in queue order."""
        size = self.sink.max_batch
        return [items[start : start + size] for start in range(0, len(items), size)]

    async def _prepare(self, batch: list[QueuedItem], *, yielding: bool = False) -> _Sent:
        """Sort a batch into what may be sent (built when not in memory), what is withheld
        (consent withdrawn or restricted, or the reading is gone) and what cannot be opened.
        ``yielding``: give the event loop a turn every few items (a request is in flight)."""
        prepared = _Sent([], [], [])
        may_send, build = self._may_send, self.build
        for index, item in enumerate(batch):  # one pass: a membership test per item was
            if yielding and index and not index % BUILD_SLICE:  # quadratic in the batch
                await asyncio.sleep(0)
            if item.unreadable is not None:
                prepared.unreadable.append(item)
                continue
            if not may_send(item):
                prepared.withheld.append((item, WITHDRAWN))
                continue
            if item.needs_build:
                body = None if build is None else build(item)
                if body is None:
                    reason = GONE if item.event is None else WITHDRAWN
                    prepared.withheld.append((item, reason))
                    continue
                item.body = body
            prepared.sendable.append(item)
        return prepared

    async def _deliver(self, batch: list[QueuedItem]) -> list[QueuedItem]:
        """Send one round; returns the next round when a full one was read ahead meanwhile.

        With a backlog, the next round is read (and opened) on the database thread while this
        one is on the wire, instead of after it. What is read ahead stays in the outbox until
        it is sent and audited; consent is checked when a batch is built to be sent (the batch
        after the one in flight is built while that one is on the wire), not when it is read.
        """
        read_ahead = None
        if len(batch) >= self._round and not self._draining:
            exclude = [item.id for item in batch]
            read_ahead = asyncio.ensure_future(self._due(exclude))
        try:
            sent = await self._send_round(self._batches(batch), read_ahead)
            # The bookkeeping (remove, audit, reschedule; one commit) runs while the next round
            # is sent. The worker's database work is taken in order, so whatever it reads next
            # already sees this round settled; at most one round is ever unsettled.
            await self._settled()
            applied = self._database.submit(lambda c: self._apply(c, sent), priority=self._priority)
            self._settling = asyncio.ensure_future(self._settle(applied, sent))
        except BaseException:
            if read_ahead is not None:
                read_ahead.cancel()
            raise
        if self._held_until > time.time():
            self._carried = None
            if read_ahead is not None:
                read_ahead.cancel()  # the destination failed: what was read stays queued
            return []
        return await read_ahead if read_ahead is not None else []

    async def _send_round(
        self,
        batches: list[list[QueuedItem]],
        read_ahead: asyncio.Future[list[QueuedItem]] | None = None,
    ) -> list[_Sent]:
        """Send a round's batches one request at a time, building each next batch while the
        one before it is on the wire (and, when the next round has been read by then, its
        first batch while this round's last is). Stops after a batch that holds the
        destination (down, credentials refused): the batches after it are not sent, and stay
        queued untouched."""
        sent: list[_Sent] = []
        carried, self._carried = self._carried, None
        first = [item.id for item in batches[0]]
        if carried is not None and carried[0] == first:
            prepared = carried[1]
        else:
            prepared = await self._prepare(batches[0])
        for index in range(len(batches)):
            sending = (
                asyncio.ensure_future(self.sink.deliver(prepared.sendable))
                if prepared.sendable
                else None
            )
            try:
                following = None
                if index + 1 < len(batches):
                    await asyncio.sleep(0)  # let the request start before building the next
                    following = await self._prepare(batches[index + 1], yielding=True)
                elif read_ahead is not None and read_ahead.done() and not read_ahead.cancelled():
                    await asyncio.sleep(0)
                    await self._carry(read_ahead)
                if sending is not None:
                    prepared.outcome = await sending
                    self._note_outcome(prepared.outcome)
            except BaseException:
                if sending is not None:
                    sending.cancel()
                self._carried = None
                raise
            sent.append(prepared)
            if following is None or self._held_until > time.time():
                break
            prepared = following
        return sent

    async def _carry(self, read_ahead: asyncio.Future[list[QueuedItem]]) -> None:
        """Build the first batch of the round read ahead, for ``_send_round`` to start with
        when that round comes next (it is matched by its items' ids)."""
        if read_ahead.exception() is not None:
            return  # raised again where the round read ahead is awaited
        items = read_ahead.result()
        if len(items) >= self._round:
            batch = items[: self.sink.max_batch]
            prepared = await self._prepare(batch, yielding=True)
            self._carried = ([item.id for item in batch], prepared)

    async def _settle(self, applied: asyncio.Future[None], sent: list[_Sent]) -> None:
        try:
            await applied
        except sqlite3.OperationalError as exc:
            if not is_disk_full(exc):
                raise
            # Rolled back: the round stays queued and is sent again (same idempotency keys)
            # once there is room to record it. Hold off meanwhile instead of resending at once.
            self._held_until = time.time() + self._retry_max_s
            log.error(
                "delivery_bookkeeping_deferred", destination=self.sink.name, reason="disk full"
            )
            return
        for batch in sent:
            self._report(batch.sendable, batch.withheld, batch.outcome, batch.unreadable)

    async def _settled(self) -> None:
        """Wait for the previous round's bookkeeping (and raise what it raised)."""
        if self._settling is not None:
            settling, self._settling = self._settling, None
            await settling

    def _apply(self, connection: sqlite3.Connection, sent: list[_Sent]) -> None:
        """A round's bookkeeping in one transaction: one audit entry per batch delivered."""
        now = time.time()
        entries: list[tuple[str, dict[str, Any], str | None]] = []
        with Transaction(connection):
            for batch in sent:
                entries += self._apply_batch(connection, batch, now)
        if entries and self._anchor is not None:
            self._anchor(connection)  # after the commit: it names only what is on disk
        for batch in sent:
            # Settled for good: their payloads need not be kept (a retry keeps its payload).
            by_id = {item.id: item for item in batch.sendable}
            outcome = batch.outcome
            settled = outcome.delivered + [item_id for item_id, _status, _text in outcome.failed]
            self._outbox.cache.drop(
                self.sink.name,
                [by_id[item_id].idempotency_key for item_id in settled]
                + [item.idempotency_key for item, _ in batch.withheld],
            )

    def _apply_batch(
        self, connection: sqlite3.Connection, batch: _Sent, now: float
    ) -> list[tuple[str, dict[str, Any], str | None]]:
        """One batch's bookkeeping inside the round's transaction; returns its audit entries
        (appended here)."""
        sent, withheld, outcome, unreadable = (
            batch.sendable,
            batch.withheld,
            batch.outcome,
            batch.unreadable,
        )
        by_id = {item.id: item for item in sent}
        if unreadable:
            quarantine.from_outbox(
                connection, [(item.id, item.unreadable or "") for item in unreadable], now
            )
        self._outbox.remove(connection, outcome.delivered + [item.id for item, _ in withheld])
        entries = disclosure_entries([by_id[item_id] for item_id in outcome.delivered])
        for item, reason in withheld:
            withheld_entry = {
                "destination": item.destination,
                "purpose": item.purpose,
                "reading_id": item.reading_id,
                "reason": reason,
            }
            entries.append(("withheld", withheld_entry, item.subject_ref))
        for item in unreadable:
            quarantined_entry = {
                "destination": item.destination,
                "purpose": item.purpose,
                "reading_id": item.reading_id,
                "reason": item.unreadable,
            }
            entries.append(("quarantined", quarantined_entry, item.subject_ref))
        if entries:
            audit.append_many(connection, entries)
        retries = []
        for item_id in outcome.retry:
            delay = backoff_delay(
                by_id[item_id].attempts, self._retry_initial_s, self._retry_max_s, self._rng
            )
            if outcome.retry_after_s is not None:
                delay = max(delay, outcome.retry_after_s)
            retries.append((item_id, now + delay, outcome.reason or "retry"))
        self._outbox.reschedule(connection, retries)
        self._outbox.dead_letter(
            connection,
            [(item_id, status, self._scrub(text)) for item_id, status, text in outcome.failed],
        )
        return entries

    def _report(
        self,
        sent: list[QueuedItem],
        withheld: list[tuple[QueuedItem, str]],
        outcome: Outcome,
        unreadable: list[QueuedItem] | None = None,
    ) -> None:
        by_id = {item.id: item for item in sent}
        stats = self.stats
        if unreadable:
            stats.quarantined += len(unreadable)
            log.error(
                "delivery_quarantined",
                destination=self.sink.name,
                items=len(unreadable),
                reason=unreadable[0].unreadable,
                hint="kept in the quarantine table; restore the storage key if it was replaced",
            )
            self._activity.emit("quarantined", destination=self.sink.name, items=len(unreadable))
        stats.delivered += len(outcome.delivered)
        stats.retries += len(outcome.retry)
        stats.dead_letters += len(outcome.failed)
        stats.withheld += len(withheld)
        if outcome.delivered:
            stats.last_delivery_at = time.time()
        # One entry per batch and (category, legal basis), not one per item.
        groups: dict[tuple[str, str], list[QueuedItem]] = {}
        for item_id in outcome.delivered:
            item = by_id[item_id]
            groups.setdefault((item.category, item.legal_basis), []).append(item)
        for (category, legal_basis), items in groups.items():
            self._activity.emit(
                "delivered",
                destination=self.sink.name,
                category=category,
                legal_basis=legal_basis,
                items=len(items),
                reading_ids=tuple([item.reading_id for item in items]),
                subject_refs=frozenset([item.subject_ref for item in items]),
            )
        if outcome.retry or outcome.failed:
            reason = None if outcome.reason is None else self._scrub(outcome.reason)
            stats.last_error, stats.last_error_at = reason, time.time()
        if outcome.retry:
            log.warning(
                "delivery_retry",
                destination=self.sink.name,
                items=len(outcome.retry),
                reason=outcome.reason,
                retry_after_s=outcome.retry_after_s,
            )
            self._activity.emit(
                "retry", destination=self.sink.name, items=len(outcome.retry), reason=outcome.reason
            )
        if outcome.failed:
            log.error(
                "delivery_dead_letter",
                destination=self.sink.name,
                items=len(outcome.failed),
                reason=outcome.reason,
            )
            self._activity.emit(
                "dead_letter",
                destination=self.sink.name,
                items=len(outcome.failed),
                reason=outcome.reason,
            )
