"""The web's requests go first (alerts/delivery/give_way.py, alerts/web/first.py): while a
request is answered, ``alerts serve``'s senders start no new message, for ``hold`` seconds at
most; a request that never ends still lets every sender start one message per hold.

The dispatcher sends to a recording SMTP server through the real email channel; the web's
side is a real app on loopback. No test is timed: a request held in flight is held by the
test (an upload it has not finished), and the hold that must not run out is set far longer
than the test waits.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest

from alerts.app import App, open_app
from alerts.core.config import EmailSettings, Settings
from alerts.delivery.give_way import GiveWay
from alerts.service import make_dispatcher
from channels.email import EmailChannel
from tests.factories import published_alert
from tests.smtpd import SMTPTestServer
from tests.web import make_staff, running, signed_in


@pytest.fixture
async def app(db_url: str, smtpd_settings: EmailSettings) -> AsyncIterator[App]:
    # the pool of the channel given, so that the dispatcher runs two senders per connection
    settings = Settings().replace("database", url=db_url).replace("email", pool_size=smtpd_settings.pool_size)
    async with open_app(settings, channels={"email": EmailChannel(smtpd_settings)}) as opened:
        yield opened


async def _until(what: str, done: object, *, within: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not done():  # type: ignore[operator]
        assert asyncio.get_running_loop().time() < deadline, f"not {what} within {within} s"
        await asyncio.sleep(0.01)


async def test_a_request_in_flight_holds_the_senders_and_its_answer_lets_them_go(
    app: App, smtpd_server: SMTPTestServer
) -> None:
    await published_alert(app.sessions, 40)
    app.give_way = GiveWay(hold=60.0)  # never runs out in this test
    dispatcher = make_dispatcher(app, web_first=True)
    app.give_way.enter()  # a request comes in
    stop = asyncio.Event()
    running_ = asyncio.create_task(dispatcher.run(stop))
    try:
        # the claimer works on: the deliveries are claimed and wait in the lane
        await _until("claimed", lambda: dispatcher.lanes["email"].queue.qsize() == 40)
        await asyncio.sleep(0.2)
        assert smtpd_server.messages() == []  # but no sender started a message
        assert not app.give_way.open
        app.give_way.leave()  # answered
        assert app.give_way.open
        await _until("all sent", lambda: len(smtpd_server.messages()) == 40)
    finally:
        stop.set()
        await running_
    assert (app.give_way.holds, app.give_way.full_holds) == (1, 0)


async def test_a_request_that_never_ends_lets_each_sender_start_one_message_per_hold(
    app: App, smtpd_server: SMTPTestServer
) -> None:
    n = 64
    await published_alert(app.sessions, n)
    app.give_way = GiveWay(hold=0.2)
    dispatcher = make_dispatcher(app, web_first=True)
    senders = dispatcher.lanes["email"].concurrency
    app.give_way.enter()  # and never leaves
    stop = asyncio.Event()
    running_ = asyncio.create_task(dispatcher.run(stop))
    try:
        await _until("all sent", lambda: len(smtpd_server.messages()) == n)
    finally:
        stop.set()
        await running_
    # every message was started in the moment after a hold ran out, one per waiting sender (two,
    # for a sender whose previous answer came in that very moment); ignoring the way, the
    # senders would have sent them all within a few holds
    assert app.give_way.full_holds >= n / (2 * senders), (app.give_way.full_holds, senders)
    assert not app.give_way.open  # and the way closed again after each of those moments
    app.give_way.leave()
    assert app.give_way.open


async def test_a_worker_gives_no_way(app: App, smtpd_server: SMTPTestServer) -> None:
    """``alerts worker`` has no web: its senders never wait, whatever the counter says."""
    await published_alert(app.sessions, 10)
    app.give_way = GiveWay(hold=60.0)
    app.give_way.enter()
    dispatcher = make_dispatcher(app)
    assert dispatcher.give_way is None
    stop = asyncio.Event()
    running_ = asyncio.create_task(dispatcher.run(stop))
    try:
        await _until("all sent", lambda: len(smtpd_server.messages()) == 10)
    finally:
        stop.set()
        await running_


async def test_the_web_counts_a_request_until_it_is_answered(db_url: str) -> None:
    """An upload still coming in holds the senders; its answer, an error or a stream's first
    bytes let them go."""
    async with running(db_url) as (app, base):
        app.give_way = GiveWay(hold=60.0)
        await make_staff(app)
        more = asyncio.Event()

        async def slow_body() -> AsyncIterator[bytes]:
            yield b"name=officer&"
            await more.wait()
            yield b"password=wrong"

        async with aiohttp.ClientSession() as http:
            upload = asyncio.create_task(
                http.post(
                    f"{base}/login",
                    data=slow_body(),
                    headers={"Content-Type": "application/x-www-form-urlencoded"},
                    allow_redirects=False,
                )
            )
            await _until("the request in", lambda: app.give_way.requests == 1)
            assert not app.give_way.open
            more.set()
            response = await upload
            response.release()
            assert (app.give_way.requests, app.give_way.open) == (0, True)
            # an error answer (404 from the router) and a refused one (no session) leave too
            async with http.get(f"{base}/no/such/page") as r:
                assert r.status == 404
            async with http.get(f"{base}/office/alerts/1/live", allow_redirects=False) as r:
                assert r.status in (302, 303, 401)
            assert (app.give_way.requests, app.give_way.open) == (0, True)
        assert app.give_way.holds == 3

        # a client that goes away mid-upload: its request is cancelled, and leaves
        more.clear()
        gone = aiohttp.ClientSession()
        upload = asyncio.create_task(
            gone.post(
                f"{base}/login",
                data=slow_body(),
                headers={"Content-Type": "application/x-www-form-urlencoded"},
            )
        )
        await _until("the request in", lambda: app.give_way.requests == 1)
        upload.cancel()
        await gone.close()
        await _until("the request gone", lambda: app.give_way.requests == 0)
        assert app.give_way.open

        # the live counts stream: held until its headers are sent, not while it runs
        alert_id = await published_alert(app.sessions, 2)
        officer = await signed_in(base, "officer")
        try:
            async with officer.http.get(f"{base}/office/alerts/{alert_id}/live") as stream:
                assert stream.headers["Content-Type"].startswith("text/event-stream")
                assert (await stream.content.readline()).startswith(b"retry:")
                assert (app.give_way.requests, app.give_way.open) == (0, True)
        finally:
            await officer.close()
