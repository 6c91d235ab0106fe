"""JSON API for follow-ups and responses under /api/v1 (bearer tokens).

Declared as ``Route``s of the shared table (``ROUTES``, registered by ``alerts.web.api.routes``): the
same token, role, size, content-type and schema checks as every API route, and in the
OpenAPI document.

GET    /api/v1/alerts/{id}/followups      view            the alert's follow-ups
POST   /api/v1/alerts/{id}/followups      followup.manage {"kind", "at"|"in", "note", "data",
                                                           "condition", "kinds"} → 201
GET    /api/v1/followups?status=pending   view            every follow-up (pending only)
POST   /api/v1/followups                  followup.manage a digest (no alert) → 201
DELETE /api/v1/followups/{id}             followup.manage cancel
POST   /api/v1/alerts/{id}/responses      alert.respond   {"contact_id" | "from", "summary",
                                                           "responded_at"} → 201
"""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web

from alerts.actions import followups as followup_actions
from alerts.actions import responses
from alerts.app import App
from alerts.compose import casedata, drafts
from alerts.contacts.fields import KINDS
from alerts.core.clock import parse_when, utcnow
from alerts.core.errors import ValidationError
from alerts.followups.add import CONDITIONS, MAX_NOTE, UPDATE_FAMILIES
from alerts.followups.manage import list_followups, parse_duration, to_json
from alerts.web.api.routes import ID_PATH, MAX_ID, PREFIX, Ctx, Param, Route, Schema, json_response
from alerts.web.api.schema import REFUSAL, TIME, line, text

FOLLOWUP: Schema = {"type": "object", "required": ["id"], "properties": {"id": {"type": "integer"}}}
#: A positive duration (``followups.add.parse_duration``); at most 4 digits a unit, so that 16
#: characters stay within a few centuries.
_NONZERO = "(?:[1-9][0-9]{0,3}|0[1-9][0-9]{0,2}|00[1-9][0-9]?|000[1-9])"
_PART = "[0-9]{1,4}[wdhms]"
DURATION: Schema = {
    "anyOf": [{"type": "string", "maxLength": 16, "pattern": f"^(?:{_PART})*{_NONZERO}[wdhms](?:{_PART})*$"}],
    "description": "e.g. 7d, 36h, 90m, 1w2d",
    REFUSAL: {"field": "in", "message": "in: not a duration such as 7d, 36h, 90m or 1w2d."},
}
_NO_CONDITION: Schema = {"enum": [None, ""]}
_NO_KINDS: Schema = {"maxItems": 0}
_NO_DATA: Schema = {"type": "null"}


def followup_body(kinds: tuple[str, ...], update_data: Schema) -> Schema:
    """A follow-up's body for these ``kinds``, with the rules of ``followups.add`` that depend on
    the kind: exactly one of at/in; a condition (and a contact-kind filter, after no-response)
    only on reminders; case data only, and always, on updates."""
    by_kind: dict[str, Schema] = {
        "reminder": {
            "properties": {"data": _NO_DATA},
            "anyOf": [
                {"properties": {"kinds": _NO_KINDS}},
                {
                    "required": ["condition"],
                    "properties": {"condition": {"enum": ["no_response", "no-response"]}},
                },
            ],
        },
        "update": {
            "required": ["data"],
            "properties": {"condition": _NO_CONDITION, "kinds": _NO_KINDS, "data": update_data},
        },
        "send": {"properties": {"condition": _NO_CONDITION, "kinds": _NO_KINDS, "data": _NO_DATA}},
        "digest": {"properties": {"condition": _NO_CONDITION, "kinds": _NO_KINDS, "data": _NO_DATA}},
    }
    return {
        "type": "object",
        "additionalProperties": False,
        "required": ["kind"],
        "properties": {
            "kind": {"type": "string", "enum": list(kinds)},
            "at": {**TIME, "description": "when (RFC 3339); give this or in"},
            "in": {**DURATION, "description": "how long from now, e.g. 7d; give this or at"},
            "note": text(MAX_NOTE),
            "data": {"type": ["object", "null"], "description": "update: the update's case data"},
            "condition": {
                "enum": [None, "", *CONDITIONS, *(c.replace("_", "-") for c in CONDITIONS)],
                "description": "reminders only: no_response or case_open (no-response, case-open)",
            },
            "kinds": {
                "type": "array",
                "items": {"type": "string", "enum": list(KINDS)},
                "maxItems": 5,
                "description": "after a no-response condition: only these contact kinds count",
            },
        },
        "allOf": [
            {
                "oneOf": [{"required": ["at"]}, {"required": ["in"]}],
                REFUSAL: {
                    "field": "at",
                    "message": "at, in: give exactly one of at (ISO-8601) or in (e.g. 7d).",
                },
            },
            {"anyOf": [_kind_branch(k, by_kind[k]) for k in kinds]},
        ],
    }


def _kind_branch(kind: str, rules: Schema) -> Schema:
    """The body of one follow-up kind: its ``kind`` constant beside its own property rules."""
    return {**rules, "properties": {"kind": {"const": kind}, **rules.get("properties", {})}}


def update_data(app: App) -> Schema:
    """An update follow-up's case data: an update family's (``family``, default update)."""
    options = []
    for family in UPDATE_FAMILIES:
        schema = casedata.json_schema(app.renderer.family(family).variables)
        schema["properties"]["family"] = {"const": family}
        if family != "update":
            schema["required"] = [*schema["required"], "family"]
        options.append(schema)
    return {"anyOf": options}


