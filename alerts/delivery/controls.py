"""Officers' controls on a running alert: pause, resume, resend to the failed, test send, and
withdrawing the public deliveries when the defender's consent is withdrawn."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from alerts.compose import approval
from alerts.core.errors import Conflict, ValidationError
from alerts.core.states import AlertStatus, DeliveryState, EventType
from alerts.core.types import Outcome
from alerts.delivery.audience import PUBLIC, public_withdrawn
from alerts.delivery.messages import AlertInfo, Claimed, MessageBuilder
from alerts.delivery.wakeup import announce
from alerts.store import audit
from alerts.store.events import cancel_unsent, record_moves
from alerts.store.models import Alert, Delivery, User
from channels.base import Channel

RUNNING = (AlertStatus.SENDING, AlertStatus.SCHEDULED, AlertStatus.APPROVED, AlertStatus.SENT)


async def set_paused(
    session: AsyncSession, alert: Alert, paused: bool, *, user: User | None, now: datetime
) -> None:
    """Pause (dispatchers stop claiming its deliveries) or resume a fan-out (caller commits)."""
    if alert.status == AlertStatus.CLOSED:
        raise Conflict(f"alert {alert.id} is closed.")
    if alert.paused == paused:
        raise Conflict(f"alert {alert.id} is already {'paused' if paused else 'running'}.")
    alert.paused = paused
    alert.updated_at = now
    if not paused:
        await announce(session)
    await audit.record(
        session,
        user_id=user.id if user else None,
        action="alert.pause" if paused else "alert.resume",
        object_type="alert",
        object_id=str(alert.id),
        now=now,
    )


async def resend_failed(session: AsyncSession, alert: Alert, *, user: User | None, now: datetime) -> int:
    """Give every failed delivery of the alert a new attempt; never touches those sent.

    Failed deliveries to public contacts stay failed once the defender's consent is withdrawn
    (counted as ``withheld`` in the audit entry).
    """
    if alert.status not in (AlertStatus.SENDING, AlertStatus.SENT):
        raise Conflict(
            f"alert {alert.id} is {alert.status}; only a sent or sending alert has failed deliveries."
        )
    failed = [Delivery.alert_id == alert.id, Delivery.state == str(DeliveryState.FAILED)]
    withheld = 0
    if alert.id in await public_withdrawn(session, [alert.id]):
        withheld = int(
            await session.scalar(select(func.count()).where(*failed, Delivery.audience == PUBLIC)) or 0
        )
        failed.append(Delivery.audience != PUBLIC)
    rows = (
        await session.execute(
            update(Delivery)
            .where(*failed)
            .values(
                state=str(DeliveryState.QUEUED),
                next_attempt_at=now,
                attempts=0,
                unknown_outcomes=0,
                last_error=None,
                updated_at=now,
            )
            .returning(Delivery.id, Delivery.alert_id, Delivery.attempts)
            .execution_options(synchronize_session=False)
        )
    ).all()
    await record_moves(
        session,
        rows,
        type=EventType.QUEUED,
        from_state=DeliveryState.FAILED,
        to_state=DeliveryState.QUEUED,
        at=now,
        detail="resend-failed",
    )
    if rows and alert.status != AlertStatus.SENDING:
        await approval.set_status(session, alert, AlertStatus.SENDING, user=user, now=now)
        alert.completed_at = None
    if rows:
        await announce(session)
    await audit.record(
        session,
        user_id=user.id if user else None,
        action="alert.resend_failed",
        object_type="alert",
        object_id=str(alert.id),
        details={"requeued": len(rows), "withheld": withheld} if withheld else {"requeued": len(rows)},
        now=now,
    )
    return len(rows)


async def withdraw_public(session: AsyncSession, alert: Alert, *, now: datetime) -> int:
    """Cancel the unsent (queued, deferred) public deliveries of the alert and of its updates
    whose consent is now withdrawn; returns how many (caller commits).

    Call it after recording consent: an alert whose consent is still public is left alone.
    Deliveries in flight (``sending``) are not touched here; the claim re-checks consent, so
    they are never claimed again after a transient failure or an expired lease.
    """
    thread = [alert.id]
    while True:  # the updates of the alert, and theirs (a thread is a handful of alerts)
        below = set(
            (await session.execute(select(Alert.id).where(Alert.parent_id.in_(thread)))).scalars().all()
        )
        if below <= set(thread):
            break
        thread += sorted(below - set(thread))
    cancelled = 0
    for alert_id in sorted(await public_withdrawn(session, thread)):
        cancelled += await cancel_unsent(
            session, alert_id, now=now, detail="consent withdrawn", audience=PUBLIC
        )
    return cancelled


async def cancel_pending(session: AsyncSession, alert: Alert, *, now: datetime) -> int:
    """Withdraw every delivery of a closed alert that has not gone out (queued or deferred)."""
    return await cancel_unsent(session, alert.id, now=now, detail="alert closed")


async def test_send(
    channel: Channel,
    builder: MessageBuilder,
    info: AlertInfo,
    *,
    address: str,
    audience: str,
    language: str,
    channel_name: str,
) -> Outcome:
    """Send the rendered alert to one address only (an officer's check before publishing).

    No delivery row is written: the test message is not part of the alert's audience.
    """
    if not address.strip():
        raise ValidationError("--to: an address is required.")
    item = Claimed(
        id=0,
        alert_id=info.id,
        contact_id=None,
        channel=channel_name,
        audience=audience,
        language=language,
        address=address.strip(),
        attempts=1,
        unknown_outcomes=0,
        from_state="queued",
        name="",
    )
    message = builder.build(item, info)
    test_content = message.content.__class__(
        channel=message.content.channel,
        audience=message.content.audience,
        language=message.content.language,
        subject=f"[TEST] {message.content.subject}",
        text=message.content.text,
        html=message.content.html,
    )
    from dataclasses import replace

    message = replace(
        message, content=test_content, message_id=message.message_id.replace("<alert-", "<test-alert-")
    )
    return await channel.send(message)
