"""The Telegram bot's /start, /stop and /help by long polling against the loopback Bot API,
extended here with getUpdates and answerCallbackQuery."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from sqlalchemy import select

from alerts.app import open_app
from alerts.bot import run_bot
from alerts.config import Settings
from alerts.models import Contact, Suppression
from tests.botapi import BotApiServer, _serve


class Updates:
    """Updates the fake Bot API hands out once each, through getUpdates."""

    def __init__(self) -> None:
        self.queue: list[dict[str, Any]] = []
        self.next_id = 1
        self.answered: list[str] = []

    def message(self, chat_id: int, text: str) -> None:
        self.queue.append(
            {
                "update_id": self.next_id,
                "message": {
                    "message_id": self.next_id,
                    "date": int(time.time()),
                    "text": text,
                    "chat": {"id": chat_id, "type": "private", "first_name": "Ana"},
                    "from": {"id": chat_id, "is_bot": False, "first_name": "Ana"},
                },
            }
        )
        self.next_id += 1

    def callback(self, chat_id: int, data: str) -> None:
        self.queue.append(
            {
                "update_id": self.next_id,
                "callback_query": {
                    "id": str(self.next_id),
                    "chat_instance": "1",
                    "data": data,
                    "from": {"id": chat_id, "is_bot": False, "first_name": "Ana"},
                    "message": {
                        "message_id": 99,
                        "date": int(time.time()),
                        "text": "Choose",
                        "chat": {"id": chat_id, "type": "private", "first_name": "Ana"},
                    },
                },
            }
        )
        self.next_id += 1


@pytest.fixture
async def polled(botapi: BotApiServer) -> AsyncIterator[tuple[BotApiServer, Updates]]:
    """The botapi fixture's behaviour plus getUpdates / answerCallbackQuery."""
    updates = Updates()

    async def handle(request: web.Request) -> web.StreamResponse:
        method = request.match_info["method"]
        if method == "getUpdates":
            body = await request.read()
            params = json.loads(body) if body.startswith(b"{") else dict(await request.post())
            offset = int(params.get("offset") or 0)
            updates.queue = [u for u in updates.queue if u["update_id"] >= offset]
            if not updates.queue:
                await asyncio.sleep(0.05)
            return web.json_response({"ok": True, "result": updates.queue[:10]})
        if method == "answerCallbackQuery":
            updates.answered.append(method)
            return web.json_response({"ok": True, "result": True})
        return await botapi.handle(request)

    app = web.Application()
    app.router.add_post("/bot{token}/{method}", handle)
    runner, port = await _serve(app)
    server = BotApiServer(token=botapi.token, base_url=f"http://127.0.0.1:{port}/bot")
    server.calls = botapi.calls
    try:
        yield server, updates
    finally:
        await runner.cleanup()


async def _until(predicate: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not await predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def test_start_language_keyboard_stop_and_help(
    db_url: str, polled: tuple[BotApiServer, Updates]
) -> None:
    server, updates = polled
    settings = (
        Settings()
        .replace("database", url=db_url)
        .replace("telegram", token=server.token, base_url=server.base_url)
    )
    async with open_app(settings, channels={}) as app:
        stop = asyncio.Event()
        task = asyncio.create_task(run_bot(app, stop, poll_timeout=0))

        async def contact(chat: str) -> Contact | None:
            async with app.sessions() as session:
                return await session.scalar(select(Contact).where(Contact.telegram == chat))

        try:
            updates.message(4242, "/start fr")
            await _until(lambda: _has(contact, "4242", "active"))
            found = await contact("4242")
            assert found is not None and (found.kind, found.language, found.channels) == (
                "public",
                "fr",
                ["telegram"],
            )
            await _until(lambda: _sent(server, "4242", 1))
            assert server.sent("4242")[0].text.startswith("Vous êtes abonné")
            updates.message(5151, "/start")
            await _until(lambda: _sent(server, "5151", 1))
            keyboard = server.sent("5151")[0].params["reply_markup"]
            assert [b["callback_data"] for b in keyboard["inline_keyboard"][0]] == [
                "lang:en",
                "lang:fr",
                "lang:es",
            ]
            updates.callback(5151, "lang:es")
            await _until(lambda: _has(contact, "5151", "active"))
            assert (await contact("5151")).language == "es"  # type: ignore[union-attr]
            updates.message(4242, "/stop")
            await _until(lambda: _has(contact, "4242", "unsubscribed"))
            async with app.sessions() as session:
                rows = (
                    await session.execute(
                        select(Suppression.channel, Suppression.address_key, Suppression.reason)
                    )
                ).all()
            assert rows == [("telegram", "4242", "unsubscribed")]
            updates.message(4242, "/help")
            await _until(lambda: _sent(server, "4242", 3))
            assert server.sent("4242")[2].text.startswith("Commands: /start")
            updates.message(4242, "/start en")  # back again: the suppression is lifted
            await _until(lambda: _has(contact, "4242", "active"))
            async with app.sessions() as session:
                assert (await session.execute(select(Suppression))).all() == []
        finally:
            stop.set()
            await asyncio.wait_for(task, 5)


async def _has(contact: Any, chat: str, status: str) -> bool:
    found = await contact(chat)
    return found is not None and found.status == status


async def _sent(server: BotApiServer, chat: str, n: int) -> bool:
    return len(server.sent(chat)) >= n
