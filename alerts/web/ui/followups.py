"""Officers' pages for follow-ups (list, add, cancel) and the audit log."""

from __future__ import annotations

from aiohttp import web
from sqlalchemy import select

from alerts.actions import followups as followup_actions
from alerts.core.errors import ValidationError
from alerts.core.ids import parse_id, parse_number
from alerts.core.states import FollowupKind
from alerts.followups import manage as followups
from alerts.store import audit
from alerts.store.models import User
from alerts.web.ui import casetoml as ui_toml
from alerts.web.ui.pages import ID, Ctx, page, path_id, redirect
from alerts.web.ui.pages import PREFIX as P
from alerts.web.ui.workflow import parse_local

AUDIT_TYPES = ("alert", "contact", "followup", "user", "list")


@page("view")
async def followup_list(c: Ctx) -> web.Response:
    """GET /office/followups?all=1: pending follow-ups (all with ``all``), due times in local time."""
    show_all = c.request.query.get("all") == "1"
    async with c.app.reads() as session:
        rows = [
            followups.to_json(f, c.tz)
            for f in await followups.list_followups(session, include_done=show_all, limit=500)
        ]
    return c.render(
        "followups.html",
        rows=rows,
        show_all=show_all,
        kinds=[k.value for k in FollowupKind],
        error="",
        notice=c.request.query.get("notice", ""),
        values={},
    )


@page("followup.manage")
async def add_followup(c: Ctx) -> web.Response:
    """POST /office/followups: a reminder, update, send or digest at a local date and time."""
    values = {k: c.field(k) for k in ("alert", "kind", "due", "note", "condition", "data")}
    try:
        if not values["due"]:
            raise ValidationError("due: choose a date and time", details={"field": "due"})
        due = parse_local(values["due"], c, field="due")
        raw_alert = values["alert"]
        alert = parse_number(raw_alert, "alert", minimum=1) if raw_alert else None
        data = ui_toml.loads(values["data"]) if values["data"] else None
        await followup_actions.add(
            c.app,
            c.user,
            alert,
            kind=values["kind"],
            due_at=due,
            note=values["note"],
            data=data,
            condition=values["condition"] or None,
        )
    except ValidationError as exc:
        async with c.app.reads() as session:
            rows = [
                followups.to_json(f, c.tz)
                for f in await followups.list_followups(session, include_done=False, limit=500)
            ]
        return c.render(
            "followups.html",
            status=422,
            rows=rows,
            show_all=False,
            error=c.said(exc),
            kinds=[k.value for k in FollowupKind],
            notice="",
            values=values,
        )
    back = c.field("back")
    if back.startswith(f"{P}/alerts/") and parse_id(back[len(P) + 8 :]) is not None:
        return redirect(f"{back}?notice=followup")
    return redirect(f"{P}/followups?notice=added")


@page("followup.manage")
async def cancel_followup(c: Ctx) -> web.Response:
    """POST /office/followups/{id}/cancel"""
    await followup_actions.cancel(c.app, c.user, path_id(c.request))
    return redirect(f"{P}/followups?notice=cancelled")


@page("view")
async def audit_log(c: Ctx) -> web.Response:
    """GET /office/audit?type=&id=: who did what, newest first."""
    kind, object_id = c.request.query.get("type", ""), c.request.query.get("id", "")
    if kind and kind not in AUDIT_TYPES:
        raise ValidationError(f"type: {kind!r} is not one of {', '.join(AUDIT_TYPES)}")
    if object_id:
        object_id = str(parse_number(object_id, "id"))
    async with c.app.reads() as session:
        entries = await audit.list_entries(
            session, object_type=kind or None, object_id=object_id or None, limit=300
        )
        ids = {e.user_id for e in entries if e.user_id is not None}
        names = (
            dict((await session.execute(select(User.id, User.name).where(User.id.in_(ids)))).all())
            if ids
            else {}
        )
    return c.render(
        "audit.html", entries=entries, names=names, kind=kind, object_id=object_id, types=AUDIT_TYPES
    )


def setup(webapp: web.Application) -> None:
    """Add the follow-up and audit pages."""
    webapp.router.add_get(f"{P}/followups", followup_list)
    webapp.router.add_post(f"{P}/followups", add_followup)
    webapp.router.add_post(f"{P}/followups/{ID}/cancel", cancel_followup)
    webapp.router.add_get(f"{P}/audit", audit_log)
