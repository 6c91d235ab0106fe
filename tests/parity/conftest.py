"""Every face of one running service, for the parity tests.

``faces`` is one App on a real database with its email channel delivering to a recording SMTP
server (``faces.smtp``) and its Telegram channel talking to the loopback Bot API
(``faces.bot_api``). Around it:

- ``faces.api(user, method, path, json=…)``: the JSON API with that user's bearer token;
- ``faces.page(user)``: a browser-like client signed in to the officers' pages (CSRF handled);
- ``faces.public``: a client with no session, for the public pages;
- ``faces.cli(*args)``: ``python -m alerts`` in a child process on the same database, SMTP
  server and Bot API (the CLI opens its own App, as a real one would);

Staff: one user per role named after it (admin, officer, reviewer, viewer) plus ``officer2`` and
``reviewer2``, each with PASSWORD, an email at ``<name>@localhost`` and an API token. The
reviewers also have a Telegram chat (``reviewer`` → 9001, ``reviewer2`` → 9002).

A parity test runs one action through each face on a fresh alert or contact, then asserts the
same end state: the rows a user would see, the audit entry, and what reached the recording
servers.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from alerts.accounts import users
from alerts.app import App
from alerts.cli.capture import CaptureServer
from alerts.core.clock import utcnow
from tests.botapi import BotApiServer
from tests.test_cli import CLI, Run
from tests.web import PASSWORD, Client, running, signed_in

SECRET = "parity-test-secret-0123456789"
STAFF = {
    "admin": "admin",
    "officer": "officer",
    "officer2": "officer",
    "reviewer": "reviewer",
    "reviewer2": "reviewer",
    "viewer": "viewer",
}
TELEGRAM_CHATS = {"reviewer": "9001", "reviewer2": "9002"}


@dataclass
class Faces:
    """One service and every face onto it (see the module docstring)."""

    app: App
    base: str
    smtp: CaptureServer
    bot_api: BotApiServer
    env: dict[str, str]
    cwd: Path
    tokens: dict[str, str] = field(default_factory=dict)
    user_ids: dict[str, int] = field(default_factory=dict)
    _pages: dict[str, Client] = field(default_factory=dict)
    _http: aiohttp.ClientSession | None = None

    async def api(
        self, user: str | None, method: str, path: str, *, json: Any = None, **kw: Any
    ) -> tuple[int, Any]:
        """(status, decoded body) of one API request as ``user`` (None: no token)."""
        if self._http is None:
            self._http = aiohttp.ClientSession()
        headers = dict(kw.pop("headers", {}))
        if user is not None:
            headers["Authorization"] = f"Bearer {self.tokens[user]}"
        url = self.base + "/api/v1" + path
        async with self._http.request(method, url, json=json, headers=headers, **kw) as r:
            body = await r.json() if r.content_type == "application/json" else await r.text()
            return r.status, body

    async def page(self, user: str) -> Client:
        """A client signed in to the officers' pages as ``user`` (one per user, reused)."""
        if user not in self._pages:
            self._pages[user] = await signed_in(self.base, user)
        return self._pages[user]

    @property
    def public(self) -> Client:
        """A client without a session."""
        if "" not in self._pages:
            self._pages[""] = Client(self.base)
        return self._pages[""]

    async def cli(self, *args: str, stdin: bytes | None = None) -> Run:
        """``alerts ARGS…`` in a child process on this service's database and servers."""
        runner = CLI(str(self.app.settings.database.url), self.cwd)
        runner.env = self.env
        return await runner(*args, stdin=stdin)

    async def close(self) -> None:
        """Close the clients."""
        for client in self._pages.values():
            await client.close()
        if self._http is not None:
            await self._http.close()


@pytest.fixture
async def faces(db_url: str, tmp_path: Path, botapi: BotApiServer) -> AsyncIterator[Faces]:
    """The service with every face (see the module docstring)."""
    env = {
        **os.environ,
        "ALERTS_DATABASE_URL": db_url,
        "ALERTS_SERVER_SECRET_KEY": SECRET,
        "ALERTS_SERVER_PUBLIC_URL": "http://alerts.test",
        "ALERTS_TELEGRAM_TOKEN": botapi.token,
        "ALERTS_TELEGRAM_BASE_URL": botapi.base_url,
        "ALERTS_DISPATCHER_FLUSH_INTERVAL": "0.01",
    }
    env.pop("ALERTS_CONFIG", None)
    async with CaptureServer() as smtp:
        env["ALERTS_EMAIL_HOST"] = "127.0.0.1"
        env["ALERTS_EMAIL_PORT"] = str(smtp.port)
        telegram = {"token": botapi.token, "base_url": botapi.base_url, "per_chat_interval": 0.0}
        async with running(
            db_url, capture=smtp, telegram=telegram, secret_key=SECRET, public_url="http://alerts.test"
        ) as (app, base):
            faces = Faces(app=app, base=base, smtp=smtp, bot_api=botapi, env=env, cwd=tmp_path)
            async with app.sessions.begin() as session:
                for name, role in STAFF.items():
                    user, token = await users.create_user(
                        session,
                        name=name,
                        role=role,
                        password=PASSWORD,
                        email=f"{name}@localhost",
                        telegram=TELEGRAM_CHATS.get(name),
                        with_token=True,
                        now=utcnow(),
                    )
                    assert token is not None
                    faces.tokens[name] = token
                    faces.user_ids[name] = user.id
            try:
                yield faces
            finally:
                await faces.close()
