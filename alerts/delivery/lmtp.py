"""The inbound LMTP listener (``[bounces] listen``): the relay hands it the bounces it receives
for our return paths, and it applies them (``alerts.delivery.inbound``).

It accepts as recipients only our senders (``[email] from``, ``[press] from``) and their VERP
forms with a valid signature (``alerts.core.verp``); any other address is refused at RCPT.
After DATA it answers once per accepted recipient, as LMTP requires (RFC 2033 §4.2): each
recipient may name another delivery, and a relay that gets one reply for several recipients
defers the message ("message may be sent more than once"). A message that is no bounce is
accepted and ignored; a database failure, or a bounce that beat the dispatcher to recording
the send, answers 451 so the relay tries again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from email.utils import getaddresses
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from alerts.core.clock import utcnow
from alerts.core.errors import AlertsError
from alerts.core.verp import Verp, split
from alerts.delivery.bounce_scan import read_bounce
from alerts.delivery.bounces import MAX_DSN_BYTES, Dsn, read_message
from alerts.delivery.inbound import Applied, apply_bounce

logger = logging.getLogger(__name__)

#: Headers a relay or the bounce itself uses for the address the bounce went to.
RECIPIENT_HEADERS = ("Delivered-To", "X-Original-To", "To")


@dataclass(slots=True)
class BounceCounts:
    """What the listener has received since it started (for logs and metrics)."""

    messages: int = 0
    not_bounces: int = 0
    bounced: int = 0
    soft: int = 0
    unmatched: int = 0
    early: int = 0

    def add(self, applied: Applied) -> None:
        """Count one recipient's outcome."""
        self.bounced += applied.bounced
        self.soft += applied.soft
        self.unmatched += applied.unmatched
        self.early += applied.early


def verp_delivery_in_headers(raw: bytes, verp: Verp) -> int | None:
    """The delivery a bounce's own headers address (``alerts bounces process`` has no envelope)."""
    try:
        message = read_message(raw)
    except AlertsError:
        return None
    for header in RECIPIENT_HEADERS:
        for _name, address in getaddresses([str(v) for v in message.get_all(header, [])]):
            found = verp.delivery_id(address)
            if found is not None:
                return found
    return None


class BounceHandler:
    """aiosmtpd handler (LMTP) that applies every bounce it receives, recipient by recipient."""

    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], *, verp: Verp, senders: Iterable[str]
    ) -> None:
        self.sessions = sessions
        self.verp = verp
        self.senders = frozenset(s.strip().lower() for s in senders if s.strip())
        self.counts = BounceCounts()

    def accepts(self, address: str) -> bool:
        """One of our return paths: a sender, or its VERP form with a valid signature."""
        base, tag = split(address)
        if base.lower() not in self.senders:
            return False
        return tag is None or self.verp.delivery_id(address) is not None

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        if not self.accepts(address):
            return "550 5.1.1 Not a return path of this service"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.counts.messages += 1
        raw = envelope.original_content or envelope.content
        try:
            bounce = read_bounce(raw)
        except AlertsError as exc:
            self.counts.not_bounces += 1
            logger.info("inbound message is not a bounce report: %s", exc.details.get("reason", "unreadable"))
            return "\r\n".join("250 2.0.0 Not a bounce report; ignored" for _ in envelope.rcpt_tos)
        replies = []
        for rcpt in envelope.rcpt_tos:
            replies.append(await self._apply(bounce, self.verp.delivery_id(rcpt)))
        return "\r\n".join(replies)

    async def _apply(self, bounce: Dsn, delivery_id: int | None) -> str:
        try:
            async with self.sessions.begin() as db:
                applied = await apply_bounce(db, bounce, now=utcnow(), verp_delivery_id=delivery_id)
        except Exception:  # the relay keeps the bounce and retries: nothing is lost
            logger.exception("could not apply a bounce report")
            return "451 4.3.0 Could not record the report; try again later"
        self.counts.add(applied)
        logger.info("inbound %s bounce report: %s", bounce.kind, applied.describe())
        if applied.early:  # the relay retries; by then the send is recorded
            return "451 4.3.0 The delivery's send is still being recorded; try again later"
        return f"250 2.0.0 {applied.describe()}"


async def start_listener(
    sessions: async_sessionmaker[AsyncSession],
    *,
    host: str,
    port: int,
    verp: Verp,
    senders: Iterable[str],
) -> asyncio.Server:
    """Serve LMTP on this event loop (so the handler can use the app's database engine)."""
    from aiosmtpd.lmtp import LMTP

    handler = BounceHandler(sessions, verp=verp, senders=senders)
    loop = asyncio.get_running_loop()
    return await loop.create_server(
        lambda: LMTP(handler, data_size_limit=MAX_DSN_BYTES), host=host, port=port
    )
