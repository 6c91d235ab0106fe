"""Sending an approved alert and the controls on it: send now or at a time, unschedule,
test-send to one address, pause, resume, resend the failed deliveries.

Every face calls these functions and only presents what they return (see ``alerts.actions``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from alerts.accounts.users import check
from alerts.app import App
from alerts.compose import approval, drafts
from alerts.core.clock import utcnow
from alerts.core.errors import ValidationError
from alerts.core.states import AlertStatus
from alerts.core.types import Outcome
from alerts.delivery import controls, publish
from alerts.store import audit
from alerts.store.models import User
from channels import configured_channels


@dataclass(frozen=True, slots=True, kw_only=True)
class Sent:
    """An alert fanned out now (``queued`` new deliveries) or scheduled for ``send_at``."""

    alert_id: int
    status: str
    queued: int = 0
    send_at: datetime | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Unscheduled:
    """A scheduled alert back to approved; its pending send follow-ups are cancelled."""

    alert_id: int
    status: str


@dataclass(frozen=True, slots=True, kw_only=True)
class TestSent:
    """What the transport answered to the one test message."""

    alert_id: int
    channel: str
    outcome: Outcome


@dataclass(frozen=True, slots=True, kw_only=True)
class Paused:
    """Whether dispatchers now claim the alert's deliveries."""

    alert_id: int
    status: str
    paused: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class Resent:
    """Failed deliveries queued again (never one that was sent)."""

    alert_id: int
    status: str
    requeued: int


async def send(app: App, actor: User, alert_id: int, *, at: datetime | None = None) -> Sent:
    """Publish the approved alert now, or (``at``) schedule it for that time."""
    check(actor, "alert.send")
    now = utcnow()
    async with app.sessions.begin() as session:
        alert = await drafts.get_alert(session, alert_id)
        if at is not None:
            await publish.schedule(session, alert, at=at, now=now, user=actor)
            details: dict[str, object] = {"send_at": at.isoformat()}
            queued = 0
        else:
            queued = await publish.publish(
                session,
                alert,
                now=now,
                webhook_url=app.settings.webhook.url,
                user=actor,
                available=configured_channels(app.settings),
            )
            details = {"queued": queued}
        await audit.record(
            session,
            user_id=actor.id,
            action="alert.send",
            object_type="alert",
            object_id=alert.id,
            details=details,
            now=now,
        )
    if at is None:
        app.doorbell.ring()  # after the commit: this process's dispatcher claims at once
    return Sent(alert_id=alert.id, status=alert.status, queued=queued, send_at=alert.send_at)


async def unschedule(app: App, actor: User, alert_id: int) -> Unscheduled:
    """A scheduled alert goes back to approved (its send follow-ups are cancelled with it)."""
    check(actor, "alert.send")
    async with app.sessions.begin() as session:
        alert = await drafts.get_alert(session, alert_id)
        await approval.set_status(session, alert, AlertStatus.APPROVED, user=actor, now=utcnow())
        return Unscheduled(alert_id=alert.id, status=alert.status)


async def test_send(
    app: App,
    actor: User,
    alert_id: int,
    *,
    address: str,
    channel: str = "email",
    audience: str = "authority",
    language: str = "en",
) -> TestSent:
    """Send the rendered alert to one address only (no delivery row: it is not the audience)."""
    check(actor, "alert.send")
    if not address.strip():
        raise ValidationError("to: an address is required.", details={"field": "to"})
    adapter = app.channels.get(channel)
    if adapter is None:
        raise ValidationError(f"channel: {channel} is not configured here.", details={"field": "channel"})
    now = utcnow()
    async with app.sessions.begin() as session:
        info = await publish.load_alert_info(session, alert_id)
        family = (await drafts.get_alert(session, alert_id)).family
        possible = sorted(app.renderer.family(family).languages)
        if language not in possible:  # else it would render the English and say "sent"
            raise ValidationError(
                f"language: the {family} templates have no {language!r}; they are in {', '.join(possible)}.",
                details={"field": "language", "languages": possible},
            )
        await audit.record(
            session,
            user_id=actor.id,
            action="alert.test",
            object_type="alert",
            object_id=alert_id,
            details={"channel": channel, "audience": audience, "language": language},
            now=now,
        )
    outcome = await controls.test_send(
        adapter,
        app.builder,
        info,
        address=address,
        audience=audience,
        language=language,
        channel_name=channel,
    )
    return TestSent(alert_id=alert_id, channel=channel, outcome=outcome)


async def set_paused(app: App, actor: User, alert_id: int, *, paused: bool) -> Paused:
    """Pause (dispatchers stop claiming the alert's deliveries) or resume its fan-out."""
    check(actor, "alert.send")
    async with app.sessions.begin() as session:
        alert = await drafts.get_alert(session, alert_id)
        await controls.set_paused(session, alert, paused, user=actor, now=utcnow())
    if not paused:
        app.doorbell.ring()
    return Paused(alert_id=alert.id, status=alert.status, paused=alert.paused)


async def resend_failed(app: App, actor: User, alert_id: int) -> Resent:
    """Give every failed delivery of the alert a new attempt."""
    check(actor, "alert.send")
    async with app.sessions.begin() as session:
        alert = await drafts.get_alert(session, alert_id)
        requeued = await controls.resend_failed(session, alert, user=actor, now=utcnow())
    if requeued:
        app.counts.forget()  # the next read shows them queued, not failed
        app.doorbell.ring()
    return Resent(alert_id=alert.id, status=alert.status, requeued=requeued)
