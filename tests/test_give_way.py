"""Officers' reads go first (alerts/delivery/give_way.py, alerts/web/first.py): while one is
answered, ``alerts serve``'s senders start no new message, for ``hold`` seconds at most, and
after each hold the senders have a turn: ``turn`` seconds after a hold that ran out, half the
hold after one whose reads were answered. However the reads come, they take at most two thirds
of the senders' time.

The way's timers are the test's (``Timers``): they fire when the test says, so that no figure
depends on the machine's speed. The dispatcher sends to a recording SMTP server through the
real email channel. The web's side is in tests/web/test_first.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest

from alerts.app import App, open_app
from alerts.core.config import EmailSettings, Settings
from alerts.core.metrics import Metrics
from alerts.delivery.dispatch import Dispatcher
from alerts.delivery.give_way import HOLD, TURN
from alerts.service import make_dispatcher
from channels.email import EmailChannel
from tests.factories import published_alert
from tests.smtpd import SMTPTestServer
from tests.timers import Timers, holds, make_way


async def test_a_read_closes_the_way_and_its_answer_opens_it_for_half_the_hold() -> None:
    timers, metrics = Timers(), Metrics(process=False)
    way = make_way(timers, metrics)
    way.enter()
    assert not way.open and [due for due, _ in timers.live()] == [HOLD]
    timers.run_until(0.02)
    way.leave()  # answered after 20 ms: the senders' turn, 10 ms
    assert way.open and [due for due, _ in timers.live()] == [pytest.approx(0.03)]
    way.enter()  # a read during the turn waits for its end
    assert way.open and way.requests == 1
    assert timers.fire() == pytest.approx(0.01)
    assert not way.open  # and then closes the way
    way.leave()
    assert (holds(metrics, "answered"), holds(metrics, "limit")) == (2, 0)


async def test_a_hold_that_runs_out_gives_the_senders_a_turn_whatever_comes() -> None:
    timers, metrics = Timers(), Metrics(process=False)
    way = make_way(timers, metrics)
    way.enter()
    assert timers.fire() == pytest.approx(HOLD)  # still in flight
    assert way.open
    way.enter()  # more reads during the turn do not end it
    assert way.open
    assert timers.fire() == pytest.approx(TURN)
    assert not way.open  # reads still in flight: closed again, for a hold at most
    way.leave()
    way.leave()
    assert way.open
    assert (holds(metrics, "limit"), holds(metrics, "answered")) == (1, 1)


@pytest.mark.parametrize("clients", [1, 3, 20])
@pytest.mark.parametrize("read", [0.002, 0.03, 0.045, 0.2])
async def test_however_the_reads_come_the_senders_keep_a_third_of_the_time(clients: int, read: float) -> None:
    """``clients`` reading back to back, each read taking ``read`` seconds, for 10 s."""
    timers = Timers()
    way = make_way(timers)
    closed = 0.0

    def advance(to: float) -> None:
        """Run the way's timers up to ``to``, adding up the time it was closed."""
        nonlocal closed
        while (live := timers.live()) and live[0][0] <= to:
            closed += 0.0 if way.open else live[0][0] - timers.now
            timers.fire()
        closed += 0.0 if way.open else to - timers.now
        timers.now = to

    ends = [read * (i + 1) / clients for i in range(clients)]  # the clients' first reads, staggered
    for _ in range(clients):
        way.enter()
    while timers.now < 10.0:
        c = min(range(clients), key=ends.__getitem__)
        advance(ends[c])
        way.leave()  # this read is answered, and its client reads again at once
        way.enter()
        ends[c] += read
    assert closed / timers.now <= 2 / 3 + 0.01, closed / timers.now


@pytest.fixture
async def app(db_url: str, smtpd_settings: EmailSettings) -> AsyncIterator[tuple[App, Timers]]:
    # the pool of the channel given, so that the dispatcher runs two senders per connection
    settings = Settings().replace("database", url=db_url).replace("email", pool_size=smtpd_settings.pool_size)
    async with open_app(settings, channels={"email": EmailChannel(smtpd_settings)}) as opened:
        timers = Timers()
        opened.give_way = make_way(timers, opened.metrics)
        yield opened, timers


async def _until(done: Callable[[], bool], *, within: float = 30.0) -> None:
    async with asyncio.timeout(within):
        while not done():
            await asyncio.sleep(0.01)
    assert done()


async def _nothing_taken(dispatcher: Dispatcher, n: int) -> None:
    """The claimer does not give way: the deliveries are claimed, and no sender takes one."""
    lane = dispatcher.lanes["email"]
    await _until(lambda: lane.queue.qsize() == n)
    await asyncio.sleep(0.2)
    assert (lane.queue.qsize(), lane.in_flight) == (n, 0)


async def test_a_read_in_flight_holds_the_senders_and_its_answer_lets_them_go(
    app: tuple[App, Timers], smtpd_server: SMTPTestServer
) -> None:
    opened, _timers = app
    await published_alert(opened.sessions, 40)
    dispatcher = make_dispatcher(opened, web_first=True)
    opened.give_way.enter()  # an officer's read comes in
    stop = asyncio.Event()
    running = asyncio.create_task(dispatcher.run(stop))
    try:
        await _nothing_taken(dispatcher, 40)
        assert smtpd_server.messages() == []
        opened.give_way.leave()  # answered
        assert opened.give_way.open
        await _until(lambda: len(smtpd_server.messages()) == 40)
    finally:
        stop.set()
        await running


async def test_the_senders_take_their_turn_and_then_wait_again(
    app: tuple[App, Timers], smtpd_server: SMTPTestServer
) -> None:
    opened, timers = app
    n = 300
    await published_alert(opened.sessions, n)
    dispatcher = make_dispatcher(opened, web_first=True)
    lane = dispatcher.lanes["email"]
    way = opened.give_way
    way.enter()  # one read after another from now on
    stop = asyncio.Event()
    running = asyncio.create_task(dispatcher.run(stop))

    def sent() -> int:
        return len(smtpd_server.messages())

    try:
        await _until(lambda: lane.queue.qsize() > 0)
        await asyncio.sleep(0.2)
        assert sent() == 0 and lane.in_flight == 0
        timers.fire()  # the hold runs out: the senders' turn
        await _until(lambda: sent() >= 3 * lane.concurrency)  # not one message each: they go on
        timers.fire()  # the turn is over, the read is still in flight: closed again
        assert not way.open
        await _until(lambda: lane.in_flight == 0)  # what they had started is finished
        settled = sent()
        await asyncio.sleep(0.3)
        assert sent() == settled < n and lane.in_flight == 0  # and no sender started another
        way.leave()
        await _until(lambda: sent() == n)
    finally:
        stop.set()
        await running


async def test_a_worker_gives_no_way(app: tuple[App, Timers], smtpd_server: SMTPTestServer) -> None:
    """``alerts worker`` has no web: its senders never wait, whatever the count says."""
    opened, _timers = app
    await published_alert(opened.sessions, 10)
    opened.give_way.enter()
    dispatcher = make_dispatcher(opened)
    assert dispatcher.give_way is None
    stop = asyncio.Event()
    running = asyncio.create_task(dispatcher.run(stop))
    try:
        await _until(lambda: len(smtpd_server.messages()) == 10)
    finally:
        stop.set()
        await running
