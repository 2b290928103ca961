"""The OpenAPI 3.1 description of every route the hub serves (``GET /api/openapi.json``).

A test checks that this document and the server's route table name the same routes, and that
the document is valid OpenAPI 3.1.
"""

from __future__ import annotations

from typing import Any

from gateway import __version__


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


ERROR = _json(_ref("Error"), "An error; `error` says what is wrong.")
OBJECT: dict[str, Any] = {"type": "object"}
SUBJECT = {
    "name": "subject",
    "in": "path",
    "required": True,
    "description": "The person's id as configured in [[subjects]] (a personID).",
    "schema": {"type": "string"},
}
AUTH_ERRORS = {
    "401": ERROR,
    "403": ERROR,
}
SUBJECT_ERRORS = {**AUTH_ERRORS, "404": ERROR}
HELD_ID = {
    "name": "id",
    "in": "path",
    "required": True,
    "description": "The held weighing's id (from GET /api/held-weighings).",
    "schema": {"type": "integer"},
}


def _op(
    summary: str,
    responses: dict[str, Any],
    *,
    tag: str,
    parameters: list[dict[str, Any]] | None = None,
    body: dict[str, Any] | None = None,
    public: bool = False,
    description: str | None = None,
) -> dict[str, Any]:
    operation: dict[str, Any] = {"summary": summary, "tags": [tag], "responses": responses}
    if description:
        operation["description"] = description
    if parameters:
        operation["parameters"] = parameters
    if body is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": body}},
        }
    if public:
        operation["security"] = []
    return operation


def document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "health-gateway local API",
            "version": __version__,
            "description": (
                "The hub's local HTTP API. Everything under /api/ needs"
                " `Authorization: Bearer <token from gateway.api.token_file>` (or the hub page's"
                " session cookie, which reaches only the signed-in person's own"
                " /api/subjects/{subject} routes and must send X-CSRF-Token on changes)."
                " Every route answers only to addresses in gateway.api.allowed_networks."
                " Errors are JSON objects with an `error` field."
            ),
        },
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}, {"session": []}],
        "tags": [
            {"name": "probes", "description": "Health, readiness and Prometheus metrics."},
            {"name": "operator", "description": "Status, devices, audit log, dead letters."},
            {"name": "subjects", "description": "A person's data and rights."},
            {"name": "page", "description": "The person's page and its sign-in."},
        ],
        "paths": _paths(),
        "components": {
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "The token in gateway.api.token_file (default"
                    " data_dir/api-token).",
                },
                "session": {"type": "apiKey", "in": "cookie", "name": "hgw_session"},
            },
            "schemas": _schemas(),
        },
    }


