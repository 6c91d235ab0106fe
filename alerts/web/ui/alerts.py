"""Officers' pages for alerts: dashboard, editor with live preview, the alert's own page."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from sqlalchemy import func, select

from alerts.actions import alerts as alert_actions
from alerts.actions import overview
from alerts.compose import approval, drafts
from alerts.contacts.directory import list_lists
from alerts.core import urls
from alerts.core.channels import ALL, rendered_as
from alerts.core.errors import NotFound, ValidationError
from alerts.core.states import AlertStatus, ContactKind
from alerts.delivery import tracking
from alerts.delivery.publish import load_alert_info
from alerts.followups import manage as followups
from alerts.store import audit
from alerts.store.models import Alert, AlertVersion, Approval, Consent, Response, User
from alerts.web.ui import casetoml as ui_toml
from alerts.web.ui.pages import ID, Ctx, page, path_id, redirect
from alerts.web.ui.pages import PREFIX as P
from alerts.web.ui.review import review

KINDS = [k.value for k in ContactKind]
CHANNELS = [c.value for c in ALL]
FINAL = (AlertStatus.SENT.value, AlertStatus.CLOSED.value)
NOTICES = {
    "created": "Draft saved.",
    "edited": "Changes saved as a new version; the alert is a draft again.",
    "submitted": "Submitted for review.",
    "approved": "Approved.",
    "partly": "Approved in the languages chosen; others still need approval.",
    "consent": "Consent recorded.",
    "sending": "Sending: deliveries are queued and going out.",
    "scheduled": "Scheduled.",
    "unscheduled": "The schedule is cancelled; the alert is approved and waiting.",
    "paused": "Paused: no more deliveries are claimed until you resume.",
    "resumed": "Resumed.",
    "resent": "Failed deliveries are queued again.",
    "closed": "The case is closed; what had not gone out is withdrawn and pending follow-ups are cancelled.",
    "already-closed": "The case was already closed; nothing changed.",
    "response": "Response recorded.",
    "followup": "Follow-up added.",
}


def alert_id(c: Ctx) -> int:
    """The alert id in the URL."""
    return path_id(c.request)


async def _names(session: Any, ids: set[int]) -> dict[int, str]:
    if not ids:
        return {}
    rows = await session.execute(select(User.id, User.name).where(User.id.in_(ids)))
    return {uid: name for uid, name in rows.all()}


@page("view")
async def dashboard(c: Ctx) -> web.Response:
    """GET /: open cases, alerts waiting for review, recent alerts with delivery totals."""
    status = c.request.query.get("status", "")
    if status and status not in {s.value for s in AlertStatus}:
        raise ValidationError(f"status: {status!r} is not an alert status")
    async with c.app.sessions() as session:
        query = select(Alert).order_by(Alert.updated_at.desc(), Alert.id.desc()).limit(200)
        if status:
            query = query.where(Alert.status == status)
        alerts = list((await session.scalars(query)).all())
        ids = [a.id for a in alerts]
        totals: dict[int, dict[str, int]] = {}
        if ids:
            from alerts.store.models import Delivery

            rows = await session.execute(
                select(Delivery.alert_id, Delivery.state, func.count())
                .where(Delivery.alert_id.in_(ids))
                .group_by(Delivery.alert_id, Delivery.state)
            )
            for aid, state, n in rows.all():
                totals.setdefault(aid, {})[state] = int(n)
        by_status = dict(
            (await session.execute(select(Alert.status, func.count()).group_by(Alert.status))).all()
        )
        authors = await _names(session, {a.author_id for a in alerts})
    review = [a for a in alerts if a.status == AlertStatus.IN_REVIEW and a.author_id != c.user.id]
    open_cases = [a for a in alerts if a.status != AlertStatus.CLOSED and a.parent_id is None]
    return c.render(
        "dashboard.html",
        alerts=alerts,
        totals=totals,
        by_status=by_status,
        authors=authors,
        review=review,
        open_cases=open_cases,
        filter_status=status,
        statuses=[s.value for s in AlertStatus],
    )


def _editor_context(c: Ctx, **values: Any) -> dict[str, Any]:
    renderer = c.app.renderer
    families = renderer.families()
    family = values.get("family") or (families[0] if families else "")
    info = renderer.family(family) if family in families else None
    return {
        "families": families,
        "family": family,
        "family_description": info.description if info else "",
        "family_languages": list(info.languages) if info else ["en"],
        "kinds": KINDS,
        "channels": CHANNELS,
        "errors": {},
        "title": "",
        "audience": {"lists": [], "kinds": [], "channels": [], "languages": ["en"]},
        "case_toml": "",
        "alert": None,
        "all_lists": [],
    } | values


def _audience_from_form(c: Ctx) -> drafts.Audience:
    extra_lists = [n.strip() for n in c.field("new_lists").split(",") if n.strip()]
    return drafts.Audience(
        lists=tuple(dict.fromkeys(c.fields("lists") + extra_lists)),
        kinds=tuple(c.fields("kinds")),
        channels=tuple(c.fields("channels")),
        languages=tuple(c.fields("languages")),
    )


def _field_of(message: str) -> str:
    for name in ("audience", "title"):
        if message.startswith(name):
            return name
    return "case"


@page("alert.create")
async def new_alert_form(c: Ctx) -> web.Response:
    """GET /alerts/new?family=: the editor, filled with the family's example case."""
    renderer = c.app.renderer
    families = renderer.families()
    family = c.request.query.get("family") or (
        "urgent-appeal" if "urgent-appeal" in families else families[0]
    )
    if family not in families:
        raise NotFound(f"template family {family!r} does not exist; known: {', '.join(families)}")
    example = (renderer.templates_dir / family / "example.toml").read_text(encoding="utf-8")
    async with c.app.sessions() as session:
        lists = [s.name for s in await list_lists(session)]
    return c.render("editor.html", **_editor_context(c, family=family, case_toml=example, all_lists=lists))


