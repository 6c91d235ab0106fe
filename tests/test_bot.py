"""The Telegram bot's /start, /stop and /help by long polling against the loopback Bot API,
extended here with getUpdates, answerCallbackQuery and getChatMember."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from aiohttp import web
from sqlalchemy import select

from alerts.app import App, open_app
from alerts.bot import run_bot
from alerts.core.config import Settings
from alerts.store.models import Contact, Suppression
from channels.telegram import TelegramChannel
from tests.botapi import BotApiServer, _serve


class Updates:
    """Updates the fake Bot API hands out once each, through getUpdates."""

    def __init__(self) -> None:
        self.queue: list[dict[str, Any]] = []
        self.next_id = 1
        self.answered: list[str] = []
        self.handled = 0  # updates handed out and then acknowledged by a later offset
        self.statuses: dict[tuple[int, int], str] = {}  # (chat, user) -> getChatMember status
        self.member_calls: list[tuple[int, int]] = []

    @staticmethod
    def _chat(chat_id: int, kind: str) -> dict[str, Any]:
        if kind == "private":
            return {"id": chat_id, "type": "private", "first_name": "Ana"}
        return {"id": chat_id, "type": kind, "title": "Partners"}

    def message(self, chat_id: int, text: str, *, kind: str = "private", sender: int | None = None) -> None:
        sender = chat_id if sender is None else sender
        self.queue.append(
            {
                "update_id": self.next_id,
                "message": {
                    "message_id": self.next_id,
                    "date": int(time.time()),
                    "text": text,
                    "chat": self._chat(chat_id, kind),
                    "from": {"id": sender, "is_bot": False, "first_name": "Ana"},
                },
            }
        )
        self.next_id += 1

    def callback(self, chat_id: int, data: str, *, kind: str = "private", sender: int | None = None) -> None:
        sender = chat_id if sender is None else sender
        self.queue.append(
            {
                "update_id": self.next_id,
                "callback_query": {
                    "id": str(self.next_id),
                    "chat_instance": "1",
                    "data": data,
                    "from": {"id": sender, "is_bot": False, "first_name": "Ana"},
                    "message": {
                        "message_id": 99,
                        "date": int(time.time()),
                        "text": "Choose",
                        "chat": self._chat(chat_id, kind),
                    },
                },
            }
        )
        self.next_id += 1

    def member(self, chat_id: int, user_id: int) -> dict[str, Any]:
        """A getChatMember result: the status set in ``statuses``, else a plain member."""
        self.member_calls.append((chat_id, user_id))
        status = self.statuses.get((chat_id, user_id), "member")
        user = {"id": user_id, "is_bot": False, "first_name": "Ana"}
        if status == "creator":
            return {"status": status, "user": user, "is_anonymous": False}
        if status == "administrator":
            rights = (
                "can_be_edited can_manage_chat can_delete_messages can_manage_video_chats "
                "can_restrict_members can_promote_members can_change_info can_invite_users "
                "can_post_stories can_edit_stories can_delete_stories"
            )
            return {"status": status, "user": user, "is_anonymous": False} | dict.fromkeys(
                rights.split(), False
            )
        return {"status": status, "user": user}


@asynccontextmanager
async def polled_server(botapi: BotApiServer) -> AsyncIterator[tuple[BotApiServer, Updates]]:
    """A Bot API with ``botapi``'s behaviour (and its record of calls) plus getUpdates,
    answerCallbackQuery and getChatMember, fed from the returned ``Updates``."""
    updates = Updates()

    async def handle(request: web.Request) -> web.StreamResponse:
        method = request.match_info["method"]
        if method == "getUpdates":
            body = await request.read()
            params = json.loads(body) if body.startswith(b"{") else dict(await request.post())
            offset = int(params.get("offset") or 0)
            updates.handled = max(updates.handled, offset - 1)
            updates.queue = [u for u in updates.queue if u["update_id"] >= offset]
            if not updates.queue:
                await asyncio.sleep(0.05)
            return web.json_response({"ok": True, "result": updates.queue[:10]})
        if method == "answerCallbackQuery":
            updates.answered.append(method)
            return web.json_response({"ok": True, "result": True})
        if method == "getChatMember":
            body = await request.read()
            params = json.loads(body) if body.startswith(b"{") else dict(await request.post())
            result = updates.member(int(params["chat_id"]), int(params["user_id"]))
            return web.json_response({"ok": True, "result": result})
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


@pytest.fixture
async def polled(botapi: BotApiServer) -> AsyncIterator[tuple[BotApiServer, Updates]]:
    """The botapi fixture's behaviour plus getUpdates / answerCallbackQuery."""
    async with polled_server(botapi) as found:
        yield found


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
        task = asyncio.create_task(run_bot(app, stop, poll_timeout=0, reply_interval=0))

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


