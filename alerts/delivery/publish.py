"""Publish an approved alert: check it may go, fan it out, mark it sending — now or at its
embargo time. Scheduled alerts are published by whichever dispatcher first sees them due;
the status change ``scheduled → sending`` is a guarded UPDATE, so exactly one does."""

from __future__ import annotations

import logging
from collections.abc import Collection
from datetime import datetime
from typing import Any, cast

from sqlalchemy import CursorResult, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from alerts.compose import approval
from alerts.compose.casedata import case_country
from alerts.compose.drafts import current_version, require_open_case
from alerts.core.errors import AlertsError, Conflict, NotFound
from alerts.core.states import AlertStatus
from alerts.core.types import Attachment
from alerts.delivery.audience import PUBLIC, public_withdrawn
from alerts.delivery.messages import AlertInfo
from alerts.delivery.outbox import fan_out
from alerts.delivery.wakeup import announce
from alerts.store import audit
from alerts.store.models import Alert, AlertAttachment, AlertVersion, User
from alerts.store.pending_sends import cancel_stale_sends

logger = logging.getLogger(__name__)


async def publish(
    session: AsyncSession,
    alert: Alert,
    *,
    now: datetime,
    webhook_url: str = "",
    user: User | None = None,
    available: Collection[str] | None = None,
) -> int:
    """Fan the alert out now (caller commits); returns the number of new deliveries."""
    if alert.status not in (AlertStatus.APPROVED, AlertStatus.SCHEDULED, AlertStatus.SENDING):
        raise Conflict(
            f"alert {alert.id} is {alert.status}; only an approved alert can be sent.",
            details={"alert": alert.id, "status": alert.status},
        )
    await approval.ready_to_send(session, alert)
    await require_open_case(session, alert.parent_id)  # an update of a case closed meanwhile
    languages = await approval.approved_languages(session, alert)
    # without the defender's consent to publicity, public contacts never get it (even via a
    # list), nor an update's public recipients once it was withdrawn on the original
    withdrawn = alert.id in await public_withdrawn(session, [alert.id])
    version = await current_version(session, alert)
    created = await fan_out(
        session,
        alert,
        approved_languages=languages,
        now=now,
        webhook_url=webhook_url,
        exclude_kinds=(PUBLIC,) if withdrawn else (),
        available=available,
        country=case_country(version.case_data),
    )
    if alert.status != AlertStatus.SENDING:
        await approval.set_status(session, alert, AlertStatus.SENDING, user=user, now=now)
    alert.published_at = alert.published_at or now
    await announce(session)  # PostgreSQL: dispatchers wake at the commit (see wakeup.py)
    return created


async def schedule(
    session: AsyncSession, alert: Alert, *, at: datetime, now: datetime, user: User | None = None
) -> None:
    """Publish the alert at ``at`` (its embargo time) instead of now (caller commits)."""
    if alert.status not in (AlertStatus.APPROVED, AlertStatus.SCHEDULED):
        raise Conflict(f"alert {alert.id} is {alert.status}; only an approved alert can be scheduled.")
    await require_open_case(session, alert.parent_id)
    if at <= now:
        raise Conflict(f"alert {alert.id}: the send time {at.isoformat()} is in the past.")
    # a send follow-up for another time must not publish it before (or after) the new one;
    # cancelled first (follow-up, then alert: the lock order of ``followups.fire``)
    await cancel_stale_sends(
        session,
        alert.id,
        keep_at=at,
        now=now,
        reason=f"cancelled: the alert was rescheduled for {at.isoformat()}",
    )
    await approval.set_status(session, alert, AlertStatus.SCHEDULED, user=user, send_at=at, now=now)


async def publish_due(
    session: AsyncSession, *, now: datetime, webhook_url: str = "", available: Collection[str] | None = None
) -> list[int]:
    """Publish every scheduled alert whose time has come; exactly once across processes.

    One that can no longer go (its consent was withdrawn, a channel unconfigured) is left
    ``approved`` with the reason logged and audited, instead of failing every other one.
    """
    due = (
        (
            await session.execute(
                select(Alert.id).where(Alert.status == str(AlertStatus.SCHEDULED), Alert.send_at <= now)
            )
        )
        .scalars()
        .all()
    )
    published = []
    for alert_id in due:
        won = await session.execute(
            update(Alert)
            .where(Alert.id == alert_id, Alert.status == str(AlertStatus.SCHEDULED))
            .values(status=str(AlertStatus.APPROVED))
            .execution_options(synchronize_session=False)
        )
        if not cast(CursorResult[Any], won).rowcount:
            continue
        alert = await session.get(Alert, alert_id, populate_existing=True)
        assert alert is not None
        send_at = alert.send_at
        try:
            async with session.begin_nested():
                n = await publish(session, alert, now=now, webhook_url=webhook_url, available=available)
        except AlertsError as exc:
            logger.error("scheduled alert %s was not sent: %s", alert_id, exc.message)
            await audit.record(
                session,
                user_id=None,
                action="alert.schedule_failed",
                object_type="alert",
                object_id=str(alert_id),
                details={"reason": exc.message},
                now=now,
            )
            continue
        alert.send_at = alert.send_at or send_at
        lateness = (now - alert.send_at).total_seconds() if alert.send_at else 0.0
        logger.info(
            "alert %s published at its scheduled time (%.1f s late): %d deliveries", alert_id, lateness, n
        )
        published.append(alert_id)
    return published


async def load_alert_info(session: AsyncSession, alert_id: int) -> AlertInfo:
    """What the dispatcher needs to render and thread an alert's messages."""
    alert = await session.get(Alert, alert_id)
    if alert is None:
        raise NotFound(f"alert {alert_id} does not exist", details={"alert": alert_id})
    version = (
        await session.execute(
            select(AlertVersion).where(
                AlertVersion.alert_id == alert_id, AlertVersion.number == alert.current_version
            )
        )
    ).scalar_one()
    ancestors: list[int] = []
    root = alert
    parent_id = alert.parent_id
    while parent_id is not None and parent_id not in ancestors:
        ancestors.append(parent_id)
        parent = await session.get(Alert, parent_id)
        if parent is None:
            break
        root = parent
        parent_id = parent.parent_id
    files = (
        (await session.execute(select(AlertAttachment).where(AlertAttachment.alert_id == alert_id)))
        .scalars()
        .all()
    )
    original = None
    if ancestors:
        original = {
            "id": root.id,
            "title": root.title,
            "date": (root.published_at or root.created_at).strftime("%Y-%m-%d"),
        }
    return AlertInfo(
        id=alert.id,
        title=alert.title,
        family=alert.family,
        version=version.number,
        case_data=dict(version.case_data),
        ancestors=tuple(ancestors),
        embargo_until=alert.embargo_until,
        attachments=tuple(
            Attachment(filename=f.filename, content_type=f.content_type, data=f.data) for f in files
        ),
        fallback_email=alert.fallback_email,
        original=original,
    )
