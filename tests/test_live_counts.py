"""LiveCounts: one count of a large alert's deliveries shared by every reader while it sends,
exact counts for everything else (alerts/delivery/live_counts.py)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from alerts.accounts import users
from alerts.core.clock import utcnow
from alerts.core.states import AlertStatus, DeliveryState
from alerts.delivery import tracking
from alerts.delivery.live_counts import LiveCounts
from alerts.store.db import make_read_sessionmaker
from alerts.store.models import Alert, Delivery
from tests.factories import published_alert
from tests.web import P, make_staff, running, signed_in

N = 6  # deliveries of the test alert; "large" is set at or below it where it should be kept


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def send(sessions: async_sessionmaker[AsyncSession], alert_id: int, n: int) -> None:
    """Mark ``n`` more of the alert's queued deliveries sent, as the dispatcher would."""
    async with sessions.begin() as session:
        ids = (
            (
                await session.execute(
                    Delivery.__table__.select()
                    .with_only_columns(Delivery.id)
                    .where(Delivery.alert_id == alert_id, Delivery.state == DeliveryState.QUEUED)
                    .limit(n)
                )
            )
            .scalars()
            .all()
        )
        await session.execute(update(Delivery).where(Delivery.id.in_(ids)).values(state=DeliveryState.SENT))


async def sent(counts: LiveCounts, sessions: async_sessionmaker[AsyncSession], alert_id: int) -> int:
    async with sessions() as session:
        by_channel, _, _ = await counts.figures(session, await session.get_one(Alert, alert_id))
    return by_channel["email"]["sent"]


async def settle(counts: LiveCounts) -> None:
    """Wait for the background counts started so far."""
    await counts.background.wait()


async def test_a_small_alert_is_counted_on_every_read(sessions: async_sessionmaker[AsyncSession]) -> None:
    alert_id = await published_alert(sessions, N)
    counts = LiveCounts(sessions, large=N + 1, clock=Clock())
    assert await sent(counts, sessions, alert_id) == 0
    await send(sessions, alert_id, 2)
    assert await sent(counts, sessions, alert_id) == 2  # no time passed: still counted again
    assert counts.counted == 2


class Gated:
    """The background's sessions, held at ``gate`` until the test lets them open."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions
        self.gate = asyncio.Event()
        self.opened = 0

    @asynccontextmanager
    async def __call__(self) -> AsyncIterator[AsyncSession]:
        self.opened += 1
        await self.gate.wait()
        async with self.sessions() as session:
            yield session


async def test_a_large_send_is_counted_once_per_interval_and_never_while_a_reader_waits(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    alert_id = await published_alert(sessions, N)
    clock = Clock()
    background = Gated(sessions)
    counts = LiveCounts(background, large=N, fresh=1.0, stale=10.0, clock=clock)  # type: ignore[arg-type]
    assert await sent(counts, sessions, alert_id) == 0
    await send(sessions, alert_id, 2)
    assert await sent(counts, sessions, alert_id) == 0  # younger than fresh: the kept figures
    assert counts.counted == 1

    clock.now += 1.5  # older than fresh: given at once, and one count starts in the background
    readers = [await sent(counts, sessions, alert_id) for _ in range(5)]
    assert readers == [0] * 5
    assert len(counts.background) == 1  # five readers, one count
    background.gate.set()
    await settle(counts)
    assert counts.counted == 2 and background.opened == 1
    assert await sent(counts, sessions, alert_id) == 2  # what the background count found

    await send(sessions, alert_id, 1)
    clock.now += 11  # older than stale: this reader counts for itself
    assert await sent(counts, sessions, alert_id) == 3
    assert counts.counted == 3 and not counts.background


class Held:
    """A reader's session whose query runs at once and whose answer waits for ``gate``."""

    def __init__(self, session: AsyncSession) -> None:
        self.session, self.gate, self.reached = session, asyncio.Event(), asyncio.Event()

    async def execute(self, *args: object, **kw: object) -> object:
        result = await self.session.execute(*args, **kw)  # type: ignore[call-overload]
        self.reached.set()
        await self.gate.wait()
        return result


