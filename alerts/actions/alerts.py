"""An alert's workflow as people act on it: create, consent, submit, approve, close, respond.

Sending and its controls (send or schedule, unschedule, test-send, pause, resume,
resend-failed) are in ``alerts.actions.sending``. Every face calls these functions and only
presents what they return (see ``alerts.actions``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from alerts.accounts.users import check
from alerts.app import App
from alerts.compose import approval, drafts
from alerts.compose.attachments import attach
from alerts.core.channels import ALL
from alerts.core.clock import utcnow
from alerts.core.errors import Conflict, ValidationError
from alerts.core.msgids import N_, Text
from alerts.core.states import AlertStatus
from alerts.delivery import controls
from alerts.followups.manage import cancel_for_alerts
from alerts.followups.notices import notify_reviewers, review_notices
from alerts.store.models import Alert, User
from channels import configured_channels

#: An update alert in one of these statuses has not gone out: closing its case withdraws it.
UNSENT = (AlertStatus.DRAFT, AlertStatus.IN_REVIEW, AlertStatus.APPROVED, AlertStatus.SCHEDULED)


@dataclass(frozen=True, slots=True, kw_only=True)
class Created:
    """A new draft alert."""

    alert_id: int
    status: str
    attachments: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class ConsentRecorded:
    """The defender's consent as now recorded (the latest record counts)."""

    alert_id: int
    scope: str
    recorded_at: datetime
    withdrawn: int  # unsent public deliveries (of the alert and its updates) cancelled by it


@dataclass(frozen=True, slots=True, kw_only=True)
class Submitted:
    """A draft sent to review, and the reviewers told of it."""

    alert_id: int
    status: str
    version: int
    reviewers: tuple[str, ...]  # who may approve it
    notified: tuple[str, ...]  # those of them reached by email or Telegram


