"""Rotating ``[server] secret_key`` over HTTP: the links in a message sent before the rotation
(unsubscribe, preferences, a pending confirmation) and an officer's open session still work
after it while the old key is in ``old_secret_keys``, and stop working once it is removed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
from aiohttp.test_utils import TestServer
from sqlalchemy import select

from alerts.accounts import users
from alerts.app import App, open_app
from alerts.contacts.subscriptions import Signer
from alerts.core.clock import utcnow
from alerts.store.models import Contact
from alerts.web import auth, make_web_app
from tests.web.conftest import site_settings
from tests.web.test_public import INVALID

OLD = "the-key-before-the-rotation-0123"
NEW = "the-key-after-the-rotation-45678"


@asynccontextmanager
async def deployment(
    db_url: str, key: str, old: tuple[str, ...] = ()
) -> AsyncIterator[tuple[App, str, TestServer]]:
    settings = site_settings(db_url).replace("server", secret_key=key, old_secret_keys=old)
    async with open_app(settings, channels={}) as app:
        server = TestServer(make_web_app(app))
        await server.start_server()
        try:
            yield app, str(server.make_url("")).rstrip("/"), server
        finally:
            await server.close()


async def fetch(base: str, method: str, path: str, *, cookie: str = "", **kw: object) -> tuple[int, str]:
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(cookie_jar=jar) as http:
        if cookie:
            jar.update_cookies({auth.SESSION_COOKIE: cookie})
        async with http.request(method, base + path, allow_redirects=False, **kw) as r:  # type: ignore[arg-type]
            return r.status, await r.text()


async def test_links_and_sessions_survive_a_rotation_and_die_with_the_removed_key(db_url: str) -> None:
    async with deployment(db_url, OLD) as (app, base, server):
        async with app.sessions.begin() as session:
            officer, _ = await users.create_user(session, name="olga", role="officer", now=utcnow())
        status, _ = await fetch(
            base, "POST", "/subscribe", data={"email": "reader@example.org", "language": "en"}
        )
        assert status == 202
        contact = await _contact_of(app)
        # what the message of the day carried: the builder's link token, the confirmation link
        link = app.builder.link_token(contact.token)
        confirm = Signer(app.signing).confirm_token(contact)
        cookie = auth.issue(server.app[auth.AUTH], officer)
        assert (await fetch(base, "GET", "/", cookie=cookie))[0] == 200

    async with deployment(db_url, NEW) as (app, base, _):  # the old key removed
        for path in (f"/unsubscribe/{link}", f"/preferences/{link}", f"/subscribe/confirm/{confirm}"):
            status, page = await fetch(base, "GET", path)
            assert status == 404 and INVALID in page, path
        assert (await fetch(base, "GET", "/", cookie=cookie))[0] == 401  # signed out

    async with deployment(db_url, NEW, (OLD,)) as (app, base, _):  # rotated, the old key kept
        assert (await fetch(base, "GET", "/", cookie=cookie))[0] == 200  # still signed in
        status, page = await fetch(base, "GET", f"/preferences/{link}")
        assert status == 200 and "Your preferences" in page
        status, page = await fetch(base, "POST", f"/subscribe/confirm/{confirm}")
        assert status == 200 and "Your subscription is confirmed." in page
        status, page = await fetch(
            base,
            "POST",
            f"/unsubscribe/{link}",
            data=b"List-Unsubscribe=One-Click",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert status == 200 and "You are unsubscribed" in page
        assert (await _contact_of(app)).status == "unsubscribed"
        # what this deployment signs now verifies with the new key alone
        assert Signer(app.signing).read_link(app.builder.link_token(contact.token)) == contact.token


async def _contact_of(app: App) -> Contact:
    async with app.sessions() as session:
        found = await session.scalar(select(Contact).where(Contact.email_key == "reader@example.org"))
    assert found is not None
    return found
