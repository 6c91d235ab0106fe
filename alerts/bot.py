"""The Telegram bot's commands, by long polling (``getUpdates``) in ``alerts serve``.

``/start`` subscribes the chat (``/start fr`` picks the language; plain ``/start`` offers the
languages on an inline keyboard), ``/stop`` stops that chat only (a partner's email on the
same contact keeps receiving), ``/help`` explains; both are the actions
``alerts.actions.subscriptions.start_chat`` / ``stop_chat``.

A chat that writes ``/start`` to the bot has opted in itself: Telegram vouches for
the chat id, so no confirmation round is needed. Chat ids are never logged above DEBUG.

Anything else (other commands, plain text, commands for another bot) gets no answer. In a
group, only its administrators (``getChatMember``: creator or administrator) may ``/start``,
``/stop`` or pick the language; anyone else is ignored. Replies go out within the Telegram
channel's own rate limits when it runs in this process (one ``RetryAfter`` pauses both), and
a chat gets at most one reply per ``REPLY_INTERVAL`` seconds: more are dropped, so nobody can
make the bot spend its sending budget by writing to it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from telegram import Bot, Chat, ChatMember, InlineKeyboardButton, InlineKeyboardMarkup, Update, User
from telegram.error import RetryAfter, TelegramError

from alerts.actions.subscriptions import start_chat, stop_chat
from alerts.contacts.fields import ISO_639_1
from channels.ratelimit import Pacer, PerKeyInterval
from channels.telegram import TelegramChannel
from channels.telegram_http import AiohttpRequest

if TYPE_CHECKING:
    from alerts.app import App

logger = logging.getLogger(__name__)

POLL_TIMEOUT = 25  # seconds a getUpdates call waits for news
REPLY_INTERVAL = 2.0  # seconds: at most one reply per chat in this time (more are dropped)
GROUPS = (Chat.GROUP, Chat.SUPERGROUP)
ADMINS = (ChatMember.OWNER, ChatMember.ADMINISTRATOR)
TEXTS = {
    "en": (
        "You are subscribed to urgent alerts. Send /stop at any time to unsubscribe.",
        "You are unsubscribed: you will receive nothing more. Send /start to subscribe again.",
        "Commands: /start [language] to subscribe, /stop to unsubscribe, /help for this message.",
        "Choose your language:",
    ),
    "fr": (
        "Vous êtes abonné·e aux alertes urgentes. Envoyez /stop à tout moment pour vous désabonner.",
        "Vous êtes désabonné·e : vous ne recevrez plus rien. Envoyez /start pour vous réabonner.",
        "Commandes : /start [langue] pour s'abonner, /stop pour se désabonner, /help pour ce message.",
        "Choisissez votre langue :",
    ),
    "es": (
        "Está suscrito a las alertas urgentes. Envíe /stop en cualquier momento para darse de baja.",
        "Se ha dado de baja: no recibirá nada más. Envíe /start para suscribirse de nuevo.",
        "Comandos: /start [idioma] para suscribirse, /stop para darse de baja, /help para este mensaje.",
        "Elija su idioma:",
    ),
}
NAMES = {"en": "English", "fr": "Français", "es": "Español"}


def _texts(language: str) -> tuple[str, str, str, str]:
    return TEXTS.get(language, TEXTS["en"])


class Replies:
    """The bot's replies: at most one per chat per ``interval``, within ``pacer`` and ``chats``
    (the Telegram channel's limits when it runs in this process)."""

    MAX_CHATS = 10_000  # chats remembered for the per-chat interval (memory bound)

    def __init__(
        self,
        bot: Bot,
        *,
        pacer: Pacer,
        chats: PerKeyInterval,
        interval: float = REPLY_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.bot = bot
        self.pacer = pacer
        self.chats = chats
        self.interval = interval
        self.clock = clock
        self._last: dict[int, float] = {}

    @classmethod
    def for_app(cls, app: App, bot: Bot, *, interval: float = REPLY_INTERVAL) -> Replies:
        """Through the app's Telegram channel (its bot and limits), or ``bot`` with limits of its own."""
        channel = app.channels.get("telegram")
        shared = channel.shared_limits() if isinstance(channel, TelegramChannel) else None
        if shared is not None:
            bot, pacer, chats = shared
            return cls(bot, pacer=pacer, chats=chats, interval=interval)
        settings = app.settings.telegram
        return cls(
            bot,
            pacer=Pacer(settings.rate_per_second),
            chats=PerKeyInterval(settings.per_chat_interval),
            interval=interval,
        )

    def _allowed(self, chat_id: int) -> bool:
        now = self.clock()
        last = self._last.get(chat_id)
        if last is not None and now - last < self.interval:
            return False
        if len(self._last) >= self.MAX_CHATS:
            self._last = {c: t for c, t in self._last.items() if now - t < self.interval}
        self._last[chat_id] = now
        return True

    async def send(self, chat_id: int, text: str, **kw: Any) -> None:
        """Send a reply, unless this chat had one less than ``interval`` ago (then drop it)."""
        if not self._allowed(chat_id):
            logger.debug("reply to Telegram chat %s dropped: one in the last %.0f s", chat_id, self.interval)
            return
        async with self.chats.hold(chat_id):
            await self.pacer.wait()
            try:
                await self.bot.send_message(chat_id, text, **kw)
            except RetryAfter as exc:
                value = exc.retry_after
                seconds = value if isinstance(value, int | float) else value.total_seconds()
                self.pacer.pause(float(seconds))
                logger.warning("Telegram flood control on a reply: pausing all sends for %.1f s", seconds)
                raise


async def may_manage(bot: Bot, chat: Chat, user: User | None, sender_chat: Chat | None = None) -> bool:
    """Whether this sender may subscribe or unsubscribe the chat: anyone in a private chat,
    only an administrator (or the group itself, an anonymous administrator) in a group."""
    if chat.type not in GROUPS:
        return True
    if sender_chat is not None and sender_chat.id == chat.id:
        return True  # an anonymous administrator writes as the group
    if user is None:
        return False
    try:
        member = await bot.get_chat_member(chat.id, user.id)
    except TelegramError as exc:
        logger.info("Telegram getChatMember failed (%s): command ignored", type(exc).__name__)
        return False
    return member.status in ADMINS


def _for_us(bot: Bot, command: str) -> tuple[bool, str]:
    """(whether ``/cmd@name`` is addressed to this bot, the bare lower-case command)."""
    bare, _, name = command.partition("@")
    if not name:
        return True, bare.lower()
    try:
        mine = bot.username
    except RuntimeError:  # not initialised: no getMe yet
        return True, bare.lower()
    return name.lower() == (mine or "").lower(), bare.lower()


async def handle(app: App, bot: Bot, update: Update, replies: Replies | None = None) -> None:
    """Answer one update (replies through ``replies``; by default, limits of its own)."""
    if replies is None:
        replies = Replies.for_app(app, bot)
    if update.callback_query is not None:
        query = update.callback_query
        data = query.data or ""
        await query.answer()
        if data.startswith("lang:") and data[5:] in ISO_639_1 and query.message is not None:
            language = data[5:]
            chat = query.message.chat
            if not await may_manage(bot, chat, query.from_user):
                return
            await start_chat(app, chat_id=chat.id, name=chat.full_name or chat.title or "", language=language)
            await replies.send(chat.id, _texts(language)[0])
        return
    message = update.message
    if message is None or not message.text or not message.text.startswith("/"):
        return  # plain text: no answer
    command, _, arg = message.text.strip().partition(" ")
    ours, command = _for_us(bot, command)
    if not ours or command not in ("/start", "/stop", "/help"):
        return  # another bot's command, or one we do not know: no answer
    chat = message.chat
    if command in ("/start", "/stop") and not await may_manage(
        bot, chat, message.from_user, message.sender_chat
    ):
        logger.debug("Telegram %s in group %s by a non-administrator: ignored", command, chat.id)
        return
    if command == "/start":
        language = arg.strip().lower()
        if language in ISO_639_1:
            await start_chat(app, chat_id=chat.id, name=chat.full_name or chat.title or "", language=language)
            await replies.send(chat.id, _texts(language)[0])
            return
        keyboard = InlineKeyboardMarkup(
            [[InlineKeyboardButton(name, callback_data=f"lang:{code}") for code, name in NAMES.items()]]
        )
        await replies.send(chat.id, _texts("en")[3], reply_markup=keyboard)
    elif command == "/stop":
        language = await stop_chat(app, chat_id=chat.id)
        await replies.send(chat.id, _texts(language)[1])
    else:
        await replies.send(chat.id, _texts("en")[2])


async def run_bot(
    app: App,
    stop: asyncio.Event,
    *,
    poll_timeout: int = POLL_TIMEOUT,
    reply_interval: float = REPLY_INTERVAL,
) -> None:
    """Long-poll the Bot API until ``stop`` is set; errors are logged and retried with a pause."""
    settings = app.settings.telegram
    bot = Bot(
        settings.token,
        base_url=settings.base_url,
        request=AiohttpRequest(connection_pool_size=2),
        get_updates_request=AiohttpRequest(connection_pool_size=1),
    )
    offset: int | None = None
    pause = 1.0
    async with bot:
        replies = Replies.for_app(app, bot, interval=reply_interval)
        while not stop.is_set():
            try:
                updates = await bot.get_updates(
                    offset=offset, timeout=poll_timeout, allowed_updates=["message", "callback_query"]
                )
                pause = 1.0
            except TelegramError as exc:
                logger.warning(
                    "Telegram getUpdates failed: %s; retrying in %.0f s", type(exc).__name__, pause
                )
                try:
                    await asyncio.wait_for(stop.wait(), pause)
                except TimeoutError:
                    pass
                pause = min(pause * 2, 60.0)
                continue
            for update in updates:
                offset = update.update_id + 1
                try:
                    await handle(app, bot, update, replies)
                except Exception:  # one bad update must not stop the bot
                    logger.exception("Telegram update %s could not be handled", update.update_id)
