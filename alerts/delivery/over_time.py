"""An alert's deliveries over time, per channel: how many were sent, failed and bounced in each
of ``BUCKETS`` equal slices of the time from the first such event to the last (the part a chart
draws; the totals are ``tracking``'s).

Counting every event of the alert on each view cost hundreds of ms at 100,000 recipients, on
every view of the alert's page. So ``Charts`` keeps, per alert, the times of the events shown
(sorted, per channel and what they show) with how many events of the alert, of any kind, they
were read from and the highest id among them; a view reads only the events since that id.
Events are only ever added (``alerts prune`` deletes them all at once). On SQLite ids come in
the order of commits, so what is kept plus what came since is what the database holds unless
the alert's highest id is now below the one kept (a prune). On PostgreSQL a transaction may
commit after one with higher ids, so the same statement counts all of the alert's events: the
count kept plus the new ones must be the count now. Otherwise the events are read again from
the start.
"""

from __future__ import annotations

import logging
import time
from array import array
from bisect import bisect_left
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, literal, null, select, union_all
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from alerts.core.background import Background
from alerts.core.states import DeliveryState
from alerts.store.db import commits_in_id_order
from alerts.store.models import Delivery, DeliveryEvent

logger = logging.getLogger(__name__)

BUCKETS = 24
#: What the chart shows, and the states that count as each (a delivery confirmed is one sent).
SHOWN: dict[str, tuple[str, ...]] = {
    "sent": (DeliveryState.SENT.value, DeliveryState.DELIVERED.value),
    "failed": (DeliveryState.FAILED.value,),
    "bounced": (DeliveryState.BOUNCED.value,),
}
AS_SHOWN = {state: shown for shown, states in SHOWN.items() for state in states}
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MICROSECOND = timedelta(microseconds=1)


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


