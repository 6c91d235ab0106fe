"""What a worker holds in its local queues, and taking back what a pause or a close stopped.

Claiming stops at a pause (the claim skips paused alerts) and a close withdraws what waits in
the outbox, but a worker may already hold a claim window of the alert's deliveries (64 or more
per channel, seconds of sending on a slow channel). The dispatcher's housekeeping asks which of
the alerts it holds were paused or closed since, takes their deliveries out of its queues and
releases them to the outbox: a paused alert's wait there for the resume, a closed one's are
cancelled by the next claim ("alert closed").
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterable

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from alerts.core.states import AlertStatus
from alerts.delivery.messages import Claimed
from alerts.store.models import Alert


class Held:
    """How many deliveries of each alert wait in this worker's local queues."""

    def __init__(self) -> None:
        self._count: Counter[int] = Counter()

    def put(self, item: Claimed) -> None:
        self._count[item.alert_id] += 1

    def took(self, item: Claimed) -> None:
        self._count[item.alert_id] -= 1

    def alerts(self) -> list[int]:
        """The alerts with a delivery waiting here."""
        return [alert_id for alert_id, n in self._count.items() if n > 0]


async def halted(session: AsyncSession, alert_ids: Iterable[int]) -> set[int]:
    """Those of ``alert_ids`` that are paused or closed now."""
    rows = await session.scalars(
        select(Alert.id).where(
            Alert.id.in_(list(alert_ids)),
            or_(Alert.paused.is_(True), Alert.status == str(AlertStatus.CLOSED)),
        )
    )
    return set(rows.all())


def take(queues: Iterable[asyncio.Queue[Claimed]], alert_ids: set[int], held: Held) -> list[Claimed]:
    """Take the deliveries of ``alert_ids`` out of ``queues``; the rest keep their order.

    Runs without awaiting, so no sender takes an item from a queue while it is sorted.
    """
    taken: list[Claimed] = []
    for queue in queues:
        kept: list[Claimed] = []
        while not queue.empty():
            item = queue.get_nowait()
            queue.task_done()
            (taken if item.alert_id in alert_ids else kept).append(item)
        for item in kept:
            queue.put_nowait(item)
    for item in taken:
        held.took(item)
    return taken
