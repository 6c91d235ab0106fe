"""Officers' reads go first (alerts/delivery/give_way.py, alerts/web/first.py): while one is
answered, ``alerts serve``'s senders start no new message, for ``hold`` seconds at most, and
after each hold the senders have a turn: ``turn`` seconds after a hold that ran out, half the
hold after one whose reads were answered. However the reads come, they take at most two thirds
of the senders' time.

The way's timers are the test's (``Timers``): they fire when the test says, so that no figure
depends on the machine's speed. The dispatcher sends to a recording SMTP server through the
real email channel; the web's side is the real app on loopback.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from alerts.app import App, open_app
from alerts.core.config import EmailSettings, Settings
from alerts.core.metrics import Metrics
from alerts.delivery.dispatch import Dispatcher
from alerts.delivery.give_way import HOLD, TURN, GiveWay
from alerts.service import make_dispatcher
from alerts.web import make_web_app
from alerts.web.auth import SESSION_COOKIE
from channels.email import EmailChannel
from tests.factories import published_alert
from tests.smtpd import SMTPTestServer
from tests.web import make_staff, signed_in

TOKEN = {"Authorization": "Bearer some-token"}  # not checked by the test's own route


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


def _way(timers: Timers, metrics: Metrics | None = None) -> GiveWay:
    return GiveWay(
        holds=metrics.senders_held if metrics else None, call_later=timers.call_later, clock=timers.clock
    )


def _holds(metrics: Metrics, ended: str) -> float:
    value = metrics.registry.get_sample_value("alerts_senders_held_total", {"ended": ended})
    return value or 0.0


async def test_a_read_closes_the_way_and_its_answer_opens_it_for_half_the_hold() -> None:
    timers, metrics = Timers(), Metrics(process=False)
    way = _way(timers, metrics)
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
    assert (_holds(metrics, "answered"), _holds(metrics, "limit")) == (2, 0)


async def test_a_hold_that_runs_out_gives_the_senders_a_turn_whatever_comes() -> None:
    timers, metrics = Timers(), Metrics(process=False)
    way = _way(timers, metrics)
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
    assert (_holds(metrics, "limit"), _holds(metrics, "answered")) == (1, 1)


@pytest.mark.parametrize("clients", [1, 3, 20])
@pytest.mark.parametrize("read", [0.002, 0.03, 0.045, 0.2])
async def test_however_the_reads_come_the_senders_keep_a_third_of_the_time(clients: int, read: float) -> None:
    """``clients`` reading back to back, each read taking ``read`` seconds, for 10 s."""
    timers = Timers()
    way = _way(timers)
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
        opened.give_way = _way(timers, opened.metrics)
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


async def test_the_web_counts_an_officers_read_until_it_is_answered(db_url: str) -> None:
    """GET and HEAD under /office and /api with credentials hold the senders until answered (or
    failed, or the client gone); a form, a public page, a read with no credentials, or a
    stream once started does not."""
    settings = Settings().replace("database", url=db_url).replace("server", secret_key="k" * 32)
    async with open_app(settings, channels={}) as app:
        timers = Timers()
        app.give_way = way = _way(timers, app.metrics)
        arrived, answer = asyncio.Event(), asyncio.Event()

        async def slow(_request: web.Request) -> web.Response:
            """A page that takes as long as the test says (the app's real middlewares around it)."""
            arrived.set()
            await answer.wait()
            return web.Response(text="done")

        webapp = make_web_app(app)
        for path in ("/office/slow", "/api/v1/slow", "/slow"):
            webapp.router.add_route("*", path, slow)
        server = TestServer(webapp)
        await server.start_server()
        base = str(server.make_url("")).rstrip("/")

        async def while_in_flight(
            method: str, path: str, *, headers: dict[str, str] = TOKEN
        ) -> tuple[int, bool]:
            """(reads counted, way open) while ``method path`` is being answered."""
            while timers.live():
                timers.fire()  # the last read's turn is over
            arrived.clear()
            answer.clear()
            async with aiohttp.ClientSession(headers=headers) as http:
                call = asyncio.create_task(http.request(method, base + path))
                await asyncio.wait_for(arrived.wait(), 30)
                seen = (way.requests, way.open)
                answer.set()
                (await call).release()
            assert (way.requests, way.open) == (0, True)
            return seen

        try:
            assert await while_in_flight("GET", "/office/slow") == (1, False)
            assert await while_in_flight("HEAD", "/api/v1/slow") == (1, False)
            assert await while_in_flight("POST", "/office/slow") == (0, True)  # a form, an upload
            assert await while_in_flight("GET", "/slow") == (0, True)  # a public page
            assert await while_in_flight("GET", "/office/slow", headers={}) == (0, True)  # anyone
            cookie = {"Cookie": f"{SESSION_COOKIE}=anything"}  # checked by the handler, not here
            assert await while_in_flight("GET", "/office/slow", headers=cookie) == (1, False)
            assert _holds(app.metrics, "answered") == 3

            # an error answer leaves; so does a read whose client went away, once its handler ends
            while timers.live():
                timers.fire()
            async with aiohttp.ClientSession(headers=TOKEN) as http, http.get(f"{base}/office/no/such") as r:
                assert r.status == 404
            while timers.live():
                timers.fire()
            arrived.clear()
            answer.clear()
            gone = aiohttp.ClientSession(headers=TOKEN)
            call = asyncio.create_task(gone.get(f"{base}/office/slow"))
            await asyncio.wait_for(arrived.wait(), 30)
            assert way.requests == 1
            call.cancel()
            await gone.close()
            answer.set()
            await _until(lambda: way.requests == 0)
            assert way.open and _holds(app.metrics, "answered") == 5

            # the live counts: held until the stream's headers are sent, not while it runs
            await make_staff(app)
            alert_id = await published_alert(app.sessions, 2)
            officer = await signed_in(base, "officer")
            try:
                async with officer.http.get(f"{base}/office/alerts/{alert_id}/live") as stream:
                    assert stream.headers["Content-Type"].startswith("text/event-stream")
                    assert (await stream.content.readline()).startswith(b"retry:")
                    assert (way.requests, way.open) == (0, True)
            finally:
                await officer.close()
        finally:
            await server.close()
