"""The operator's JSON API under ``/api/`` (DESIGN.md 2.5), and the health and metrics probes."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from datetime import UTC, date, datetime
from typing import Any

import orjson
import structlog
from aiohttp import web

from devices.profiles import BROADCAST_PROFILES
from gateway.api.alert_view import window_text
from gateway.api.context import ApiContext, context_of, page_language, principal_of
from gateway.api.noticed import noticed
from gateway.api.responses import ApiError, json_object, json_response
from gateway.api.summary import KIND_LABELS, device_readings
from gateway.exporters.fhir.config import FhirDestination
from gateway.intake.held import HeldError, HeldWeighings
from gateway.metrics import CONTENT_TYPE
from gateway.privacy import audit
from gateway.settings import PURPOSES
from gateway.storage import quarantine
from gateway.storage.database import Transaction
from gateway.storage.outbox import Outbox

log = structlog.get_logger(__name__)

DEFAULT_IDENTIFIER_SYSTEM = "http://electronichealth.se/identifier/personnummer"
KEEPALIVE_S = 25.0


def _iso(epoch: float | None) -> str | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, UTC).isoformat()


# Probes -----------------------------------------------------------------------------------


async def healthz(request: web.Request) -> web.Response:
    return json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    ready = context_of(request).hub.is_ready()
    return json_response({"ready": ready}, status=200 if ready else 503)


async def metrics(request: web.Request) -> web.Response:
    collector = context_of(request).metrics
    await collector.refresh(time.time())
    response = web.Response(body=collector.render())
    response.headers["Content-Type"] = CONTENT_TYPE
    return response


async def openapi(request: web.Request) -> web.Response:
    from gateway.api.openapi import document  # a large module, for the rare client that asks

    return json_response(document())


# Status and devices -----------------------------------------------------------------------


async def devices_of(context: ApiContext) -> list[dict[str, Any]]:
    hub = context.hub
    statuses = {s.address: s for s in hub.device_status()}
    held = hub.held_weighings()
    sealer = context.summaries.sealer
    newest = await hub.on_database(lambda c: device_readings(c, sealer))
    devices = []
    for index, device in enumerate(hub.settings.devices, start=1):
        status = statuses.get(device.address)
        subjects = (
            [device.subject] if device.subject else sorted(set(device.user_subjects.values()))
        )
        devices.append(
            {
                "ref": f"device-{index}",
                "name": device.name,
                "address": device.address,
                "profile": device.profile,
                "label": KIND_LABELS.get(device.profile, device.profile),
                "simulated": device.simulated,
                "subjects": [context.references.subject_ref(s) for s in subjects],
                "connected": bool(status and status.connected),
                "last_seen": status.last_seen.isoformat() if status and status.last_seen else None,
                "readings": status.readings if status else 0,
                "decode_errors": status.decode_errors if status else 0,
                "connects": status.connects if status else 0,
                "last_error": status.last_error if status else None,
                "battery_level": getattr(status, "battery_level", None),
                # A shared scale's weighings that fit nobody or several people: kept, not
                # guessed, and waiting here until an operator assigns or discards them.
                "held_ambiguous": held.waiting_on(device.address) if held else 0,
                "held_at": status.held_at.isoformat() if status and status.held_at else None,
                "consent_refused": bool(status and status.consent_refused),
                **newest.get(device.address, {"clock_offset_s": None, "last_reading_at": None}),
            }
        )
    now = datetime.now(UTC)
    for entry in devices:
        entry.update(hub.trouble.device_fields(entry, now))
    return devices


async def status(request: web.Request) -> web.Response:
    context = context_of(request)
    snapshot = await context.hub.status()
    snapshot["devices"] = await devices_of(context)
    snapshot["hub_time"] = datetime.now(UTC).isoformat()
    bluetooth = await context.hub.trouble.bluetooth()
    snapshot["bluetooth"] = bluetooth.as_dict()
    snapshot["warnings"] = context.hub.trouble.warnings(bluetooth, snapshot["devices"])
    return json_response(snapshot)


async def devices(request: web.Request) -> web.Response:
    return json_response({"devices": await devices_of(context_of(request))})


# Subjects and their rights ------------------------------------------------------------------


def _subject_id(request: web.Request) -> str:
    subject_id = request.match_info["subject"]
    context_of(request).rights.subject(subject_id)  # 404 for an unknown person
    return subject_id


async def subject_access(request: web.Request) -> web.Response:
    return json_response(await context_of(request).rights.access(_subject_id(request)))


def identifier_system(context: ApiContext) -> str:
    for destination in context.hub.settings.destinations:
        if isinstance(destination, FhirDestination):
            return destination.identifier_system
    return DEFAULT_IDENTIFIER_SYSTEM


async def subject_export(request: web.Request) -> web.Response:
    context = context_of(request)
    subject_id = _subject_id(request)
    kind = request.query.get("format", "json")
    today = date.today().isoformat()
    if kind == "json":
        data = await context.rights.export_json(subject_id)
        content_type, filename = "application/json", f"my-health-data-{today}.json"
    elif kind == "fhir":
        data = await context.rights.export_fhir(subject_id, identifier_system(context))
        content_type, filename = "application/fhir+json", f"my-health-data-{today}.fhir.json"
    else:
        raise ApiError(400, "format: use json or fhir")
    context.events.notify(context.rights.subject_ref(subject_id))
    return web.Response(
        body=orjson.dumps(data, option=orjson.OPT_INDENT_2),
        headers={
            "Content-Type": content_type,
            "Content-Disposition": f'attachment; filename="{filename}"',
        },
    )


async def subject_erase(request: web.Request) -> web.Response:
    context = context_of(request)
    subject_id = _subject_id(request)
    source = principal_of(request).audit_source
    counts = await context.rights.erase(subject_id, source)
    context.alerts.forget(context.rights.subject_ref(subject_id))  # they hold health values
    log.info("subject_erased_via_api", source=source)
    context.events.notify(context.rights.subject_ref(subject_id))
    return json_response({"erased": counts})


def known_purposes(context: ApiContext) -> set[str]:
    settings = context.hub.settings
    return (
        set(PURPOSES)
        | {d.purpose for d in settings.destinations}
        | {p for s in settings.subjects for p in s.consent}
    )


async def subject_consent(request: web.Request) -> web.Response:
    context = context_of(request)
    subject_id = _subject_id(request)
    body = await json_object(request)
    if not body:
        raise ApiError(400, 'name at least one purpose, for example {"analytics": false}')
    purposes = known_purposes(context)
    changes: dict[str, bool] = {}
    for purpose, granted in body.items():
        if purpose not in purposes:
            raise ApiError(
                400, f"{purpose}: unknown purpose; use one of {', '.join(sorted(purposes))}"
            )
        if not isinstance(granted, bool):
            raise ApiError(400, f"{purpose}: must be true or false")
        changes[purpose] = granted
    result = await context.rights.change_consent(
        subject_id, changes, principal_of(request).audit_source
    )
    context.events.notify(context.rights.subject_ref(subject_id))
    consents = context.hub.consent_purposes(context.rights.subject_ref(subject_id))
    return json_response(
        {
            "changed": result.changed,
            "purged": result.purged,
            "unchanged": sorted(set(changes) - set(result.changed)),
            "consents": dict(sorted(consents.items())),
        }
    )


async def subject_restriction(request: web.Request) -> web.Response:
    context = context_of(request)
    subject_id = _subject_id(request)
    body = await json_object(request)
    restricted = body.get("restricted")
    if not isinstance(restricted, bool):
        raise ApiError(400, "restricted: must be true or false")
    await context.rights.set_restriction(subject_id, restricted, principal_of(request).audit_source)
    context.events.notify(context.rights.subject_ref(subject_id))
    return json_response({"restricted": restricted})


async def bluetooth_problem(context: ApiContext) -> str | None:
    """Why the hub's Bluetooth is not working, or None (the hub's trouble watch,
    ``gateway/trouble.py``)."""
    state = await context.hub.trouble.bluetooth()
    return None if state.ok else str(state.reason)


async def subject_summary(request: web.Request) -> web.Response:
    context = context_of(request)
    subject_id = _subject_id(request)
    ref = context.rights.subject_ref(subject_id)
    now = time.time()
    held = await context.hub.on_database(lambda c: context.summaries.read(c, ref, now))
    radio = await bluetooth_problem(context)
    mine = [
        {
            "radio_problem": radio,
            "name": d["name"],
            "profile": d["profile"],
            "connected": d["connected"],
            "last_seen": d["last_seen"],
            "last_reading_at": d["last_reading_at"],
            "battery_level": d["battery_level"],
            "held_ambiguous": d["held_ambiguous"],
            "consent_refused": d["consent_refused"],
            "broadcast": d["profile"] in BROADCAST_PROFILES,  # listened to, never connected
        }
        for d in await devices_of(context)
        if ref in d["subjects"]
    ]
    summary = context.summaries.build(
        subject_id,
        held,
        language=page_language(request),
        restricted=context.hub.is_restricted(ref),
        devices=mine,
        alerts=context.alerts.for_subject(ref),
        now=now,
    )
    tr = context.summaries.translator(summary["language"])
    summary["noticed"] = noticed(
        held["alert_state"],
        context.hub.settings,
        subject_id,
        wording=lambda message_id, params: window_text(tr, message_id, params),
    )
    return json_response(summary)


async def subject_events(request: web.Request) -> web.StreamResponse:
    """Server-sent events: ``changed`` whenever something about this person changed."""
    context = context_of(request)
    ref = context.rights.subject_ref(_subject_id(request))
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store"}
    )
    await response.prepare(request)
    stream = context.events.open(ref)
    try:
        await response.write(b"retry: 3000\nevent: hello\ndata: {}\n\n")
        while True:
            try:
                await asyncio.wait_for(stream.changed.wait(), KEEPALIVE_S)
            except TimeoutError:
                await response.write(b": keepalive\n\n")
                continue
            stream.changed.clear()
            if stream.closed:
                break
            await response.write(b"event: changed\ndata: {}\n\n")
    except ConnectionResetError:
        pass
    finally:
        context.events.discard(stream)
    return response


# Audit and dead letters ---------------------------------------------------------------------


def _limit(request: web.Request, default: int, most: int) -> int:
    raw = request.query.get("limit", str(default))
    if not raw.isdigit() or not 1 <= int(raw) <= most:
        raise ApiError(400, f"limit: a whole number from 1 to {most}")
    return int(raw)


async def audit_log(request: web.Request) -> web.Response:
    context = context_of(request)
    limit = _limit(request, 200, 10_000)
    subject_ref = None
    if "subject" in request.query:
        subject_ref = context.rights.subject_ref(request.query["subject"])
    event = request.query.get("event")

    def read(connection: sqlite3.Connection) -> tuple[audit.VerifyResult, list[audit.AuditEntry]]:
        return audit.verify(connection), audit.entries(
            connection, subject_ref=subject_ref, limit=limit if event is None else 100_000
        )

    chain, entries = await context.hub.on_database(read)
    if event is not None:
        entries = [e for e in entries if e.event == event][:limit]
    return json_response(
        {
            "chain": {"ok": chain.ok, "entries": chain.entries, "problem": chain.problem},
            "entries": [
                {
                    "seq": e.seq,
                    "at": e.at,
                    "event": e.event,
                    "subject_ref": e.subject_ref,
                    "data": e.data,
                }
                for e in entries
            ],
        }
    )


async def dead_letters(request: web.Request) -> web.Response:
    context = context_of(request)
    limit = _limit(request, 500, 10_000)
    rows = await context.hub.on_database(lambda c: Outbox.dead_letters(c, limit))
    for row in rows:
        row["created_at"] = _iso(row["created_at"])
        row["failed_at"] = _iso(row["failed_at"])
    return json_response({"dead_letters": rows})


def requested_ids(body: dict[str, Any]) -> list[int]:
    ids = body.get("ids")
    if (
        not isinstance(ids, list)
        or not ids
        or not all(isinstance(i, int) and not isinstance(i, bool) for i in ids)
    ):
        raise ApiError(
            400,
            'ids: must be a non-empty list of dead-letter ids (numbers), or send {"all": true}',
        )
    return sorted(set(ids))


async def requeue(request: web.Request) -> web.Response:
    context = context_of(request)
    body = await json_object(request)
    if body.get("all") is True:
        destination = body.get("destination")
        if destination is not None and not isinstance(destination, str):
            raise ApiError(400, "destination: must be a destination's name")
        wanted = await context.hub.on_database(lambda c: Outbox.every_dead_letter(c, destination))
    else:
        wanted = requested_ids(body)
    if not wanted:
        return json_response({"requeued": [], "not_found": []})
    now = time.time()

    def move(connection: sqlite3.Connection) -> tuple[list[int], list[int]]:
        with Transaction(connection):
            present = Outbox.dead_letter_ids(connection, wanted)
            Outbox.requeue(connection, sorted(present), now)
            left = Outbox.dead_letter_ids(connection, wanted)
            audit.append(
                connection,
                "dead_letters.requeued",
                {"ids": sorted(present - left), "source": principal_of(request).audit_source},
            )
        return sorted(present - left), sorted(set(wanted) - present)

    moved, missing = await context.hub.on_database(move)
    context.hub.wake_delivery()
    log.info("dead_letters_requeued", items=len(moved))
    return json_response({"requeued": moved, "not_found": missing})


async def requeue_quarantined(request: web.Request) -> web.Response:
    """Every quarantined item back into the outbox, once the right storage key is back."""
    context = context_of(request)
    now = time.time()

    def move(connection: sqlite3.Connection) -> int:
        with Transaction(connection):
            moved = quarantine.requeue_all(connection, now)
            audit.append(
                connection,
                "quarantine.requeued",
                {"items": moved, "source": principal_of(request).audit_source},
            )
        return moved

    moved = await context.hub.on_database(move)
    context.hub.wake_delivery()
    log.info("quarantine_requeued", items=moved)
    return json_response({"requeued": moved})


# A shared scale's held weighings ----------------------------------------------------------


def _held(context: ApiContext) -> HeldWeighings:
    held = context.hub.held_weighings()
    if held is None:
        raise ApiError(503, "the gateway is starting; try again")
    return held


def _held_id(request: web.Request) -> int:
    raw = request.match_info["id"]
    if not raw.isdigit():
        raise ApiError(404, f"no held weighing {raw!r} (ids are numbers)")
    return int(raw)


async def held_weighings(request: web.Request) -> web.Response:
    """The weighings that wait for an operator to say whose they are, oldest first."""
    waiting = await _held(context_of(request)).listing()
    return json_response({"held_weighings": [weighing.as_json() for weighing in waiting]})


async def held_assign(request: web.Request) -> web.Response:
    context = context_of(request)
    id_ = _held_id(request)
    body = await json_object(request)
    user = body.get("user")
    if not isinstance(user, int) or isinstance(user, bool):
        raise ApiError(400, "user: must be the user index (a number) of a person of that scale")
    try:
        reading_id = await _held(context).assign(id_, user, principal_of(request).audit_source)
    except HeldError as exc:
        raise ApiError(exc.status, exc.message) from None
    return json_response({"id": id_, "decision": "assigned", "reading_id": reading_id})


async def held_discard(request: web.Request) -> web.Response:
    context = context_of(request)
    id_ = _held_id(request)
    try:
        await _held(context).discard(id_, principal_of(request).audit_source)
    except HeldError as exc:
        raise ApiError(exc.status, exc.message) from None
    return json_response({"id": id_, "decision": "discarded"})
