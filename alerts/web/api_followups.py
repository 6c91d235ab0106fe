"""JSON API for follow-ups and responses under /api/v1 (bearer tokens).

GET    /api/v1/alerts/{id}/followups      view            the alert's follow-ups
POST   /api/v1/alerts/{id}/followups      followup.manage {"kind", "at"|"in", "note", "data",
                                                           "condition", "kinds"} → 201
GET    /api/v1/followups?status=pending   view            every follow-up (pending only)
POST   /api/v1/followups                  followup.manage a digest (no alert) → 201
DELETE /api/v1/followups/{id}             followup.manage cancel
POST   /api/v1/alerts/{id}/responses      alert.respond   {"contact_id", "summary",
                                                           "responded_at"} → 201
"""

from __future__ import annotations

import json
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web

from alerts import drafts, tracking, users
from alerts.errors import NotFound, ValidationError
from alerts.followups import add_followup, cancel_followup, list_followups, parse_duration, to_json
from alerts.models import Alert, Contact
from alerts.timeutil import parse_when, utcnow
from alerts.web.api import authenticate

_FIELDS = frozenset({"kind", "at", "in", "note", "data", "condition", "kinds"})


def _dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False)


async def _body(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ValidationError("body: not valid JSON.") from None
    if not isinstance(body, dict):
        raise ValidationError("body: must be a JSON object.")
    return body


def _text(body: dict[str, Any], key: str, *, default: str | None = None) -> str | None:
    value = body.get(key, default)
    if value is not None and not isinstance(value, str):
        raise ValidationError(f"{key}: must be a string.", details={"field": key})
    return value


def _tz(request: web.Request) -> ZoneInfo:
    from alerts.web import APP

    return ZoneInfo(request.app[APP].settings.scheduler.timezone)


async def _create(request: web.Request, alert_id: int | None) -> web.Response:
    from alerts.web import APP

    user = await authenticate(request)
    users.check(user, "followup.manage")
    body = await _body(request)
    unknown = sorted(set(body) - _FIELDS)
    if unknown:
        raise ValidationError(
            f"{unknown[0]}: unknown field; fields are {', '.join(sorted(_FIELDS))}.",
            details={"field": unknown[0]},
        )
    now = utcnow()
    at, in_ = _text(body, "at"), _text(body, "in")
    if (at is None) == (in_ is None):
        raise ValidationError(
            "at, in: give exactly one of at (ISO-8601) or in (e.g. 7d).", details={"field": "at"}
        )
    due = parse_when(at, field="at") if at is not None else now + parse_duration(in_ or "", field="in")
    data = body.get("data")
    if data is not None and not isinstance(data, dict):
        raise ValidationError("data: must be a JSON object of case data.", details={"field": "data"})
    kinds = body.get("kinds", [])
    if not isinstance(kinds, list) or not all(isinstance(k, str) for k in kinds):
        raise ValidationError("kinds: must be a list of contact kinds.", details={"field": "kinds"})
    app = request.app[APP]
    async with app.sessions.begin() as session:
        alert = await drafts.get_alert(session, alert_id) if alert_id is not None else None
        f = await add_followup(
            session,
            alert=alert,
            kind=_text(body, "kind") or "",
            due_at=due,
            note=_text(body, "note", default="") or "",
            data=data,
            condition=_text(body, "condition"),
            kinds=kinds,
            user=user,
            now=now,
            validate_case=app.renderer.validate_case,
        )
        doc = to_json(f, _tz(request))
    return web.json_response(doc, status=201, dumps=_dumps)


async def alert_followups(request: web.Request) -> web.Response:
    """GET /api/v1/alerts/{id}/followups"""
    from alerts.web import APP

    user = await authenticate(request)
    users.check(user, "view")
    async with request.app[APP].sessions() as session:
        alert = await drafts.get_alert(session, int(request.match_info["id"]))
        rows = [to_json(f, _tz(request)) for f in await list_followups(session, alert_id=alert.id)]
    return web.json_response({"followups": rows}, dumps=_dumps)


async def add_alert_followup(request: web.Request) -> web.Response:
    """POST /api/v1/alerts/{id}/followups"""
    return await _create(request, int(request.match_info["id"]))


async def add_digest(request: web.Request) -> web.Response:
    """POST /api/v1/followups (a follow-up that names no alert: the weekly digest)"""
    return await _create(request, None)


async def all_followups(request: web.Request) -> web.Response:
    """GET /api/v1/followups?status=pending|all"""
    from alerts.web import APP

    user = await authenticate(request)
    users.check(user, "view")
    status = request.query.get("status", "pending")
    if status not in ("pending", "all"):
        raise ValidationError(f"status: {status!r} is not pending or all.", details={"field": "status"})
    async with request.app[APP].sessions() as session:
        rows = [to_json(f, _tz(request)) for f in await list_followups(session, include_done=status == "all")]
    return web.json_response({"followups": rows}, dumps=_dumps)


async def cancel(request: web.Request) -> web.Response:
    """DELETE /api/v1/followups/{id}"""
    from alerts.web import APP

    user = await authenticate(request)
    async with request.app[APP].sessions.begin() as session:
        f = await cancel_followup(session, int(request.match_info["id"]), user=user, now=utcnow())
        doc = to_json(f, _tz(request))
    return web.json_response(doc, dumps=_dumps)


async def add_response(request: web.Request) -> web.Response:
    """POST /api/v1/alerts/{id}/responses"""
    from alerts.web import APP

    user = await authenticate(request)
    users.check(user, "alert.respond")
    body = await _body(request)
    contact_id = body.get("contact_id")
    if contact_id is not None and (not isinstance(contact_id, int) or isinstance(contact_id, bool)):
        raise ValidationError(
            "contact_id: must be a contact id (a whole number) or null.", details={"field": "contact_id"}
        )
    responded = _text(body, "responded_at")
    now = utcnow()
    async with request.app[APP].sessions.begin() as session:
        alert: Alert = await drafts.get_alert(session, int(request.match_info["id"]))
        if contact_id is not None and await session.get(Contact, contact_id) is None:
            raise NotFound(f"contact {contact_id} does not exist.")
        response = await tracking.record_response(
            session,
            alert,
            contact_id=contact_id,
            summary=_text(body, "summary", default="") or "",
            recorded_by=user.id,
            now=now,
            responded_at=parse_when(responded, field="responded_at") if responded else None,
        )
        doc = {
            "id": response.id,
            "alert_id": alert.id,
            "contact_id": response.contact_id,
            "summary": response.summary,
            "responded_at": response.responded_at.isoformat(),
        }
    return web.json_response(doc, status=201, dumps=_dumps)


def setup(webapp: web.Application) -> None:
    """Add the follow-up and response routes."""
    webapp.router.add_get(r"/api/v1/alerts/{id:\d+}/followups", alert_followups)
    webapp.router.add_post(r"/api/v1/alerts/{id:\d+}/followups", add_alert_followup)
    webapp.router.add_post(r"/api/v1/alerts/{id:\d+}/responses", add_response)
    webapp.router.add_get("/api/v1/followups", all_followups)
    webapp.router.add_post("/api/v1/followups", add_digest)
    webapp.router.add_delete(r"/api/v1/followups/{id:\d+}", cancel)
