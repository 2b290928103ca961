"""The care platform sink: FHIR R4 transaction Bundles over HTTPS.

Outcomes are per reading. A 2xx answer's transaction-response is read entry by entry (one
response entry per request entry, in order, as FHIR requires); a reading is delivered when all
of its entries succeeded. A transaction is all-or-nothing on the server, so when a bundle of
several readings is refused with a 4xx, the batch is split in halves and retried at once until
the reading the server refuses is alone; only that one goes to the dead letters.
"""

from __future__ import annotations

import re
from typing import Any

import aiohttp
import orjson

from gateway.exporters.base import Outcome, excerpt, is_retryable
from gateway.exporters.fhir.config import FhirDestination
from gateway.exporters.fhir.patients import PatientDirectory, PatientLookupFailed
from gateway.exporters.fhir.payload import bundle_from_stored, transaction_bundle
from gateway.exporters.http import post
from gateway.storage.outbox import QueuedItem


def _status_code(entry: dict[str, Any]) -> int | None:
    status = str(entry.get("response", {}).get("status", "")).strip()
    head = status.split(" ", 1)[0]
    return int(head) if head.isdigit() else None


class FhirSink:
    def __init__(
        self, settings: FhirDestination, session: aiohttp.ClientSession, token: str | None
    ) -> None:
        self.name = settings.name
        self.max_batch = settings.batch_max_items
        self.max_bytes: int | None = None
        self.linger_s = settings.linger_s
        self._settings = settings
        self._session = session
        self._headers = {
            "Content-Type": "application/fhir+json",
            "Accept": "application/fhir+json",
        }
        if token:
            self._headers["Authorization"] = f"Bearer {token}"
        self._patients = (
            PatientDirectory(
                session,
                settings.url,
                self._headers,
                settings.identifier_system,
                settings.timeout_s,
            )
            if settings.patient_reference == "resolved"
            else None
        )

    async def deliver(self, items: list[QueuedItem]) -> Outcome:
        limit = self._settings.bundle_max_entries
        if limit is not None and len(items) > 1:
            chunks = _within_entries(items, limit)
            if len(chunks) > 1:
                outcome = Outcome()
                for chunk in chunks:
                    outcome = _merge(outcome, await self._deliver(chunk))
                return outcome
        return await self._deliver(items)

    async def _deliver(self, items: list[QueuedItem]) -> Outcome:
        bodies = [item.body for item in items]
        if self._patients is not None:
            try:
                bodies = [await self._patients.resolve_body(stored) for stored in bodies]
            except PatientLookupFailed as exc:
                return Outcome(retry=[item.id for item in items], reason=str(exc))
        body = bundle_from_stored(bodies)
        if body is None:  # not in the stored layout: build it the long way
            body = orjson.dumps(transaction_bundle([orjson.loads(b)["entries"] for b in bodies]))
        outcome, status, text = await post(
            self._session,
            self._settings.url,
            body,
            self._headers,
            self._settings.timeout_s,
            [item.id for item in items],
        )
        if outcome.failed and len(items) > 1 and status is not None and status >= 400:
            middle = len(items) // 2
            first = await self._deliver(items[:middle])
            return _merge(first, await self._deliver(items[middle:]))
        if outcome.delivered:
            return _per_entry(items, text)
        return outcome

    async def close(self) -> None:
        return None


def _within_entries(items: list[QueuedItem], limit: int) -> list[list[QueuedItem]]:
    """Consecutive runs of items whose Bundles hold at most ``limit`` entries. Counted from the
    stored bytes (every entry has one ``fullUrl``), before a shared Device is merged: an upper
    bound, so a run never goes over."""
    runs: list[list[QueuedItem]] = []
    run: list[QueuedItem] = []
    count = 0
    for item in items:
        entries = item.body.count(b'"fullUrl":')
        if run and count + entries > limit:
            runs.append(run)
            run, count = [], 0
        run.append(item)
        count += entries
    if run:
        runs.append(run)
    return runs


# An entry status the delivery cannot take as success (``_status_code``) starts with 4-9 or has
# four digits or more, quoted or not, after optional spaces. An answer without one (and without
# JSON's \u escapes, which could spell one) is judged whole without parsing it: the usual
# answer to a backlog, three entries per reading.
_FAILING_STATUS = re.compile(r'"status"\s*:\s*"?\s*(?:[4-9]|\d{4})')


def _per_entry(items: list[QueuedItem], text: str) -> Outcome:
    if "\\u" not in text and _FAILING_STATUS.search(text) is None:
        return Outcome(delivered=[item.id for item in items])
    try:
        response = orjson.loads(text)
        entries = response["entry"]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        entries = None
    everyone = Outcome(delivered=[item.id for item in items])
    if not isinstance(entries, list):
        return everyone  # no per-entry detail: a 2xx on a transaction means all were applied
    codes = [_status_code(entry) for entry in entries]
    if all(code is None or code < 400 for code in codes):
        return everyone  # the usual answer: no need to know which entry was whose
    groups = [item.payload["entries"] for item in items]
    bundle = transaction_bundle(groups)
    if len(entries) != len(bundle["entry"]):
        return everyone
    position = {entry["fullUrl"]: index for index, entry in enumerate(bundle["entry"])}
    outcome = Outcome()
    for item, group in zip(items, groups, strict=True):
        mine = [_status_code(entries[position[entry["fullUrl"]]]) for entry in group]
        failed = [c for c in mine if c is not None and c >= 400 and not is_retryable(c)]
        if failed:
            answer = entries[position[group[mine.index(failed[0])]["fullUrl"]]]
            outcome.failed.append((item.id, failed[0], excerpt(orjson.dumps(answer).decode())))
        elif any(c is not None and is_retryable(c) for c in mine):
            outcome.retry.append(item.id)
            outcome.reason = "an entry of the transaction-response asked for a retry"
        else:
            outcome.delivered.append(item.id)
    if outcome.failed:
        outcome.reason = f"HTTP {outcome.failed[0][1]} for an entry"
    return outcome


def _merge(first: Outcome, second: Outcome) -> Outcome:
    return Outcome(
        delivered=first.delivered + second.delivered,
        retry=first.retry + second.retry,
        failed=first.failed + second.failed,
        retry_after_s=max(
            (s for s in (first.retry_after_s, second.retry_after_s) if s is not None), default=None
        ),
        reason=second.reason or first.reason,
        paused=first.paused or second.paused,
    )
