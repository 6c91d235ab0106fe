"""Keeping ``send`` follow-ups in step with their alert's schedule.

A ``send`` follow-up publishes its alert at ``due_at``; the alert's own ``send_at`` is the
embargo. When the alert is unscheduled (back to approved) or rescheduled for another time, a
pending ``send`` follow-up for the old time must not fire: ``cancel_stale_sends`` cancels it
in the caller's transaction (so the change and the cancellation commit together). This module
imports only the models, so ``alerts.compose.approval`` and ``alerts.delivery.publish`` can use it.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from alerts.core.states import FollowupKind
from alerts.store.models import Followup


async def cancel_stale_sends(
    session: AsyncSession, alert_id: int, *, keep_at: datetime | None, now: datetime, reason: str
) -> list[int]:
    """Cancel the alert's pending ``send`` follow-ups not due at ``keep_at`` (None: every one)."""
    query = select(Followup.id).where(
        Followup.alert_id == alert_id,
        Followup.kind == FollowupKind.SEND.value,
        Followup.fired_at.is_(None),
        Followup.cancelled_at.is_(None),
    )
    if keep_at is not None:
        query = query.where(Followup.due_at != keep_at)
    ids = list((await session.scalars(query)).all())
    if ids:
        await session.execute(
            update(Followup)
            .where(Followup.id.in_(ids), Followup.fired_at.is_(None), Followup.cancelled_at.is_(None))
            .values(cancelled_at=now, result=reason)
            .execution_options(synchronize_session=False)
        )
    return ids
