"""Retention: delete the outbox rows and delivery events of long-finished alerts, keep their counts.

An alert's rows may go when nothing can need them again:
- it is ``sent`` or ``closed``, with no delivery still open (queued, sending, deferred), and it
  finished (``completed_at``, else ``closed_at``) before the cut-off;
- no follow-up of it is still due (not fired, not cancelled);
- its case is closed: an update of an open case goes to exactly the people the original
  reached, read from the original's deliveries (``audience.update_audience``), and threads
  under its Telegram messages; so the rows of a case that may still get an update stay.

What is kept (``PrunedCount``): per channel, the deliveries in each final state and those
opened or clicked. ``tracking.figures`` and ``tracking.totals_by_alert`` add them to what
is left, so the alert page, ``alert status``, the API and the dashboard show the same figures
before and after. Lost with the rows: the
per-recipient list and the chart of sends over time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import CursorResult, and_, delete, exists, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from alerts.core.states import AlertStatus, DeliveryState
from alerts.store.db import dialect_insert
from alerts.store.events import is_engagement
from alerts.store.models import Alert, Delivery, DeliveryEvent, Followup, PrunedCount

OPEN = [str(DeliveryState.QUEUED), str(DeliveryState.SENDING), str(DeliveryState.DEFERRED)]
FINISHED = [str(AlertStatus.SENT), str(AlertStatus.CLOSED)]


@dataclass(frozen=True, slots=True, kw_only=True)
class Pruned:
    """What pruning one alert removed."""

    alert_id: int
    deliveries: int
    events: int


async def prunable(
    session: AsyncSession, *, before: datetime, among: Sequence[int] | None = None
) -> list[int]:
    """Ids of the alerts whose deliveries and events may be deleted (see the module docstring);
    ``among``: only these (checked again in the transaction that deletes)."""
    root = aliased(Alert)
    finished_at = func.coalesce(Alert.completed_at, Alert.closed_at)
    has_rows = or_(
        exists().where(Delivery.alert_id == Alert.id), exists().where(DeliveryEvent.alert_id == Alert.id)
    )
    query = (
        select(Alert.id)
        .outerjoin(root, root.id == Alert.parent_id)
        .where(
            Alert.status.in_(FINISHED),
            finished_at.is_not(None),
            finished_at < before,
            # the case: the alert itself, or the original it updates (threads are one level deep
            # below the original; a deeper chain is kept, to be safe)
            or_(
                and_(Alert.parent_id.is_(None), Alert.status == str(AlertStatus.CLOSED)),
                and_(root.parent_id.is_(None), root.status == str(AlertStatus.CLOSED)),
            ),
            ~exists().where(Delivery.alert_id == Alert.id, Delivery.state.in_(OPEN)),
            ~exists().where(
                Followup.alert_id == Alert.id, Followup.fired_at.is_(None), Followup.cancelled_at.is_(None)
            ),
            has_rows,
        )
        .order_by(Alert.id)
    )
    if among is not None:
        query = query.where(Alert.id.in_(list(among)))
    return list((await session.execute(query)).scalars().all())


async def prune_alert(session: AsyncSession, alert_id: int) -> Pruned:
    """Fold the alert's deliveries into ``PrunedCount`` and delete them and their events
    (caller commits; call it for an id ``prunable`` returned, in the same transaction or after
    checking again)."""
    states = (
        await session.execute(
            select(Delivery.channel, Delivery.state, func.count())
            .where(Delivery.alert_id == alert_id)
            .group_by(Delivery.channel, Delivery.state)
        )
    ).all()
    engaged = (
        await session.execute(
            select(Delivery.channel, DeliveryEvent.type, func.count(func.distinct(DeliveryEvent.delivery_id)))
            .join(Delivery, Delivery.id == DeliveryEvent.delivery_id)
            .where(DeliveryEvent.alert_id == alert_id, is_engagement())
            .group_by(Delivery.channel, DeliveryEvent.type)
        )
    ).all()
    rows = [
        {"alert_id": alert_id, "channel": c, "name": name, "n": int(n)} for c, name, n in [*states, *engaged]
    ]
    if rows:
        insert = dialect_insert(session, PrunedCount)
        await session.execute(
            insert.on_conflict_do_update(
                index_elements=["alert_id", "channel", "name"], set_={"n": PrunedCount.n + insert.excluded.n}
            ),
            rows,
        )
    events = await session.execute(delete(DeliveryEvent).where(DeliveryEvent.alert_id == alert_id))
    deliveries = await session.execute(delete(Delivery).where(Delivery.alert_id == alert_id))
    return Pruned(
        alert_id=alert_id,
        deliveries=int(cast(CursorResult[Any], deliveries).rowcount or 0),
        events=int(cast(CursorResult[Any], events).rowcount or 0),
    )


async def rows_of(session: AsyncSession, alert_ids: Sequence[int]) -> tuple[int, int]:
    """(deliveries, delivery events) these alerts hold: what pruning them would delete."""
    if not alert_ids:
        return 0, 0
    ids = list(alert_ids)
    deliveries = await session.scalar(select(func.count()).where(Delivery.alert_id.in_(ids)))
    events = await session.scalar(select(func.count()).where(DeliveryEvent.alert_id.in_(ids)))
    return int(deliveries or 0), int(events or 0)


async def pruned_counts(session: AsyncSession, alert_ids: Sequence[int]) -> list[tuple[int, str, str, int]]:
    """(alert id, channel, state or engagement, n) kept for these alerts by earlier prunes."""
    if not alert_ids:
        return []
    rows = await session.execute(
        select(PrunedCount.alert_id, PrunedCount.channel, PrunedCount.name, PrunedCount.n).where(
            PrunedCount.alert_id.in_(list(alert_ids))
        )
    )
    return [(int(a), str(c), str(name), int(n)) for a, c, name, n in rows.all()]
