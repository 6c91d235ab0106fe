"""One count of a large alert's deliveries shared by every reader while its send runs.

The stats API, the alert and deliveries pages and each officer's live stream
(``web/ui/live.py``, every half second) count an alert's deliveries by channel and state
(``tracking.figures``). At 100,000 deliveries one count takes 10–30 ms with nothing else
running and 70–200 ms during the send, and each reader counted the same rows again, in the
process that is sending them.

``LiveCounts`` keeps the last figures of an alert whose send is running (the alert is
``sending`` and not paused, and some delivery is still queued, sending or deferred) and that
has at least ``large`` deliveries:

- younger than ``fresh`` seconds: every reader gets them as they are;
- older, up to ``stale`` seconds: the reader still gets them at once, and one count starts in
  the background (never two for one alert), so a reader never waits for a count of a large
  alert once its send is under way and someone watches it;
- older than ``stale``, or never counted: the reader counts, as before.

Everything else is counted on every read, exactly: a small alert (cheap), a paused one, or
one that is sent or closed, or has nothing open (its counts now move only with bounces,
responses and resends, which a reader expects to see at once; the moment the alert reads
``sent`` its counts are the final ones). So a large send's counts lag the dispatcher by at
most ``stale`` seconds, and by about ``fresh`` plus one count while it is watched. A
person's action that moves deliveries (close, resend, a consent withdrawn, a response) calls
``forget`` after its commit, so the next read in this process counts; one taken in another
process (the CLI beside ``serve``) is seen within ``stale``. A count never replaces one that
started later, so counts never go back. The alert's state and pause flag are never kept
(``tracking.stats`` reads them).
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from alerts.core.background import Background
from alerts.delivery import tracking
from alerts.delivery.tracking import Figures
from alerts.store.models import Alert

logger = logging.getLogger(__name__)

LARGE = 10_000  # deliveries: below this a count costs a few ms and is always made
FRESH = 1.0  # seconds
STALE = 3.0  # seconds
KEPT = 64  # alerts at most (the least recently read go first)


@dataclass(slots=True)
class _Kept:
    figures: Figures
    at: float  # clock() when the count started
    refreshing: bool = False


class LiveCounts:
    """The shared counts of one process (``App.counts``)."""

    def __init__(
        self,
        reads: async_sessionmaker[AsyncSession],
        *,
        large: int = LARGE,
        fresh: float = FRESH,
        stale: float = STALE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._reads = reads
        self.large, self.fresh, self.stale, self._clock = large, fresh, stale, clock
        self._kept: OrderedDict[int, _Kept] = OrderedDict()
        self.background = Background()  # the refreshes running
        self.counted = 0  # counts made, by readers and in the background (tests check the sharing)
        self._generation = 0  # forget() calls: a count started before one is not kept

    async def figures(self, session: AsyncSession, alert: Alert) -> Figures:
        """The alert's figures: kept ones while they may be, else counted in ``session``."""
        alert_id = alert.id
        if not alert.sending_now:
            self._kept.pop(alert_id, None)
            self.counted += 1
            return await tracking.figures(session, alert_id)
        now = self._clock()
        kept = self._kept.get(alert_id)
        if kept is not None and now - kept.at < self.stale:
            self._kept.move_to_end(alert_id)
            if now - kept.at >= self.fresh and not kept.refreshing:
                kept.refreshing = True
                self.background.start(self._refresh(alert_id), name=f"live-counts-{alert_id}")
            return kept.figures
        return await self._count(session, alert_id, now)

    def forget(self) -> None:
        """A person changed deliveries (after the commit): every next read counts."""
        self._kept.clear()
        self._generation += 1

    async def _count(self, session: AsyncSession, alert_id: int, started: float) -> Figures:
        generation = self._generation
        figures = await tracking.figures(session, alert_id)
        self.counted += 1
        newer = self._kept.get(alert_id)
        if generation != self._generation or (newer is not None and newer.at > started):
            return figures  # forgotten meanwhile, or a later count is kept: do not go back
        by_channel = figures[0]
        if tracking.total_count(by_channel) >= self.large and tracking.open_count(by_channel):
            self._kept[alert_id] = _Kept(figures, started)
            self._kept.move_to_end(alert_id)
            while len(self._kept) > KEPT:
                self._kept.popitem(last=False)
        else:
            self._kept.pop(alert_id, None)
        return figures

    async def _refresh(self, alert_id: int) -> None:
        try:
            async with self._reads() as session:
                await self._count(session, alert_id, self._clock())
        except Exception:  # the next reader counts for itself
            logger.warning("counting alert %s's deliveries in the background failed", alert_id, exc_info=True)
            self._kept.pop(alert_id, None)

    async def close(self) -> None:
        """Stop the background counts (the app is closing)."""
        await self.background.close()
