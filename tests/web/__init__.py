"""Helpers for the officers' pages tests: a real web app on loopback over a real database, and a
small client that signs in and posts forms with their CSRF token like a browser does."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
from aiohttp.test_utils import TestServer

from alerts.accounts import users
from alerts.app import App, open_app
from alerts.cli.capture import CaptureServer
from alerts.core.clock import utcnow
from alerts.core.config import Settings
from alerts.web import make_web_app

P = "/office"
PASSWORD = "correct horse battery"
ROLES = ("admin", "officer", "reviewer", "viewer")
HTML = {"Accept": "text/html"}
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_in(page: str) -> str:
    """The CSRF token of the first form in a page."""
    match = _CSRF.search(page)
    assert match, "no CSRF token in the page"
    return match.group(1)


class Client:
    """A browser-like HTTP client: keeps cookies, remembers the last page's CSRF token."""

    def __init__(self, base: str, *, headers: dict[str, str] | None = None) -> None:
        self.base = base
        self.http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True), headers=headers)
        self.token = ""

    async def close(self) -> None:
        await self.http.close()

    async def get(self, path: str, *, html: bool = True, **kw: Any) -> tuple[int, str]:
        """GET a page; returns (status, body) and keeps its CSRF token."""
        async with self.http.get(
            self.base + path, headers=HTML if html else {}, allow_redirects=False, **kw
        ) as r:
            body = await r.text()
            if match := _CSRF.search(body):
                self.token = match.group(1)
            return r.status, body

    async def post(
        self, path: str, data: Any = None, *, csrf: bool = True, html: bool = True, **kw: Any
    ) -> aiohttp.ClientResponse:
        """POST a form with the current CSRF token (unless ``csrf`` is False); the body is read."""
        form = aiohttp.FormData()
        for key, value in data.items() if isinstance(data, dict) else (data or []):
            if isinstance(value, tuple):  # a file: (filename, bytes, content type)
                form.add_field(key, value[1], filename=value[0], content_type=value[2])
            else:
                form.add_field(key, value)
        if csrf:
            form.add_field("csrf_token", self.token)
        r = await self.http.post(
            self.base + path, data=form, headers=HTML if html else {}, allow_redirects=False, **kw
        )
        await r.read()
        r.release()
        return r

    async def sign_in(self, name: str, password: str = PASSWORD) -> aiohttp.ClientResponse:
        await self.get("/login")
        return await self.post("/login", {"name": name, "password": password})


@asynccontextmanager
async def running(
    db_url: str,
    *,
    capture: CaptureServer | None = None,
    telegram: dict[str, Any] | None = None,
    **server: Any,
) -> AsyncIterator[tuple[App, str]]:
    """The web app over ``db_url``; with ``capture``, an email channel that delivers there;
    with ``telegram`` (``[telegram]`` keys), a Telegram channel too."""
    settings = Settings().replace("database", url=db_url)
    server.setdefault("secret_key", "test-secret-key-0123456789")
    settings = settings.replace("server", **server)
    channels: dict[str, Any] | None = {}
    if capture is not None:
        settings = settings.replace("email", host="127.0.0.1", port=capture.port, pool_size=1)
        channels = None
    if telegram is not None:
        settings = settings.replace("telegram", **telegram)
        channels = None
    async with open_app(settings, channels=channels) as app:
        srv = TestServer(make_web_app(app))
        await srv.start_server()
        try:
            yield app, str(srv.make_url("")).rstrip("/")
        finally:
            await srv.close()


async def make_staff(app: App) -> dict[str, int]:
    """One user per role (named after it) with PASSWORD and a local mailbox; their ids."""
    ids = {}
    async with app.sessions.begin() as session:
        for role in ROLES:
            user, _ = await users.create_user(
                session, name=role, role=role, password=PASSWORD, email=f"{role}@localhost", now=utcnow()
            )
            ids[role] = user.id
        second, _ = await users.create_user(
            session, name="officer2", role="officer", password=PASSWORD, now=utcnow()
        )
        ids["officer2"] = second.id
    return ids


async def signed_in(base: str, name: str) -> Client:
    """A client signed in as ``name``."""
    client = Client(base)
    r = await client.sign_in(name)
    assert r.status == 303, r.status
    await client.get("/")
    return client
