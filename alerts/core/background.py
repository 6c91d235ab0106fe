"""Work started beside a read and not awaited by it (a kept figure refreshed while the reader
goes on with the old one): the tasks are held until done, so none is lost to the garbage
collector, and cancelled together when the app closes."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Iterator
from typing import Any, TypeVar

T = TypeVar("T")


class Background:
    """The tasks one owner (``LiveCounts``, ``Charts``, ``AudienceReports``) started, still running."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()

    def start(self, work: Coroutine[Any, Any, T], *, name: str) -> asyncio.Task[T]:
        """Run ``work`` as a task named ``name``, held until it ends."""
        task = asyncio.create_task(work, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def __iter__(self) -> Iterator[asyncio.Task[Any]]:
        """The tasks running now."""
        return iter(list(self._tasks))

    def __len__(self) -> int:
        """How many are running now."""
        return len(self._tasks)

    async def wait(self) -> None:
        """Until every task started so far has ended (tests; a task's error stays in it)."""
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def close(self) -> None:
        """Cancel every task and wait for them to end."""
        for task in list(self._tasks):
            task.cancel()
        await self.wait()
