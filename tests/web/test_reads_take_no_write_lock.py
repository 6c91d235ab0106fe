"""Pages and GET handlers read in read sessions: on SQLite they never wait for the write lock
(a send's claimer and recorder hold it in turns), and a write put in a read session by mistake
fails on both databases instead of taking the lock."""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

import aiohttp
import pytest
from sqlalchemy import select, update
from sqlalchemy.exc import DBAPIError

from alerts.accounts import users
from alerts.app import App
from alerts.cli import commands_read
from alerts.compose import approval
from alerts.core.clock import utcnow
from alerts.core.config import Settings
from alerts.core.states import AlertStatus
from alerts.delivery.publish import publish
from alerts.store.db import is_sqlite
from alerts.store.models import Delivery, User
from tests.factories import add_contacts, approved_alert
from tests.web import Client, P, make_staff, running, signed_in

#: A read answers at once; waiting for the lock would take up to busy_timeout (30 s).
BUDGET = 3.0


@pytest.fixture
async def web(db_url: str) -> AsyncIterator[tuple[App, str, str, int, Client]]:
    """The site with staff, the officer's API token, a public alert sent, and a signed-in officer."""
    async with running(db_url, public_url="http://alerts.test") as (app, base):
        await make_staff(app)
        async with app.sessions.begin() as session:
            officer = await users.get_user(session, "officer")
            reviewer = await users.get_user(session, "reviewer")
            token = await users.new_token(session, officer, now=utcnow())
            await add_contacts(session, 2, kind="public")
            alert = await approved_alert(
                session, author=officer, reviewer=reviewer, lists=(), kinds=("public",)
            )
            alert.is_public = True
            await approval.record_consent(session, alert, user=reviewer, scope="public", now=utcnow())
            await publish(session, alert, now=utcnow())
            await session.execute(update(Delivery).where(Delivery.alert_id == alert.id).values(state="sent"))
            await approval.set_status(session, alert, AlertStatus.SENT, user=None, now=utcnow())
            alert_id = alert.id
        client = await signed_in(base, "officer")  # signing in writes: before the lock is taken
        try:
            yield app, base, token, alert_id, client
        finally:
            await client.close()


@contextmanager
def write_lock_held(db_url: str) -> Iterator[None]:
    """Another connection holds SQLite's write lock (as a send's recorder does) meanwhile."""
    other = sqlite3.connect(db_url.split("///", 1)[1], isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        yield
    finally:
        other.rollback()
        other.close()


async def answered(call: Awaitable[Any]) -> tuple[bool, Any]:
    """(True, its result) when ``call`` answers within BUDGET; (False, None) when it waits."""
    started = time.monotonic()
    try:
        result = await asyncio.wait_for(call, BUDGET)
    except TimeoutError:
        return False, None
    return time.monotonic() - started < BUDGET, result


async def api_get(base: str, path: str, token: str) -> tuple[int, str]:
    async with (
        aiohttp.ClientSession() as http,
        http.get(base + path, headers={"Authorization": f"Bearer {token}"}) as r,
    ):
        return r.status, await r.text()


async def test_pages_and_reads_answer_while_another_connection_holds_the_write_lock(
    web: tuple[App, str, str, int, Client], db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    if not is_sqlite(db_url):
        pytest.skip("SQLite's one write lock; PostgreSQL readers never wait for writers")
    _, base, token, alert_id, client = web
    settings = Settings().replace("database", url=db_url)
    reads: dict[str, Callable[[], Awaitable[Any]]] = {
        "API stats": lambda: api_get(base, f"/api/v1/alerts/{alert_id}/stats", token),
        "API alert": lambda: api_get(base, f"/api/v1/alerts/{alert_id}", token),
        "API deliveries": lambda: api_get(base, f"/api/v1/alerts/{alert_id}/deliveries", token),
        "board": lambda: client.get("/"),
        "alert page": lambda: client.get(f"{P}/alerts/{alert_id}"),
        "deliveries page": lambda: client.get(f"{P}/alerts/{alert_id}/deliveries"),
        "follow-ups page": lambda: client.get(f"{P}/followups"),
        "public archive": lambda: client.get("/alerts"),
        "public alert": lambda: client.get(f"/alerts/{alert_id}"),
        "public feed": lambda: client.get("/feed.atom"),
        "alerts alert status": lambda: commands_read.alert_status(
            argparse.Namespace(id=alert_id, json=True), settings
        ),
    }
    waited, results = [], {}
    with write_lock_held(db_url):
        for name, read in reads.items():
            ok, results[name] = await answered(read())
            if not ok:
                waited.append(name)
    assert waited == [], f"these waited for the write lock: {waited}"
    for name, result in results.items():
        if name == "alerts alert status":
            assert result == 0
            assert json.loads(capsys.readouterr().out)["id"] == alert_id
        else:
            status, body = result
            assert status == 200, (name, body[:500])
    assert json.loads(results["API stats"][1])["total"] == 2
    assert f"{P}/alerts/{alert_id}" in results["board"][1]


async def test_a_write_in_a_read_session_fails(
    web: tuple[App, str, str, int, Client],
) -> None:
    app = web[0]
    async with app.reads() as session:
        with pytest.raises(DBAPIError, match="read-?only"):
            await session.execute(update(User).where(User.name == "officer").values(email="x@example.org"))
    async with app.reads() as session:  # the connection's next read transaction still reads
        assert await session.scalar(select(User.email).where(User.name == "officer")) == "officer@localhost"
    async with app.sessions.begin() as session:  # and writers still write, on the same pool
        await session.execute(update(User).where(User.name == "officer").values(email="o@example.org"))
    async with app.reads() as session:
        assert await session.scalar(select(User.email).where(User.name == "officer")) == "o@example.org"
