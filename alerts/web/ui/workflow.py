"""Officers' actions on an alert: submit, approve, consent, send or schedule, pause/resume,
resend failed, close, responses; the deliveries table.

Each action runs in one transaction: a refusal (role, state, author approving their own alert)
rolls back everything and shows the exact reason.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from aiohttp import web

from alerts.compose import approval, drafts
from alerts.contacts import directory as contacts
from alerts.core.clock import utcnow
from alerts.core.errors import ValidationError
from alerts.core.states import AlertStatus, DeliveryState
from alerts.delivery import tracking
from alerts.delivery.controls import cancel_pending, resend_failed, set_paused
from alerts.delivery.publish import publish, schedule
from alerts.web.ui import notify
from alerts.web.ui.alerts import CHANNELS, alert_id
from alerts.web.ui.pages import PREFIX as P
from alerts.web.ui.pages import Ctx, page, redirect
from channels import configured_channels

logger = logging.getLogger(__name__)
PAGE_SIZE = 100


def _back(c: Ctx, notice: str, **extra: object) -> web.Response:
    query = "&".join(f"{k}={v}" for k, v in extra.items())
    return redirect(f"{P}/alerts/{alert_id(c)}?notice={notice}" + (f"&{query}" if query else ""))


def parse_local(text: str, c: Ctx, *, field: str) -> datetime:
    """A ``datetime-local`` value, entered in the [scheduler] timezone, as aware UTC."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise ValidationError(f"{field}: {text!r} is not a date and time", details={"field": field}) from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=c.tz)
    return value.astimezone(UTC)


@page("alert.submit")
async def submit(c: Ctx) -> web.Response:
    """POST …/submit: draft → in review; reviewers are told by email / Telegram at once."""
    async with c.app.sessions.begin() as session:
        alert = await drafts.get_alert(session, alert_id(c))
        reviewers = await approval.submit(session, alert, user=c.user, now=utcnow())
        version = alert.current_version
    reached = await notify.notify_reviewers(
        c.app, alert_id=alert_id(c), version=version, author=c.user.name, reviewers=reviewers
    )
    return _back(c, "submitted", n=len(reached))


@page("alert.approve")
async def approve(c: Ctx) -> web.Response:
    """POST …/approve: approve the chosen languages (all when none is ticked) of the current version."""
    languages = c.fields("languages") or None
    async with c.app.sessions.begin() as session:
        alert = await drafts.get_alert(session, alert_id(c))
        remaining = await approval.approve(
            session,
            alert,
            user=c.user,
            languages=languages,
            require_second_approver=c.app.settings.workflow.require_second_approver,
            now=utcnow(),
        )
    return _back(c, "partly" if remaining else "approved")


@page("alert.consent")
async def consent(c: Ctx) -> web.Response:
    """POST …/consent: the defender's consent to publicity (public or restricted)."""
    async with c.app.sessions.begin() as session:
        alert = await drafts.get_alert(session, alert_id(c))
        await approval.record_consent(
            session, alert, user=c.user, scope=c.field("scope"), note=c.field("note"), now=utcnow()
        )
    return _back(c, "consent")


@page("alert.send")
async def send(c: Ctx) -> web.Response:
    """POST …/send: publish now, or (``at`` given) schedule for that time in the scheduler's timezone."""
    now = utcnow()
    at = c.field("at")
    async with c.app.sessions.begin() as session:
        alert = await drafts.get_alert(session, alert_id(c))
        if c.field("mode") == "schedule":
            if not at:
                raise ValidationError(
                    "send at: choose a date and time to schedule the alert", details={"field": "at"}
                )
            await schedule(session, alert, at=parse_local(at, c, field="send at"), now=now, user=c.user)
            return _back(c, "scheduled")
        created = await publish(
            session,
            alert,
            now=now,
            webhook_url=c.app.settings.webhook.url,
            user=c.user,
            available=configured_channels(c.app.settings),
        )
    logger.info("alert %s published from the web: %d deliveries", alert_id(c), created)
    return _back(c, "sending", n=created)


