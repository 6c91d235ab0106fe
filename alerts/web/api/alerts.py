"""API routes for an alert itself: list, create, read, edit, preview.

Its review, consent, sending and their controls are in ``api_workflow``.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from alerts.actions import alerts as alert_actions
from alerts.actions import overview
from alerts.app import App
from alerts.compose import approval, casedata, drafts
from alerts.contacts.fields import KINDS
from alerts.core.channels import ALL
from alerts.core.clock import iso, parse_when
from alerts.core.errors import Conflict, ValidationError
from alerts.core.states import AlertStatus
from alerts.delivery import publish
from alerts.store.models import Alert
from alerts.web.api.routes import (
    ID_PATH,
    LIMIT,
    MAX_ID,
    OFFSET,
    PREFIX,
    Ctx,
    Param,
    Route,
    Schema,
    json_response,
)
from alerts.web.api.schema import REFUSAL, TIME, line

LANGUAGE: Schema = {"type": "string", "pattern": "^[a-z]{2}$", "minLength": 2, "maxLength": 2}
NAMES: Schema = {"type": "array", "items": line(drafts.MAX_LIST_NAME), "maxItems": 100}
STATUSES = [s.value for s in AlertStatus]

AUDIENCE_PROPS: dict[str, Schema] = {
    "lists": NAMES,
    "kinds": {"type": "array", "items": {"type": "string", "enum": list(KINDS)}, "maxItems": 5},
    "channels": {
        "type": "array",
        "items": {"type": "string", "enum": [c.value for c in ALL]},
        "maxItems": 4,
    },
    "languages": {"type": "array", "items": LANGUAGE, "minItems": 1, "maxItems": 50},
}
#: An audience names at least one list or contact kind (``drafts.Audience``).
AUDIENCE_NAMED: list[Schema] = [
    {"required": [name], "properties": {name: {"minItems": 1}}} for name in ("lists", "kinds")
]
NAMED = {"field": "audience", "message": "audience: name at least one list or contact kind"}
CREATE: Schema = {
    "type": "object",
    "additionalProperties": False,
    "required": ["family", "data"],
    "properties": {
        "family": {"type": "string", "maxLength": 64, "description": "template family (GET templates)"},
        "data": {"type": "object", "description": "case data: the family's variables"},
        "title": line(drafts.MAX_TITLE),
        **AUDIENCE_PROPS,
        "is_public": {"type": "boolean", "description": "publish in the archive (needs public consent)"},
        "parent_id": {
            "type": ["integer", "null"],
            "minimum": 1,
            "maximum": MAX_ID,
            "description": "the alert this one updates",
        },
        "embargo_until": {**TIME, "type": ["string", "null"]},
        "fallback_email": {"type": "boolean"},
    },
}
EDIT: Schema = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "data": {"type": "object", "description": "case data for the alert's own family"},
        "title": line(drafts.MAX_TITLE),
        "audience": {
            "type": "object",
            "additionalProperties": False,
            "properties": AUDIENCE_PROPS,
            "anyOf": AUDIENCE_NAMED,
            REFUSAL: NAMED,
        },
    },
}


def family_data(app: App) -> list[Schema]:
    """Per template family: its name and its case data's schema (``casedata.json_schema``)."""
    renderer = app.renderer
    out: list[Schema] = []
    for name in renderer.families():
        info = renderer.family(name)
        option: Schema = {
            "properties": {"family": {"const": name}, "data": casedata.json_schema(info.variables)}
        }
        if "original" in info.requires:  # an update or a closure follows the alert it updates
            option["required"] = ["parent_id"]
            option["properties"]["parent_id"] = {"type": "integer"}
        out.append(option)
    return out


