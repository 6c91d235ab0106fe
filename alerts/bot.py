"""The Telegram bot's commands, by long polling (``getUpdates``) in ``alerts serve``.

``/start`` subscribes the chat (``/start fr`` picks the language; plain ``/start`` offers the
languages on an inline keyboard), ``/stop`` unsubscribes and suppresses the chat, ``/help``
explains. A chat that writes ``/start`` to the bot has opted in itself: Telegram vouches for
the chat id, so no confirmation round is needed. Chat ids are never logged above DEBUG.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from sqlalchemy import select
from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.error import TelegramError

from alerts import subscriptions
from alerts.contact_fields import ISO_639_1
from alerts.contacts import create_contact
from alerts.models import Contact
from alerts.suppressions import unsuppress
from alerts.timeutil import utcnow

if TYPE_CHECKING:
    from alerts.app import App

logger = logging.getLogger(__name__)

POLL_TIMEOUT = 25  # seconds a getUpdates call waits for news
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


async def subscribe_chat(app: App, chat_id: int, name: str, language: str) -> None:
    """Subscribe a chat (a new public contact, or the existing one active again)."""
    now = utcnow()
    async with app.sessions.begin() as session:
        contact = await session.scalar(select(Contact).where(Contact.telegram == str(chat_id)).limit(1))
        if contact is None:
            await create_contact(
                session,
                name=name[:200] or "Telegram subscriber",
                telegram=str(chat_id),
                kind="public",
                language=language,
                channels=["telegram"],
                now=now,
            )
        else:
            contact.status = "active"
            contact.language = language
            contact.updated_at = now
            await unsuppress(session, channel="telegram", address=str(chat_id))
    logger.info("a Telegram chat subscribed (%s)", language)


async def unsubscribe_chat(app: App, chat_id: int) -> str:
    """Unsubscribe a chat; returns the contact's language (English when unknown)."""
    async with app.sessions.begin() as session:
        contact = await session.scalar(select(Contact).where(Contact.telegram == str(chat_id)).limit(1))
        if contact is None:
            from alerts.states import SuppressionReason
            from alerts.suppressions import suppress

            await suppress(
                session,
                channel="telegram",
                address=str(chat_id),
                reason=SuppressionReason.UNSUBSCRIBED,
                detail="/stop",
                now=utcnow(),
            )
            return "en"
        await subscriptions.unsubscribe(session, contact, now=utcnow(), via="telegram")
        return contact.language


async def handle(app: App, bot: Bot, update: Update) -> None:
    """Answer one update."""
    if update.callback_query is not None:
        query = update.callback_query
        data = query.data or ""
        await query.answer()
        if data.startswith("lang:") and data[5:] in ISO_639_1 and query.message is not None:
            language = data[5:]
            chat = query.message.chat
            await subscribe_chat(app, chat.id, chat.full_name or chat.title or "", language)
            await bot.send_message(chat.id, _texts(language)[0])
        return
    message = update.message
    if message is None or not message.text:
        return
    command, _, arg = message.text.strip().partition(" ")
    command = command.split("@", 1)[0].lower()
    chat = message.chat
    if command == "/start":
        language = arg.strip().lower()
        if language in ISO_639_1:
            await subscribe_chat(app, chat.id, chat.full_name or chat.title or "", language)
            await bot.send_message(chat.id, _texts(language)[0])
            return
        keyboard = InlineKeyboardMarkup(
            [[InlineKeyboardButton(name, callback_data=f"lang:{code}") for code, name in NAMES.items()]]
        )
        await bot.send_message(chat.id, _texts("en")[3], reply_markup=keyboard)
    elif command == "/stop":
        language = await unsubscribe_chat(app, chat.id)
        await bot.send_message(chat.id, _texts(language)[1])
    else:
        await bot.send_message(chat.id, _texts("en")[2])


async def run_bot(app: App, stop: asyncio.Event, *, poll_timeout: int = POLL_TIMEOUT) -> None:
    """Long-poll the Bot API until ``stop`` is set; errors are logged and retried with a pause."""
    settings = app.settings.telegram
    bot = Bot(settings.token, base_url=settings.base_url)
    offset: int | None = None
    pause = 1.0
    async with bot:
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
                    await handle(app, bot, update)
                except Exception:  # one bad update must not stop the bot
                    logger.exception("Telegram update %s could not be handled", update.update_id)
