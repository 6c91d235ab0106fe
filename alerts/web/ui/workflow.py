"""Officers' actions on an alert: submit, approve, consent, send or schedule, pause/resume,
resend failed, close, responses.

Each action runs in one transaction: a refusal (role, state, author approving their own alert)
rolls back everything and shows the exact reason.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from urllib.parse import urlencode

from aiohttp import web

from alerts.actions import alerts as alert_actions
from alerts.actions import responses, sending
from alerts.core.clock import from_local
from alerts.core.errors import ValidationError
from alerts.web.ui.alerts import alert_id
from alerts.web.ui.pages import ID, Ctx, page, redirect
from alerts.web.ui.pages import PREFIX as P

logger = logging.getLogger(__name__)


def _back(c: Ctx, notice: str, **extra: object) -> web.Response:
    query = urlencode({"notice": notice, **{k: str(v) for k, v in extra.items()}})
    return redirect(f"{P}/alerts/{alert_id(c)}?{query}")


def parse_local(text: str, c: Ctx, *, field: str) -> datetime:
    """A ``datetime-local`` value, entered in the [scheduler] timezone, as aware UTC."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise ValidationError(f"{field}: {text!r} is not a date and time", details={"field": field}) from None
    if value.tzinfo is None:
        return from_local(value, c.tz, field=field)
    return value.astimezone(UTC)


@page("alert.submit")
async def submit(c: Ctx) -> web.Response:
    """POST …/submit: draft → in review; reviewers are told by email / Telegram at once."""
    done = await alert_actions.submit(c.app, c.user, alert_id(c))
    return _back(c, "submitted", n=len(done.notified))


@page("alert.approve")
async def approve(c: Ctx) -> web.Response:
    """POST …/approve: approve the ticked languages of the current version (each must be ticked:
    the page has no "approve everything" default)."""
    languages = c.fields("languages")
    if not languages:
        raise ValidationError(
            "languages: tick each language you have read and approve", details={"field": "languages"}
        )
    done = await alert_actions.approve(c.app, c.user, alert_id(c), languages=languages)
    return _back(c, "partly" if done.remaining else "approved")


@page("alert.consent")
async def consent(c: Ctx) -> web.Response:
    """POST …/consent: the defender's consent to publicity (public or restricted)."""
    await alert_actions.record_consent(
        c.app, c.user, alert_id(c), scope=c.field("scope"), note=c.field("note")
    )
    return _back(c, "consent")


@page("alert.send")
async def send(c: Ctx) -> web.Response:
    """POST …/send: publish now, or (``at`` given) schedule for that time in the scheduler's timezone."""
    at = c.field("at")
    if c.field("mode") == "schedule":
        if not at:
            raise ValidationError(
                "send at: choose a date and time to schedule the alert", details={"field": "at"}
            )
        await sending.send(c.app, c.user, alert_id(c), at=parse_local(at, c, field="send at"))
        return _back(c, "scheduled")
    done = await sending.send(c.app, c.user, alert_id(c))
    logger.info("alert %s published from the web: %d deliveries", done.alert_id, done.queued)
    return _back(c, "sending", n=done.queued)


@page("alert.send")
async def unschedule(c: Ctx) -> web.Response:
    """POST …/unschedule: a scheduled alert goes back to approved."""
    await sending.unschedule(c.app, c.user, alert_id(c))
    return _back(c, "unscheduled")


async def _pause(c: Ctx, paused: bool) -> web.Response:
    await sending.set_paused(c.app, c.user, alert_id(c), paused=paused)
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
    done = await sending.resend_failed(c.app, c.user, alert_id(c))
    return _back(c, "resent", n=done.requeued)


@page("alert.close")
async def close(c: Ctx) -> web.Response:
    """POST …/close: close the case; withdraw what has not gone out and what was still to come."""
    done = await alert_actions.close(c.app, c.user, alert_id(c))
    if done.already_closed:
        return _back(c, "already-closed")
    return _back(
        c,
        "closed",
        n=f"{done.withdrawn} unsent deliveries, {len(done.followups)} follow-ups, "
        f"{len(done.updates)} drafted updates",
    )


@page("alert.respond")
async def respond(c: Ctx) -> web.Response:
    """POST …/responses: someone answered (a contact by number, email or name, or anyone)."""
    await responses.respond(c.app, c.user, alert_id(c), sender=c.field("contact"), summary=c.field("summary"))
    return _back(c, "response")


def setup(webapp: web.Application) -> None:
    """Add the alert actions."""
    base = f"{P}/alerts/{ID}"
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
