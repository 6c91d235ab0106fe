"""API routes for an alert's workflow: submit, approve, consent, send or schedule, pause/resume,
resend failed, close; its delivery stats and deliveries.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from alerts.actions import alerts as alert_actions
from alerts.actions import sending
from alerts.compose import approval
from alerts.core.channels import ALL
from alerts.core.clock import iso, parse_when
from alerts.core.states import DeliveryState
from alerts.web.api.alert_schema import LANGUAGE, state_of
from alerts.web.api.alerts import ONE
from alerts.web.api.routes import (
    AFTER,
    LIMIT,
    OFFSET,
    Ctx,
    Param,
    Route,
    alert_deliveries,
    alert_stats,
    json_response,
)
from alerts.web.api.schema import TIME, text

_obj = {"type": "object"}


async def submit(ctx: Ctx) -> web.Response:
    """Draft → in review; the reviewers are told by email (and Telegram) at once."""
    assert ctx.user is not None
    done = await alert_actions.submit(ctx.app, ctx.user, ctx.id)
    return json_response(
        {
            "id": done.alert_id,
            "status": done.status,
            "reviewers": list(done.reviewers),
            "notified": list(done.notified),
        }
    )


async def approve(ctx: Ctx) -> web.Response:
    """Approve languages (default all) of the current version, by a second person."""
    assert ctx.user is not None
    done = await alert_actions.approve(ctx.app, ctx.user, ctx.id, languages=ctx.body.get("languages"))
    return json_response({"id": done.alert_id, "status": done.status, "remaining": list(done.remaining)})


async def consent(ctx: Ctx) -> web.Response:
    """Record the defender's consent to publicity (the latest record counts)."""
    assert ctx.user is not None
    done = await alert_actions.record_consent(
        ctx.app, ctx.user, ctx.id, scope=ctx.body["scope"], note=ctx.body.get("note", "")
    )
    doc = {
        "id": done.alert_id,
        "scope": done.scope,
        "recorded_at": done.recorded_at.isoformat(),
        "withdrawn": done.withdrawn,
    }
    return json_response(doc, status=201)


async def send(ctx: Ctx) -> web.Response:
    """Publish now, or schedule for ``at`` (the embargo time)."""
    assert ctx.user is not None
    at = parse_when(ctx.body["at"], field="at") if ctx.body.get("at") else None
    done = await sending.send(ctx.app, ctx.user, ctx.id, at=at)
    doc: dict[str, Any] = {"id": done.alert_id, "status": done.status}
    if at is not None:
        doc["send_at"] = iso(done.send_at)
    else:
        doc["queued"] = done.queued
    return json_response(doc, status=202)


def _pause(paused: bool) -> Any:
    async def handle(ctx: Ctx) -> web.Response:
        assert ctx.user is not None
        done = await sending.set_paused(ctx.app, ctx.user, ctx.id, paused=paused)
        return json_response({"id": done.alert_id, "status": done.status, "paused": done.paused})

    return handle


async def resend_failed(ctx: Ctx) -> web.Response:
    """Queue every failed delivery again (never one that was sent)."""
    assert ctx.user is not None
    done = await sending.resend_failed(ctx.app, ctx.user, ctx.id)
    return json_response({"id": done.alert_id, "status": done.status, "requeued": done.requeued})


async def close(ctx: Ctx) -> web.Response:
    """Close the case: unsent deliveries, pending follow-ups and drafted updates are withdrawn."""
    assert ctx.user is not None
    done = await alert_actions.close(ctx.app, ctx.user, ctx.id)
    return json_response(
        {
            "id": done.alert_id,
            "status": done.status,
            "already_closed": done.already_closed,
            "withdrawn": done.withdrawn,
            "cancelled_followups": list(done.followups),
            "withdrawn_updates": list(done.updates),
        }
    )


ROUTES: list[Route] = [
    Route(
        method="POST",
        path=f"{ONE}/submit",
        handler=submit,
        summary="Submit a draft for review",
        action="alert.submit",
        tag="workflow",
        request={"type": "object", "additionalProperties": False, "properties": {}},
        response=state_of(
            {
                "reviewers": {"type": "array", "items": {"type": "string"}},
                "notified": {
                    "type": "array",
                    "items": {"type": "string"},
                    "description": "the reviewers reached by email or Telegram",
                },
            }
        ),
        errors=(404, 409),
        then=(f"POST {ONE}/approve",),
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
        then=(f"POST {ONE}/send",),
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
                "note": text(approval.MAX_NOTE),
            },
        },
        response={
            "type": "object",
            "properties": {
                "id": {"type": "integer"},
                "scope": {"type": "string"},
                "recorded_at": {"type": "string"},
                "withdrawn": {"type": "integer"},
            },
        },
        then=(f"POST {ONE}/send",),
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
        then=(f"POST {ONE}/pause", f"POST {ONE}/resend-failed", f"GET {ONE}/deliveries"),
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
        then=(f"POST {ONE}/resume",),
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
        summary="Close the case; withdraw unsent deliveries, pending follow-ups and drafted updates",
        action="alert.close",
        tag="workflow",
        request={"type": "object", "additionalProperties": False, "properties": {}},
        response=state_of(
            {
                "already_closed": {
                    "type": "boolean",
                    "description": "true: it was closed before; nothing changed",
                },
                "withdrawn": {"type": "integer", "description": "unsent deliveries cancelled"},
                "cancelled_followups": {"type": "array", "items": {"type": "integer"}},
                "withdrawn_updates": {"type": "array", "items": {"type": "integer"}},
            }
        ),
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
            Param(
                name="state",
                schema={"type": "string", "enum": [s.value for s in DeliveryState]},
                description="a delivery state",
            ),
            Param(name="channel", schema={"type": "string", "enum": [c.value for c in ALL]}),
            LIMIT,
            OFFSET,
            AFTER,
        ),
        response={"type": "object", "properties": {"deliveries": {"type": "array", "items": _obj}}},
    ),
]
