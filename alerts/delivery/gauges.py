"""The database gauges of ``alerts.core.metrics``: open deliveries, the oldest due one, and the
scheduler's lag — from indexed queries over what is *not yet done*, never over all deliveries,
and at most once every ``ttl`` seconds however often Prometheus (or several of them) scrape.

Each query reads only open rows through an index: deliveries in queued/sending/deferred
(``ix_deliveries_due``: state, channel, next_attempt_at), follow-ups not yet fired (``due_at``)
and alerts still scheduled (``status``). A backlog of a million sent deliveries costs nothing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from alerts.core.clock import utcnow
from alerts.core.metrics import Metrics
from alerts.core.states import AlertStatus, DeliveryState
from alerts.store.models import Alert, Delivery, Followup

logger = logging.getLogger(__name__)

OPEN = (DeliveryState.QUEUED, DeliveryState.SENDING, DeliveryState.DEFERRED)
WAITING = (str(DeliveryState.QUEUED), str(DeliveryState.DEFERRED))


class QueueGauges:
    """Refreshes the database gauges of one ``Metrics``, at most every ``ttl`` seconds."""

    def __init__(
        self,
        metrics: Metrics,
        reads: async_sessionmaker[AsyncSession],
        *,
        ttl: float = 5.0,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.metrics = metrics
        self.reads = reads
        self.ttl = ttl
        self.clock = clock
        self.queries = 0  # how many times the database was asked (tests check the cache)
        self._at: float | None = None
        self._lock = asyncio.Lock()

    def _fresh(self) -> bool:
        return self._at is not None and time.monotonic() - self._at < self.ttl

    async def refresh(self) -> None:
        """Ask the database unless the figures are younger than ``ttl``; concurrent scrapes
        wait for one query. A failed query leaves the last figures and raises."""
        if self._fresh():
            return
        async with self._lock:
            if self._fresh():
                return
            now = self.clock()
            async with self.reads() as session:
                counts = (
                    await session.execute(
                        select(Delivery.channel, Delivery.state, func.count())
                        .where(Delivery.state.in_([str(s) for s in OPEN]))
                        .group_by(Delivery.channel, Delivery.state)
                    )
                ).all()
                oldest_due = await session.scalar(
                    select(func.min(Delivery.next_attempt_at))
                    .join(Alert, Alert.id == Delivery.alert_id)
                    .where(
                        Delivery.state.in_(WAITING),
                        Delivery.next_attempt_at <= now,
                        Alert.paused.is_(False),
                    )
                )
                followup_due = await session.scalar(
                    select(func.min(Followup.due_at)).where(
                        Followup.fired_at.is_(None), Followup.cancelled_at.is_(None), Followup.due_at <= now
                    )
                )
                alert_due = await session.scalar(
                    select(func.min(Alert.send_at)).where(
                        Alert.status == str(AlertStatus.SCHEDULED), Alert.send_at <= now
                    )
                )
            self.queries += 1
            m = self.metrics
            m.open_deliveries.clear()  # a channel whose queue emptied must not keep its last figure
            for channel, state, n in counts:
                m.open_deliveries.labels(channel, state).set(n)
            m.queue_depth.set(sum(n for _, _, n in counts))
            m.oldest_due.set(max(0.0, (now - oldest_due).total_seconds()) if oldest_due else 0.0)
            overdue = [due for due in (followup_due, alert_due) if due is not None]
            m.scheduler_lag.set(max(0.0, (now - min(overdue)).total_seconds()) if overdue else 0.0)
            self._at = time.monotonic()
