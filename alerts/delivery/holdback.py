"""What a worker holds in its local queues, and taking back what a pause, a close or a
withdrawal of consent stopped.

Claiming stops at a pause (the claim skips paused alerts), and a close or a withdrawal of the
defender's consent is checked again at each claim (``stale``), but a worker may already hold a
claim window of the alert's deliveries (64 or more per channel: seconds of sending on a slow
channel). The dispatcher's housekeeping asks which of the alerts it holds were paused or closed,
or lost their consent to public delivery, since; takes those deliveries out of its queues and
releases them to the outbox. A paused alert's wait there for the resume; the next claim cancels
a closed one's ("alert closed") and public ones without consent ("consent withdrawn").
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Iterable

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from alerts.core.states import AlertStatus
from alerts.delivery.audience import needs_consent, public_withdrawn
from alerts.delivery.messages import Claimed
from alerts.store.models import Alert


class Held:
    """How many deliveries of each alert (and how many of them public) wait in this worker's
    local queues."""

    def __init__(self) -> None:
        self._all: Counter[int] = Counter()
        self._public: Counter[int] = Counter()

    def put(self, item: Claimed) -> None:
        self._all[item.alert_id] += 1
        if needs_consent(item.audience, item.channel):
            self._public[item.alert_id] += 1

    def took(self, item: Claimed) -> None:
        self._all[item.alert_id] -= 1
        if needs_consent(item.audience, item.channel):
            self._public[item.alert_id] -= 1

    def alerts(self, *, public: bool = False) -> list[int]:
        """The alerts with a delivery (a public one) waiting here."""
        return [alert_id for alert_id, n in (self._public if public else self._all).items() if n > 0]


async def stopped(session: AsyncSession, held: Held) -> Callable[[Claimed], bool] | None:
    """Which held deliveries must not go now: those of alerts paused or closed, and the public
    ones of alerts whose consent was withdrawn. ``None`` when all may go."""
    alerts = held.alerts()
    if not alerts:
        return None
    halted = set(
        await session.scalars(
            select(Alert.id).where(
                Alert.id.in_(alerts),
                or_(Alert.paused.is_(True), Alert.status == str(AlertStatus.CLOSED)),
            )
        )
    )
    withdrawn = await public_withdrawn(session, held.alerts(public=True))
    if not halted and not withdrawn:
        return None
    return lambda item: (
        item.alert_id in halted or (item.alert_id in withdrawn and needs_consent(item.audience, item.channel))
    )


def take(
    queues: Iterable[asyncio.Queue[Claimed]], which: Callable[[Claimed], bool], held: Held
) -> list[Claimed]:
    """Take the deliveries ``which`` picks out of ``queues``; the rest keep their order.

    Runs without awaiting, so no sender takes an item from a queue while it is sorted.
    """
    taken: list[Claimed] = []
    for queue in queues:
        kept: list[Claimed] = []
        while not queue.empty():
            item = queue.get_nowait()
            queue.task_done()
            (taken if which(item) else kept).append(item)
        for item in kept:
            queue.put_nowait(item)
    for item in taken:
        held.took(item)
    return taken
