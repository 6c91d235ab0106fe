"""Audience reports worked out once for everyone who asks about an alert at about the same time.

``audience_report.report`` runs fan-out's own queries, each a scan of the network: about a
third of a second at 100,000 contacts and seconds at a million. The alert's page waits for it
a moment only (``within``); past that it shows without it and asks for it again at once.

``AudienceReports.get`` takes a question (the alert and everything its report depends on: its
audience, languages, consent, status…) and the work that answers it. Calls with the same
question share one piece of work while it runs. A caller that stopped waiting (``within``)
gets None, the work goes on, and its report is kept ``keep`` seconds after it ends for the
next call with the same question that takes a kept report (``kept``: the officers' pages; the
API and the CLI count afresh unless a count is running). Only a report slow enough to be left
is ever kept, so on a network counted within the wait every call counts afresh.

At most ``limit`` pieces of work run at once (the others wait their turn: an officer going
through many approved alerts of a large network must not start a scan for each at once), and
one that takes longer than ``timeout`` seconds is stopped. A failed piece of work is logged
and not kept (every caller that waited on it gets the error; the next call tries again), and
a caller that goes away (a closed connection) does not cancel work others may be waiting on.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass

from alerts.core.background import Background
from alerts.delivery.audience_report import AudienceReport

logger = logging.getLogger(__name__)

KEEP = 10.0  # seconds a report someone stopped waiting for answers the same question
LIMIT = 2  # pieces of work running at once
TIMEOUT = 300.0  # seconds a piece of work may take


@dataclass(slots=True)
class _Work:
    task: asyncio.Task[AudienceReport]
    left: bool = False  # a caller stopped waiting: keep the report for the next call
    ended: float | None = None  # clock() when it ended, if kept


class AudienceReports:
    """Audience reports shared by the calls that ask the same question (module docstring)."""

    def __init__(
        self,
        *,
        keep: float = KEEP,
        limit: int = LIMIT,
        timeout: float = TIMEOUT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.keep = keep
        self.timeout = timeout
        self.clock = clock
        self._turns = asyncio.Semaphore(limit)
        self.background = Background()  # the pieces of work running
        self._works: dict[Hashable, _Work] = {}
        self.started = 0  # pieces of work started (tests, metrics)

    async def get(
        self,
        question: Hashable,
        work: Callable[[], Awaitable[AudienceReport]],
        *,
        within: float | None = None,
        kept: bool = False,
    ) -> AudienceReport | None:
        """The report for ``question``, shared or worked out by ``work``; None if it takes
        longer than ``within`` seconds (None: as long as it takes). ``kept``: a report kept
        after its work ended will do."""
        self._forget_old()
        shared = self._works.get(question)
        if shared is None or (shared.ended is not None and not kept):
            shared = self._start(question, work)
        waiting = asyncio.shield(shared.task)  # a caller that goes away leaves it to the others
        if within is None:
            return await waiting
        try:
            return await asyncio.wait_for(waiting, timeout=within)
        except TimeoutError:
            if shared.task.done() and not shared.task.cancelled():
                return shared.task.result()  # it ended just as the wait ran out
            shared.left = True
            return None

    def _start(self, question: Hashable, work: Callable[[], Awaitable[AudienceReport]]) -> _Work:
        async def run() -> AudienceReport:
            async with self._turns, asyncio.timeout(self.timeout):
                return await work()

        started = _Work(self.background.start(run(), name=f"audience-report-{self.started}"))
        self.started += 1
        self._works[question] = started

        def ended(task: asyncio.Task[AudienceReport]) -> None:
            failed = task.cancelled() or task.exception() is not None
            if failed and not task.cancelled():
                logger.warning("an audience report failed", exc_info=task.exception())
            if started.left and not failed:
                started.ended = self.clock()
            elif self._works.get(question) is started:
                del self._works[question]  # the next call works it out again

        started.task.add_done_callback(ended)
        return started

    def _forget_old(self) -> None:
        now = self.clock()
        old = [q for q, w in self._works.items() if w.ended is not None and now - w.ended > self.keep]
        for question in old:
            del self._works[question]

    async def close(self) -> None:
        """Cancel the work still running (the app closes)."""
        await self.background.close()
        self._works.clear()