@page("alert.create")
async def create_alert(c: Ctx) -> web.Response:
    """POST /alerts/new: a new draft (validation errors shown beside their field, nothing written)."""
    family, case_toml, title = c.field("family"), c.field("case_toml"), c.field("title")
    try:
        case = ui_toml.loads(case_toml)
        audience = _audience_from_form(c)
        done = await alert_actions.create(
            c.app, c.user, family=family, case_data=case, audience=audience, title=title or None
        )
    except ValidationError as exc:
        return await _editor_error(c, exc, family=family, case_toml=case_toml, title=title)
    return redirect(f"{P}/alerts/{done.alert_id}?notice=created")


async def _editor_error(
    c: Ctx, exc: ValidationError, *, alert: Alert | None = None, **values: Any
) -> web.Response:
    async with c.app.sessions() as session:
        lists = [s.name for s in await list_lists(session)]
    audience = {
        "lists": c.fields("lists"),
        "kinds": c.fields("kinds"),
        "channels": c.fields("channels"),
        "languages": c.fields("languages"),
    }
    context = _editor_context(
        c,
        errors={_field_of(exc.message): exc.message},
        audience=audience,
        all_lists=lists,
        alert=alert,
        **values,
    )
    return c.render("editor.html", status=422, **context)


@page("alert.edit")
async def edit_alert_form(c: Ctx) -> web.Response:
    """GET /alerts/{id}/edit: the editor on the current version."""
    async with c.app.sessions() as session:
        alert = await drafts.get_alert(session, alert_id(c))
        version = await drafts.current_version(session, alert)
        lists = [s.name for s in await list_lists(session)]
    audience = {"lists": [], "kinds": [], "channels": [], "languages": ["en"]} | dict(alert.audience or {})
    return c.render(
        "editor.html",
        **_editor_context(
            c,
            family=alert.family,
            case_toml=ui_toml.dumps(version.case_data),
            title=alert.title,
            audience=audience,
            alert=alert,
            all_lists=lists,
        ),
    )


@page("alert.edit")
async def edit_alert(c: Ctx) -> web.Response:
    """POST /alerts/{id}/edit: a new version (an alert in review or approved goes back to draft)."""
    case_toml, title = c.field("case_toml"), c.field("title")
    async with c.app.sessions() as session:
        current = await drafts.get_alert(session, alert_id(c))
    try:
        case = ui_toml.loads(case_toml)
        audience = _audience_from_form(c)
        await alert_actions.edit(
            c.app, c.user, alert_id(c), case_data=case, title=title or None, audience=audience
        )
    except ValidationError as exc:
        return await _editor_error(
            c, exc, alert=current, family=current.family, case_toml=case_toml, title=title
        )
    return redirect(f"{P}/alerts/{current.id}?notice=edited")


def _preview_args(c: Ctx, source: Any) -> tuple[str, str, str]:
    audience, channel, language = (source.get(k, "") for k in ("audience", "channel", "language"))
    if audience not in KINDS:
        raise ValidationError(f"audience: {audience!r} is not one of {', '.join(KINDS)}")
    if channel not in CHANNELS:
        raise ValidationError(f"channel: {channel!r} is not one of {', '.join(CHANNELS)}")
    return audience, channel, language or "en"


def _content_json(content: Any) -> web.Response:
    return web.json_response(
        {
            "channel": content.channel,
            "audience": content.audience,
            "language": content.language,
            "subject": content.subject,
            "text": content.text,
            "html": content.html,
        }
    )


