"""Follow-ups: reminders to officers, update alerts, scheduled sends and weekly digests.

The ``Followup`` row is the truth; the scheduler (``alerts.followups.scheduler``) only decides *when*
to call ``fire``. This module lists, shows and cancels follow-ups, and is the one place
other modules import follow-up names from. The rest lives beside it:

- ``alerts.followups.add``: ``add_followup`` validates and creates a follow-up;
- ``alerts.followups.fire``: ``fire`` claims a row exactly once and acts on it;
- ``alerts.followups.reminders``: what a fired reminder, update or send tells officers;
- ``alerts.followups.digest``: weekly digests, one pending per officer (``ensure_digests``);
- ``alerts.followups.notices``: delivering those notices by email and Telegram.

``add_followup``, ``cancel_followup`` and ``list_followups`` add to the session and flush;
the caller commits (or rolls back on an error: nothing is then written).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast
from zoneinfo import ZoneInfo

from sqlalchemy import CursorResult, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from alerts.accounts.users import check
from alerts.core.clock import iso
from alerts.core.errors import Conflict, NotFound
from alerts.core.states import AlertStatus, FollowupKind
from alerts.followups.add import (
    CONDITIONS,
    MAX_NOTE,
    PAST_GRACE,
    UPDATE_FAMILIES,
    add_followup,
    normalise_condition,
    parse_duration,
)
from alerts.followups.digest import DIGEST_EVERY, ensure_digests, next_digest_at
from alerts.followups.fire import (
    STALLED_AFTER,
    Fired,
    act_on_alert,
    due_followups,
    fire,
    pending,
    rearm_stalled,
)
from alerts.store import audit
from alerts.store.models import Alert, Followup, User

__all__ = [
    "CONDITIONS",
    "DIGEST_EVERY",
    "MAX_NOTE",
    "PAST_GRACE",
    "STALLED_AFTER",
    "UPDATE_FAMILIES",
    "Fired",
    "act_on_alert",
    "add_followup",
    "cancel_followup",
    "cancel_for_alerts",
    "due_followups",
    "ensure_digests",
    "fire",
    "get_followup",
    "list_followups",
    "next_digest_at",
    "normalise_condition",
    "parse_duration",
    "pending",
    "rearm_stalled",
    "status_of",
    "to_json",
]

A = AlertStatus
K = FollowupKind


def status_of(f: Followup) -> str:
    """pending | retrying | fired | cancelled."""
    if f.cancelled_at is not None:
        return "cancelled"
    if f.fired_at is not None:
        return "fired"
    return "retrying" if (f.data or {}).get("attempts") else "pending"


def to_json(f: Followup, tz: ZoneInfo | None = None) -> dict[str, Any]:
    """The API / ``followup list --json`` form of a follow-up (times in UTC, plus local due time)."""
    data = dict(f.data or {})
    return {
        "id": f.id,
        "alert_id": f.alert_id,
        "kind": f.kind,
        "status": status_of(f),
        "due_at": f.due_at.isoformat(),
        "due_local": f.due_at.astimezone(tz).isoformat() if tz is not None else None,
        "note": f.note,
        "condition": f.condition,
        "kinds": data.get("kinds", []),
        "update_alert_id": data.get("update_alert_id"),
        "created_by": f.created_by,
        "created_at": f.created_at.isoformat(),
        "fired_at": iso(f.fired_at),
        "cancelled_at": iso(f.cancelled_at),
        "late_seconds": f.late_seconds,
        "result": f.result,
    }


async def get_followup(session: AsyncSession, followup_id: int) -> Followup:
    """The follow-up with this id, freshly read; NotFound otherwise."""
    f = await session.get(Followup, followup_id, populate_existing=True)
    if f is None:
        raise NotFound(f"follow-up {followup_id} does not exist.")
    return f


async def list_followups(
    session: AsyncSession, *, alert_id: int | None = None, include_done: bool = True, limit: int = 1000
) -> list[Followup]:
    """Follow-ups by due time (of one alert if given); ``include_done`` False: pending only."""
    query = select(Followup).order_by(Followup.due_at, Followup.id).limit(limit)
    if alert_id is not None:
        query = query.where(Followup.alert_id == alert_id)
    if not include_done:
        query = query.where(Followup.fired_at.is_(None), Followup.cancelled_at.is_(None))
    return list((await session.scalars(query)).all())


async def cancel_followup(session: AsyncSession, followup_id: int, *, user: User, now: datetime) -> Followup:
    """Cancel a pending follow-up (a scheduled send is unscheduled too); refused once it has fired."""
    check(user, "followup.manage")
    result = cast(
        CursorResult[Any],
        await session.execute(
            update(Followup)
            .where(Followup.id == followup_id, Followup.fired_at.is_(None), Followup.cancelled_at.is_(None))
            .values(cancelled_at=now, result=f"cancelled by {user.name}")
            .execution_options(synchronize_session=False)
        ),
    )
    f = await get_followup(session, followup_id)
    if result.rowcount != 1:
        if f.cancelled_at is not None:
            raise Conflict(f"follow-up {followup_id} was already cancelled at {f.cancelled_at.isoformat()}.")
        assert f.fired_at is not None
        raise Conflict(
            f"follow-up {followup_id} fired at {f.fired_at.isoformat()}: it can no longer be cancelled.",
            details={"result": f.result},
        )
    if f.kind == K.SEND and f.alert_id is not None:
        # Unschedule the alert, unless someone rescheduled it for another time meanwhile.
        await session.execute(
            update(Alert)
            .where(Alert.id == f.alert_id, Alert.status == A.SCHEDULED.value, Alert.send_at == f.due_at)
            .values(status=A.APPROVED.value, send_at=None, updated_at=now)
            .execution_options(synchronize_session=False)
        )
    await audit.record(
        session,
        user_id=user.id,
        action="followup.cancel",
        object_type="followup",
        object_id=followup_id,
        details={"alert": f.alert_id, "kind": f.kind},
        now=now,
    )
    return f


async def cancel_for_alerts(
    session: AsyncSession, alert_ids: Sequence[int], *, reason: str, now: datetime
) -> list[int]:
    """Cancel every pending follow-up of these alerts (closing a case); the ids cancelled.

    Flushes, never commits: the caller's transaction closes the case and cancels its
    follow-ups together. A follow-up being fired at this moment is not pending (its
    ``fired_at`` is set) and is left to finish.
    """
    if not alert_ids:
        return []
    rows = await session.execute(
        update(Followup)
        .where(
            Followup.alert_id.in_(alert_ids),
            Followup.fired_at.is_(None),
            Followup.cancelled_at.is_(None),
        )
        .values(cancelled_at=now, result=reason)
        .returning(Followup.id)
        .execution_options(synchronize_session=False)
    )
    return sorted(rows.scalars().all())
