"""Rate limits that a channel adapter waits on (the only waiting an adapter may do).

Two limits, both strict (no bursts), because providers count over short windows:

- ``Pacer``: at most ``rate`` calls per second overall. Every caller reserves the next free
  slot, spaced ``1 / rate`` apart (less a few milliseconds of tolerance), and sleeps until
  it. ``pause(seconds)`` (a server's ``retry_after``) moves every slot not yet used to after
  the pause, including those of callers already asleep: nothing is sent until the pause ends.
- ``PerKeyInterval``: at most one call per key (a chat) per ``interval`` seconds. Calls for
  one key run one at a time, and the next starts ``interval`` after the previous one
  *finished*, so the server, whatever the network delay, never sees two within ``interval``.

Both use ``time.monotonic`` and are safe for any number of concurrent tasks on one loop.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field


class Pacer:
    """At most ``rate`` calls per second, evenly spaced; ``rate <= 0`` means no limit.

    A generic cell rate algorithm: a call may start up to ``tolerance`` seconds before its
    exact slot, so a task that woke late (the event loop rounds timers to 1 ms) is caught up
    by the next one instead of the time being lost. Any window of ``w`` seconds therefore holds
    at most ``(w + tolerance) * rate + 1`` calls.
    """

    def __init__(self, rate: float, *, tolerance: float = 0.005) -> None:
        self.interval = 1.0 / rate if rate > 0 else 0.0
        self.tolerance = min(tolerance, self.interval)
        self._tat = 0.0  # theoretical arrival time of the next call (monotonic seconds)
        self._paused_until = 0.0

    @property
    def paused_until(self) -> float:
        """The monotonic time before which no call may start."""
        return self._paused_until

    def pause(self, seconds: float) -> None:
        """Let no call start for ``seconds`` from now (never shortens a pause already running)."""
        self._paused_until = max(self._paused_until, time.monotonic() + seconds)
        # No catching up after a pause: the first slot after it is exact.
        self._tat = max(self._tat, self._paused_until + self.tolerance)

    async def wait(self) -> None:
        """Sleep until this caller's slot; return when it may make its call."""
        while True:
            now = time.monotonic()
            slot = max(now, self._tat - self.tolerance, self._paused_until)
            self._tat = max(self._tat, slot) + self.interval
            if slot > now:
                await asyncio.sleep(slot - now)
            # A pause that began while we slept and covers our slot: take a new slot after it.
            if self._paused_until <= slot:
                return


@dataclass
class _KeyState:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    done_at: float = float("-inf")  # when the last call for this key finished
    users: int = 0  # tasks holding or waiting for the lock


class PerKeyInterval:
    """At most one call per key per ``interval`` seconds, measured from the previous call's end."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._keys: dict[object, _KeyState] = {}
        self._swept_at = time.monotonic()

    def __len__(self) -> int:
        return len(self._keys)

    @asynccontextmanager
    async def hold(self, key: object) -> AsyncIterator[None]:
        """Wait for ``key``'s turn, run the body, and start its interval when the body ends."""
        state = self._keys.get(key)
        if state is None:
            state = self._keys[key] = _KeyState()
        state.users += 1
        try:
            async with state.lock:
                delay = state.done_at + self.interval - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                try:
                    yield
                finally:
                    state.done_at = time.monotonic()
        finally:
            state.users -= 1
            self._forget_idle()

    def _forget_idle(self) -> None:
        # Keep memory bounded: a key whose interval has run out and that nobody waits for
        # needs no state (its next call may start at once anyway). Sweep at most once per
        # interval, so the cost per call stays constant.
        now = time.monotonic()
        if now - self._swept_at < max(self.interval, 1.0):
            return
        self._swept_at = now
        for key in [k for k, s in self._keys.items() if not s.users and s.done_at + self.interval <= now]:
            del self._keys[key]
