"""API routes for an alert's workflow: submit, approve, consent, send or schedule, pause/resume,
resend failed, close; its delivery stats and deliveries.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from alerts.compose import approval, drafts
from alerts.core.clock import parse_when, utcnow
from alerts.delivery import controls, publish
from alerts.web.api.alerts import LANGUAGE, ONE, TIME, state_of
from alerts.web.api.routes import (
    LIMIT,
    OFFSET,
    Ctx,
    Param,
    Route,
    alert_deliveries,
    alert_stats,
    iso,
    json_response,
)
from channels import configured_channels

_obj = {"type": "object"}


async def submit(ctx: Ctx) -> web.Response:
    """Draft → in review."""
    assert ctx.user is not None
    async with ctx.app.sessions.begin() as session:
        alert = await drafts.get_alert(session, ctx.id)
        reviewers = await approval.submit(session, alert, user=ctx.user, now=utcnow())
        doc = {"id": alert.id, "status": alert.status, "reviewers": [u.name for u in reviewers]}
    return json_response(doc)


async def approve(ctx: Ctx) -> web.Response:
    """Approve languages (default all) of the current version, by a second person."""
    assert ctx.user is not None
    async with ctx.app.sessions.begin() as session:
        alert = await drafts.get_alert(session, ctx.id)
        remaining = await approval.approve(
            session,
            alert,
            user=ctx.user,
            languages=ctx.body.get("languages"),
            require_second_approver=ctx.app.settings.workflow.require_second_approver,
            now=utcnow(),
        )
        doc = {"id": alert.id, "status": alert.status, "remaining": remaining}
    return json_response(doc)


async def consent(ctx: Ctx) -> web.Response:
    """Record the defender's consent to publicity (the latest record counts)."""
    assert ctx.user is not None
    async with ctx.app.sessions.begin() as session:
        alert = await drafts.get_alert(session, ctx.id)
        record = await approval.record_consent(
            session,
            alert,
            user=ctx.user,
            scope=ctx.body["scope"],
            note=ctx.body.get("note", ""),
            now=utcnow(),
        )
        doc = {"id": alert.id, "scope": record.scope, "recorded_at": iso(record.recorded_at)}
    return json_response(doc, status=201)


async def send(ctx: Ctx) -> web.Response:
    """Publish now, or schedule for ``at`` (the embargo time)."""
    now = utcnow()
    async with ctx.app.sessions.begin() as session:
        alert = await drafts.get_alert(session, ctx.id)
        if ctx.body.get("at"):
            at = parse_when(ctx.body["at"], field="at")
            await publish.schedule(session, alert, at=at, now=now, user=ctx.user)
            doc: dict[str, Any] = {"id": alert.id, "status": alert.status, "send_at": iso(alert.send_at)}
        else:
            queued = await publish.publish(
                session,
                alert,
                now=now,
                webhook_url=ctx.app.settings.webhook.url,
                user=ctx.user,
                available=configured_channels(ctx.app.settings),
            )
            doc = {"id": alert.id, "status": alert.status, "queued": queued}
    return json_response(doc, status=202)


def _pause(paused: bool) -> Any:
    async def handle(ctx: Ctx) -> web.Response:
        async with ctx.app.sessions.begin() as session:
            alert = await drafts.get_alert(session, ctx.id)
            await controls.set_paused(session, alert, paused, user=ctx.user, now=utcnow())
            doc = {"id": alert.id, "status": alert.status, "paused": alert.paused}
        return json_response(doc)

    return handle


async def resend_failed(ctx: Ctx) -> web.Response:
    """Queue every failed delivery again (never one that was sent)."""
    async with ctx.app.sessions.begin() as session:
        alert = await drafts.get_alert(session, ctx.id)
        n = await controls.resend_failed(session, alert, user=ctx.user, now=utcnow())
        doc = {"id": alert.id, "status": alert.status, "requeued": n}
    return json_response(doc)


async def close(ctx: Ctx) -> web.Response:
    """Close the case; unsent deliveries are withdrawn."""
    assert ctx.user is not None
    now = utcnow()
    async with ctx.app.sessions.begin() as session:
        alert = await drafts.get_alert(session, ctx.id)
        await approval.close_alert(session, alert, user=ctx.user, now=now)
        withdrawn = await controls.cancel_pending(session, alert, now=now)
        doc = {"id": alert.id, "status": alert.status, "withdrawn": withdrawn}
    return json_response(doc)