def audience_props(app: App) -> dict[str, Schema]:
    """The audience's fields as this server takes them: a channel it has no config for is
    refused in the action's words (``actions.alerts.not_configured``)."""
    channel: Schema = {**AUDIENCE_PROPS["channels"]["items"]}
    refused = alert_actions.unconfigured_channels(app)
    if refused:
        channel["allOf"] = [
            {
                "not": {"const": name},
                REFUSAL: {"field": "channels", "message": alert_actions.not_configured([name])},
            }
            for name in refused
        ]
        channel["description"] = f"not {', '.join(refused)}: not configured on this server"
    return {**AUDIENCE_PROPS, "channels": {**AUDIENCE_PROPS["channels"], "items": channel}}


def create_schema(app: App) -> Schema:
    """A new alert: a family this server has, with its case data, and an audience."""
    return {
        **CREATE,
        "properties": {**CREATE["properties"], **audience_props(app)},
        "allOf": [{"anyOf": family_data(app)}, {"anyOf": AUDIENCE_NAMED, REFUSAL: NAMED}],
    }


def edit_schema(app: App) -> Schema:
    """An edit: case data of one of the families (the alert's own is checked by the handler)."""
    datas = [option["properties"]["data"] for option in family_data(app)]
    audience = {**EDIT["properties"]["audience"], "properties": audience_props(app)}
    return {**EDIT, "properties": {**EDIT["properties"], "data": {"anyOf": datas}, "audience": audience}}


ALERT_REF: Schema = {
    "type": "object",
    "required": ["id", "status"],
    "properties": {"id": {"type": "integer"}, "status": {"type": "string", "enum": STATUSES}},
}
SUMMARY: Schema = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        "title": {"type": "string"},
        "family": {"type": "string"},
        "status": {"type": "string", "enum": STATUSES},
        "languages": {"type": "array", "items": {"type": "string"}},
        "is_public": {"type": "boolean"},
        "parent_id": {"type": ["integer", "null"]},
        "paused": {"type": "boolean"},
        "created_at": {"type": "string"},
        "published_at": {"type": ["string", "null"]},
    },
}


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
    async with ctx.app.sessions() as session:
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
    async with ctx.app.sessions() as session:
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
    async with ctx.app.sessions() as session:
        alert = await drafts.get_alert(session, ctx.id)
    try:
        ctx.app.renderer.validate_case(alert.family, data)
    except ValidationError as exc:
        raise Conflict(
            f"alert {alert.id} is a {alert.family} alert: {exc.message}", details=exc.details
        ) from exc


async def preview(ctx: Ctx) -> web.Response:
    """The alert rendered for one channel, audience and language (nothing is sent)."""
    async with ctx.app.sessions() as session:
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
_COUNT = {"type": "integer", "minimum": 0}
_NAMES = {"type": "array", "items": {"type": "string"}}
AUDIENCE: Schema = {
    "type": "object",
    "required": ["alert", "deliveries", "reached", "left_out_total", "left_out"],
    "properties": {
        "alert": {"type": "integer"},
        "languages": _NAMES,
        "channels": _NAMES,
        "deliveries": _COUNT,
        "webhook": {"type": "boolean"},
        "reached": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "kind": {"type": "string"},
                    "channel": {"type": "string"},
                    "language": {"type": "string"},
                    "count": _COUNT,
                },
            },
        },
        "language_fallbacks": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"wanted": {"type": "string"}, "shown": {"type": "string"}, "count": _COUNT},
            },
        },
        "left_out_total": _COUNT,
        "left_out_counts": {"type": "object", "additionalProperties": _COUNT},
        "left_out": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "contact": {"type": "integer"},
                    "name": {"type": "string"},
                    "organisation": {"type": ["string", "null"]},
                    "kind": {"type": "string"},
                    "reason": {"type": "string"},
                    "why": {"type": "string"},
                },
            },
        },
        "left_out_listed": _COUNT,
        "not_configured": _NAMES,
    },
}


def state_of(extra: dict[str, Schema]) -> Schema:
    """The response schema of an action on an alert: its id and status, plus ``extra``."""
    return {
        "type": "object",
        "required": ["id", "status"],
        "properties": {**ALERT_REF["properties"], **extra},
    }


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
