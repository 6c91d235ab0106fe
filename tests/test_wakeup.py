"""Waking the dispatcher (alerts/delivery/wakeup.py): a send wakes it through the doorbell of
its process, through NOTIFY (PostgreSQL) or SQLite's data_version from another process, and
a dispatcher that hears nothing still finds the work at its safety poll.

Not timed: each test checks *what* woke the claimers (``Dispatcher.wakeups``) with the safety
poll set far longer than the test waits."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from alerts.actions import sending
from alerts.app import App, open_app
from alerts.core.clock import utcnow
from alerts.core.config import DispatcherSettings, Settings, load_settings
from alerts.core.errors import ConfigError
from alerts.delivery.dispatch import Dispatcher
from alerts.delivery.messages import MessageBuilder
from alerts.delivery.publish import publish
from alerts.delivery.wakeup import Wakeup
from alerts.service import make_dispatcher
from alerts.store.db import create_engine, make_sessionmaker
from alerts.store.models import Alert, User
from channels.memory import MemoryChannel
from tests.factories import RENDERER, add_contacts, approved_alert, make_users

SLOW_POLL = DispatcherSettings(flush_interval=0.01, poll_seconds=60.0)


async def _approved(engine: AsyncEngine) -> tuple[int, int]:
    """(officer id, approved alert id) with two email contacts."""
    async with make_sessionmaker(engine).begin() as session:
        officer, reviewer = await make_users(session)
        await add_contacts(session, 2)
        alert = await approved_alert(session, author=officer, reviewer=reviewer)
        return officer.id, alert.id


async def _until_sent(channel: MemoryChannel, n: int, *, within: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while len(channel.sent) < n:
        assert asyncio.get_running_loop().time() < deadline, f"{len(channel.sent)} of {n} sent"
        await asyncio.sleep(0.01)


@pytest.fixture
async def app(db_url: str) -> AsyncIterator[App]:
    settings = Settings().replace("database", url=db_url).replace("dispatcher", poll_seconds=60.0)
    async with open_app(settings, channels={"email": MemoryChannel(channel_name="email")}) as opened:
        yield opened


async def test_the_send_action_rings_the_doorbell_of_its_process(app: App) -> None:
    officer_id, alert_id = await _approved(app.engine)
    dispatcher = make_dispatcher(app)
    assert dispatcher.wakeup is not None
    stop = asyncio.Event()
    running = asyncio.create_task(dispatcher.run(stop))
    try:
        await asyncio.wait_for(dispatcher.wakeup.listening.wait(), 10)
        async with app.sessions() as session:
            officer = await session.get(User, officer_id)
        assert officer is not None
        sent = await sending.send(app, officer, alert_id)
        assert sent.queued == 2
        email = app.channels["email"]
        assert isinstance(email, MemoryChannel)
        await _until_sent(email, 2)
    finally:
        stop.set()
        await running
    assert dispatcher.wakeups["bell"] >= 1


async def test_a_send_committed_by_another_process_wakes_the_dispatcher(engine: AsyncEngine) -> None:
    """The CLI's case: the rows are queued through another engine (another process's), which
    rings no doorbell here; NOTIFY (PostgreSQL) or data_version (SQLite) must carry it."""
    email = MemoryChannel(channel_name="email")
    dispatcher = Dispatcher(
        sessions=make_sessionmaker(engine),
        channels={"email": email},
        builder=MessageBuilder(RENDERER, public_url="http://alerts.test", domain="alerts.test"),
        settings=SLOW_POLL,
        wakeup=Wakeup(engine),
    )
    assert dispatcher.wakeup is not None
    other = create_engine(engine.url.render_as_string(hide_password=False))
    stop = asyncio.Event()
    running = asyncio.create_task(dispatcher.run(stop))
    try:
        await asyncio.wait_for(dispatcher.wakeup.listening.wait(), 10)
        _, alert_id = await _approved(other)
        before = dict(dispatcher.wakeups)
        async with make_sessionmaker(other).begin() as session:
            alert = await session.get(Alert, alert_id)
            assert alert is not None
            await publish(session, alert, now=utcnow())
        await _until_sent(email, 2)
    finally:
        stop.set()
        await running
        await other.dispose()
    source = "notify" if engine.dialect.name == "postgresql" else "data_version"
    assert dispatcher.wakeups[source] > before.get(source, 0), dict(dispatcher.wakeups)


async def test_without_any_wakeup_the_safety_poll_still_sends(engine: AsyncEngine) -> None:
    """A lost notification delays a message, never loses it."""
    email = MemoryChannel(channel_name="email")
    dispatcher = Dispatcher(
        sessions=make_sessionmaker(engine),
        channels={"email": email},
        builder=MessageBuilder(RENDERER, public_url="http://alerts.test", domain="alerts.test"),
        settings=DispatcherSettings(flush_interval=0.01, poll_seconds=0.2),
    )
    stop = asyncio.Event()
    running = asyncio.create_task(dispatcher.run(stop))
    try:
        await asyncio.sleep(0.5)  # the claimers are idle, waiting for their poll
        async with make_sessionmaker(engine).begin() as session:
            officer, reviewer = await make_users(session)
            await add_contacts(session, 2)
            alert = await approved_alert(session, author=officer, reviewer=reviewer)
            await publish(session, alert, now=utcnow())
        await _until_sent(email, 2)
    finally:
        stop.set()
        await running
    assert not dispatcher.wakeups


def test_a_safety_poll_of_zero_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"\[dispatcher\] poll_seconds has value 0.0"):
        load_settings(environ={"ALERTS_DISPATCHER_POLL_SECONDS": "0"})


async def test_a_database_it_cannot_watch_is_said_once_as_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """SQLite: the watcher cannot open its connection; the dispatcher polls, and says why."""
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path}/missing/dir/alerts.db")
    caplog.set_level("WARNING", logger="alerts")
    watcher = asyncio.create_task(Wakeup(engine).run(lambda _source: None))
    try:
        for _ in range(100):
            if caplog.records:
                break
            await asyncio.sleep(0.02)
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
        await engine.dispose()
    [record] = [r for r in caplog.records if r.name == "alerts.delivery.wakeup"]
    assert record.levelname == "WARNING"
    message = record.getMessage()  # the driver's error in the middle, SQLAlchemy's link and all
    assert message.startswith(
        "watching SQLite's data_version failed (OperationalError: (sqlite3.OperationalError) unable "
        "to open database file"
    )
    assert message.endswith("); the dispatcher polls until it watches again")


async def test_a_lost_listen_connection_is_noticed_at_once_and_listened_on_again(
    engine: AsyncEngine, caplog: pytest.LogCaptureFixture
) -> None:
    """PostgreSQL: the server ends the LISTEN backend (a restart, a failover, an admin); the
    dispatcher says so at once (not at its next 5 s check), listens again, and hears NOTIFY."""
    from sqlalchemy import text

    from alerts.delivery.wakeup import CHANNEL, announce

    if engine.dialect.name != "postgresql":
        pytest.skip("LISTEN/NOTIFY: PostgreSQL only (SQLite is watched through data_version)")
    sessions = make_sessionmaker(engine)
    wakeup = Wakeup(engine)
    heard: list[str] = []
    caplog.set_level("WARNING", logger="alerts.delivery.wakeup")
    listening_pids = text(
        "SELECT pid FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND query LIKE :listen"
    ).bindparams(listen=f"LISTEN %{CHANNEL}%")
    async with sessions() as session:  # earlier tests' connections may still be closing
        earlier = set((await session.scalars(listening_pids)).all())
    listener = asyncio.create_task(wakeup.run(heard.append))
    try:
        await asyncio.wait_for(wakeup.listening.wait(), 10)
        async with sessions.begin() as session:
            ours = set((await session.scalars(listening_pids)).all()) - earlier
            assert len(ours) == 1
            ended = await session.scalar(text("SELECT pg_terminate_backend(:pid)").bindparams(pid=ours.pop()))
        assert ended is True
        loop = asyncio.get_running_loop()
        lost_at = loop.time()
        while wakeup.listening.is_set():
            assert loop.time() - lost_at < 2.0, "the lost connection went unnoticed"
            await asyncio.sleep(0.02)
        assert [r.getMessage() for r in caplog.records] == [
            f"the LISTEN {CHANNEL} connection was closed; listening again"
        ]
        await asyncio.wait_for(wakeup.listening.wait(), 10)
        heard.clear()
        async with sessions.begin() as session:
            await announce(session)
        for _ in range(500):
            if "notify" in heard:
                break
            await asyncio.sleep(0.01)
        assert "notify" in heard
    finally:
        listener.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await listener


async def test_a_postgresql_server_it_cannot_reach_is_said_as_a_warning_with_the_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """PostgreSQL: the listener cannot connect (nothing listens on the port); the dispatcher
    polls, and the operator reads why. Needs no server, so it runs on either test database."""
    from sqlalchemy.ext.asyncio import create_async_engine

    from alerts.delivery.wakeup import CHANNEL

    engine = create_async_engine("postgresql+asyncpg://alerts@127.0.0.1:1/alerts")
    caplog.set_level("WARNING", logger="alerts")
    listener = asyncio.create_task(Wakeup(engine).run(lambda _source: None))
    try:
        for _ in range(250):
            if caplog.records:
                break
            await asyncio.sleep(0.02)
    finally:
        listener.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await listener
        await engine.dispose()
    [record] = [r for r in caplog.records if r.name == "alerts.delivery.wakeup"]
    assert record.levelname == "WARNING"
    # the OS error as the loop words it: asyncio's "Connect call failed ('127.0.0.1', 1)",
    # uvloop's (libuv's) "Connection refused"
    said = record.getMessage()
    assert said.startswith(f"LISTEN {CHANNEL} failed (ConnectionRefusedError: [Errno 111] "), said
    assert said.endswith("); the dispatcher polls until it listens again"), said
    assert "Connect call failed ('127.0.0.1', 1)" in said or "Connection refused" in said, said


async def test_a_stopped_dispatcher_is_rung_no_more_and_the_other_still_is(engine: AsyncEngine) -> None:
    """Two dispatchers of one process share its doorbell: each rings both, and once one stops
    (it no longer listens nor claims), a ring wakes only the other. Each, when it starts
    listening, claims once for whatever was queued while nobody listened."""
    from alerts.delivery.wakeup import Doorbell

    doorbell = Doorbell()
    sessions = make_sessionmaker(engine)
    builder = MessageBuilder(RENDERER, public_url="http://alerts.test", domain="alerts.test")
    pair = [
        Dispatcher(
            sessions=sessions,
            channels={"email": MemoryChannel(channel_name="email")},
            builder=builder,
            settings=SLOW_POLL,
            wakeup=Wakeup(engine, doorbell),
        )
        for _ in range(2)
    ]
    stops = [asyncio.Event(), asyncio.Event()]
    runs = [asyncio.create_task(d.run(stop)) for d, stop in zip(pair, stops, strict=True)]
    try:
        for d in pair:
            assert d.wakeup is not None
            await asyncio.wait_for(d.wakeup.listening.wait(), 10)
        doorbell.ring()
        stops[0].set()
        await runs[0]
        assert pair[0].wakeup is not None and not pair[0].wakeup.listening.is_set()
        doorbell.ring()
    finally:
        for stop in stops:
            stop.set()
        await asyncio.gather(*runs)
    first = "listen" if engine.dialect.name == "postgresql" else "watch"
    assert [(d.wakeups["bell"], d.wakeups[first]) for d in pair] == [(1, 1), (2, 1)]


async def test_an_idle_dispatcher_backs_off_to_its_safety_poll_and_claims_once_per_wake_up(
    engine: AsyncEngine,
) -> None:
    """With nothing to send, the claimers do not query the database continuously: their waits
    grow towards ``poll_seconds``, and a wake-up costs one claim, not a claim loop. (Counted,
    not timed: a slower machine only claims less.)"""
    dispatcher = Dispatcher(
        sessions=make_sessionmaker(engine),
        channels={"email": MemoryChannel(channel_name="email")},
        builder=MessageBuilder(RENDERER, public_url="http://alerts.test", domain="alerts.test"),
        settings=SLOW_POLL,
    )

    def claims() -> float:
        return (
            dispatcher.metrics.registry.get_sample_value(
                "alerts_claim_latency_seconds_count", {"channel": "email"}
            )
            or 0.0
        )

    stop = asyncio.Event()
    running = asyncio.create_task(dispatcher.run(stop))
    try:
        # waits of 0.02, 0.04, … 1.28 s (2.54 s in all), then 2.56 s: at most one claim a second from here
        await asyncio.sleep(4.0)
        before = claims()
        assert before >= 1
        await asyncio.sleep(1.0)
        assert claims() - before <= 1
        dispatcher.wake("bell")
        await asyncio.sleep(1.0)
        assert claims() - before <= 3
    finally:
        stop.set()
        await running


async def test_resuming_an_alert_rings_the_doorbell_and_pausing_it_does_not(app: App) -> None:
    """A resume hands the paused deliveries back to the claimers: it wakes this process's
    dispatcher like a send does; a pause gives them nothing to claim, so it rings nothing."""
    officer_id, alert_id = await _approved(app.engine)
    dispatcher = make_dispatcher(app)
    assert dispatcher.wakeup is not None
    stop = asyncio.Event()
    running = asyncio.create_task(dispatcher.run(stop))
    try:
        await asyncio.wait_for(dispatcher.wakeup.listening.wait(), 10)
        async with app.sessions() as session:
            officer = await session.get(User, officer_id)
        assert officer is not None
        paused = await sending.set_paused(app, officer, alert_id, paused=True)
        assert paused.paused and dispatcher.wakeups["bell"] == 0
        assert (await sending.send(app, officer, alert_id)).queued == 2
        assert dispatcher.wakeups["bell"] == 1  # the send's ring; its deliveries wait, paused
        resumed = await sending.set_paused(app, officer, alert_id, paused=False)
        assert not resumed.paused and dispatcher.wakeups["bell"] == 2
        email = app.channels["email"]
        assert isinstance(email, MemoryChannel)
        await _until_sent(email, 2)
    finally:
        stop.set()
        await running