def _paths() -> dict[str, Any]:
    return {
        "/healthz": {
            "get": _op(
                "Liveness: the process answers.",
                {"200": _json(OBJECT, "Alive.")},
                tag="probes",
                public=True,
            )
        },
        "/readyz": {
            "get": _op(
                "Readiness: the gateway is running (devices, pipeline and workers started).",
                {"200": _json(OBJECT, "Ready."), "503": _json(OBJECT, "Starting or stopping.")},
                tag="probes",
                public=True,
            )
        },
        "/metrics": {
            "get": _op(
                "Prometheus metrics (text exposition format); the API token, never a session.",
                {
                    "200": {
                        "description": "Metrics.",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    },
                    **AUTH_ERRORS,
                },
                tag="probes",
            )
        },
        "/api/openapi.json": {
            "get": _op(
                "This document.",
                {"200": _json(OBJECT, "The OpenAPI 3.1 document."), **AUTH_ERRORS},
                tag="operator",
            )
        },
        "/api/status": {
            "get": _op(
                "Devices, queue depth and oldest item per destination, dead letters, last error"
                " per destination, device clock offsets, pipeline counts.",
                {"200": _json(_ref("Status"), "The gateway's state."), **AUTH_ERRORS},
                tag="operator",
            )
        },
        "/api/devices": {
            "get": _op(
                "Configured devices with their link state, battery and clock offset.",
                {
                    "200": _json(
                        {
                            "type": "object",
                            "properties": {"devices": {"type": "array", "items": _ref("Device")}},
                        },
                        "The devices.",
                    ),
                    **AUTH_ERRORS,
                },
                tag="operator",
            )
        },
        "/api/subjects/{subject}": {
            "get": _op(
                "Access: everything held about the person (identity, consents, readings,"
                " queued items, dead letters, audit entries).",
                {"200": _json(OBJECT, "All held about the person."), **SUBJECT_ERRORS},
                tag="subjects",
                parameters=[SUBJECT],
            )
        },
        "/api/subjects/{subject}/summary": {
            "get": _op(
                "What the hub page shows: latest reading per kind, 30-day trends (SVG, one"
                " point a day, limits), devices and what needs attention, consents with"
                " plain-language explanations, whether the care team still hears, who received"
                " the data, and alerts (open first, with what to do). Texts in Swedish or"
                " English (`lang`, else the hub's `locale` and `Accept-Language`), times in the"
                " hub's time zone.",
                {"200": _json(_ref("Summary"), "The person's summary."), **SUBJECT_ERRORS},
                tag="subjects",
                parameters=[
                    SUBJECT,
                    {
                        "name": "lang",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "string", "enum": ["sv", "en"]},
                    },
                ],
            )
        },
        "/api/subjects/{subject}/events": {
            "get": _op(
                "Server-sent events: `changed` whenever something about the person changed"
                " (a reading, a delivery, an alert, a consent change). Carries no data.",
                {
                    "200": {
                        "description": "An event stream.",
                        "content": {"text/event-stream": {"schema": {"type": "string"}}},
                    },
                    **SUBJECT_ERRORS,
                },
                tag="subjects",
                parameters=[SUBJECT],
            )
        },
        "/api/subjects/{subject}/export": {
            "get": _op(
                "Portability: the person's data as a download (audited).",
                {
                    "200": {
                        "description": "A file download (Content-Disposition: attachment).",
                        "content": {
                            "application/json": {"schema": OBJECT},
                            "application/fhir+json": {"schema": OBJECT},
                        },
                    },
                    "400": ERROR,
                    **SUBJECT_ERRORS,
                },
                tag="subjects",
                parameters=[
                    SUBJECT,
                    {
                        "name": "format",
                        "in": "query",
                        "required": False,
                        "description": "json (everything held) or fhir (a FHIR R4 collection"
                        " Bundle of the readings).",
                        "schema": {"type": "string", "enum": ["json", "fhir"], "default": "json"},
                    },
                ],
            )
        },
        "/api/subjects/{subject}/data": {
            "delete": _op(
                "Erasure: delete the person's readings, queued items, dead letters and"
                " consents (every purpose is recorded as withdrawn); audited with counts only.",
                {"200": _json(_ref("Erased"), "What was deleted."), **SUBJECT_ERRORS},
                tag="subjects",
                parameters=[SUBJECT],
            )
        },
        "/api/subjects/{subject}/consent": {
            "put": _op(
                "Grant or withdraw purposes. A withdrawal purges what is queued for it.",
                {
                    "200": _json(_ref("ConsentChange"), "What changed and what was purged."),
                    "400": ERROR,
                    **SUBJECT_ERRORS,
                },
                tag="subjects",
                parameters=[SUBJECT],
                body={
                    "type": "object",
                    "additionalProperties": {"type": "boolean"},
                    "minProperties": 1,
                    "examples": [{"analytics": False}],
                },
            )
        },
        "/api/subjects/{subject}/restriction": {
            "put": _op(
                "Restrict processing (readings are stored, nothing is sent) or lift it.",
                {
                    "200": _json(
                        {"type": "object", "properties": {"restricted": {"type": "boolean"}}},
                        "The restriction now in force.",
                    ),
                    "400": ERROR,
                    **SUBJECT_ERRORS,
                },
                tag="subjects",
                parameters=[SUBJECT],
                body={
                    "type": "object",
                    "required": ["restricted"],
                    "properties": {"restricted": {"type": "boolean"}},
                },
            )
        },
        "/api/audit": {
            "get": _op(
                "The audit log, newest first, with the hash chain's verification.",
                {"200": _json(_ref("Audit"), "Entries."), "400": ERROR, **SUBJECT_ERRORS},
                tag="operator",
                parameters=[
                    {
                        "name": "subject",
                        "in": "query",
                        "required": False,
                        "description": "Only this person's entries (their id).",
                        "schema": {"type": "string"},
                    },
                    {
                        "name": "event",
                        "in": "query",
                        "required": False,
                        "description": "Only this event, e.g. disclosure.",
                        "schema": {"type": "string"},
                    },
                    {
                        "name": "limit",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "integer", "minimum": 1, "maximum": 10000},
                    },
                ],
            )
        },
        "/api/dead-letters": {
            "get": _op(
                "Items a destination refused permanently, newest first (without payloads).",
                {
                    "200": _json(
                        {
                            "type": "object",
                            "properties": {
                                "dead_letters": {"type": "array", "items": _ref("DeadLetter")}
                            },
                        },
                        "Dead letters.",
                    ),
                    "400": ERROR,
                    **AUTH_ERRORS,
                },
                tag="operator",
                parameters=[
                    {
                        "name": "limit",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "integer", "minimum": 1, "maximum": 10000},
                    }
                ],
            )
        },
        "/api/quarantine/requeue": {
            "post": _op(
                "Move every quarantined item (one that could not be opened) back into the outbox,"
                " once the storage key it was sealed with is restored.",
                {
                    "200": _json(
                        {
                            "type": "object",
                            "properties": {"requeued": {"type": "integer"}},
                        },
                        "How many were moved.",
                    ),
                    **AUTH_ERRORS,
                },
                tag="operator",
            )
        },
        "/api/held-weighings": {
            "get": _op(
                "A shared scale's weighings that fit nobody or more than one of its people:"
                " kept, never guessed, until an operator assigns or discards them (oldest"
                " first; deleted by retention when nobody decides).",
                {
                    "200": _json(
                        {
                            "type": "object",
                            "properties": {
                                "held_weighings": {"type": "array", "items": _ref("HeldWeighing")}
                            },
                        },
                        "The waiting weighings.",
                    ),
                    "503": ERROR,
                    **AUTH_ERRORS,
                },
                tag="operator",
            )
        },
        "/api/held-weighings/{id}/assign": {
            "post": _op(
                "Give a held weighing to a person of its scale: it enters intake as if the scale"
                " had named them (consent, restriction, alerts, destinations, audit; its measured"
                " time kept).",
                {
                    "200": _json(_ref("HeldDecision"), "Assigned; `reading_id` is the reading."),
                    "400": ERROR,
                    "404": _json(_ref("Error"), "No held weighing with this id."),
                    "409": _json(_ref("Error"), "Already assigned or discarded: nothing changed."),
                    "503": _json(_ref("Error"), "Intake could not store it now; it still waits."),
                    **AUTH_ERRORS,
                },
                tag="operator",
                parameters=[HELD_ID],
                body={
                    "type": "object",
                    "required": ["user"],
                    "properties": {
                        "user": {
                            "type": "integer",
                            "description": "The user index of a person of that scale"
                            " ([devices.users]; the listing's `users`).",
                        }
                    },
                },
            )
        },
        "/api/held-weighings/{id}/discard": {
            "post": _op(
                "Delete a held weighing (audited).",
                {
                    "200": _json(_ref("HeldDecision"), "Discarded."),
                    "404": _json(_ref("Error"), "No held weighing with this id."),
                    "409": _json(_ref("Error"), "Already assigned or discarded: nothing changed."),
                    **AUTH_ERRORS,
                },
                tag="operator",
                parameters=[HELD_ID],
            )
        },
        "/api/dead-letters/requeue": {
            "post": _op(
                "Move dead letters back into the outbox for another delivery attempt.",
                {
                    "200": _json(
                        {
                            "type": "object",
                            "properties": {
                                "requeued": {"type": "array", "items": {"type": "integer"}},
                                "not_found": {"type": "array", "items": {"type": "integer"}},
                            },
                        },
                        "What was moved.",
                    ),
                    "400": ERROR,
                    **AUTH_ERRORS,
                },
                tag="operator",
                body={
                    "type": "object",
                    "description": 'Either `ids`, or `{"all": true}` for every dead letter'
                    " (of one `destination` if given).",
                    "properties": {
                        "ids": {"type": "array", "items": {"type": "integer"}, "minItems": 1},
                        "all": {"type": "boolean"},
                        "destination": {"type": "string"},
                    },
                },
            )
        },
        "/": {
            "get": _op(
                "The person's page (HTML).",
                {
                    "200": {
                        "description": "The page.",
                        "content": {"text/html": {"schema": {"type": "string"}}},
                    }
                },
                tag="page",
                public=True,
            )
        },
        "/static/{name}": {
            "get": _op(
                "The page's script and style sheet.",
                {"200": {"description": "The file."}, "404": ERROR},
                tag="page",
                public=True,
                parameters=[
                    {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
                ],
            )
        },
        "/session": {
            "get": _op(
                "Who is signed in on this browser (and the CSRF token for changes).",
                {"200": _json(_ref("Session"), "The session, or signed_in false.")},
                tag="page",
                public=True,
            ),
            "post": _op(
                "Sign in with a PIN, or with the API token and a person's id. Wrong tries are"
                " rate-limited for the whole hub.",
                {
                    "201": _json(_ref("Session"), "Signed in; sets the session cookie."),
                    "400": ERROR,
                    "401": ERROR,
                    "403": ERROR,
                    "404": ERROR,
                    "429": ERROR,
                },
                tag="page",
                public=True,
                body={
                    "oneOf": [
                        {
                            "type": "object",
                            "required": ["pin"],
                            "properties": {"pin": {"type": "string"}},
                        },
                        {
                            "type": "object",
                            "required": ["token", "subject"],
                            "properties": {
                                "token": {"type": "string"},
                                "subject": {"type": "string"},
                            },
                        },
                    ]
                },
            ),
            "delete": _op(
                "Sign out (needs X-CSRF-Token).",
                {"200": _json(_ref("Session"), "Signed out."), "403": ERROR},
                tag="page",
                public=True,
            ),
        },
    }


