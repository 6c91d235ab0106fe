"""Officers' pages for alerts: dashboard, editor with live preview, the alert's own page."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from sqlalchemy import select
from sqlalchemy.orm import raiseload

from alerts.actions import overview
from alerts.compose import approval, drafts
from alerts.core.channels import ALL
from alerts.core.errors import ValidationError
from alerts.core.states import AlertStatus, ContactKind
from alerts.delivery import tracking
from alerts.delivery.audience_report import sending_channels
from alerts.delivery.over_time import over_time
from alerts.delivery.publish import load_alert_info
from alerts.followups import manage as followups
from alerts.store import audit
from alerts.store.models import Alert, Approval, Consent, Response, User
from alerts.web.i18n import N_
from alerts.web.ui.pages import ID, Ctx, page, path_id
from alerts.web.ui.pages import PREFIX as P
from alerts.web.ui.review import review
from alerts.web.ui.timeline import timeline
from channels import configured_channels

KINDS = [k.value for k in ContactKind]
#: Seconds the alert's page waits for who it will reach; longer (a large network), it shows
#: without it and the page's script fills it in (``audience_page``).
REACH_WAIT = 0.3
CHANNELS = [c.value for c in ALL]
FINAL = (AlertStatus.SENT.value, AlertStatus.CLOSED.value)
NOTICES = {
    "created": N_("Draft saved."),
    "edited": N_("Changes saved as a new version; the alert is a draft again."),
    "submitted": N_("Submitted for review."),
    "approved": N_("Approved."),
    "partly": N_("Approved in the languages chosen; others still need approval."),
    "consent": N_("Consent recorded."),
    "sending": N_("Sending: deliveries are queued and going out."),
    "scheduled": N_("Scheduled."),
    "unscheduled": N_("The schedule is cancelled; the alert is approved and waiting."),
    "paused": N_("Paused: no more deliveries are claimed until you resume."),
    "resumed": N_("Resumed."),
    "resent": N_("Failed deliveries are queued again."),
    "closed": N_(
        "The case is closed; what had not gone out is withdrawn and pending follow-ups are cancelled."
    ),
    "already-closed": N_("The case was already closed; nothing changed."),
    "response": N_("Response recorded."),
    "followup": N_("Follow-up added."),
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
    board = await overview.board(c.app, c.user, status=status or None)
    alerts = board.alerts
    review = [a for a in alerts if a.status == AlertStatus.IN_REVIEW and a.author_id != c.user.id]
    open_cases = [a for a in alerts if a.status != AlertStatus.CLOSED and a.parent_id is None]
    return c.render(
        "dashboard.html",
        alerts=alerts,
        totals=board.totals,
        by_status=board.by_status,
        authors=board.authors,
        review=review,
        open_cases=open_cases,
        filter_status=status,
        statuses=[s.value for s in AlertStatus],
    )


@page("view")
async def alert_page(c: Ctx) -> web.Response:
    """GET /alerts/{id}: status, audience, approvals, consent, actions, live counts, follow-ups."""
    aid = alert_id(c)
    async with c.app.reads() as session:
        alert = await drafts.get_alert(session, aid)
        # newest first; loaded with the alert (``Alert.versions`` is eager), so no query of its own
        versions = sorted(alert.versions, key=lambda v: v.number, reverse=True)
        version = next((v for v in versions if v.number == alert.current_version), None)
        if version is None:
            version = await drafts.current_version(session, alert)  # NotFound, as it says
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
        stats = await tracking.stats(session, alert, count=c.app.counts.figures)
        every_followup = await followups.list_followups(session, alert_id=aid, include_done=True)
        follow = [followups.to_json(f, c.tz) for f in every_followup]
        history = await audit.list_entries(session, object_type="alert", object_id=aid, limit=200)
        updates = list(  # their versions are not shown: not loaded (raiseload: a read would say so)
            (
                await session.scalars(
                    select(Alert)
                    .where(Alert.parent_id == aid)
                    .order_by(Alert.id)
                    .options(raiseload(Alert.versions))
                )
            ).all()
        )
        chart = await over_time(session, aid, charts=c.app.charts, sending=alert.sending_now)
        names = await _names(
            session,
            {alert.author_id}
            | {v.created_by for v in versions}
            | {a.approved_by for a in approvals}
            | {x.recorded_by for x in consents}
            | {h.user_id for h in history if h.user_id is not None},
        )
        approved = [a.language for a in approvals]
        consent = consents[0].scope if consents else None  # the latest: approval.consent_scope
    # who it will reach, on the screens where someone decides to submit, approve or send
    before_send = alert.status in (AlertStatus.DRAFT, AlertStatus.IN_REVIEW, AlertStatus.APPROVED)
    # at a million contacts it takes seconds: the page then shows without it and asks for it
    reach = (
        await overview.audience_within(c.app, c.user, aid, within=REACH_WAIT, kept=True)
        if before_send
        else None
    )
    rev = None
    if alert.status == AlertStatus.IN_REVIEW:
        # the kinds of reader to preview: the alert's, else those it reaches (every kind, while
        # that is still being counted)
        reached = sorted({g.kind for g in reach.reached}) if reach is not None else list(KINDS)
        async with c.app.reads() as session:
            rev = await review(
                session,
                c.app.builder,
                alert,
                await load_alert_info(session, aid),
                channels=sending_channels(alert, configured_channels(c.app.settings)),
                audiences=(alert.audience or {}).get("kinds") or reached,
                audience=c.request.query.get("audience"),
            )
    events = timeline(
        history=history,
        names=names,
        updates=updates,
        responses=responses,
        followups=every_followup,
        consents=consents,
        office=P,
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
        notice=c.translate(NOTICES[code]) if (code := c.request.query.get("notice", "")) in NOTICES else "",
        final=alert.status in FINAL,
        count=c.request.query.get("n", ""),
        reach=reach,
        before_send=before_send,
        rev=rev,
        events=events,
        chart=chart,
    )


@page("view")
async def audience_page(c: Ctx) -> web.Response:
    """GET /alerts/{id}/audience: who the alert will reach (the alert's page fills it in from
    here when it came before the count)."""
    aid = alert_id(c)
    report = await overview.audience(c.app, c.user, aid, kept=True)
    async with c.app.reads() as session:
        alert = await drafts.get_alert(session, aid)
    return c.render("audience.html", alert=alert, reach=report)


def setup(webapp: web.Application) -> None:
    """Add the alert pages."""
    webapp.router.add_get("/", dashboard)
    webapp.router.add_get(f"{P}/alerts/{ID}", alert_page)
    webapp.router.add_get(f"{P}/alerts/{ID}/audience", audience_page)
