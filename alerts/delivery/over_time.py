"""An alert's deliveries over time, per channel: how many were sent, failed and bounced in each
of ``BUCKETS`` equal slices of the time from the first such event to the last — counted in one
grouped query over the event history (the part a chart draws; the totals are ``tracking``'s)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from alerts.core.states import DeliveryState
from alerts.store.models import Delivery, DeliveryEvent

BUCKETS = 24
#: What the chart shows, and the states that count as each (a delivery confirmed is one sent).
SHOWN: dict[str, tuple[str, ...]] = {
    "sent": (DeliveryState.SENT.value, DeliveryState.DELIVERED.value),
    "failed": (DeliveryState.FAILED.value,),
    "bounced": (DeliveryState.BOUNCED.value,),
}


@dataclass(frozen=True, slots=True)
class OverTime:
    start: datetime | None
    step: timedelta
    channels: dict[str, dict[str, list[int]]]  # channel → shown state → count per slice

    @property
    def peak(self) -> int:
        """The largest slice (sent + failed + bounced), for the chart's scale."""
        return max(
            (sum(col) for states in self.channels.values() for col in zip(*states.values(), strict=True)),
            default=0,
        )


async def over_time(session: AsyncSession, alert_id: int, *, buckets: int = BUCKETS) -> OverTime:
    """Sent, failed and bounced per channel in each slice of the alert's sending time."""
    counted = [s for states in SHOWN.values() for s in states]
    mine = and_(DeliveryEvent.alert_id == alert_id, DeliveryEvent.to_state.in_(counted))
    first, last = (
        await session.execute(select(func.min(DeliveryEvent.at), func.max(DeliveryEvent.at)).where(mine))
    ).one()
    if first is None:
        return OverTime(start=None, step=timedelta(0), channels={})
    step = max((last - first) / buckets, timedelta(seconds=1))
    edges = [first + step * i for i in range(buckets)] + [last + timedelta(microseconds=1)]
    columns: list[Any] = []
    for shown, states in SHOWN.items():
        for i in range(buckets):
            inside = and_(
                DeliveryEvent.to_state.in_(states),
                DeliveryEvent.at >= edges[i],
                DeliveryEvent.at < edges[i + 1],
            )
            columns.append(func.sum(case((inside, 1), else_=0)).label(f"{shown}_{i}"))
    rows = await session.execute(
        select(Delivery.channel, *columns)
        .select_from(DeliveryEvent)
        .join(Delivery, Delivery.id == DeliveryEvent.delivery_id)
        .where(mine)
        .group_by(Delivery.channel)
        .order_by(Delivery.channel)
    )
    channels: dict[str, dict[str, list[int]]] = {}
    for row in rows.all():
        values = [int(v or 0) for v in row[1:]]
        channels[row[0]] = {shown: values[k * buckets : (k + 1) * buckets] for k, shown in enumerate(SHOWN)}
    return OverTime(start=first, step=step, channels=channels)
