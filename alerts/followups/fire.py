"""Firing follow-ups: claim a due row exactly once, act on it, then tell officers.

``fire`` claims a row with one guarded UPDATE (``fired_at`` set only where it is still NULL
and the row is not cancelled), so however many processes or jobs call it, exactly one acts.
What a follow-up changes in the database (publishing an update, the next digest) happens in
the claiming transaction: committed together or not at all. Messages to officers go out
after the claim commits (``alerts.followups_notices.deliver``); a transient failure re-arms
the row for a later attempt, so a reminder is neither lost nor doubled. ``pending``,
``due_followups`` and ``rearm_stalled`` are what the scheduler reads.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import CursorResult, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from alerts.core.errors import AlertsError, NotFound
from alerts.core.states import AlertStatus, FollowupKind
from alerts.delivery.publish import publish
from alerts.followups import reminders
from alerts.followups.notices import FIRING, deliver, new_claim
from alerts.store.models import Alert, Followup
from channels import configured_channels

if TYPE_CHECKING:
    from alerts.app import App

logger = logging.getLogger(__name__)

A = AlertStatus
K = FollowupKind

#: A row claimed this long ago and still ``firing`` was cut short by a crash: fire it again.
STALLED_AFTER = timedelta(minutes=5)


async def pending(session: AsyncSession) -> dict[int, datetime]:
    """{id: due_at} of every follow-up neither fired nor cancelled (what the scheduler must hold)."""
    rows = await session.execute(
        select(Followup.id, Followup.due_at).where(
            Followup.fired_at.is_(None), Followup.cancelled_at.is_(None)
        )
    )
    return {fid: due for fid, due in rows.all()}


async def due_followups(session: AsyncSession, now: datetime) -> list[int]:
    """Ids of pending follow-ups due at ``now``, oldest first."""
    rows = await session.scalars(
        select(Followup.id)
        .where(Followup.fired_at.is_(None), Followup.cancelled_at.is_(None), Followup.due_at <= now)
        .order_by(Followup.due_at, Followup.id)
    )
    return list(rows.all())


async def rearm_stalled(session: AsyncSession, now: datetime) -> list[int]:
    """Follow-ups claimed but never finished (the process died while sending): fire them again."""
    claimed = (
        await session.execute(
            select(Followup.id, Followup.result).where(
                Followup.result.like(f"{FIRING}%"), Followup.fired_at < now - STALLED_AFTER
            )
        )
    ).all()
    rows = []
    for fid, claim in claimed:
        # guarded by the stalled firing's own claim: a firing that finished meanwhile stays
        done = cast(
            CursorResult[Any],
            await session.execute(
                update(Followup)
                .where(Followup.id == fid, Followup.result == claim)
                .values(fired_at=None, result="interrupted while sending; fired again")
                .execution_options(synchronize_session=False)
            ),
        )
        if done.rowcount == 1:
            rows.append(fid)
    if rows:
        logger.warning("%d follow-up(s) were interrupted while sending; firing them again", len(rows))
    return rows


@dataclass(frozen=True, slots=True, kw_only=True)
class Fired:
    """What one ``fire`` call did."""

    followup_id: int
    kind: str
    result: str
    late_seconds: float


async def fire(app: App, followup_id: int, now: datetime) -> Fired | None:
    """Claim and act on one follow-up; None if another caller claimed it (or it was cancelled)."""
    claim = new_claim()
    async with app.sessions.begin() as session:
        won = cast(
            CursorResult[Any],
            await session.execute(
                update(Followup)
                .where(
                    Followup.id == followup_id, Followup.fired_at.is_(None), Followup.cancelled_at.is_(None)
                )
                .values(fired_at=now, result=claim)
                .execution_options(synchronize_session=False)
            ),
        )
        if won.rowcount != 1:
            return None
        f = await session.get(Followup, followup_id, populate_existing=True)
        if f is None:  # deleted with its alert between the claim and now
            raise NotFound(f"follow-up {followup_id} does not exist.")
        f.late_seconds = max(0.0, (now - f.due_at).total_seconds())
        acted = await act_on_alert(session, app, f, now=now) if f.kind in (K.UPDATE, K.SEND) else None
        plan = await reminders.plan(session, app, f, now=now, acted=acted)
        f.result = plan.result if not plan.notices else claim
        kind, late = f.kind, f.late_seconds
    if kind in (K.UPDATE, K.SEND):
        app.doorbell.ring()  # an alert it published goes out at once
    if plan.notices:
        result = await deliver(app, followup_id, plan, now=now, claim=claim)
    else:
        result = plan.result
    logger.info(
        "follow-up %s (%s) fired %.0f s after its due time: %s",
        followup_id,
        kind,
        late,
        result.splitlines()[0] if result else "",
    )
    return Fired(followup_id=followup_id, kind=kind, result=result, late_seconds=late)


async def act_on_alert(
    session: AsyncSession, app: App, f: Followup, *, now: datetime
) -> tuple[str, Alert | None]:
    """The database effect of an update or send follow-up, inside the claim's transaction.

    Returns (result text, the update alert still waiting for approval or None). A refusal
    (approval or consent missing) is kept as the result; the claim itself stands.
    """
    data = f.data or {}
    target_id = data.get("update_alert_id") if f.kind == K.UPDATE else f.alert_id
    if not isinstance(target_id, int):
        return "failed: the follow-up names no alert to send.", None
    alert = await session.get(Alert, target_id, populate_existing=True)
    if alert is None:
        return f"failed: alert {target_id} no longer exists.", None
    what = "update" if f.kind == K.UPDATE else "alert"
    if f.kind == K.SEND:
        # The same guarded change as the dispatcher's publish_due: whoever moves it off
        # ``scheduled`` first publishes it; the other finds it already going.
        won = cast(
            CursorResult[Any],
            await session.execute(
                update(Alert)
                .where(
                    Alert.id == alert.id,
                    Alert.status == A.SCHEDULED.value,
                    Alert.send_at == f.due_at,  # rescheduled since: its new time rules
                )
                .values(status=A.APPROVED.value)
                .execution_options(synchronize_session=False)
            ),
        )
        await session.refresh(alert)
        if won.rowcount != 1:
            if alert.status == A.SCHEDULED:
                at = alert.send_at.isoformat() if alert.send_at else "another time"
                return f"skipped: rescheduled; alert {alert.id} is now scheduled for {at}.", None
            if alert.status in (A.SENDING, A.SENT):
                return f"alert {alert.id} was already published (at its scheduled time).", None
            return f"skipped: alert {alert.id} is {alert.status}, no longer scheduled.", None
    elif alert.status in (A.DRAFT, A.IN_REVIEW):
        return f"update alert {alert.id} is {alert.status}, not approved: officers reminded.", alert
    elif alert.status in (A.SCHEDULED, A.SENDING, A.SENT):
        return f"update alert {alert.id} is already {alert.status}.", None
    elif alert.status == A.CLOSED:
        return f"skipped: update alert {alert.id} is closed.", None
    try:
        async with session.begin_nested():
            n = await publish(
                session,
                alert,
                now=now,
                webhook_url=app.settings.webhook.url,
                available=configured_channels(app.settings),
            )
    except AlertsError as exc:
        return f"failed: {exc.message}", None
    return f"{what} {alert.id} published: {n} deliveries queued.", None
