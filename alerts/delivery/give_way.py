"""The web's requests go first: while one is being answered, the dispatcher's senders wait
before their next message, for a moment at most.

``alerts serve`` runs the web and the dispatcher on one event loop. At full speed the
dispatcher keeps its core busy, and every await of a request (the socket, each database round
trip: a page makes dozens) waited behind a whole turn of the dispatcher's ready callbacks: in a
100,000 send the officers' page of the alert took 190–270 ms at p95 where it takes 35 ms alone.
Now, while a request is in flight, a sender finishes the message it holds (its answer is read,
its outcome recorded) but starts no new one, so each turn of the loop is short and the request
runs at nearly its own speed.

One bound keeps the sending going whatever the web does: the way is closed for at most
``HOLD`` seconds at a time. When requests are still in flight then (a page that takes that
long, or one request after another), every waiting sender starts one message and the way
closes again. So each sender starts a message at least every ``HOLD`` seconds: with the default
16 SMTP connections (32 senders) a flood of requests cannot push the sending below 640
messages a second, about what a real relay takes (DESIGN.md, "Engine notes"). A stream (the
live counts, a CSV export) holds the senders only until its headers are sent.

Sparse requests (officers reading pages, a client polling stats) cost a send only the
moments they are answered: ``bench/latency.py`` prints the send rate beside the latencies.
``alerts worker`` has no web and gives no way.
"""

from __future__ import annotations

import asyncio

#: The longest the senders wait for the web's requests at a time.
HOLD = 0.05


class GiveWay:
    """The requests in flight, and the way the senders wait on (see the module docstring)."""

    def __init__(self, hold: float = HOLD) -> None:
        self.hold = hold
        self.requests = 0  # requests between ``enter`` and ``leave``
        self._way = asyncio.Event()  # set: senders go
        self._way.set()
        self._timer: asyncio.TimerHandle | None = None
        self.holds = 0  # times the way was closed, and of those
        self.full_holds = 0  # the ones that ran the whole ``hold`` (for the tests and the bench)

    @property
    def open(self) -> bool:
        """Whether a sender may start its next message now."""
        return self._way.is_set()

    def enter(self) -> None:
        """A request has come in (call ``leave`` once when it is answered)."""
        self.requests += 1
        if self._way.is_set():
            self._close()

    def leave(self) -> None:
        """A request has been answered (or its stream has started)."""
        self.requests -= 1
        if self.requests == 0 and not self._way.is_set():
            self._open()

    async def wait(self) -> None:
        """Wait until the way is open (at once when it is)."""
        if not self._way.is_set():
            await self._way.wait()

    def _close(self) -> None:
        self._way.clear()
        self.holds += 1
        self._timer = asyncio.get_running_loop().call_later(self.hold, self._held_long_enough)

    def _held_long_enough(self) -> None:
        self._timer = None
        self.full_holds += 1
        self._way.set()  # every waiting sender is woken now and starts one message,
        asyncio.get_running_loop().call_soon(self._close_if_busy)  # even if it closes again

    def _close_if_busy(self) -> None:
        if self.requests and self._way.is_set():
            self._close()

    def _open(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._way.set()
