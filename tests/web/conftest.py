"""Fixtures for the web tests: a real in-process server on a real database, users with tokens."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from sqlalchemy import func, select

from alerts.accounts import users
from alerts.app import App, open_app
from alerts.core.clock import utcnow
from alerts.core.config import Settings
from alerts.store.models import Base
from alerts.web import make_web_app

SECRET = "test-secret-key-0123456789"
ROLES = {"ada": "admin", "olga": "officer", "omar": "officer", "rafael": "reviewer", "vera": "viewer"}


@dataclass
class Site:
    """A running web app and a client for it."""

    app: App
    base: str
    http: aiohttp.ClientSession
    tokens: dict[str, str] = field(default_factory=dict)

    def auth(self, name: str) -> dict[str, str]:
        """The Authorization header of a user."""
        return {"Authorization": f"Bearer {self.tokens[name]}"}

    async def call(self, method: str, path: str, *, user: str | None = None, **kw: Any) -> tuple[int, Any]:
        """(status, decoded JSON body) of one request."""
        headers = dict(kw.pop("headers", {}))
        if user is not None:
            headers.update(self.auth(user))
        async with self.http.request(method, self.base + path, headers=headers, **kw) as r:
            body = await r.json() if r.content_type == "application/json" else await r.text()
            return r.status, body


#: Tables a refused request may write to: a failed sign-in, or a subscribe request held back, is
#: recorded there on purpose (the limits count it), and nothing else changes.
LIMIT_TABLES = frozenset({"sign_in_attempts", "subscribe_attempts"})


async def row_counts(app: App) -> dict[str, int]:
    """Rows in every table but ``LIMIT_TABLES``: compared before and after a refused request."""
    out = {}
    async with app.sessions() as session:
        for table in Base.metadata.sorted_tables:
            if table.name in LIMIT_TABLES:
                continue
            out[table.name] = int(await session.scalar(select(func.count()).select_from(table)) or 0)
    return out


def site_settings(db_url: str, **server: Any) -> Settings:
    """Settings for a test server (the public URL is fixed so links are predictable)."""
    return (
        Settings()
        .replace("database", url=db_url)
        .replace("server", secret_key=SECRET, public_url="http://alerts.test", **server)
    )


@pytest.fixture
async def site(db_url: str) -> AsyncIterator[Site]:
    """The web app (no channels) with one user per role, each with an API token."""
    async with open_app(site_settings(db_url), channels={}) as app:
        async with app.sessions.begin() as session:
            tokens = {}
            for name, role in ROLES.items():
                _, token = await users.create_user(
                    session, name=name, role=role, with_token=True, now=utcnow()
                )
                assert token is not None
                tokens[name] = token
        server = TestServer(make_web_app(app))
        await server.start_server()
        async with aiohttp.ClientSession() as http:
            yield Site(app=app, base=str(server.make_url("")).rstrip("/"), http=http, tokens=tokens)
        await server.close()
