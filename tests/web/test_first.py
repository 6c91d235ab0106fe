"""Officers' reads go first, the web's side (alerts/web/first.py): GET and HEAD under /office and
/api with credentials count as reads until they are answered, and while one is counted the
senders start no new message (alerts/delivery/give_way.py; tests/test_give_way.py has the
way's own rules). The app is the real one on loopback, its middlewares around a test route."""

from __future__ import annotations

import asyncio

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer

from alerts.app import open_app
from alerts.core.config import Settings
from alerts.web import make_web_app
from alerts.web.auth import SESSION_COOKIE
from tests.factories import published_alert
from tests.timers import Timers, holds, make_way
from tests.web import make_staff, signed_in

TOKEN = {"Authorization": "Bearer some-token"}  # not checked by the test's own route


async def test_the_web_counts_an_officers_read_until_it_is_answered(db_url: str) -> None:
    """GET and HEAD under /office and /api with credentials hold the senders until answered (or
    failed, or the client gone); a form, a public page, a read with no credentials, or a
    stream once started does not."""
    settings = Settings().replace("database", url=db_url).replace("server", secret_key="k" * 32)
    async with open_app(settings, channels={}) as app:
        timers = Timers()
        app.give_way = way = make_way(timers, app.metrics)
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
            assert holds(app.metrics, "answered") == 3

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
            async with asyncio.timeout(30):
                while way.requests:
                    await asyncio.sleep(0.01)
            assert way.open and holds(app.metrics, "answered") == 5

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