@dataclass(frozen=True, slots=True)
class Read:
    """The events of one alert read so far: never changed once made (a view makes a new one)."""

    events: int = 0  # of any kind
    last_id: int = 0
    times: dict[tuple[str, str], array[int]] = field(default_factory=dict)  # µs since EPOCH, sorted

    def plus(self, events: int, last_id: int, shown: list[tuple[str, str, datetime]]) -> Read:
        """This read and the events after it (``shown``: those the chart counts)."""
        added: dict[tuple[str, str], list[int]] = {}
        for channel, state, at in shown:
            added.setdefault((channel, AS_SHOWN[state]), []).append((at - EPOCH) // MICROSECOND)
        times = dict(self.times)
        for key, values in added.items():
            old = times.get(key, array("q"))
            values.sort()
            if old and values[0] < old[-1]:
                times[key] = array("q", sorted([*old, *values]))
            else:
                times[key] = old + array("q", values)
        return Read(events=self.events + events, last_id=max(self.last_id, last_id), times=times)

    def chart(self, buckets: int) -> OverTime:
        """The counts per slice, as ``at >= edge[i] and at < edge[i + 1]`` counts them."""
        if not self.times:
            return OverTime(start=None, step=timedelta(0), channels={})
        first = EPOCH + min(t[0] for t in self.times.values()) * MICROSECOND
        last = EPOCH + max(t[-1] for t in self.times.values()) * MICROSECOND
        step = max((last - first) / buckets, timedelta(seconds=1))
        edges = [first + step * i for i in range(buckets)] + [last + MICROSECOND]
        cuts = [(e - EPOCH) // MICROSECOND for e in edges]
        channels: dict[str, dict[str, list[int]]] = {}
        for channel in sorted({c for c, _ in self.times}):
            channels[channel] = {}
            for shown in SHOWN:
                t = self.times.get((channel, shown), array("q"))
                at = [bisect_left(t, cut) for cut in cuts]
                channels[channel][shown] = [at[i + 1] - at[i] for i in range(buckets)]
        return OverTime(start=first, step=step, channels=channels)


class Charts:
    """What ``over_time`` read of the last few alerts viewed (one per database: the ``App``'s).

    An alert with ``large`` events or more is charted from what was read, without asking the
    database, while that read is younger than ``fresh`` seconds: during a large send every
    officer's view would otherwise read the thousands of events written since the last one.
    With ``reads`` (the App's read sessions), while the alert sends, a read up to ``stale``
    seconds old is still shown at once, and one read of what came since starts in the
    background (never two for one alert): a view during a large send never waits for the
    events, whose reading took 35–80 ms on PostgreSQL at 100,000 recipients (it counts all of
    the alert's events). Once it no longer sends (sent, paused, closed), a view reads what is
    more than ``fresh`` old itself, as the counts beside the chart are exact then. A read never
    replaces one that started later, so the chart never goes back.
    """

    def __init__(
        self,
        size: int = 16,
        *,
        reads: async_sessionmaker[AsyncSession] | None = None,
        large: int = 10_000,
        fresh: float = 1.0,
        stale: float = 3.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.size, self.large, self.fresh, self.stale, self.clock = size, large, fresh, stale, clock
        self.kept: OrderedDict[int, tuple[Read, float]] = OrderedDict()  # the read, when it started
        self.refreshing: set[int] = set()  # alerts read again in the background now
        self.background = Background()
        self._reads = reads

    def get(self, alert_id: int) -> Read:
        """What was read of the alert (nothing yet: an empty read)."""
        read, _ = self.kept.get(alert_id, (Read(), 0.0))
        if alert_id in self.kept:
            self.kept.move_to_end(alert_id)
        return read

    def put(self, alert_id: int, read: Read, at: float | None = None) -> None:
        """Keep ``read`` (started at ``at``), unless one that started later is kept."""
        at = self.clock() if at is None else at
        if alert_id in self.kept and self.kept[alert_id][1] > at:
            return
        self.kept[alert_id] = (read, at)
        self.kept.move_to_end(alert_id)
        while len(self.kept) > self.size:
            self.kept.popitem(last=False)

    async def read(self, session: AsyncSession, alert_id: int, *, sending: bool = False) -> Read:
        """The alert's events as kept, or read from ``session`` when they may not be;
        ``sending``: the alert is sending (not paused), so a read up to ``stale`` may be shown."""
        now = self.clock()
        if alert_id in self.kept:
            read, at = self.kept[alert_id]
            age = now - at
            shown = age < self.fresh or (sending and self._reads is not None and age < self.stale)
            if read.events >= self.large and shown:
                self.kept.move_to_end(alert_id)
                if age >= self.fresh and alert_id not in self.refreshing:
                    self.refreshing.add(alert_id)
                    self.background.start(self._refresh(alert_id), name=f"chart-{alert_id}")
                return read
        return await self._update(session, alert_id, now)

    async def _update(self, session: AsyncSession, alert_id: int, started: float) -> Read:
        read = await read_events(session, alert_id, self.get(alert_id))
        self.put(alert_id, read, started)
        return read

    async def _refresh(self, alert_id: int) -> None:
        assert self._reads is not None
        try:
            async with self._reads() as session:
                await self._update(session, alert_id, self.clock())
        except Exception:  # what was kept stays: once older than stale, a view reads for itself
            logger.warning("reading alert %s's events in the background failed", alert_id, exc_info=True)
        finally:
            self.refreshing.discard(alert_id)

    async def close(self) -> None:
        """Stop the background reads (the app is closing)."""
        await self.background.close()


@dataclass(slots=True)
class Seen:
    """What one read of an alert's events found."""

    new: int = 0  # events with an id above the last read
    last_id: int = 0  # the highest of them
    shown: list[tuple[str, str, datetime]] = field(default_factory=list)  # (channel, state, at)
    total: int = -1  # all the alert's events now (-1: not counted, ids come in order)
    top: int = 0  # the highest id of the alert's events now

    def follows(self, kept: Read) -> bool:
        """Whether ``kept`` and these new events are exactly the alert's events now."""
        if self.total >= 0:
            return kept.events + self.new == self.total
        return self.top >= kept.last_id  # below: deleted (a prune)


async def _since(session: AsyncSession, alert_id: int, after: int) -> Seen:
    """The alert's events with an id above ``after``, and how many it has in all (or its
    highest id, where ids come in order): one statement, so one snapshot on PostgreSQL."""
    ordered = commits_in_id_order(session)
    counted = list(AS_SHOWN)
    mine = DeliveryEvent.alert_id == alert_id
    result: Any = await session.execute(
        union_all(
            select(
                literal("shown").label("part"),
                Delivery.channel,
                DeliveryEvent.type,  # a send's outcome: opens, clicks or answers later keep its state
                DeliveryEvent.at,
                literal(0),
                literal(0),
            )
            .join(Delivery, Delivery.id == DeliveryEvent.delivery_id)
            .where(mine, DeliveryEvent.id > after, DeliveryEvent.type.in_(counted)),
            select(
                literal("new"),
                null(),
                null(),
                null(),
                func.count(),
                func.coalesce(func.max(DeliveryEvent.id), 0),
            ).where(mine, DeliveryEvent.id > after),
            # the alert's events now: how many, or where ids come in order, the highest
            select(
                literal("all"),
                null(),
                null(),
                null(),
                literal(-1) if ordered else func.count(),
                func.coalesce(func.max(DeliveryEvent.id), 0) if ordered else literal(0),
            ).where(mine),
        )
    )
    seen = Seen()
    for part, channel, state, at, n, top in result.all():
        if part == "shown":
            seen.shown.append((channel, state, at))
        elif part == "new":
            seen.new, seen.last_id = int(n), int(top)
        else:
            seen.total, seen.top = int(n), int(top)
    return seen


async def over_time(
    session: AsyncSession,
    alert_id: int,
    *,
    buckets: int = BUCKETS,
    charts: Charts | None = None,
    sending: bool = False,
) -> OverTime:
    """Sent, failed and bounced per channel in each slice of the alert's sending time, from
    what ``charts`` kept of the alert (read in full without it); ``sending``: see ``Charts``."""
    if charts is not None:
        read = await charts.read(session, alert_id, sending=sending)
    else:
        read = await read_events(session, alert_id)
    return read.chart(buckets)


async def read_events(session: AsyncSession, alert_id: int, kept: Read | None = None) -> Read:
    """``kept`` and the alert's events since it; all of them again if ``kept`` is not what the
    database holds plus what came since (a prune), or is not given."""
    kept = kept or Read()
    seen = await _since(session, alert_id, kept.last_id)
    if not seen.follows(kept):
        kept = Read()
        seen = await _since(session, alert_id, 0)
    return kept.plus(seen.new, seen.last_id, seen.shown)
