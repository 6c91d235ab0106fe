"""The give-way's timers and clock, run by the test (``alerts.delivery.give_way.GiveWay`` takes
them as arguments), so that no figure of a test depends on the machine's speed."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from alerts.core.metrics import Metrics
from alerts.delivery.give_way import GiveWay


class Timers:
    """The way's ``call_later`` and clock, run by the test: ``fire`` runs the timer due first."""

    def __init__(self) -> None:
        self.now = 0.0
        self._pending: list[tuple[float, Callable[[], None], asyncio.TimerHandle]] = []

    def clock(self) -> float:
        return self.now

    def call_later(self, delay: float, callback: Callable[[], None]) -> asyncio.TimerHandle:
        handle = asyncio.get_running_loop().call_later(3600, lambda: None)  # for its cancel()
        self._pending.append((self.now + delay, callback, handle))
        return handle

    def live(self) -> list[tuple[float, Callable[[], None]]]:
        """(due, callback) of the timers neither fired nor cancelled; at most one, always."""
        live = [(due, cb) for due, cb, handle in self._pending if not handle.cancelled()]
        assert len(live) <= 1, live
        return live

    def fire(self) -> float:
        """Move the clock to the pending timer and run it; returns the seconds it waited."""
        [(due, callback)] = self.live()
        for _, cb, handle in self._pending:
            if cb is callback:
                handle.cancel()
        waited, self.now = due - self.now, due
        callback()
        return waited

    def run_until(self, when: float) -> None:
        """Fire every timer due by ``when``, then move the clock there."""
        while (live := self.live()) and live[0][0] <= when:
            self.fire()
        self.now = when


def make_way(timers: Timers, metrics: Metrics | None = None) -> GiveWay:
    return GiveWay(
        holds=metrics.senders_held if metrics else None, call_later=timers.call_later, clock=timers.clock
    )


def holds(metrics: Metrics, ended: str) -> float:
    value = metrics.registry.get_sample_value("alerts_senders_held_total", {"ended": ended})
    return value or 0.0
