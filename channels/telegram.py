"""Telegram: python-telegram-bot ``Bot`` with global and per-chat rate limits; errors → Outcome."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import warnings
from datetime import timedelta
from typing import ClassVar

from telegram import Bot, LinkPreviewOptions, Message, ReplyParameters
from telegram.constants import ParseMode
from telegram.error import (
    BadRequest,
    ChatMigrated,
    Forbidden,
    NetworkError,
    RetryAfter,
    TelegramError,
    TimedOut,
)
from telegram.warnings import PTBDeprecationWarning

from alerts.core.config import TelegramSettings
from alerts.core.errors import ConfigError, ValidationError
from alerts.core.states import SuppressionReason
from alerts.core.telegram import first_message_id, join_parts, parse_chat, split_message
from alerts.core.types import Outcome, OutcomeKind, RenderedMessage
from channels.ratelimit import Pacer, PerKeyInterval
from channels.telegram_http import AiohttpRequest, ConnectTimedOut

logger = logging.getLogger(__name__)

#: Telegram allows ~1,000 messages/s to a bot sending with ``allow_paid_broadcast``.
PAID_BROADCAST_RATE = 1000.0


_Rule = tuple[type[TelegramError], str, OutcomeKind, SuppressionReason | None]


def parse_chat_id(address: str) -> int | str:
    """A contact's Telegram address as the Bot API takes it: a numeric chat id or an @channel name
    (the one rule, ``alerts.core.telegram``; ValidationError otherwise)."""
    return parse_chat(address)


class TelegramChannel:
    """Sends HTML text messages through the Bot API, within Telegram's rate limits."""

    name: ClassVar[str] = "telegram"

    #: Error → outcome. The first rule whose class matches and whose text occurs in the
    #: error's description (compared in lower case; "" matches any) decides. Subclasses come
    #: before their bases: BadRequest and TimedOut are NetworkErrors. Errors that carry data
    #: are handled in ``_classify``: RetryAfter (TRANSIENT, pauses the bot) and ChatMigrated
    #: (sent again once to the new chat). Anything else (InvalidToken, Conflict…) propagates.
    OUTCOMES: ClassVar[tuple[_Rule, ...]] = (
        (Forbidden, "bot was blocked by the user", OutcomeKind.PERMANENT, SuppressionReason.BLOCKED),
        (Forbidden, "user is deactivated", OutcomeKind.PERMANENT, SuppressionReason.BLOCKED),
        (Forbidden, "bot was kicked", OutcomeKind.PERMANENT, SuppressionReason.BLOCKED),
        (Forbidden, "", OutcomeKind.PERMANENT, None),  # e.g. "bot can't initiate conversation"
        (BadRequest, "chat not found", OutcomeKind.PERMANENT, None),
        (BadRequest, "", OutcomeKind.PERMANENT, None),  # message too long, bad HTML…
        (TimedOut, "", OutcomeKind.UNKNOWN, None),  # the request may have reached Telegram
        (NetworkError, "", OutcomeKind.TRANSIENT, None),  # connection errors, HTTP 5xx
    )

    def __init__(self, options: TelegramSettings, *, timeout: float = 10.0) -> None:
        self.options = options
        self.timeout = timeout
        rate = options.rate_per_second
        if options.allow_paid_broadcast:
            rate = max(rate, PAID_BROADCAST_RATE)
        self.rate = rate
        self._pacer = Pacer(rate)
        self._chats = PerKeyInterval(options.per_chat_interval)
        self._slots = asyncio.Semaphore(max(1, options.concurrency))
        self._requests: tuple[AiohttpRequest, ...] = ()
        self._bot: Bot | None = None

    def shared_limits(self) -> tuple[Bot, Pacer, PerKeyInterval] | None:
        """The open bot and its rate limiters, for other senders on the same token (the
        subscribers' bot replies) so that they count against the same Telegram limits."""
        return None if self._bot is None else (self._bot, self._pacer, self._chats)

    async def open(self) -> None:
        """Create the bot and its HTTP connection pool (no network call is made here)."""
        if not self.options.token:
            raise ConfigError(
                "[telegram] token is empty: set it in the config file or ALERTS_TELEGRAM_TOKEN.",
                details={"key": "telegram.token"},
            )
        # PTB 22 warns, whenever Telegram answers 429, that ``RetryAfter.retry_after`` will become
        # a timedelta; ``_retry_after`` reads both forms, so the warning is only noise.
        warnings.filterwarnings(
            "ignore", message=r".*attribute `retry_after` will be of type", category=PTBDeprecationWarning
        )
        # One connection per concurrent send: more only slows python-telegram-bot down.
        request = AiohttpRequest(connection_pool_size=self.options.concurrency, timeout=self.timeout)
        updates_request = AiohttpRequest(connection_pool_size=1)  # unused: we never poll updates
        self._requests = (request, updates_request)
        for req in self._requests:
            await req.initialize()
        self._bot = Bot(
            self.options.token,
            base_url=self.options.base_url,
            request=request,
            get_updates_request=updates_request,
        )

    async def close(self) -> None:
        """Close the HTTP connection pool; safe to call twice."""
        requests, self._requests, self._bot = self._requests, (), None
        for req in requests:
            await req.shutdown()

    async def send(self, message: RenderedMessage) -> Outcome:
        """Send the message's text to its chat, in numbered parts when it is too long for one
        (``alerts.core.telegram.split_message``), and classify Telegram's answer.

        Parts an earlier attempt sent (``message.sent_parts``) are not sent again. When a part
        fails, the outcome is that part's, with the ids of the parts sent so far as its
        ``provider_id``, which the next attempt receives back; when the last part is sent the
        outcome is SENT with the first part's id, the message updates reply to.
        """
        try:
            chat = parse_chat_id(message.recipient.address)
        except ValidationError as exc:
            return Outcome(kind=OutcomeKind.PERMANENT, detail=exc.message)
        parts = split_message(message.content.text)
        sent = list(message.sent_parts[: len(parts)])
        new_chat: int | None = None
        while len(sent) < len(parts):
            first = not sent
            reply = message.reply_to_provider_id if first else None
            try:
                answer = await self._send_to(chat, parts[len(sent)], reply_to=reply, message=message)
            except ChatMigrated as exc:
                if new_chat is not None:  # migrated again right after migrating: give up
                    return self._partial(self._classify(exc), sent, new_chat)
                # The group became a supergroup with a new id: go on there, and report the new
                # id so the dispatcher updates the contact.
                chat = new_chat = exc.new_chat_id
                logger.info("Telegram group migrated to a supergroup; sending to its new chat id")
                continue
            except TelegramError as exc:
                return self._partial(self._classify(exc), sent, new_chat)
            sent.append(str(answer.message_id))
        detail = f"{len(parts)} parts: {', '.join(sent)}" if len(parts) > 1 else ""
        return self._partial(Outcome.sent(provider_id=sent[0], detail=detail), sent[:1], new_chat)

    @staticmethod
    def _partial(outcome: Outcome, sent: list[str], new_chat: int | None) -> Outcome:
        return dataclasses.replace(
            outcome,
            provider_id=join_parts(sent),
            new_address=str(new_chat) if new_chat is not None else None,
        )

    async def _send_to(
        self, chat: int | str, text: str, *, reply_to: str | None, message: RenderedMessage
    ) -> Message:
        bot = self._bot
        if bot is None:
            raise RuntimeError("TelegramChannel.send() called before open()")
        reply = None
        if reply_to:
            reply = ReplyParameters(first_message_id(reply_to), allow_sending_without_reply=True)
        key = chat.lower() if isinstance(chat, str) else chat  # @names are case-insensitive
        async with self._chats.hold(key), self._slots:
            await self._pacer.wait()
            logger.debug("Telegram sendMessage to chat %s (delivery %s)", chat, message.delivery_id)
            try:
                return await bot.send_message(
                    chat_id=chat,
                    text=text,
                    parse_mode=ParseMode.HTML,
                    link_preview_options=LinkPreviewOptions(is_disabled=True),
                    reply_parameters=reply,
                    allow_paid_broadcast=True if self.options.allow_paid_broadcast else None,
                )
            except RetryAfter as exc:
                # Flood control applies to the whole bot: pause every send, not just this chat.
                delay = _retry_after(exc)
                self._pacer.pause(delay.total_seconds())
                logger.warning("Telegram flood control: pausing all sends for %.1f s", delay.total_seconds())
                raise

    def _classify(self, exc: TelegramError) -> Outcome:
        detail = self._scrub(exc.message)
        if isinstance(exc, RetryAfter):
            return Outcome(kind=OutcomeKind.TRANSIENT, retry_after=_retry_after(exc), detail=detail)
        if isinstance(exc, ChatMigrated):  # migrated again right after migrating
            return Outcome(kind=OutcomeKind.PERMANENT, detail=detail)
        if isinstance(exc, ConnectTimedOut):
            # No connection was made, so the request never left: safe to retry.
            return Outcome(kind=OutcomeKind.TRANSIENT, detail=detail)
        text = exc.message.lower()
        for cls, words, kind, suppress in self.OUTCOMES:
            if isinstance(exc, cls) and words in text:
                return Outcome(kind=kind, suppress=suppress, detail=detail)
        raise exc

    def _scrub(self, text: str) -> str:
        # Error texts are stored with the delivery; the token must never be among them.
        token = self.options.token
        return text.replace(token, "***") if token else text


def _retry_after(exc: RetryAfter) -> timedelta:
    value = exc.retry_after  # int today, timedelta with PTB_TIMEDELTA=1 and in PTB 23
    return value if isinstance(value, timedelta) else timedelta(seconds=value)