@page("alert.send")
async def unschedule(c: Ctx) -> web.Response:
    """POST …/unschedule: a scheduled alert goes back to approved."""
    async with c.app.sessions.begin() as session:
        alert = await drafts.get_alert(session, alert_id(c))
        await approval.set_status(session, alert, AlertStatus.APPROVED, user=c.user, now=utcnow())
    return _back(c, "unscheduled")


async def _pause(c: Ctx, paused: bool) -> web.Response:
    async with c.app.sessions.begin() as session:
        alert = await drafts.get_alert(session, alert_id(c))
        await set_paused(session, alert, paused, user=c.user, now=utcnow())
    return _back(c, "paused" if paused else "resumed")


@page("alert.send")
async def pause(c: Ctx) -> web.Response:
    """POST …/pause: dispatchers stop claiming this alert's deliveries."""
    return await _pause(c, True)


@page("alert.send")
async def resume(c: Ctx) -> web.Response:
    """POST …/resume"""
    return await _pause(c, False)


@page("alert.send")
async def resend(c: Ctx) -> web.Response:
    """POST …/resend-failed: failed deliveries get a new attempt (never those sent)."""
    async with c.app.sessions.begin() as session:
        alert = await drafts.get_alert(session, alert_id(c))
        n = await resend_failed(session, alert, user=c.user, now=utcnow())
    return _back(c, "resent", n=n)


@page("alert.close")
async def close(c: Ctx) -> web.Response:
    """POST …/close: close the case and withdraw what has not gone out."""
    now = utcnow()
    async with c.app.sessions.begin() as session:
        alert = await drafts.get_alert(session, alert_id(c))
        await approval.close_alert(session, alert, user=c.user, now=now)
        withdrawn = await cancel_pending(session, alert, now=now)
    return _back(c, "closed", n=withdrawn)


@page("alert.respond")
async def respond(c: Ctx) -> web.Response:
    """POST …/responses: an authority answered (contact by id or email, optional)."""
    ref = c.field("contact")
    async with c.app.sessions.begin() as session:
        alert = await drafts.get_alert(session, alert_id(c))
        contact_id = None
        if ref:
            contact_id = (await contacts.get_contact(session, int(ref) if ref.isdigit() else ref)).id
        await tracking.record_response(
            session,
            alert,
            contact_id=contact_id,
            summary=c.field("summary"),
            recorded_by=c.user.id,
            now=utcnow(),
        )
    return _back(c, "response")


@page("view")
async def deliveries(c: Ctx) -> web.Response:
    """GET …/deliveries?state=&channel=&page=: the filterable deliveries table (no addresses)."""
    q = c.request.query
    state, channel, raw_page = q.get("state", ""), q.get("channel", ""), q.get("page", "1")
    if channel and channel not in CHANNELS:
        raise ValidationError(f"channel: {channel!r} is not one of {', '.join(CHANNELS)}")
    if not raw_page.isdigit() or not 1 <= int(raw_page) <= 100_000:
        raise ValidationError("page: must be a whole number from 1")
    number = int(raw_page)
    async with c.app.sessions() as session:
        alert = await drafts.get_alert(session, alert_id(c))
        rows = await tracking.deliveries(
            session,
            alert.id,
            state=state or None,
            channel=channel or None,
            limit=PAGE_SIZE + 1,
            offset=(number - 1) * PAGE_SIZE,
        )
        stats = await tracking.stats(session, alert)
    return c.render(
        "deliveries.html",
        alert=alert,
        rows=rows[:PAGE_SIZE],
        more=len(rows) > PAGE_SIZE,
        page=number,
        state=state,
        channel=channel,
        states=[s.value for s in DeliveryState],
        channels=CHANNELS,
        stats=stats,
    )


def setup(webapp: web.Application) -> None:
    """Add the alert actions."""
    base = f"{P}/alerts/{{id:\\d+}}"
    for name, handler in (
        ("submit", submit),
        ("approve", approve),
        ("consent", consent),
        ("send", send),
        ("unschedule", unschedule),
        ("pause", pause),
        ("resume", resume),
        ("resend-failed", resend),
        ("close", close),
        ("responses", respond),
    ):
        webapp.router.add_post(f"{base}/{name}", handler)
    webapp.router.add_get(f"{base}/deliveries", deliveries)