RESPONSE_BODY: Schema = {
    "type": "object",
    "additionalProperties": False,
    "required": ["summary"],
    "properties": {
        "contact_id": {"type": ["integer", "null"], "minimum": 1, "maximum": MAX_ID},
        "from": {
            **line(320, nullable=True),
            "description": "who answered: a contact's id, email or name links that contact; "
            "anyone else is kept as written (sender)",
        },
        "summary": text(5000, blank=False),
        "responded_at": TIME,
    },
}
_LIST: Schema = {"type": "object", "properties": {"followups": {"type": "array", "items": FOLLOWUP}}}
_ALERT = f"{PREFIX}/alerts/{ID_PATH}"


def _tz(ctx: Ctx) -> ZoneInfo:
    return ZoneInfo(ctx.app.settings.scheduler.timezone)


async def _create(ctx: Ctx, alert_id: int | None) -> web.Response:
    body, user = ctx.body, ctx.user
    assert user is not None
    at, in_ = body.get("at"), body.get("in")
    if (at is None) == (in_ is None):
        raise ValidationError(
            "at, in: give exactly one of at (ISO-8601) or in (e.g. 7d).", details={"field": "at"}
        )
    due = parse_when(at, field="at") if at is not None else utcnow() + parse_duration(in_ or "", field="in")
    done = await followup_actions.add(
        ctx.app,
        user,
        alert_id,
        kind=body.get("kind") or "",
        due_at=due,
        note=body.get("note") or "",
        data=body.get("data"),
        condition=body.get("condition"),
        kinds=body.get("kinds", []),
    )
    return json_response(dict(done.doc), status=201)


async def alert_followups(ctx: Ctx) -> web.Response:
    """GET /api/v1/alerts/{id}/followups"""
    async with ctx.app.reads() as session:
        alert = await drafts.get_alert(session, ctx.id)
        rows = [to_json(f, _tz(ctx)) for f in await list_followups(session, alert_id=alert.id)]
    return json_response({"followups": rows})


async def add_alert_followup(ctx: Ctx) -> web.Response:
    """POST /api/v1/alerts/{id}/followups"""
    return await _create(ctx, ctx.id)


async def add_digest(ctx: Ctx) -> web.Response:
    """POST /api/v1/followups (a follow-up that names no alert: the weekly digest)"""
    return await _create(ctx, None)


async def all_followups(ctx: Ctx) -> web.Response:
    """GET /api/v1/followups?status=pending|all"""
    async with ctx.app.reads() as session:
        done = ctx.query["status"] == "all"
        rows = [to_json(f, _tz(ctx)) for f in await list_followups(session, include_done=done)]
    return json_response({"followups": rows})


async def cancel(ctx: Ctx) -> web.Response:
    """DELETE /api/v1/followups/{id}"""
    assert ctx.user is not None
    done = await followup_actions.cancel(ctx.app, ctx.user, ctx.id)
    return json_response(dict(done.doc))


async def add_response(ctx: Ctx) -> web.Response:
    """POST /api/v1/alerts/{id}/responses"""
    body, user = ctx.body, ctx.user
    assert user is not None
    responded: str | None = body.get("responded_at")
    done = await responses.respond(
        ctx.app,
        user,
        ctx.id,
        summary=body.get("summary") or "",
        sender=body.get("from"),
        contact_id=body.get("contact_id"),
        responded_at=parse_when(responded, field="responded_at") if responded else None,
    )
    doc: dict[str, Any] = {
        "id": done.response_id,
        "alert_id": done.alert_id,
        "contact_id": done.contact_id,
        "sender": done.sender,
        "summary": done.summary,
        "responded_at": done.responded_at.isoformat(),
    }
    return json_response(doc, status=201)


ROUTES: list[Route] = [
    Route(
        method="GET",
        path=f"{_ALERT}/followups",
        handler=alert_followups,
        summary="The alert's follow-ups",
        action="view",
        tag="followups",
        errors=(404,),
        response=_LIST,
    ),
    Route(
        method="POST",
        path=f"{_ALERT}/followups",
        handler=add_alert_followup,
        summary="Schedule a follow-up of the alert",
        action="followup.manage",
        tag="followups",
        request=lambda app: followup_body(("reminder", "update", "send"), update_data(app)),
        required_body=True,
        status=201,
        response=FOLLOWUP,
        creates=f"{PREFIX}/followups/{ID_PATH}",
        errors=(404, 409),
    ),
    Route(
        method="POST",
        path=f"{_ALERT}/responses",
        handler=add_response,
        summary="Record an authority's response",
        action="alert.respond",
        tag="followups",
        request=RESPONSE_BODY,
        required_body=True,
        status=201,
        errors=(404, 409),
        response={"type": "object"},
    ),
    Route(
        method="GET",
        path=f"{PREFIX}/followups",
        handler=all_followups,
        summary="Every follow-up (pending by default)",
        action="view",
        tag="followups",
        query=(
            Param(
                name="status",
                schema={"type": "string", "enum": ["pending", "all"], "default": "pending"},
                description="pending (the default) or all",
            ),
        ),
        response=_LIST,
    ),
    Route(
        method="POST",
        path=f"{PREFIX}/followups",
        handler=add_digest,
        summary="Schedule a digest (no alert)",
        action="followup.manage",
        tag="followups",
        request=followup_body(("digest",), {}),
        required_body=True,
        status=201,
        response=FOLLOWUP,
        creates=f"{PREFIX}/followups/{ID_PATH}",
        errors=(409,),
    ),
    Route(
        method="DELETE",
        path=f"{PREFIX}/followups/{ID_PATH}",
        handler=cancel,
        summary="Cancel a follow-up",
        action="followup.manage",
        tag="followups",
        response=FOLLOWUP,
        errors=(404, 409),
    ),
]
