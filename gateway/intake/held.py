"""Weighings of a shared scale that fit no one person: kept until an operator says whose.

A scale without a user index tells its people apart by weight (``devices.users``); a weighing
that fits nobody or several people is handed over marked ``Received.held``. Guessing would put
one person's weight in another's record, and dropping it would lose what someone stepped on the
scale for, so it is kept here: sealed like a reading, without a person, with its device,
measured time and values. An operator lists the waiting weighings and either assigns one to a
person of that scale (it then enters intake exactly as if the scale had named them: consent,
restriction, alerts, destinations and audit as for any reading, its measured time kept) or
discards it. Retention deletes one nobody decided on when it would delete a reading as old.

Nothing here logs a weight: the values are personal health data and exist only sealed on disk
and in the operator's authenticated answers.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
import structlog

from devices.models import Measurement
from devices.targets import DeviceTarget, Received
from gateway.activity import Activity
from gateway.privacy import audit
from gateway.privacy.references import References
from gateway.settings import DeviceSettings
from gateway.storage import held_weighings
from gateway.storage.crypto import Sealer
from gateway.storage.database import Database, Priority, Transaction
from gateway.storage.held_weighings import ASSIGNED, DISCARDED, held_aad

log = structlog.get_logger(__name__)

# How long an operator's assignment waits for intake to store the reading (a full disk holds
# intake back): past it the weighing stays waiting and the operator can try again.
STORE_TIMEOUT_S = 30.0


class HeldError(Exception):
    """An operator's decision that cannot be made; ``status`` is the HTTP status to answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True, slots=True)
class HeldWeighing:
    """One waiting weighing as the operator sees it."""

    id: int
    device: str  # the device's ref (device-N): its address never leaves the hub's storage
    profile: str
    measured_at: str | None  # the scale's own stamp, as it sent it (no time zone)
    received_at: str  # UTC
    values: dict[str, dict[str, Any]]  # name -> {"value", "unit"}
    users: list[int]  # the user indexes of that scale's people, to assign it to

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "device": self.device,
            "profile": self.profile,
            "measured_at": self.measured_at,
            "received_at": self.received_at,
            "values": self.values,
            "users": self.users,
        }