@page("view")
async def preview_saved(c: Ctx) -> web.Response:
    """GET /alerts/{id}/preview?audience=&channel=&language=: the current version, as it will be sent."""
    audience, channel, language = _preview_args(c, c.request.query)
    async with c.app.sessions() as session:
        info = await load_alert_info(session, alert_id(c))
    return _content_json(c.app.builder.content(info, audience=audience, channel=channel, language=language))


@page("alert.edit")
async def preview_draft(c: Ctx) -> web.Response:
    """POST /preview: the editor's unsaved case data rendered (nothing is written)."""
    audience, channel, language = _preview_args(c, c.form or {})
    family = c.field("family")
    case = ui_toml.loads(c.field("case_toml"))
    content = c.app.renderer.render(
        family,
        case,
        audience=audience,
        channel=rendered_as(channel),
        language=language,
        extra={
            "alert_title": c.field("title") or drafts.default_title(family, case),
            "alert_url": urls.public_alert(c.app.builder.public_url, "preview"),
        },
    )
    return _content_json(content)


@page("view")
async def alert_page(c: Ctx) -> web.Response:
    """GET /alerts/{id}: status, audience, approvals, consent, actions, live counts, follow-ups."""
    aid = alert_id(c)
    async with c.app.sessions() as session:
        alert = await drafts.get_alert(session, aid)
        version = await drafts.current_version(session, alert)
        versions = list(
            (
                await session.scalars(
                    select(AlertVersion)
                    .where(AlertVersion.alert_id == aid)
                    .order_by(AlertVersion.number.desc())
                )
            ).all()
        )
        approvals = list(
            (
                await session.scalars(
                    select(Approval).where(Approval.version_id == version.id).order_by(Approval.approved_at)
                )
            ).all()
        )
        consents = list(
            (
                await session.scalars(
                    select(Consent)
                    .where(Consent.alert_id == aid)
                    .order_by(Consent.recorded_at.desc(), Consent.id.desc())
                )
            ).all()
        )
        responses = list(
            (
                await session.scalars(
                    select(Response).where(Response.alert_id == aid).order_by(Response.responded_at.desc())
                )
            ).all()
        )
        stats = await tracking.stats(session, alert)
        follow = [followups.to_json(f, c.tz) for f in await followups.list_followups(session, alert_id=aid)]
        history = await audit.list_entries(session, object_type="alert", object_id=aid, limit=50)
        names = await _names(
            session,
            {alert.author_id}
            | {v.created_by for v in versions}
            | {a.approved_by for a in approvals}
            | {x.recorded_by for x in consents}
            | {h.user_id for h in history if h.user_id is not None},
        )
        approved = [a.language for a in approvals]
        consent = await approval.consent_scope(session, alert)
    # who it will reach, on the screens where someone decides to submit, approve or send
    before_send = alert.status in (AlertStatus.DRAFT, AlertStatus.IN_REVIEW, AlertStatus.APPROVED)
    reach = await overview.audience(c.app, c.user, aid) if before_send else None
    rev = None
    if alert.status == AlertStatus.IN_REVIEW and reach is not None:
        kinds = (alert.audience or {}).get("kinds") or sorted({g.kind for g in reach.reached})
        async with c.app.sessions() as session:
            rev = await review(
                session,
                c.app.builder,
                alert,
                await load_alert_info(session, aid),
                channels=reach.channels,
                audiences=kinds,
                audience=c.request.query.get("audience"),
            )
    return c.render(
        "alert.html",
        alert=alert,
        version=version,
        versions=versions,
        approvals=approvals,
        consents=consents,
        responses=responses,
        stats=stats,
        followups=follow,
        history=history,
        names=names,
        approved=approved,
        pending=[lang for lang in alert.languages if lang not in approved],
        consent=consent,
        needs_consent=approval.addressed_to_public(alert),
        kinds=KINDS,
        channels=CHANNELS,
        notice=NOTICES.get(c.request.query.get("notice", ""), ""),
        final=alert.status in FINAL,
        count=c.request.query.get("n", ""),
        reach=reach,
        rev=rev,
    )


def setup(webapp: web.Application) -> None:
    """Add the alert pages."""
    webapp.router.add_get("/", dashboard)
    webapp.router.add_get(f"{P}/alerts/new", new_alert_form)
    webapp.router.add_post(f"{P}/alerts/new", create_alert)
    webapp.router.add_get(f"{P}/alerts/{ID}", alert_page)
    webapp.router.add_get(f"{P}/alerts/{ID}/edit", edit_alert_form)
    webapp.router.add_post(f"{P}/alerts/{ID}/edit", edit_alert)
    webapp.router.add_get(f"{P}/alerts/{ID}/preview", preview_saved)
    webapp.router.add_post(f"{P}/preview", preview_draft)