async def test_a_count_that_ends_after_a_later_one_is_not_kept_so_counts_never_go_back(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> None:
    alert_id = await published_alert(sessions, N)
    clock = Clock()
    counts = LiveCounts(sessions, large=N, fresh=1.0, stale=10.0, clock=clock)
    async with make_read_sessionmaker(engine)() as slow_session:  # holds no write lock
        held = Held(slow_session)
        alert = await slow_session.get_one(Alert, alert_id)
        slow = asyncio.create_task(counts.figures(held, alert))  # type: ignore[arg-type]
        await held.reached.wait()  # it counted 0 sent, and waits
        await send(sessions, alert_id, 2)
        clock.now += 0.5
        assert await sent(counts, sessions, alert_id) == 2  # a later count, kept
        held.gate.set()
        assert (await slow)[0]["email"]["sent"] == 0  # its reader gets what it counted…
    assert await sent(counts, sessions, alert_id) == 2  # …but the later count stays kept


async def test_an_officers_action_makes_the_next_read_count(db_url: str) -> None:
    """Closing a large alert mid-send (through the API) cancels its queued deliveries: the next
    GET …/stats shows them cancelled, not the figures kept from before the close."""
    async with running(db_url) as (app, base):
        alert_id = await published_alert(app.sessions, N)
        async with app.sessions.begin() as session:
            _, token = await users.create_user(
                session, name="o", role="officer", with_token=True, now=utcnow()
            )
        app.counts = LiveCounts(app.reads, large=N, fresh=60, stale=120)
        headers = {"Authorization": f"Bearer {token}"}
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{base}/api/v1/alerts/{alert_id}/stats", headers=headers) as resp:
                assert (await resp.json())["open"] == N  # kept: large, all open
            async with http.post(f"{base}/api/v1/alerts/{alert_id}/close", headers=headers) as resp:
                assert resp.status == 200, await resp.text()
            async with http.get(f"{base}/api/v1/alerts/{alert_id}/stats", headers=headers) as resp:
                doc = await resp.json()
        assert doc["state"] == "closed" and doc["open"] == 0
        assert doc["channels"]["email"]["cancelled"] == N
        assert app.counts.counted == 2


@pytest.mark.parametrize("change", ["sent", "paused"])
async def test_an_alert_no_longer_sending_is_counted_exactly(
    sessions: async_sessionmaker[AsyncSession], change: str
) -> None:
    """The moment the alert reads ``sent`` (or is paused), its counts are the database's: a
    reader polling for the end of a send sees the final figures with the final state."""
    alert_id = await published_alert(sessions, N)
    counts = LiveCounts(sessions, large=N, fresh=60, stale=120, clock=Clock())
    assert await sent(counts, sessions, alert_id) == 0  # kept
    await send(sessions, alert_id, 2)
    assert await sent(counts, sessions, alert_id) == 0  # still kept: sending
    async with sessions.begin() as session:
        values = {"status": AlertStatus.SENT} if change == "sent" else {"paused": True}
        await session.execute(update(Alert).where(Alert.id == alert_id).values(**values))
    assert await sent(counts, sessions, alert_id) == 2
    assert counts.counted == 2


async def test_once_nothing_is_open_every_read_counts_again(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    alert_id = await published_alert(sessions, N)
    clock = Clock()
    counts = LiveCounts(sessions, large=N, clock=clock)
    await send(sessions, alert_id, N - 1)
    assert await sent(counts, sessions, alert_id) == N - 1  # one open: kept
    await send(sessions, alert_id, 1)
    clock.now += 1.5
    assert await sent(counts, sessions, alert_id) == N - 1  # the kept figures, one count started
    await settle(counts)
    assert await sent(counts, sessions, alert_id) == N  # that count found nothing open: not kept
    async with sessions.begin() as session:  # a bounce after the send: seen by the next read
        await session.execute(
            update(Delivery).where(Delivery.alert_id == alert_id).values(state=DeliveryState.BOUNCED)
        )
    assert await sent(counts, sessions, alert_id) == 0
    assert counts.counted == 4


async def test_a_failed_background_count_is_logged_and_the_next_reader_counts(
    sessions: async_sessionmaker[AsyncSession], caplog: pytest.LogCaptureFixture
) -> None:
    alert_id = await published_alert(sessions, N)
    clock = Clock()

    def broken() -> AsyncSession:
        raise OSError("database unreachable")

    counts = LiveCounts(broken, large=N, clock=clock)  # type: ignore[arg-type]
    assert await sent(counts, sessions, alert_id) == 0  # the reader's own session
    await send(sessions, alert_id, 3)
    clock.now += 1.5
    with caplog.at_level(logging.WARNING, logger="alerts.delivery.live_counts"):
        assert await sent(counts, sessions, alert_id) == 0
        await settle(counts)
    assert f"counting alert {alert_id}'s deliveries in the background failed" in caplog.text
    assert await sent(counts, sessions, alert_id) == 3  # nothing kept: counted by the reader
    assert counts.counted == 2


async def test_closing_stops_a_background_count(sessions: async_sessionmaker[AsyncSession]) -> None:
    alert_id = await published_alert(sessions, N)
    clock = Clock()
    gate = asyncio.Event()

    class Slow:
        def __call__(self) -> Slow:
            return self

        async def __aenter__(self) -> AsyncSession:
            await gate.wait()
            raise AssertionError("not reached: closed first")

        async def __aexit__(self, *exc: object) -> None:
            return None

    counts = LiveCounts(Slow(), large=N, clock=clock)  # type: ignore[arg-type]
    await sent(counts, sessions, alert_id)
    clock.now += 1.5
    await sent(counts, sessions, alert_id)
    (task,) = counts.background
    await counts.close()
    assert task.cancelled() and not counts.background


async def test_the_stats_api_and_the_officers_pages_share_one_count_of_a_large_send(db_url: str) -> None:
    """Through the faces that show the counts: each page, read first, makes the one count that
    GET …/stats gives afterwards (within ``fresh``) while the deliveries move on."""
    async with running(db_url) as (app, base):
        alert_id = await published_alert(app.sessions, N)
        await make_staff(app)
        async with app.sessions.begin() as session:
            _, token = await users.create_user(
                session, name="w", role="viewer", with_token=True, now=utcnow()
            )
        browser = await signed_in(base, "viewer")
        try:
            async with aiohttp.ClientSession() as http:

                async def api_sent() -> int:
                    async with http.get(
                        f"{base}/api/v1/alerts/{alert_id}/stats", headers={"Authorization": f"Bearer {token}"}
                    ) as resp:
                        assert resp.status == 200, await resp.text()
                        doc = await resp.json()
                    assert doc["total"] == N
                    return int(doc["channels"]["email"]["sent"])

                for done, page in enumerate((f"{P}/alerts/{alert_id}", f"{P}/alerts/{alert_id}/deliveries")):
                    # this alert is "large" (default 10,000); no background count within the test, however slow
                    app.counts = LiveCounts(app.reads, large=N, fresh=60, stale=120)
                    status, _ = await browser.get(page)
                    assert status == 200
                    await send(app.sessions, alert_id, 1)
                    assert await api_sent() == 2 * done, page  # the page's count, not the database's
                    await send(app.sessions, alert_id, 1)
                    assert await api_sent() == 2 * done
                    assert app.counts.counted == 1
        finally:
            await browser.close()
        async with app.reads() as session:  # counted here: what the database holds now
            doc = await tracking.stats(session, await session.get_one(Alert, alert_id))
        assert doc["channels"]["email"]["sent"] == 4 and doc["open"] == N - 4