class HeldWeighings:
    """Keeps held weighings and carries out the operator's decisions; see the module doc."""

    def __init__(
        self,
        database: Database,
        sealer: Sealer,
        references: References,
        targets: list[DeviceTarget],
        devices: dict[str, DeviceSettings],
        submit: Callable[[Received], asyncio.Future[bool]],
        activity: Activity,
    ) -> None:
        self._database = database
        self._sealer = sealer
        self._references = references
        self._targets = {target.address: target for target in targets}
        self._devices = devices
        self._submit = submit
        self._activity = activity
        # One decision at a time: a second one on the same weighing sees the first's outcome.
        self._deciding = asyncio.Lock()
        self._waiting: dict[str, int] = {}  # device address -> weighings waiting
        self.expired = 0  # deleted by retention, undecided, since start

    # Intake ---------------------------------------------------------------------------------

    def rows(self, batch: list[Received]) -> list[held_weighings.NewRow]:
        """The sealed rows to keep for these held weighings (sealed off the database thread)."""
        rows = []
        for received in batch:
            measurement = received.measurement
            key = "h-" + self._references.reading_id(
                received.target.address, measurement.kind, measurement, received.received_at
            ).removeprefix("r-")
            content = {
                "address": received.target.address,
                "characteristic": received.characteristic,
                "measurement": measurement.model_dump(mode="json"),
                "received_at": received.received_at.astimezone(UTC).isoformat(),
                "clock_offset_s": received.clock_offset_s,
            }
            sealed = self._sealer.seal(orjson.dumps(content), held_aad(key))
            rows.append((key, content["received_at"], sealed))
        return rows

    def keep(self, connection: sqlite3.Connection, rows: list[held_weighings.NewRow]) -> None:
        """Store them inside the caller's transaction (intake's, on the database thread)."""
        held_weighings.insert(connection, rows)

    async def kept(self, batch: list[Received]) -> None:
        """Told once intake's transaction holding them committed: counted and announced."""
        await self.recount()
        for received in batch:
            self._activity.emit("weighing_held", device=received.target.ref)
            log.info("weighing_kept", device=received.target.ref, action="health-gateway held")

    # What waits -------------------------------------------------------------------------------

    async def recount(self) -> None:
        """Count what waits per device again (at start, after intake, after retention)."""
        waiting = await self._database.call(held_weighings.waiting, priority=Priority.INTAKE)
        counts: dict[str, int] = {}
        for _id, key, sealed in waiting:
            content = self._open(key, sealed)
            address = "" if content is None else str(content.get("address", ""))
            counts[address] = counts.get(address, 0) + 1
        self._waiting = counts

    def waiting_on(self, address: str) -> int:
        """How many weighings of this device wait for a decision."""
        return self._waiting.get(address, 0)

    async def listing(self) -> list[HeldWeighing]:
        """Every waiting weighing, oldest first; one that cannot be opened is left out (its
        count stays, and retention deletes it in time)."""
        waiting = await self._database.call(held_weighings.waiting, priority=Priority.INTAKE)
        found = []
        for id_, key, sealed in waiting:
            content = self._open(key, sealed)
            if content is None:
                continue
            address = str(content["address"])
            target = self._targets.get(address)
            device = self._devices.get(address)
            measurement = content["measurement"]
            found.append(
                HeldWeighing(
                    id=id_,
                    device=target.ref if target is not None else "(no longer configured)",
                    profile=target.profile if target is not None else "",
                    measured_at=measurement.get("measured_at"),
                    received_at=str(content["received_at"]),
                    values={
                        name: {"value": q["value"], "unit": q["unit"]}
                        for name, q in measurement.get("values", {}).items()
                    },
                    users=sorted(device.user_subjects) if device is not None else [],
                )
            )
        return found

    # Decisions --------------------------------------------------------------------------------

    async def assign(self, id_: int, user_index: int, source: str) -> str:
        """Give the weighing to the person with this user index on its scale; returns the
        reading's id. It enters intake as if the scale had named that person."""
        async with self._deciding:
            content = await self._waiting_content(id_)
            address = str(content["address"])
            target = self._targets.get(address)
            device = self._devices.get(address)
            if target is None or device is None:
                raise HeldError(
                    409, f"held weighing {id_}: its scale is no longer configured; discard it"
                )
            subject_id = device.user_subjects.get(user_index)
            if subject_id is None:
                users = ", ".join(map(str, sorted(device.user_subjects))) or "none"
                raise HeldError(
                    400, f"user: {user_index} is not a person of {target.ref} (its users: {users})"
                )
            measurement = Measurement.model_validate(content["measurement"]).model_copy(
                update={"user_index": user_index}
            )
            received_at = datetime.fromisoformat(str(content["received_at"]))
            offset = content.get("clock_offset_s")
            received = Received(
                target,
                str(content["characteristic"]),
                measurement,
                received_at,
                None if offset is None else float(offset),
            )
            try:
                async with asyncio.timeout(STORE_TIMEOUT_S):
                    stored = await self._submit(received)
            except TimeoutError:
                stored = False
            if not stored:
                raise HeldError(
                    503,
                    f"held weighing {id_}: intake could not store it now (see status);"
                    " it still waits, try again",
                )
            # Stored before it is marked decided: a crash in between leaves it waiting, and
            # assigning it again finds the reading stored already (same id) and adds nothing.
            reading_id = self._references.reading_id(
                address, measurement.kind, measurement, received_at
            )
            subject_ref = self._references.subject_ref(subject_id)
            await self._decide(
                id_,
                ASSIGNED,
                "held_weighing.assigned",
                {"held_id": id_, "reading_id": reading_id, "source": source},
                subject_ref,
            )
        log.info("held_weighing_assigned", held_id=id_, device=target.ref)
        return reading_id

    async def discard(self, id_: int, source: str) -> None:
        """Delete the weighing: nobody's, or not worth keeping (audited)."""
        async with self._deciding:
            content = await self._waiting_content(id_, must_open=False)
            target = None if content is None else self._targets.get(str(content["address"]))
            await self._decide(
                id_, DISCARDED, "held_weighing.discarded", {"held_id": id_, "source": source}, None
            )
        log.info("held_weighing_discarded", held_id=id_, device=target.ref if target else None)

    async def _waiting_content(self, id_: int, *, must_open: bool = True) -> Any:
        """The waiting weighing's content (None: it cannot be opened and need not be), or a
        404 / 409 that says why there is nothing to decide."""
        row = await self._database.call(
            lambda c: held_weighings.one(c, id_), priority=Priority.INTAKE
        )
        if row is None:
            raise HeldError(404, f"no held weighing {id_} (see the list of waiting weighings)")
        key, decision, sealed = row
        if decision is not None:
            raise HeldError(409, f"held weighing {id_} was already {decision}; nothing changed")
        content = self._open(key, sealed)
        if content is None and must_open:
            raise HeldError(
                409,
                f"held weighing {id_} cannot be opened (altered, or another storage key);"
                " discard it",
            )
        return content

    async def _decide(
        self,
        id_: int,
        decision: str,
        event: str,
        data: dict[str, Any],
        subject_ref: str | None,
    ) -> None:
        at = datetime.now(UTC).isoformat()

        def write(connection: sqlite3.Connection) -> None:
            with Transaction(connection):
                if not held_weighings.decide(connection, id_, decision, at):
                    raise HeldError(409, f"held weighing {id_} was already decided")
                audit.append(connection, event, data, subject_ref=subject_ref)

        await self._database.call(write, priority=Priority.INTAKE)
        await self.recount()

    def _open(self, key: str, sealed: bytes) -> dict[str, Any] | None:
        plain = self._sealer.try_open(sealed, held_aad(key))
        if plain is None:
            return None
        content = orjson.loads(plain)
        return content if isinstance(content, dict) else None
