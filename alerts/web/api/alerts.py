"""API routes for an alert itself: list, create, read, edit, preview.

Its review, consent, sending and their controls are in ``api_workflow``.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from alerts.actions import alerts as alert_actions
from alerts.actions import overview
from alerts.compose import approval, drafts
from alerts.contacts.fields import KINDS
from alerts.core.channels import ALL
from alerts.core.clock import iso, parse_when
from alerts.core.errors import Conflict, ValidationError
from alerts.delivery import publish
from alerts.store.models import Alert
from alerts.web.api.alert_schema import (
    ALERT_REF,
    AUDIENCE,
    LANGUAGE,
    STATUSES,
    SUMMARY,
    create_schema,
    edit_schema,
    state_of,
)
from alerts.web.api.routes import (
    ID_PATH,
    LIMIT,
    OFFSET,
    PREFIX,
    Ctx,
    Param,
    Route,
    json_response,
)


def summary(alert: Alert) -> dict[str, Any]:
    """An alert as listed."""
    return overview.Listed.of(alert).to_json()


async def list_alerts(ctx: Ctx) -> web.Response:
    """Alerts, newest first."""
    assert ctx.user is not None
    q = ctx.query
    listed = await overview.list_alerts(
        ctx.app, ctx.user, status=q.get("status"), limit=q["limit"], offset=q["offset"]
    )
    return json_response({"alerts": [a.to_json() for a in listed]})


async def create_alert(ctx: Ctx) -> web.Response:
    """A draft alert from a template family and case data."""
    b = ctx.body
    assert ctx.user is not None
    audience = drafts.Audience(
        lists=tuple(b.get("lists", ())),
        kinds=tuple(b.get("kinds", ())),
        channels=tuple(b.get("channels", ())),
        languages=tuple(b.get("languages") or ("en",)),
    )
    embargo = b.get("embargo_until")
    done = await alert_actions.create(
        ctx.app,
        ctx.user,
        family=b["family"],
        case_data=b["data"],
        audience=audience,
        title=b.get("title"),
        is_public=b.get("is_public"),
        parent_id=b.get("parent_id"),
        embargo_until=parse_when(embargo, field="embargo_until") if embargo else None,
        fallback_email=bool(b.get("fallback_email", False)),
    )
    return json_response({"id": done.alert_id, "status": done.status}, status=201)


async def _detail(ctx: Ctx, alert: Alert) -> dict[str, Any]:
    async with ctx.app.reads() as session:
        version = await drafts.current_version(session, alert)
        approved = await approval.approved_languages(session, alert)
        consent = await approval.consent_scope(session, alert)
    return summary(alert) | {
        "audience": alert.audience,
        "current_version": alert.current_version,
        "data": version.case_data,
        "approved_languages": approved,
        "consent": consent,
        "send_at": iso(alert.send_at),
        "embargo_until": iso(alert.embargo_until),
        "completed_at": iso(alert.completed_at),
        "closed_at": iso(alert.closed_at),
        "fallback_email": alert.fallback_email,
        "author_id": alert.author_id,
    }


async def get_alert(ctx: Ctx) -> web.Response:
    """One alert with its current case data, approvals and consent."""
    async with ctx.app.reads() as session:
        alert = await drafts.get_alert(session, ctx.id)
    return json_response(await _detail(ctx, alert))


async def edit_alert(ctx: Ctx) -> web.Response:
    """A new version (title, case data, audience); an alert in review or approved goes back to draft."""
    assert ctx.user is not None
    b = ctx.body
    audience = drafts.Audience.from_json(b["audience"]) if "audience" in b else None
    if "data" in b:
        await _check_own_family(ctx, b["data"])
    done = await alert_actions.edit(
        ctx.app, ctx.user, ctx.id, case_data=b.get("data"), title=b.get("title"), audience=audience
    )
    return json_response({"id": done.alert_id, "status": done.status, "version": done.version})


async def _check_own_family(ctx: Ctx, data: dict[str, Any]) -> None:
    """Case data that fits a family (the schema checked that) but not this alert's: a conflict
    with the alert, whose family cannot change, rather than malformed input."""
    async with ctx.app.reads() as session:
        alert = await drafts.get_alert(session, ctx.id)
    try:
        ctx.app.renderer.validate_case(alert.family, data)
    except ValidationError as exc:
        raise Conflict(
            f"alert {alert.id} is a {alert.family} alert: {exc.message}", details=exc.details
        ) from exc


async def preview(ctx: Ctx) -> web.Response:
    """The alert rendered for one channel, audience and language (nothing is sent)."""
    async with ctx.app.reads() as session:
        await drafts.get_alert(session, ctx.id)
        info = await publish.load_alert_info(session, ctx.id)
    q = ctx.query
    try:
        content = ctx.app.builder.content(
            info, audience=q["audience"], channel=q["channel"], language=q["language"]
        )
    except ValidationError as exc:  # the query was checked: what does not fit is the alert
        raise Conflict(f"alert {ctx.id} cannot be previewed: {exc.message}", details=exc.details) from exc
    return json_response(
        {
            "id": ctx.id,
            "channel": content.channel,
            "audience": content.audience,
            "language": content.language,
            "subject": content.subject,
            "text": content.text,
            "html": content.html,
        }
    )


async def audience(ctx: Ctx) -> web.Response:
    """Who the alert will reach (or reached), and every contact left out with the reason."""
    assert ctx.user is not None
    report = await overview.audience(ctx.app, ctx.user, ctx.id)
    return json_response(report.to_json())


A = f"{PREFIX}/alerts"
ONE = f"{A}/{ID_PATH}"
ROUTES: list[Route] = [
    Route(
        method="GET",
        path=A,
        handler=list_alerts,
        summary="List alerts, newest first",
        action="view",
        tag="alerts",
        query=(Param(name="status", schema={"type": "string", "enum": STATUSES}), LIMIT, OFFSET),
        response={"type": "object", "properties": {"alerts": {"type": "array", "items": SUMMARY}}},
    ),
    Route(
        method="POST",
        path=A,
        handler=create_alert,
        summary="Create a draft alert",
        action="alert.create",
        tag="alerts",
        request=create_schema,
        required_body=True,
        status=201,
        response=ALERT_REF,
        creates=ONE,
        errors=(404, 409),
    ),
    Route(
        method="GET",
        path=ONE,
        handler=get_alert,
        summary="One alert",
        action="view",
        tag="alerts",
        response=SUMMARY,
        errors=(404,),
    ),
    Route(
        method="PATCH",
        path=ONE,
        handler=edit_alert,
        summary="Edit an alert (a new version, back to draft)",
        action="alert.edit",
        tag="alerts",
        request=edit_schema,
        required_body=True,
        response=state_of({"version": {"type": "integer"}}),
        errors=(404, 409),
    ),
    Route(
        method="GET",
        path=f"{ONE}/preview",
        handler=preview,
        summary="Render the alert without sending",
        action="view",
        tag="alerts",
        errors=(404,),
        query=(
            Param(
                name="channel", schema={"type": "string", "enum": [c.value for c in ALL], "default": "email"}
            ),
            Param(name="audience", schema={"type": "string", "enum": list(KINDS), "default": "authority"}),
            Param(name="language", schema={**LANGUAGE, "default": "en"}),
        ),
        response={
            "type": "object",
            "properties": {
                k: {"type": ["string", "null"]}
                for k in ("channel", "audience", "language", "subject", "text", "html")
            },
        },
    ),
    Route(
        method="GET",
        path=f"{ONE}/audience",
        handler=audience,
        summary="Who the alert reaches, and who is left out and why",
        action="view",
        tag="alerts",
        errors=(404,),
        response=AUDIENCE,
    ),
]