@dataclass(frozen=True, slots=True, kw_only=True)
class Approved:
    """Languages approved; the alert is approved once none remain."""

    alert_id: int
    status: str
    remaining: tuple[str, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class Closed:
    """A closed case and what closing it cancelled (nothing when it was already closed)."""

    alert_id: int
    status: str
    already_closed: bool
    withdrawn: int = 0  # unsent deliveries of the alert, now cancelled
    followups: tuple[int, ...] = ()  # pending follow-ups cancelled (the alert's and its updates')
    updates: tuple[int, ...] = ()  # drafted update alerts withdrawn (closed unsent)


def unconfigured_channels(app: App) -> list[str]:
    """The channels an alert may not name on this service: those it has no config for."""
    return [c.value for c in ALL if c.value not in configured_channels(app.settings)]


def not_configured(missing: Sequence[str]) -> Text:
    """Why an alert may not name ``missing`` (the API's schema says it in the same words)."""
    msgid = (
        N_(
            "channels: %(channels)s is not configured on this service (see [%(first)s] in the config); "
            "remove it from the alert or configure it."
        )
        if len(missing) == 1
        else N_(
            "channels: %(channels)s are not configured on this service (see [%(first)s] in the "
            "config); remove them from the alert or configure them."
        )
    )
    return Text(msgid, {"channels": ", ".join(missing), "first": missing[0]})


def _require_channels(app: App, channels: Sequence[str]) -> None:
    """Refuse a channel this service cannot send on when the alert is written or submitted,
    rather than when it is sent."""
    missing = [c for c in channels if c not in configured_channels(app.settings)]
    if missing:
        why = not_configured(missing)
        raise ValidationError.said(
            why.msgid, details={"field": "channels", "channels": missing}, **why.values
        )


async def create(
    app: App,
    actor: User,
    *,
    family: str,
    case_data: Mapping[str, Any],
    audience: drafts.Audience,
    title: str | None = None,
    is_public: bool | None = None,
    parent_id: int | None = None,
    embargo_until: datetime | None = None,
    fallback_email: bool = False,
    attachments: Sequence[Path] = (),
) -> Created:
    """A draft alert from a template family and case data (with its attachments, all or nothing)."""
    check(actor, "alert.create")
    _require_channels(app, audience.channels)
    now = utcnow()
    async with app.sessions.begin() as session:
        if parent_id is not None and await session.get(Alert, parent_id) is None:
            raise ValidationError.said(
                N_("parent_id: there is no alert %(alert)s to update."),
                details={"field": "parent_id"},
                alert=parent_id,
            )
        await drafts.require_open_case(session, parent_id)
        alert = await drafts.create_alert(
            session,
            author=actor,
            family=family,
            case_data=case_data,
            title=title,
            audience=audience,
            is_public=is_public,
            validate_case=app.renderer.validate_case,
            now=now,
        )
        alert.parent_id = parent_id
        alert.embargo_until = embargo_until
        alert.fallback_email = fallback_email
        await session.flush()
        files = await attach(session, alert, list(attachments), now=now) if attachments else 0
        return Created(alert_id=alert.id, status=alert.status, attachments=files)


@dataclass(frozen=True, slots=True, kw_only=True)
class Edited:
    """The new version of an edited alert (an alert in review or approved is back to draft)."""

    alert_id: int
    status: str
    version: int


async def edit(
    app: App,
    actor: User,
    alert_id: int,
    *,
    case_data: Mapping[str, Any] | None = None,
    title: str | None = None,
    audience: drafts.Audience | None = None,
) -> Edited:
    """Change an alert's case data, title or audience: always a new version, back to review."""
    check(actor, "alert.edit")
    _require_channels(app, audience.channels if audience is not None else ())
    async with app.sessions.begin() as session:
        alert = await drafts.get_alert(session, alert_id)
        version = await drafts.edit_alert(
            session,
            alert,
            user=actor,
            case_data=case_data,
            title=title,
            audience=audience,
            validate_case=app.renderer.validate_case,
            now=utcnow(),
        )
        return Edited(alert_id=alert.id, status=alert.status, version=version.number)


async def record_consent(
    app: App, actor: User, alert_id: int, *, scope: str, note: str = ""
) -> ConsentRecorded:
    """Record the defender's consent; a ``restricted`` one withdraws the unsent public deliveries
    of the alert and of its updates at once (the claim re-checks consent for any in flight)."""
    check(actor, "alert.consent")
    now = utcnow()
    async with app.sessions.begin() as session:
        alert = await drafts.get_alert(session, alert_id)
        consent = await approval.record_consent(session, alert, user=actor, scope=scope, note=note, now=now)
        withdrawn = await controls.withdraw_public(session, alert, now=now)
    if withdrawn:
        app.counts.forget()  # after the commit: the next read shows them cancelled
    return ConsentRecorded(
        alert_id=alert.id, scope=consent.scope, recorded_at=consent.recorded_at, withdrawn=withdrawn
    )


async def submit(app: App, actor: User, alert_id: int) -> Submitted:
    """Send a draft to review and tell the reviewers (after the commit: a notice never precedes it)."""
    check(actor, "alert.submit")
    async with app.sessions.begin() as session:
        alert = await drafts.get_alert(session, alert_id)
        _require_channels(app, (alert.audience or {}).get("channels") or ())
        reviewers = await approval.submit(session, alert, user=actor, now=utcnow())
        version, status = alert.current_version, alert.status
        notices = review_notices(
            app, alert_id=alert.id, version=version, author=actor.name, reviewers=reviewers
        )
    notified = await notify_reviewers(app, notices, alert_id=alert_id, version=version)
    return Submitted(
        alert_id=alert_id,
        status=status,
        version=version,
        reviewers=tuple(n.name for n in notices),
        notified=notified,
    )


async def approve(
    app: App, actor: User, alert_id: int, *, languages: Sequence[str] | None = None
) -> Approved:
    """Approve languages (default: all) of the current version, as a second person."""
    check(actor, "alert.approve")
    try:
        async with app.sessions.begin() as session:
            alert = await drafts.get_alert(session, alert_id)
            remaining = await approval.approve(
                session,
                alert,
                user=actor,
                languages=languages,
                require_second_approver=app.settings.workflow.require_second_approver,
                now=utcnow(),
            )
            return Approved(alert_id=alert.id, status=alert.status, remaining=tuple(remaining))
    except IntegrityError:  # another reviewer approved the same language a moment ago
        raise drafts.changed_meanwhile(alert_id) from None


async def close(app: App, actor: User, alert_id: int) -> Closed:
    """Close the case: cancel its pending follow-ups, withdraw its unsent updates and deliveries.

    Closing a closed case changes nothing and says so (``already_closed``): it is not an error.
    """
    check(actor, "alert.close")
    now = utcnow()
    try:
        async with app.sessions.begin() as session:
            alert = await drafts.get_alert(session, alert_id)
            if alert.status == AlertStatus.CLOSED:
                return Closed(alert_id=alert.id, status=alert.status, already_closed=True)
            updates = await _unsent_updates(session, alert.id)
            # follow-ups first, then alerts: the lock order of ``followups.fire``
            followups = await cancel_for_alerts(
                session,
                [alert.id, *(u.id for u in updates)],
                reason=f"cancelled: the case (alert {alert.id}) was closed by {actor.name}",
                now=now,
            )
            for update in updates:
                await approval.close_alert(
                    session, update, user=actor, now=now, details={"withdrawn_with": alert.id}
                )
            withdrawn = await controls.cancel_pending(session, alert, now=now)
            await approval.close_alert(
                session,
                alert,
                user=actor,
                now=now,
                details={
                    "withdrawn": withdrawn,
                    "followups": followups,
                    "updates": [u.id for u in updates],
                },
            )
        app.counts.forget()  # after the commit: the next read shows its deliveries cancelled
        return Closed(
            alert_id=alert.id,
            status=alert.status,
            already_closed=False,
            withdrawn=withdrawn,
            followups=tuple(followups),
            updates=tuple(u.id for u in updates),
        )
    except Conflict:
        async with app.reads() as session:
            alert = await drafts.get_alert(session, alert_id)
        if alert.status == AlertStatus.CLOSED:  # closed by someone else meanwhile
            return Closed(alert_id=alert.id, status=alert.status, already_closed=True)
        raise


async def _unsent_updates(session: AsyncSession, alert_id: int) -> list[Alert]:
    rows = await session.scalars(
        select(Alert)
        .where(Alert.parent_id == alert_id, Alert.status.in_([s.value for s in UNSENT]))
        .order_by(Alert.id)
    )
    return list(rows.all())