@asynccontextmanager
async def bot_running(
    db_url: str, server: BotApiServer, *, with_channel: bool = False, reply_interval: float = 0
) -> AsyncIterator[App]:
    """The bot polling ``server`` (with the Telegram channel open in the same process if asked)."""
    settings = (
        Settings()
        .replace("database", url=db_url)
        .replace("telegram", token=server.token, base_url=server.base_url)
    )
    channels = {"telegram": TelegramChannel(settings.telegram)} if with_channel else {}
    async with open_app(settings, channels=channels) as app:
        stop = asyncio.Event()
        task = asyncio.create_task(run_bot(app, stop, poll_timeout=0, reply_interval=reply_interval))
        try:
            yield app
        finally:
            stop.set()
            await asyncio.wait_for(task, 5)


async def _handled(updates: Updates) -> None:
    """Until every update queued so far has been handled (acknowledged by a later offset)."""
    last = updates.next_id - 1

    async def done() -> bool:
        return updates.handled >= last

    await _until(done)


async def _status(app: App, chat: str) -> str | None:
    async with app.sessions() as session:
        return await session.scalar(select(Contact.status).where(Contact.telegram == chat))


async def test_no_answer_to_text_unknown_commands_or_other_bots(
    db_url: str, polled: tuple[BotApiServer, Updates]
) -> None:
    server, updates = polled
    async with bot_running(db_url, server) as app:
        for text in ("hello", "/unknown", "/start@another_bot en", "/help@another_bot", "start en"):
            updates.message(77, text)
        await _handled(updates)
        assert server.sent("77") == []
        assert await _status(app, "77") is None
        updates.message(77, "/help@Alerts_Test_Bot")  # addressed to us
        await _until(lambda: _sent(server, "77", 1))
        await _handled(updates)
        assert [c.text[:9] for c in server.sent("77")] == ["Commands:"]


async def test_in_groups_only_administrators_start_and_stop(
    db_url: str, polled: tuple[BotApiServer, Updates]
) -> None:
    server, updates = polled
    group, member, admin, owner = -100500, 11, 12, 13
    updates.statuses[(group, admin)] = "administrator"
    updates.statuses[(group, owner)] = "creator"
    async with bot_running(db_url, server) as app:
        updates.message(group, "/start en", kind="supergroup", sender=member)
        updates.message(group, "/start", kind="group", sender=member)
        updates.callback(group, "lang:fr", kind="supergroup", sender=member)
        await _handled(updates)
        assert await _status(app, str(group)) is None and server.sent(str(group)) == []
        assert (group, member) in updates.member_calls
        updates.message(group, "/start en", kind="supergroup", sender=admin)
        await _until(lambda: _sent(server, str(group), 1))
        assert await _status(app, str(group)) == "active"
        updates.message(group, "/stop", kind="supergroup", sender=member)
        await _handled(updates)
        assert await _status(app, str(group)) == "active" and len(server.sent(str(group))) == 1
        updates.message(group, "/stop", kind="supergroup", sender=owner)
        await _until(lambda: _sent(server, str(group), 2))
        assert await _status(app, str(group)) == "unsubscribed"
        updates.callback(group, "lang:es", kind="supergroup", sender=admin)
        await _until(lambda: _sent(server, str(group), 3))
        assert await _status(app, str(group)) == "active"


async def test_at_most_one_reply_per_chat_per_two_seconds(
    db_url: str, polled: tuple[BotApiServer, Updates]
) -> None:
    server, updates = polled
    async with bot_running(db_url, server, reply_interval=2.0) as app:
        updates.message(88, "/start en")
        for _ in range(3):
            updates.message(88, "/help")
        updates.message(99, "/help")  # another chat is not held up
        await _handled(updates)
        await _until(lambda: _sent(server, "99", 1))
        assert [c.text[:7] for c in server.sent("88")] == ["You are"]
        assert await _status(app, "88") == "active"  # the command itself was carried out
        await asyncio.sleep(2.1)
        updates.message(88, "/help")
        await _until(lambda: _sent(server, "88", 2))


async def test_replies_wait_for_the_telegram_channels_rate_limit(
    db_url: str, polled: tuple[BotApiServer, Updates]
) -> None:
    server, updates = polled
    async with bot_running(db_url, server, with_channel=True) as app:
        channel = app.channels["telegram"]
        assert isinstance(channel, TelegramChannel)
        start = time.monotonic()
        channel._pacer.pause(0.8)  # flood control reported to the channel's sends
        updates.message(66, "/help")
        await _until(lambda: _sent(server, "66", 1))
        assert server.sent("66")[0].at - start >= 0.75
