"""Audience reports worked out once for everyone who asks about an alert at about the same time.

``audience_report.report`` runs fan-out's own queries, each a scan of the network: about a
third of a second at 100,000 contacts and seconds at a million. The alert's page waits for it
a moment only (``within``); past that it shows without it and asks for it again at once.

``AudienceReports.get`` takes a question (the alert and everything its report depends on: its
audience, languages, consent, status…) and the work that answers it. Calls with the same
question share one piece of work while it runs. A caller that stopped waiting (``within``)
gets None, the work goes on, and its report is kept ``keep`` seconds after it ends for the
next call with the same question: only a report slow enough to be left is ever kept, so on a
network counted within the wait every call counts afresh, and a large network's report is at
most ``keep`` seconds older than its work's end (contacts added, unsubscribed or suppressed
since then show after that). A failed piece of work is not kept (every caller that waited on
it gets the error; the next call tries again), and a caller that goes away (a closed
connection) does not cancel work others may be waiting on.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass

from alerts.core.background import Background
from alerts.delivery.audience_report import AudienceReport

KEEP = 10.0  # seconds a report someone stopped waiting for answers the same question


@dataclass(slots=True)
class _Work:
    task: asyncio.Task[AudienceReport]
    left: bool = False  # a caller stopped waiting: keep the report for the next call
    ended: float | None = None  # clock() when it ended, if kept


class AudienceReports:
    """Audience reports shared by the calls that ask the same question (module docstring)."""

    def __init__(self, *, keep: float = KEEP, clock: Callable[[], float] = time.monotonic) -> None:
        self.keep = keep
        self.clock = clock
        self.background = Background()  # the pieces of work running
        self._works: dict[Hashable, _Work] = {}
        self.started = 0  # pieces of work started (tests, metrics)

    async def get(
        self,
        question: Hashable,
        work: Callable[[], Awaitable[AudienceReport]],
        *,
        within: float | None = None,
    ) -> AudienceReport | None:
        """The report for ``question``, shared or worked out by ``work``; None if it takes
        longer than ``within`` seconds (None: as long as it takes)."""
        self._forget_old()
        shared = self._works.get(question)
        if shared is None:
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
            return await work()

        started = _Work(self.background.start(run(), name=f"audience-report-{self.started}"))
        self.started += 1
        self._works[question] = started

        def ended(task: asyncio.Task[AudienceReport]) -> None:
            failed = task.cancelled() or task.exception() is not None
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
