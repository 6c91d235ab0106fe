"""Officers' reads go first: while ``alerts serve`` answers one (a page, an API GET), the
dispatcher's senders start no new message, for a moment at most.

``alerts serve`` runs the web and the dispatcher on one event loop. At full speed the
dispatcher keeps its core busy, and every await of a request (the socket, each database round
trip: a page makes dozens) waited behind a whole turn of the dispatcher's ready callbacks: in a
100,000 send the officers' page of the alert took 190–250 ms at p95 where it takes 35 ms alone.
Now, while such a read is in flight, a sender finishes the message it holds (its answer is
read, its outcome recorded) but starts no new one, so each turn of the loop is short and the
read runs at nearly its own speed. What counts as a read is the web's to say
(``alerts.web.first``): GET and HEAD under ``/office`` and ``/api`` that carry credentials,
until their headers go out, so neither an upload, a stream, the public pages nor anyone
without credentials holds the senders.

Two bounds keep the sending going whatever the web does. The way is closed for at most
``HOLD`` (50 ms) at a time, and after every hold the senders have a turn before it can close
again: ``TURN`` (25 ms) after a hold that ran out with reads still in flight (a page that takes
that long, or one read after another), half the hold after one that ended because the reads
were answered. However the reads come (many at once, or one client reading back to back), the
senders have a third of the time at least, and finish what they started in the rest.
``senders_held_total`` on /metrics counts the holds by how they ended.

Sparse reads (officers opening pages, a client polling stats) cost a send only the moments
they are answered; ``bench/latency.py`` prints the send rate beside the latencies, and with
``--flood`` what a stream of reads leaves of it. ``alerts worker`` has no web and gives no way.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from prometheus_client import Counter

logger = logging.getLogger(__name__)

#: The longest the senders wait for the web's reads at a time (seconds).
HOLD = 0.05
#: The senders' turn after a hold that ran out: they go on this long before they wait again.
TURN = 0.025

Schedule = Callable[[float, Callable[[], None]], asyncio.TimerHandle]


class GiveWay:
    """The reads in flight, and the way the senders wait on (see the module docstring)."""

    def __init__(
        self,
        hold: float = HOLD,
        *,
        turn: float = TURN,
        holds: Counter | None = None,
        call_later: Schedule | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.hold = hold
        self.turn = turn
        self.requests = 0  # reads between ``enter`` and ``leave``
        self._way = asyncio.Event()  # set: senders go
        self._way.set()
        self._timer: asyncio.TimerHandle | None = None  # the hold's end, or the senders' turn's
        self._closed_at = 0.0
        self._holds = holds  # Metrics.senders_held, counted by how each hold ended
        self._call_later = call_later  # the running loop's call_later unless given
        self._clock = clock

    @property
    def open(self) -> bool:
        """Whether a sender may start its next message now."""
        return self._way.is_set()

    def enter(self) -> None:
        """A read has come in (call ``leave`` once when it is answered)."""
        self.requests += 1
        if self._way.is_set() and self._timer is None:  # not while the senders have their turn
            self._close()

    def leave(self) -> None:
        """A read has been answered (or its stream has started)."""
        self.requests -= 1
        if self.requests < 0:  # a leave without its enter: never hold the senders for it
            logger.error("give way: %d reads in flight; counting from 0", self.requests)
            self.requests = 0
        if self.requests == 0 and not self._way.is_set():
            self._ended("answered")
            if self._timer is not None:  # the hold's end, not needed now
                self._timer.cancel()
            self._turn_for((self._clock() - self._closed_at) / 2)

    async def wait(self) -> None:
        """Wait until the way is open (at once when it is)."""
        await self._way.wait()

    def _close(self) -> None:
        self._way.clear()
        self._closed_at = self._clock()
        self._timer = self._schedule(self.hold, self._held_long_enough)

    def _held_long_enough(self) -> None:
        self._ended("limit")
        self._turn_for(self.turn)

    def _turn_for(self, seconds: float) -> None:
        """Open the way; the next read cannot close it for ``seconds``."""
        self._way.set()
        self._timer = self._schedule(seconds, self._turn_over)

    def _turn_over(self) -> None:
        self._timer = None
        if self.requests:
            self._close()

    def _schedule(self, delay: float, callback: Callable[[], None]) -> asyncio.TimerHandle:
        call_later = self._call_later or asyncio.get_running_loop().call_later
        return call_later(delay, callback)

    def _ended(self, how: str) -> None:
        if self._holds is not None:
            self._holds.labels(how).inc()
