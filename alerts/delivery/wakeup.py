"""Waking the dispatcher when deliveries are queued, instead of letting it find them by polling.

Three paths, one effect (every claimer of the dispatcher claims at once):

- **In the process** (``Doorbell``): an action that queued deliveries rings the app's doorbell
  after its commit; the dispatcher of the same ``App`` listens (``alerts serve``: the API, the
  officers' pages and the scheduler share one App with the dispatcher).
- **PostgreSQL, any process**: ``announce`` issues ``NOTIFY alerts_outbox`` in the transaction
  that queues the rows, which the server delivers at COMMIT (never for a rolled-back one) to
  every dispatcher that LISTENs on a connection of its own (``Wakeup.run``). A send from the CLI
  or from another host wakes ``serve`` and every ``worker``.
- **SQLite, another process** (the CLI beside ``serve``): SQLite has no notifications; the
  dispatcher reads ``PRAGMA data_version`` every ``WATCH_INTERVAL`` on a connection of its own,
  a counter that changes whenever another connection commits. The read touches no table and
  takes no lock.

None of them is trusted to arrive: the claimers still poll every ``[dispatcher] poll_seconds``,
so a lost notification (a dropped LISTEN connection, a NOTIFY during a reconnect) delays a
message by at most that long and never loses it (docs/RELIABILITY.md, "Waking the dispatcher").
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

logger = logging.getLogger(__name__)

CHANNEL = "alerts_outbox"
WATCH_INTERVAL = 0.05  # seconds between two reads of SQLite's data_version
RECONNECT_DELAY = 2.0  # seconds before listening again after the connection was lost

Wake = Callable[[str], None]


class Doorbell:
    """The in-process wake-up: ``ring`` after a commit that queued deliveries."""

    def __init__(self) -> None:
        self._listeners: list[Wake] = []

    def subscribe(self, wake: Wake) -> Callable[[], None]:
        """Call ``wake("bell")`` on every ring from now on; returns the unsubscribe."""
        self._listeners.append(wake)
        return lambda: self._listeners.remove(wake)

    def ring(self) -> None:
        """Wake every dispatcher of this process (call it after the commit, not before)."""
        for wake in list(self._listeners):
            wake("bell")


async def announce(session: AsyncSession) -> None:
    """Tell every listening dispatcher, at this transaction's commit, that work is queued.

    PostgreSQL only (a NOTIFY inside the transaction); on SQLite nothing is written: the
    doorbell and the data_version watcher carry the news.
    """
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(text(f"NOTIFY {CHANNEL}"))


class Wakeup:
    """The cross-process wake-ups of one dispatcher: LISTEN (PostgreSQL) or data_version (SQLite)."""

    def __init__(self, engine: AsyncEngine, doorbell: Doorbell | None = None) -> None:
        self.engine = engine
        self.doorbell = doorbell
        self.listening = asyncio.Event()  # set once notifications can arrive

    async def run(self, wake: Wake) -> None:
        """Call ``wake(source)`` on every notification until cancelled."""
        unsubscribe = self.doorbell.subscribe(wake) if self.doorbell is not None else None
        try:
            if self.engine.dialect.name == "postgresql":
                await self._listen(wake)
            elif self.engine.dialect.name == "sqlite":
                await self._watch(wake)
            else:  # pragma: no cover - only the two supported databases
                await asyncio.Event().wait()
        finally:
            self.listening.clear()
            if unsubscribe is not None:
                unsubscribe()

    async def _listen(self, wake: Wake) -> None:
        while True:
            try:
                async with self.engine.connect() as conn:
                    try:
                        await self._listen_on(conn, wake)
                    finally:
                        # never hand a LISTENing connection back to the pool
                        await conn.invalidate()
            except Exception as exc:  # noqa: BLE001 - a lost server or connection: poll, then retry
                logger.warning(
                    "LISTEN %s failed (%s: %s); the dispatcher polls until it listens again",
                    CHANNEL,
                    type(exc).__name__,
                    exc,
                )
            self.listening.clear()
            await asyncio.sleep(RECONNECT_DELAY)

    async def _listen_on(self, conn: AsyncConnection, wake: Wake) -> None:
        raw = await conn.get_raw_connection()
        driver: Any = raw.driver_connection  # asyncpg.Connection
        lost = asyncio.Event()
        driver.add_termination_listener(lambda _conn: lost.set())
        await driver.add_listener(CHANNEL, lambda *_args: wake("notify"))
        self.listening.set()
        wake("listen")  # whatever was queued while nobody listened
        while not lost.is_set() and not driver.is_closed():
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(lost.wait(), timeout=5.0)
        logger.warning("the LISTEN %s connection was closed; listening again", CHANNEL)

    async def _watch(self, wake: Wake) -> None:
        while True:
            try:
                await self._watch_on(wake)
            except Exception as exc:  # noqa: BLE001 - a locked or missing file: poll, then retry
                logger.warning(
                    "watching SQLite's data_version failed (%s: %s); the dispatcher polls until it "
                    "watches again",
                    type(exc).__name__,
                    exc,
                )
            self.listening.clear()
            await asyncio.sleep(RECONNECT_DELAY)

    async def _watch_on(self, wake: Wake) -> None:
        async with self.engine.connect() as conn:
            raw = await conn.get_raw_connection()
            driver: Any = raw.driver_connection  # aiosqlite.Connection, autocommit (see db.py)
            last = await _data_version(driver)
            self.listening.set()
            wake("watch")  # whatever was committed while nobody watched
            while True:
                await asyncio.sleep(WATCH_INTERVAL)
                try:
                    version = await _data_version(driver)
                except Exception as exc:  # noqa: BLE001 - a busy or closing database: the poll covers
                    logger.debug("reading data_version failed: %s", exc)
                    continue
                if version != last:
                    last = version
                    wake("data_version")


async def _data_version(driver: Any) -> int:
    async with driver.execute("PRAGMA data_version") as cursor:
        row = await cursor.fetchone()
    return int(row[0])
