"""Officers' reads go first (alerts/delivery/give_way.py, alerts/web/first.py): while one is
answered, ``alerts serve``'s senders start no new message, for ``hold`` seconds at most; when
a hold runs out with reads still in flight, the senders go on for ``turn`` seconds, whatever
reads come, and then wait again.

The dispatcher sends to a recording SMTP server through the real email channel; the web's
side is the real app on loopback. The holds and turns are set far longer than any test waits,
and end only when a test says so, so that no figure depends on the machine's speed.
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
from alerts.delivery.dispatch import Dispatcher
from alerts.delivery.give_way import GiveWay
from alerts.service import make_dispatcher
from alerts.web import make_web_app
from channels.email import EmailChannel
from tests.factories import published_alert
from tests.smtpd import SMTPTestServer
from tests.web import make_staff, signed_in

NEVER = 3600.0  # a hold that does not run out within a test
TOKEN = {"Authorization": "Bearer some-token"}


@pytest.fixture
async def app(db_url: str, smtpd_settings: EmailSettings) -> AsyncIterator[App]:
    # the pool of the channel given, so that the dispatcher runs two senders per connection
    settings = Settings().replace("database", url=db_url).replace("email", pool_size=smtpd_settings.pool_size)
    async with open_app(settings, channels={"email": EmailChannel(smtpd_settings)}) as opened:
        opened.give_way = GiveWay(NEVER, held=opened.metrics.senders_held)
        yield opened


async def _until(what: str, done: Callable[[], bool], *, within: float = 30.0) -> None:
    async with asyncio.timeout(within):
        while not done():
            await asyncio.sleep(0.01)


def _held(app: App, ended: str) -> float:
    value = app.metrics.registry.get_sample_value("alerts_senders_held_total", {"ended": ended})
    return value or 0.0


async def _claimed(dispatcher: Dispatcher, n: int) -> None:
    """The claimer does not give way: the deliveries are claimed and wait in the lane."""
    await _until("claimed", lambda: dispatcher.lanes["email"].queue.qsize() == n)
    await asyncio.sleep(0.2)  # what a sender would have started by now reaches the server


async def test_a_read_in_flight_holds_the_senders_and_its_answer_lets_them_go(
    app: App, smtpd_server: SMTPTestServer
) -> None:
    await published_alert(app.sessions, 40)
    dispatcher = make_dispatcher(app, web_first=True)
    app.give_way.enter()  # an officer's read comes in
    stop = asyncio.Event()
    running = asyncio.create_task(dispatcher.run(stop))
    try:
        await _claimed(dispatcher, 40)
        assert smtpd_server.messages() == []  # no sender started a message
        app.give_way.leave()  # answered
        assert app.give_way.open
        await _until("all sent", lambda: len(smtpd_server.messages()) == 40)
    finally:
        stop.set()
        await running
    assert (_held(app, "answered"), _held(app, "limit")) == (1, 0)


async def test_a_hold_that_runs_out_gives_the_senders_their_turn_whatever_comes(
    app: App, smtpd_server: SMTPTestServer
) -> None:
    n = 300
    await published_alert(app.sessions, n)
    app.give_way = GiveWay(NEVER, turn=NEVER, held=app.metrics.senders_held)
    dispatcher = make_dispatcher(app, web_first=True)
    senders = dispatcher.lanes["email"].concurrency
    app.give_way.enter()  # one read after another from now on
    stop = asyncio.Event()
    running = asyncio.create_task(dispatcher.run(stop))

    def sent() -> int:
        return len(smtpd_server.messages())

    try:
        await _until("claimed", lambda: dispatcher.lanes["email"].queue.qsize() > 0)
        await asyncio.sleep(0.2)
        assert sent() == 0
        app.give_way._held_long_enough()  # the hold runs out: the senders' turn
        app.give_way.enter()  # a read that comes during the turn does not end it
        assert app.give_way.open
        await _until("the senders going on", lambda: sent() >= 3 * senders)  # not one message each
        app.give_way._turn_over()  # the turn is over, reads are still in flight: closed again
        assert not app.give_way.open
        await asyncio.sleep(0.3)  # the messages started before it reach the server
        settled = sent()
        await asyncio.sleep(0.3)
        assert sent() == settled < n  # and no sender started another
        app.give_way.leave()
        app.give_way.leave()
        await _until("all sent", lambda: sent() == n)
    finally:
        stop.set()
        await running
    assert (_held(app, "limit"), _held(app, "answered")) == (1, 1)


async def test_a_worker_gives_no_way(app: App, smtpd_server: SMTPTestServer) -> None:
    """``alerts worker`` has no web: its senders never wait, whatever the count says."""
    await published_alert(app.sessions, 10)
    app.give_way.enter()
    dispatcher = make_dispatcher(app)
    assert dispatcher.give_way is None
    stop = asyncio.Event()
    running = asyncio.create_task(dispatcher.run(stop))
    try:
        await _until("all sent", lambda: len(smtpd_server.messages()) == 10)
    finally:
        stop.set()
        await running


async def test_the_web_counts_an_officers_read_until_it_is_answered(db_url: str) -> None:
    """GET and HEAD under /office and /api with credentials hold the senders until answered (or
    failed, or the client gone); a form, a public page, a read with no credentials, or a
    stream once started does not."""
    settings = Settings().replace("database", url=db_url).replace("server", secret_key="k" * 32)
    async with open_app(settings, channels={}) as app:
        app.give_way = GiveWay(NEVER, held=app.metrics.senders_held)
        way = app.give_way
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

        async def while_in_flight(method: str, path: str, *, anonymous: bool = False) -> tuple[int, bool]:
            """(reads counted, way open) while ``method path`` is being answered (with a token
            that the test route does not check, or with no credentials)."""
            arrived.clear()
            answer.clear()
            async with aiohttp.ClientSession(headers={} if anonymous else TOKEN) as http:
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
            assert await while_in_flight("GET", "/office/slow", anonymous=True) == (0, True)
            assert _held(app, "answered") == 2

            # an error answer leaves; so does a read whose client went away
            async with aiohttp.ClientSession(headers=TOKEN) as http, http.get(f"{base}/office/no/such") as r:
                assert r.status == 404
            arrived.clear()
            answer.clear()
            gone = aiohttp.ClientSession(headers=TOKEN)
            call = asyncio.create_task(gone.get(f"{base}/office/slow"))
            await asyncio.wait_for(arrived.wait(), 30)
            assert way.requests == 1
            call.cancel()
            await gone.close()
            answer.set()
            await _until("gone", lambda: way.requests == 0)
            assert way.open and _held(app, "answered") == 4

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