def _schemas() -> dict[str, Any]:
    nullable_string = {"type": ["string", "null"]}
    return {
        "Error": {
            "type": "object",
            "required": ["error"],
            "properties": {"error": {"type": "string"}},
        },
        "Session": {
            "type": "object",
            "required": ["signed_in"],
            "properties": {
                "signed_in": {"type": "boolean"},
                "subject": {"type": "string"},
                "csrf": {"type": "string"},
                "via": {"type": "string", "enum": ["pin", "token"]},
                "pin_enabled": {"type": "boolean"},
            },
        },
        "Device": {
            "type": "object",
            "properties": {
                "ref": {"type": "string"},
                "name": nullable_string,
                "address": {"type": "string"},
                "profile": {"type": "string"},
                "connected": {"type": "boolean"},
                "last_seen": nullable_string,
                "readings": {"type": "integer"},
                "decode_errors": {"type": "integer"},
                "last_error": nullable_string,
                "battery_level": {"type": ["integer", "null"]},
                "battery_low": {"type": "boolean"},
                "last_contact": nullable_string,
                "unseen_days": {"type": ["number", "null"]},
                "clock_offset_s": {"type": ["number", "null"]},
                "held_ambiguous": {"type": "integer"},
                "held_at": nullable_string,
                "consent_refused": {"type": "boolean"},
            },
        },
        "Destination": {
            "type": "object",
            "properties": {
                "name": {"type": "string"},
                "kind": {"type": "string"},
                "purpose": {"type": "string"},
                "queued": {"type": "integer"},
                "oldest_queued_at": nullable_string,
                "dead_letters": {"type": "integer"},
                "delivered": {"type": "integer"},
                "retries": {"type": "integer"},
                "last_error": nullable_string,
                "last_error_at": nullable_string,
                "last_delivery_at": nullable_string,
            },
        },
        "Status": {
            "type": "object",
            "properties": {
                "version": {"type": "string"},
                "ready": {"type": "boolean"},
                "hub_time": {"type": "string"},
                "devices": {"type": "array", "items": _ref("Device")},
                "destinations": {"type": "array", "items": _ref("Destination")},
                "pipeline": {"type": "object"},
                "bluetooth": {
                    "type": "object",
                    "description": "Whether the radio works, and if not why (with the fix).",
                    "properties": {
                        "ok": {"type": "boolean"},
                        "reason": nullable_string,
                        "adapter": nullable_string,
                    },
                },
                "warnings": {
                    "type": "array",
                    "description": "What needs someone's attention: Bluetooth, a low battery,"
                    " a device not seen for days.",
                    "items": {
                        "type": "object",
                        "properties": {
                            "kind": {
                                "type": "string",
                                "enum": ["bluetooth", "battery_low", "device_unseen"],
                            },
                            "device": nullable_string,
                            "message": {"type": "string"},
                        },
                    },
                },
            },
        },
        "Summary": {
            "type": "object",
            "properties": {
                "language": {"type": "string", "enum": ["sv", "en"]},
                "restricted": {"type": "boolean"},
                "monitoring": {
                    "type": "object",
                    "properties": {
                        "stopped": {"type": "array", "items": {"type": "string"}},
                        "banner": {"type": "string"},
                    },
                },
                "updated": {"type": "string"},
                "latest": {"type": "array", "items": {"type": "object"}},
                "trends": {"type": "array", "items": {"type": "object"}},
                "devices": {"type": "array", "items": {"type": "object"}},
                "consents": {"type": "array", "items": {"type": "object"}},
                "care_team_told": {"type": "boolean"},
                "history": {"type": "array", "items": {"type": "object"}},
                "alerts": {"type": "array", "items": {"type": "object"}},
                "noticed": {
                    "type": "array",
                    "description": "What the alert rules noticed and still hold, in plain words"
                    " (`text`), with the wording as data (`message`: id and params) and the care"
                    " provider's `instructions`.",
                    "items": {"type": "object"},
                },
            },
        },
        "ConsentChange": {
            "type": "object",
            "properties": {
                "changed": {"type": "object", "additionalProperties": {"type": "boolean"}},
                "purged": {"type": "object", "additionalProperties": {"type": "integer"}},
                "unchanged": {"type": "array", "items": {"type": "string"}},
                "consents": {"type": "object", "additionalProperties": {"type": "boolean"}},
            },
        },
        "Erased": {
            "type": "object",
            "properties": {
                "erased": {"type": "object", "additionalProperties": {"type": "integer"}}
            },
        },
        "Audit": {
            "type": "object",
            "properties": {
                "chain": {"type": "object"},
                "entries": {"type": "array", "items": {"type": "object"}},
            },
        },
        "HeldWeighing": {
            "type": "object",
            "properties": {
                "id": {"type": "integer"},
                "device": {"type": "string", "description": "The device's ref (device-N)."},
                "profile": {"type": "string"},
                "measured_at": {
                    "type": ["string", "null"],
                    "description": "The scale's own time stamp, as it sent it.",
                },
                "received_at": {"type": "string"},
                "values": {
                    "type": "object",
                    "additionalProperties": {
                        "type": "object",
                        "properties": {
                            "value": {"type": "number"},
                            "unit": {"type": "string"},
                        },
                    },
                },
                "users": {
                    "type": "array",
                    "items": {"type": "integer"},
                    "description": "The user indexes of the scale's people.",
                },
            },
        },
        "HeldDecision": {
            "type": "object",
            "properties": {
                "id": {"type": "integer"},
                "decision": {"type": "string", "enum": ["assigned", "discarded"]},
                "reading_id": {"type": "string"},
            },
        },
        "DeadLetter": {
            "type": "object",
            "properties": {
                "id": {"type": "integer"},
                "destination": {"type": "string"},
                "purpose": {"type": "string"},
                "category": {"type": "string"},
                "subject_ref": {"type": "string"},
                "reading_id": {"type": "string"},
                "attempts": {"type": "integer"},
                "created_at": nullable_string,
                "failed_at": nullable_string,
                "status": {"type": ["integer", "null"]},
                "response": nullable_string,
            },
        },
    }