ROUTES: list[Route] = [
    Route(
        method="POST",
        path=f"{ONE}/submit",
        handler=submit,
        summary="Submit a draft for review",
        action="alert.submit",
        tag="workflow",
        request={"type": "object", "additionalProperties": False, "properties": {}},
        response=state_of({"reviewers": {"type": "array", "items": {"type": "string"}}}),
        errors=(404, 409),
    ),
    Route(
        method="POST",
        path=f"{ONE}/approve",
        handler=approve,
        summary="Approve (some) languages, second person",
        action="alert.approve",
        tag="workflow",
        request={
            "type": "object",
            "additionalProperties": False,
            "properties": {"languages": {"type": "array", "items": LANGUAGE, "maxItems": 50}},
        },
        response=state_of({"remaining": {"type": "array", "items": {"type": "string"}}}),
        errors=(404, 409),
    ),
    Route(
        method="POST",
        path=f"{ONE}/consent",
        handler=consent,
        summary="Record the defender's consent",
        action="alert.consent",
        tag="workflow",
        required_body=True,
        status=201,
        errors=(404,),
        request={
            "type": "object",
            "additionalProperties": False,
            "required": ["scope"],
            "properties": {
                "scope": {"type": "string", "enum": list(approval.CONSENT_SCOPES)},
                "note": {"type": "string", "maxLength": approval.MAX_NOTE},
            },
        },
        response={
            "type": "object",
            "properties": {
                "id": {"type": "integer"},
                "scope": {"type": "string"},
                "recorded_at": {"type": "string"},
            },
        },
    ),
    Route(
        method="POST",
        path=f"{ONE}/send",
        handler=send,
        summary="Send now, or schedule with at (ISO-8601)",
        action="alert.send",
        tag="sending",
        status=202,
        errors=(404, 409),
        request={"type": "object", "additionalProperties": False, "properties": {"at": TIME}},
        response=state_of({"queued": {"type": "integer"}, "send_at": {"type": ["string", "null"]}}),
    ),
    Route(
        method="POST",
        path=f"{ONE}/pause",
        handler=_pause(True),
        summary="Pause the fan-out",
        action="alert.send",
        tag="sending",
        request={"type": "object", "additionalProperties": False, "properties": {}},
        response=state_of({"paused": {"type": "boolean"}}),
        errors=(404, 409),
    ),
    Route(
        method="POST",
        path=f"{ONE}/resume",
        handler=_pause(False),
        summary="Resume the fan-out",
        action="alert.send",
        tag="sending",
        request={"type": "object", "additionalProperties": False, "properties": {}},
        response=state_of({"paused": {"type": "boolean"}}),
        errors=(404, 409),
    ),
    Route(
        method="POST",
        path=f"{ONE}/resend-failed",
        handler=resend_failed,
        summary="Queue failed deliveries again",
        action="alert.send",
        tag="sending",
        request={"type": "object", "additionalProperties": False, "properties": {}},
        response=state_of({"requeued": {"type": "integer"}}),
        errors=(404, 409),
    ),
    Route(
        method="POST",
        path=f"{ONE}/close",
        handler=close,
        summary="Close the case; withdraw unsent deliveries",
        action="alert.close",
        tag="workflow",
        request={"type": "object", "additionalProperties": False, "properties": {}},
        response=state_of({"withdrawn": {"type": "integer"}}),
        errors=(404, 409),
    ),
    Route(
        method="GET",
        path=f"{ONE}/stats",
        handler=alert_stats,
        summary="Counts by channel and state",
        action="view",
        tag="tracking",
        errors=(404,),
        response={
            "type": "object",
            "properties": {"id": {"type": "integer"}, "state": {"type": "string"}, "channels": _obj},
        },
    ),
    Route(
        method="GET",
        path=f"{ONE}/deliveries",
        handler=alert_deliveries,
        summary="Deliveries, by state/channel",
        action="view",
        tag="tracking",
        errors=(404,),
        query=(
            Param(name="state", schema={"type": "string", "maxLength": 16}, description="a delivery state"),
            Param(name="channel", schema={"type": "string", "maxLength": 16}),
            LIMIT,
            OFFSET,
        ),
        response={"type": "object", "properties": {"deliveries": {"type": "array", "items": _obj}}},
    ),
]
