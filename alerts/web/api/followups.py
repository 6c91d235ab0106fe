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

from alerts.actions import alerts as alert_actions
from alerts.actions import followups as followup_actions
from alerts.compose import drafts
from alerts.core.clock import parse_when, utcnow
from alerts.core.errors import ValidationError
from alerts.followups.manage import list_followups, parse_duration, to_json
from alerts.web.api.routes import ID_PATH, MAX_ID, PREFIX, Ctx, Param, Route, Schema, json_response

FOLLOWUP: Schema = {"type": "object"}
FOLLOWUP_BODY: Schema = {
    "type": "object",
    "additionalProperties": False,
    "required": ["kind"],
    "properties": {
        "kind": {"type": "string", "enum": ["reminder", "update", "send", "digest"]},
        "at": {"type": "string", "format": "date-time", "maxLength": 64},
        "in": {"type": "string", "maxLength": 16, "description": "e.g. 7d, 12h"},
        "note": {"type": "string", "maxLength": 2000},
        "data": {"type": "object"},
        "condition": {
            "type": ["string", "null"],
            "maxLength": 32,
            "description": "no_response or case_open (no-response, case-open also accepted)",
        },
        "kinds": {"type": "array", "items": {"type": "string", "maxLength": 32}, "maxItems": 5},
    },
}
RESPONSE_BODY: Schema = {
    "type": "object",
    "required": ["summary"],
    "properties": {
        "contact_id": {"type": ["integer", "null"], "minimum": 1, "maximum": MAX_ID},
        "from": {
            "type": ["string", "null"],
            "maxLength": 320,
            "description": "who answered: a contact's id, email or name links that contact; "
            "anyone else is kept as written (sender)",
        },
        "summary": {"type": "string", "maxLength": 5000},
        "responded_at": {"type": "string", "format": "date-time", "maxLength": 64},
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
    async with ctx.app.sessions() as session:
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
    async with ctx.app.sessions() as session:
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
    done = await alert_actions.respond(
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
        request=FOLLOWUP_BODY,
        required_body=True,
        status=201,
        response=FOLLOWUP,
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
        errors=(404,),
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
        request=FOLLOWUP_BODY,
        required_body=True,
        status=201,
        response=FOLLOWUP,
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
